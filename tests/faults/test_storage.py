"""Persistent storage on the local runtime, with a real server and a real Gradio app writing ``/data``:
it survives sleep, a redeploy and a platform restart, grows with a larger tier (never shrinks), is
refused past its size with ``ENOSPC`` inside the app, is not copied by a duplicate, and is gone with
the Space (no image, no mount left)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from huggingface_hub import HfApi

from tests.support import Server, commit_all, push, working_copy

from .conftest import Faulty
from .helpers import wait_until

SPACE = "admin/keeps-data"
MIB = 2**20
APP = """import errno
import os
import pathlib

import gradio as gr

DATA = pathlib.Path("/data")
VERSION = {version!r}


def write(arg: str) -> str:
    name, _, size = arg.partition(":")
    try:
        with open(DATA / name, "wb") as f:
            for _ in range(int(size or 1) // 65536 + 1):
                f.write(b"x" * 65536)
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        return errno.errorcode.get(exc.errno or 0, str(exc))
    return "ok"


def read(_: str) -> str:
    return VERSION + ":" + ",".join(sorted(p.name for p in DATA.iterdir() if p.is_file()))


with gr.Blocks() as demo:
    box = gr.Textbox()
    gr.Button("w").click(write, box, box, api_name="write")
    gr.Button("r").click(read, box, box, api_name="read")

demo.launch()
"""


def _call(srv: Server, fn: str, arg: str = "") -> str:
    base = f"{srv.url}/apps/{SPACE}/gradio_api/call/{fn}"
    with httpx.Client(timeout=60) as c:
        r = c.post(base, json={"data": [arg]})
        r.raise_for_status()
        body = c.get(f"{base}/{r.json()['event_id']}").text
    lines = [line[6:] for line in body.splitlines() if line.startswith("data: [")]
    assert lines, body
    return str(json.loads(lines[0])[0])


def _mounts_under(path: Path) -> list[str]:
    root = str(path.resolve())
    return [
        line.split()[1] for line in Path("/proc/mounts").read_text().splitlines() if line.split()[1].startswith(root)
    ]


@pytest.fixture
def unmount_after(tmp_path: Path) -> Iterator[None]:
    yield
    for mount in _mounts_under(tmp_path):  # only if the test failed before deleting the Space
        subprocess.run(["umount", "-l", mount], check=False)


def test_data_survives_sleep_redeploy_restart_and_goes_with_the_space(
    faulty: Callable[..., Faulty], tmp_path: Path, unmount_after: None
) -> None:
    f = faulty(
        SPACEYARD_TEST_BUILD_SECONDS="0", SPACEYARD_STORAGE_TIERS=json.dumps({"small": 16 * MIB, "medium": 32 * MIB})
    )
    srv = f.start()
    api = HfApi(endpoint=srv.url, token=srv.token)
    srv.create_space(SPACE)
    r = srv.api("POST", f"/api/spaces/{SPACE}/storage", json={"tier": "small"})  # request_space_storage
    assert r.status_code == 200 and r.json()["storage"] == "small", r.text
    bad = srv.api("POST", f"/api/spaces/{SPACE}/storage", json={"tier": "huge"})
    assert bad.status_code == 400 and "Valid tiers: small, medium" in bad.headers["X-Error-Message"]

    wc = working_copy(tmp_path, "hello-gradio")

    def deploy(version: str) -> None:
        (wc / "app.py").write_text(APP.format(version=version))
        sha = commit_all(wc, version)
        push(srv, wc, SPACE)
        srv.wait_stage(SPACE, {"RUNNING"}, sha=sha, timeout=180)

    deploy("v1")
    assert _call(srv, "write", "kept:1000") == "ok"
    assert _call(srv, "read") == "v1:kept"
    shown = srv.api("GET", f"/api/spaces/{SPACE}/storage").json()
    assert shown["tier"] == "small" and shown["mountPath"] == "/data" and shown["sizeBytes"] == 16 * MIB
    assert shown["usedBytes"] and shown["usedBytes"] > 0

    # sleep and wake
    assert srv.api("POST", f"/api/spaces/{SPACE}/sleeptime", json={"seconds": 1}).status_code == 200
    srv.wait_stage(SPACE, {"SLEEPING"}, timeout=60)
    assert srv.api("POST", f"/api/spaces/{SPACE}/sleeptime", json={"seconds": -1}).status_code == 200
    assert _call(srv, "read") == "v1:kept"

    # a redeploy (new commit, new process)
    deploy("v2")
    assert _call(srv, "read") == "v2:kept"

    # a platform restart
    f.stop()
    srv = f.start()
    assert _call(srv, "read") == "v2:kept"

    # a larger tier grows it in place; a smaller one is refused
    r = srv.api("POST", f"/api/spaces/{SPACE}/storage", json={"tier": "medium"})
    assert r.status_code == 200 and r.json()["storage"] == "medium"
    wait_until(lambda: srv.runtime(SPACE)["stage"] == "RUNNING", 120, "the restart on the larger tier")
    assert _call(srv, "read") == "v2:kept"
    assert srv.api("GET", f"/api/spaces/{SPACE}/storage").json()["sizeBytes"] == 32 * MIB
    down = srv.api("POST", f"/api/spaces/{SPACE}/storage", json={"tier": "small"})
    assert down.status_code == 400 and "cannot be downgraded" in down.headers["X-Error-Message"]

    # past its size: ENOSPC inside the app, which keeps running
    assert _call(srv, "write", f"big:{40 * MIB}") == "ENOSPC"
    assert srv.runtime(SPACE)["stage"] == "RUNNING"
    assert _call(srv, "write", "big:0") == "ok"  # space freed again by truncating

    # a duplicate starts without it
    api.duplicate_repo(SPACE, "admin/keeps-data-copy", repo_type="space")
    assert srv.runtime("admin/keeps-data-copy")["storage"] is None

    # deleted with the Space
    volumes = f.data / "runtime" / "volumes"
    assert [p.name for p in volumes.iterdir() if p.suffix == ".img"]
    api.delete_repo("admin/keeps-data-copy", repo_type="space")
    api.delete_repo(SPACE, repo_type="space")
    assert _mounts_under(f.data) == []
    assert [p for p in volumes.iterdir() if not p.name.startswith(".")] == []
