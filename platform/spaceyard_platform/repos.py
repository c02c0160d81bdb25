"""Bare git repositories, one per Space, under ``DATA_DIR/repos/OWNER/NAME.git``; the branch is ``main``.

Everything goes through the real ``git`` binary (plumbing commands), so what the API writes is exactly
what ``git clone`` reads.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .errors import PlatformError

BRANCH = "main"


class GitError(PlatformError):
    status = 500


@dataclass(frozen=True)
class TreeEntry:
    path: str
    type: str  # "file" | "directory"
    oid: str
    size: int


class RepoStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, owner: str, name: str) -> Path:
        return self.root / owner / f"{name}.git"

    def git(self, owner: str, name: str, *args: str, input: bytes | None = None, check: bool = True) -> bytes:  # noqa: A002
        proc = subprocess.run(
            ["git", "--git-dir", str(self.path(owner, name)), *args], input=input, capture_output=True, check=False
        )
        if check and proc.returncode != 0:
            raise GitError(f"git {args[0]} failed: {proc.stderr.decode(errors='replace').strip()}")
        return proc.stdout

    def init(self, owner: str, name: str) -> Path:
        path = self.path(owner, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["git", "init", "--quiet", "--bare", f"--initial-branch={BRANCH}", str(path)],
            check=True,
            capture_output=True,
        )
        # Smart HTTP: allow pushes over stateless RPC and keep history readable for clones.
        for key, value in (("http.receivepack", "true"), ("receive.denyDeleteCurrent", "true"), ("gc.auto", "0")):
            self.git(owner, name, "config", key, value)
        return path

    def exists(self, owner: str, name: str) -> bool:
        return (self.path(owner, name) / "HEAD").exists()

    def delete(self, owner: str, name: str) -> None:
        shutil.rmtree(self.path(owner, name), ignore_errors=True)

    def move(self, owner: str, name: str, new_owner: str, new_name: str) -> None:
        dest = self.path(new_owner, new_name)
        dest.parent.mkdir(parents=True, exist_ok=True)
        self.path(owner, name).rename(dest)

    def copy(self, owner: str, name: str, new_owner: str, new_name: str) -> None:
        dest = self.path(new_owner, new_name)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(self.path(owner, name), dest)

    def resolve(self, owner: str, name: str, rev: str = BRANCH) -> str | None:
        out = self.git(owner, name, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}", check=False).strip()
        return out.decode() or None

    def head(self, owner: str, name: str) -> str | None:
        return self.resolve(owner, name, f"refs/heads/{BRANCH}")

    def read_file(self, owner: str, name: str, rev: str, path: str) -> bytes | None:
        proc = subprocess.run(
            ["git", "--git-dir", str(self.path(owner, name)), "cat-file", "blob", f"{rev}:{path}"],
            capture_output=True,
            check=False,
        )
        return proc.stdout if proc.returncode == 0 else None

    def list_tree(self, owner: str, name: str, rev: str, path: str = "", recursive: bool = True) -> list[TreeEntry]:
        args = ["ls-tree", "-l", "-z"]
        if recursive:
            args += ["-r", "-t"]
        spec = f"{rev}:{path}" if path else rev
        out = self.git(owner, name, *args, spec, check=False)
        entries = []
        prefix = f"{path.rstrip('/')}/" if path else ""
        for rec in out.decode(errors="replace").split("\0"):
            if not rec:
                continue
            meta, _, p = rec.partition("\t")
            _mode, kind, oid, size = meta.split(maxsplit=3)
            entries.append(
                TreeEntry(
                    path=prefix + p,
                    type="directory" if kind == "tree" else "file",
                    oid=oid,
                    size=0 if size.strip() == "-" else int(size),
                )
            )
        return entries

    def commit_info(self, owner: str, name: str, rev: str) -> dict[str, str] | None:
        out = self.git(owner, name, "log", "-1", "--format=%H%x00%s%x00%cI%x00%an", rev, "--", check=False)
        if not out.strip():
            return None
        sha, title, date, author = out.decode().rstrip("\n").split("\0")
        return {"id": sha, "title": title, "date": date, "author": author}

    def log(self, owner: str, name: str, rev: str = BRANCH, limit: int = 50) -> list[dict[str, str]]:
        out = self.git(owner, name, "log", f"-{limit}", "--format=%H%x00%s%x00%cI%x00%an%x1e", rev, check=False)
        commits = []
        for rec in out.decode(errors="replace").split("\x1e"):
            rec = rec.strip("\n")
            if rec:
                sha, title, date, author = rec.split("\0")
                commits.append({"id": sha, "title": title, "date": date, "author": author})
        return commits
