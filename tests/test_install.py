"""What operators script: installing from the repo root into a fresh environment, `spaceyard up --port N`,
`SPACEYARD_DATA_DIR` holding all state, `SPACEYARD_ADMIN_TOKEN` fixing the admin token."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    venv = tmp_path_factory.mktemp("install") / "venv"
    uv = shutil.which("uv") or str(Path(sys.executable).parent / "uv")
    subprocess.run([uv, "venv", "-q", "-p", "3.11", str(venv)], check=True)
    # the same as `pip install .` from the repo root, with uv's cache for speed
    subprocess.run([uv, "pip", "install", "-q", "-p", str(venv / "bin" / "python"), str(ROOT)], check=True)
    return venv


def up(venv: Path, data: Path, port: int, env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("SPACEYARD_")}
    proc = subprocess.Popen(
        [str(venv / "bin" / "spaceyard"), "up", "--port", str(port)],
        env={**base, "SPACEYARD_DATA_DIR": str(data), **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=data.parent,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.2)
    return proc, f"http://127.0.0.1:{port}"


def stop(proc: subprocess.Popen[str]) -> str:
    proc.terminate()
    out, _ = proc.communicate(timeout=30)
    return out


def test_installed_spaceyard_up_prints_a_working_admin_token(installed: Path, tmp_path: Path) -> None:
    data = tmp_path / "state"
    data.mkdir()
    port = free_port()
    proc, url = up(installed, data, port, {})
    try:
        assert httpx.get(f"{url}/", timeout=10).status_code == 200
    finally:
        out = stop(proc)
    assert f"http://localhost:{port}" in out
    token = out.split("admin token:")[1].split()[0]
    assert (data / "spaceyard.db").exists() and (data / "admin.token").read_text().strip() == token
    proc, url = up(installed, data, port, {})  # restart: same state, same token
    try:
        who = httpx.get(f"{url}/api/whoami-v2", headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert who.status_code == 200 and who.json()["name"] == "admin"
    finally:
        stop(proc)


def test_admin_token_can_be_fixed(installed: Path, tmp_path: Path) -> None:
    data = tmp_path / "state"
    data.mkdir()
    proc, url = up(installed, data, free_port(), {"SPACEYARD_ADMIN_TOKEN": "sy_fixed_token_for_ops"})
    try:
        ok = httpx.get(f"{url}/api/whoami-v2", headers={"Authorization": "Bearer sy_fixed_token_for_ops"}, timeout=10)
        bad = httpx.get(f"{url}/api/whoami-v2", headers={"Authorization": "Bearer sy_other"}, timeout=10)
    finally:
        stop(proc)
    assert ok.status_code == 200 and ok.json()["name"] == "admin" and bad.status_code == 401
