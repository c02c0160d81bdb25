"""Builder test fixtures: a bare git repository holding one small Space commit."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest


def _git(*args: str, cwd: Path) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture
def space_repo(tmp_path: Path) -> tuple[str, str]:
    work = tmp_path / "work"
    work.mkdir()
    (work / "README.md").write_text("---\ntitle: Slow\nsdk: gradio\n---\n")
    (work / "app.py").write_text("print('hi')\n")
    _git("init", "-q", "-b", "main", cwd=work)
    _git("add", ".", cwd=work)
    _git("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "init", cwd=work)
    bare = tmp_path / "repo.git"
    _git("clone", "-q", "--bare", str(work), str(bare), cwd=tmp_path)
    sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=work, capture_output=True, text=True).stdout.strip()
    return str(bare), sha
