"""A real uv build killed mid-way, and a Space deleted while its build runs.

The Space's requirements name a local package whose build backend (run by uv, inside a real
``uv pip install`` into a half-built environment ``ENVS/.ID.xxxx``) records its pid and sleeps. Then:

1. uv itself is killed: the build ends ``BUILD_ERROR`` with the installer's exit in its reason, the old
   version keeps serving, the half-built environment is gone;
2. the worker is killed under the next build: the build restarts (attempt 2);
3. the Space is deleted during that attempt: uv is killed (the build is cancelled), its half-built
   environment removed, and nothing of the Space is left: processes, exported commits, run and build
   logs, its HOME and TMPDIR, its ``/data`` volume, its build files;
4. a new Space of the same name inherits nothing (its app finds no file the first one wrote, no
   storage, no old log line).
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from pathlib import Path

import httpx
from huggingface_hub import HfApi, Volume

from tests.support import Server, commit_all, push, working_copy

from .conftest import Faulty, worker_pids
from .helpers import build_log, wait_until

APP = """import os
import pathlib
import tempfile

import gradio as gr

MARK = "left-behind-by-the-first"
places = [pathlib.Path(os.environ["HOME"]), pathlib.Path(tempfile.gettempdir()), pathlib.Path("/data")]
FOUND = [str(p) for p in places if (p / MARK).exists()]
for p in places:
    if p.is_dir() and os.access(p, os.W_OK):
        (p / MARK).write_text("x")
print(f"{MARK} starting; found {FOUND}", flush=True)


def found(_: str) -> str:
    return ",".join(FOUND) or "nothing"


with gr.Blocks() as demo:
    gr.Button("found").click(found, gr.Textbox(), gr.Textbox(), api_name="found")

demo.launch()
"""
README = "---\ntitle: Gone\nsdk: gradio\nsdk_version: {version}\napp_file: app.py\n---\n"
BACKEND = """import ctypes
import os
import time

ctypes.CDLL(None).prctl(1, 9, 0, 0, 0)  # dies with uv, as the build walls' pid namespace ensures in production

with open({markers!r}, "a") as f:
    f.write(f"{{os.getpid()}}\\n")
time.sleep(600)
"""
PYPROJECT = (
    '[build-system]\nrequires = []\nbuild-backend = "slowbackend"\nbackend-path = ["."]\n\n'
    '[project]\nname = "slowpkg"\nversion = "{n}"\n'
)


def _sdk_version() -> str:
    root = Path(__file__).resolve().parents[2]
    for line in (root / "sample_spaces" / "hello-gradio" / "README.md").read_text().splitlines():
        if line.startswith("sdk_version:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError("no sdk_version in hello-gradio")


def _found(srv: Server, space_id: str) -> str:
    base = f"{srv.url}/apps/{space_id}/gradio_api/call/found"
    with httpx.Client(timeout=30) as c:
        event = c.post(base, json={"data": [""]}).json()["event_id"]
        body = c.get(f"{base}/{event}").text
    lines = [line[6:] for line in body.splitlines() if line.startswith("data: [")]
    assert lines, body
    return str(json.loads(lines[0])[0])


def _pids(markers: Path) -> list[int]:
    return [int(x) for x in markers.read_text().split()] if markers.exists() else []


def _alive(pid: int) -> bool:
    try:
        return "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False


def _installer(backend_pid: int) -> tuple[int, str]:
    """The uv process running the backend, and the half-built environment it installs into."""
    pid = backend_pid
    for _ in range(4):
        pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        if os.path.basename(argv[0].decode()) == "uv":
            env = argv[argv.index(b"--python") + 1].decode()
            return pid, str(Path(env).parents[1])
    raise AssertionError(f"no uv above the build backend {backend_pid}")


def _space_procs(slug: str) -> list[int]:
    """Live processes of the Space's apps (their environment names its runtime folder)."""
    needle = f"/runtime/spaces/{slug}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                environ = (entry / "environ").read_bytes()
                zombie = "State:\tZ" in (entry / "status").read_text()
            except OSError:
                continue
            if needle in environ and not zombie:
                found.append(int(entry.name))
    return found


def _slow_push(srv: Server, wc: Path, space_id: str, markers: Path, n: int) -> str:
    pkg = wc / "slowpkg"
    pkg.mkdir(exist_ok=True)
    (pkg / "slowbackend.py").write_text(BACKEND.format(markers=str(markers)))
    (pkg / "pyproject.toml").write_text(PYPROJECT.format(n=n))
    (wc / "requirements.txt").write_text("./slowpkg\n")
    sha = commit_all(wc, f"slow build {n}")
    push(srv, wc, space_id)
    return sha


def _leftovers(data: Path, slug: str, build_ids: list[str]) -> list[str]:
    """Whatever of the deleted Space is still on disk."""
    candidates = [
        data / "sources" / slug,
        data / "logs" / "run" / slug,
        data / "runtime" / "spaces" / slug.replace("--", "-"),
        data / "repos" / slug,
    ]
    found = [str(p) for p in candidates if p.exists()]
    for build_id in build_ids:
        found += [str(p) for p in (data / "builds").glob(f"{build_id}.*")]
        found += [str(p) for p in (data / "logs" / "build").glob(f"{build_id}*")]
    volumes = data / "runtime" / "volumes"
    found += [str(p) for p in volumes.iterdir()] if volumes.is_dir() else []
    return found


def test_kill_uv_kill_worker_then_delete_mid_build_leaves_nothing(
    faulty: Callable[..., Faulty], tmp_path: Path
) -> None:
    f = faulty(SPACEYARD_TEST_BUILD_SECONDS="0", SPACEYARD_STORAGE_TIERS='{"small": 16777216}')
    srv = f.start()
    api = HfApi(endpoint=srv.url, token=srv.token)
    space_id, slug = "admin/gone", "admin--gone"
    markers = tmp_path / "backend-pids.txt"

    def first_version(wc: Path) -> str:
        (wc / "README.md").write_text(README.format(version=_sdk_version()))
        (wc / "app.py").write_text(APP)
        return commit_all(wc, "an app that leaves files behind")

    srv.create_space(space_id)
    api.set_space_volumes(space_id, volumes=[Volume(type="bucket", source="admin/gone-data", mount_path="/data")])
    wc = working_copy(tmp_path, "hello-gradio")
    v1 = first_version(wc)
    push(srv, wc, space_id)
    srv.wait_stage(space_id, {"RUNNING"}, sha=v1, timeout=180)
    assert _found(srv, space_id) == "nothing"
    assert srv.runtime(space_id)["storage"] == "small"

    # 1. uv killed mid-install: BUILD_ERROR with the reason, the old version serves, no half-built env
    v2 = _slow_push(srv, wc, space_id, markers, 1)
    [backend] = wait_until(lambda: _pids(markers), 120, "uv to run the slow build backend")
    uv, half_built = _installer(backend)
    assert Path(half_built).is_dir() and Path(half_built).name.startswith(".")
    os.kill(uv, signal.SIGKILL)
    rt = srv.wait_stage(space_id, {"BUILD_ERROR"}, sha=v2, timeout=60)
    assert "failed (exit -9)" in rt["errorMessage"], rt
    assert not Path(half_built).exists()
    assert _found(srv, space_id) == "nothing"  # v1 still serves

    # 2. the worker killed under the next build: the build restarts
    _slow_push(srv, wc, space_id, markers, 2)
    wait_until(lambda: len(_pids(markers)) == 2, 120, "the second slow build")
    [worker] = worker_pids(f.data)
    os.kill(worker, signal.SIGKILL)
    wait_until(lambda: len(_pids(markers)) == 3, 120, "the build to restart after the worker died")
    backend = _pids(markers)[-1]
    uv, half_built = _installer(backend)
    log = build_log(srv, space_id)
    assert any("Build restarted (attempt 2)" in line for line in log), log
    build_ids = [p.stem for p in (f.data / "logs" / "build").glob("*.jsonl")]
    old_run_logs = list((f.data / "logs" / "run" / slug).iterdir())

    # 3. deleted during that build: the build is cancelled, nothing of the Space is left
    api.delete_repo(space_id, repo_type="space")
    wait_until(lambda: not _alive(uv) and not _alive(backend), 30, "the cancelled build's uv to die")
    wait_until(lambda: not Path(half_built).exists(), 30, "the half-built environment to be removed")
    assert _leftovers(f.data, slug, build_ids) == []
    assert _space_procs("admin-gone") == []

    # 4. a new Space of the same name inherits nothing
    srv.create_space(space_id)
    wc2 = working_copy(tmp_path / "again", "hello-gradio")
    v1b = first_version(wc2)
    push(srv, wc2, space_id)
    rt = srv.wait_stage(space_id, {"RUNNING"}, sha=v1b, timeout=180)
    assert rt["storage"] is None and "volumes" not in rt
    assert _found(srv, space_id) == "nothing"
    assert old_run_logs and not any(p.exists() for p in old_run_logs)
    assert not any("slow build" in line or "attempt 2" in line for line in build_log(srv, space_id))
