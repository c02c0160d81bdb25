"""Helpers for tests that drive a real Spaceyard server process with real clients."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_spaces"
ADMIN_TOKEN = "sy_test_admin_token_0123456789"
ERROR_STAGES = {"CONFIG_ERROR", "NO_APP_FILE", "BUILD_ERROR", "RUNTIME_ERROR"}


@dataclass
class Server:
    url: str
    port: int
    data_dir: Path
    token: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)

    # -- HTTP -----------------------------------------------------------------------------------
    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def api(self, method: str, path: str, token: str | None = "admin", **kw: Any) -> httpx.Response:
        tok = self.token if token == "admin" else token
        with self.client(tok) as c:
            return c.request(method, path, **kw)

    def create_space(self, space_id: str, sdk: str = "gradio", **extra: Any) -> dict[str, Any]:
        owner, _, name = space_id.partition("/")
        body = {"name": name, "organization": owner, "type": "space", "sdk": sdk, "private": False, **extra}
        r = self.api("POST", "/api/repos/create", json=body)
        assert r.status_code == 200, r.text
        return dict(r.json())

    def runtime(self, space_id: str) -> dict[str, Any]:
        r = self.api("GET", f"/api/spaces/{space_id}/runtime")
        assert r.status_code == 200, r.text
        return dict(r.json())

    def wait_stage(
        self, space_id: str, stages: set[str], timeout: float = 240, sha: str | None = None
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        rt: dict[str, Any] = {}
        while time.monotonic() < deadline:
            rt = self.runtime(space_id)
            if rt["stage"] in stages and (sha is None or rt.get("sha") == sha):
                return rt
            if sha is not None and rt.get("sha") == sha and rt["stage"] in ERROR_STAGES and not (stages & ERROR_STAGES):
                raise AssertionError(f"{space_id} failed: {rt}")
            time.sleep(0.2)
        raise AssertionError(f"{space_id} did not reach {stages} in {timeout}s: {rt}\n{self.tail_log()}")

    def git_url(self, space_id: str, token: str | None = "admin", user: str = "admin") -> str:
        tok = self.token if token == "admin" else token
        auth = f"{user}:{tok}@" if tok else ""
        return f"http://{auth}127.0.0.1:{self.port}/spaces/{space_id}"

    def app_get(self, space_id: str, path: str = "/", **kw: Any) -> httpx.Response:
        """GET an app through the gateway by its subdomain (Host header: Python cannot resolve *.localhost)."""
        sub = space_id.lower().replace("/", "-").replace("_", "-")
        headers = {"Host": f"{sub}.localhost:{self.port}", **kw.pop("headers", {})}
        return httpx.get(f"{self.url}{path}", headers=headers, timeout=30, **kw)

    def tail_log(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


START_PATIENCE = 180.0
"""Seconds `spaceyard up` may take to answer: a few on a quiet machine, much more on a loaded one."""


def start_server(
    data_dir: Path, port: int, env_dir: Path, extra_env: dict[str, str] | None = None, venv: Path | None = None
) -> Server:
    """Start ``spaceyard up`` (from ``venv`` if given, else this interpreter's) and wait until it answers."""
    data_dir.mkdir(parents=True, exist_ok=True)
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("SPACEYARD_") and k not in ("HF_TOKEN", "HF_ENDPOINT")
    }
    env.update(
        {
            "SPACEYARD_DATA_DIR": str(data_dir),
            "SPACEYARD_PORT": str(port),
            "SPACEYARD_ADMIN_TOKEN": ADMIN_TOKEN,
            "SPACEYARD_ENV_DIR": str(env_dir),
            "SPACEYARD_IDLE_CHECK_INTERVAL": "0.2",
            "SPACEYARD_VERSION_GRACE": "3",
        }
    )
    env.update(extra_env or {})
    log_path = data_dir / "server.log"
    spaceyard = (venv / "bin" if venv else Path(sys.executable).parent) / "spaceyard"
    with open(log_path, "ab") as logf:
        proc = subprocess.Popen([str(spaceyard), "up"], env=env, stdout=logf, stderr=subprocess.STDOUT, cwd=data_dir)
    server = Server(
        url=f"http://127.0.0.1:{port}",
        port=port,
        data_dir=data_dir,
        token=ADMIN_TOKEN,
        proc=proc,
        log_path=log_path,
        env=env,
    )
    deadline = time.monotonic() + START_PATIENCE
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"spaceyard up exited: {proc.returncode}\n{server.tail_log()}")
        try:
            if httpx.get(f"{server.url}/api/health", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"spaceyard up did not answer in {START_PATIENCE:.0f}s\n{server.tail_log()}")


def git(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_AUTHOR_NAME": "Test",
        "GIT_AUTHOR_EMAIL": "test@example.com",
        "GIT_COMMITTER_NAME": "Test",
        "GIT_COMMITTER_EMAIL": "test@example.com",
    }
    proc = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def working_copy(tmp: Path, sample: str | Path) -> Path:
    """A git working copy holding a sample Space (one commit on main)."""
    src = SAMPLES / sample if isinstance(sample, str) else sample
    dest = tmp / (src.name + "-wc")
    shutil.copytree(src, dest)
    git(dest, "init", "-q", "-b", "main")
    git(dest, "add", "-A")
    git(dest, "commit", "-q", "-m", "Initial commit")
    return dest


def commit_all(wc: Path, message: str) -> str:
    git(wc, "add", "-A")
    git(wc, "commit", "-q", "-m", message)
    return git(wc, "rev-parse", "HEAD").stdout.strip()


def push(
    server: Server, wc: Path, space_id: str, token: str | None = "admin", check: bool = True
) -> subprocess.CompletedProcess[str]:
    return git(wc, "push", "-q", "--force", server.git_url(space_id, token), "main", check=check)


def read_sse(url: str, quiet: float = 1.5, headers: dict[str, str] | None = None) -> list[str]:
    """The `data:` lines of an SSE stream, read until it ends or stays quiet for `quiet` seconds."""
    lines: list[str] = []
    try:
        with httpx.stream("GET", url, headers=headers, timeout=httpx.Timeout(10, read=quiet)) as r:
            for line in r.iter_lines():
                if line.startswith("data: "):
                    lines.append(line[6:])
    except httpx.ReadTimeout:
        pass
    return lines
