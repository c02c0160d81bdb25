"""LocalRuntime inside its walls (``local_sandbox="bwrap"``, the default): real bubblewrap, cgroups, apps.

What the runtime must guarantee on its own, without the server: the app runs as the Space's uid in its
own namespaces, reachable only through its network namespace; the box gets the flavor's limits; a
forked app lands in the same walls; and no process outlives the runtime, however it ends (stopped,
SIGKILLed: ``--die-with-parent``; or left behind: ended by the next runtime on the same DATA_DIR).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from spaceyard_runtime import netns
from spaceyard_runtime.api import AppHandle, AppSpec, Flavor
from spaceyard_runtime.local import LocalRuntime
from spaceyard_runtime.sandbox import space_uid
from spaceyard_runtime.settings import RuntimeSettings


@pytest.fixture(autouse=True)
def _root() -> None:
    """The walls need root (bubblewrap, setpriv, cgroups): without it this is a failure, never a skip."""
    if os.geteuid() != 0:
        pytest.fail("the sandbox needs root: run the tests as root, as .ci/test does")


APP = textwrap.dedent(
    """
    import json, os, socket
    import gradio as gr

    def look(path):
        try:
            return sorted(os.listdir(path))
        except OSError as exc:
            return type(exc).__name__

    def info(x):
        return json.dumps({"uid": os.getuid(), "pid": os.getpid(), "secret": look(os.environ["PEEK"]),
                           "env": sorted(os.environ), "hostname": socket.gethostname()})

    gr.Interface(info, "text", "text", api_name="info").launch()
    """
)


def spec(app_dir: Path, env_dir: Path, peek: Path) -> AppSpec:
    return AppSpec(
        space_id="walls/Box_Test",
        revision="b" * 40,
        sdk="gradio",
        artifact=str(env_dir),
        app_dir=app_dir,
        env={"SPACE_ID": "walls/Box_Test", "PEEK": str(peek)},
        flavor=Flavor(name="cpu-basic", cpu=2.0, memory_mib=16384),
    )


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[LocalRuntime]:
    rt = LocalRuntime(RuntimeSettings(data_dir=tmp_path / "data", fast_wake=True, local_memory_scale=0.0625))
    yield rt
    await rt.aclose()


async def call_info(handle: AppHandle) -> dict[str, Any]:
    server = await netns.forward(handle.endpoint.host, handle.endpoint.port, handle.endpoint.netns)
    port = server.sockets[0].getsockname()[1]
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            event = (await client.post("/gradio_api/call/info", json={"data": ["x"]})).json()["event_id"]
            body = (await client.get(f"/gradio_api/call/info/{event}")).text
    finally:
        server.close()
    result: dict[str, Any] = json.loads(json.loads(body.split("data: ")[-1])[0])
    return result


def uid_processes(uid: int) -> list[int]:
    found = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            for line in Path(f"/proc/{entry}/status").read_text().splitlines():
                if line.startswith("Uid:") and int(line.split()[1]) == uid:
                    found.append(int(entry))
        except OSError:
            continue
    return found


def wait_gone(uid: int, timeout: float = 10.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while (left := uid_processes(uid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


async def test_cold_and_forked_apps_run_in_the_same_walls(
    runtime: LocalRuntime, gradio_env: Path, tmp_path: Path
) -> None:
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    (app_dir / "app.py").write_text(APP)
    peek = tmp_path / "platform-only"
    peek.mkdir()
    (peek / "secret.key").write_text("k")
    s = spec(app_dir, gradio_env, peek)
    uid = space_uid(s.space_id)
    assert await runtime.prewarm(s)
    for expected in ("fork", "cold"):
        handle = await runtime.start(s, lambda _: None)
        assert handle.start_mode == expected and handle.endpoint.netns is not None
        await runtime.wait_ready(handle, 180)
        with httpx.Client(timeout=2) as plain, pytest.raises(httpx.HTTPError):
            plain.get(f"http://127.0.0.1:{handle.endpoint.port}/")  # nothing on the host's loopback there
        info = await call_info(handle)
        assert info["uid"] == uid and info["hostname"] == "space"
        assert info["secret"] == "FileNotFoundError"  # the platform's directory is not in its world
        assert not any(str(k).startswith("SPACEYARD_") for k in info["env"])
        box = runtime.processes.apps[handle.backend_id].box
        assert box is not None
        memory = next(cg for cg in box.cgroups if "/memory/" in str(cg))
        assert int((memory / "memory.limit_in_bytes").read_text()) == 1 << 30  # 16 GiB x 0.0625
        cpu = next(cg for cg in box.cgroups if "/cpu/" in str(cg))
        assert int((cpu / "cpu.cfs_quota_us").read_text()) == 200000
        await runtime.stop(handle)
        if expected == "fork":  # sleeping: only the warm parent is left (the app and its children are gone)
            deadline = time.monotonic() + 10
            while len(uid_processes(uid)) > 1 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert len(uid_processes(uid)) == 1
            light = await runtime.sleep_cost(handle)  # measured inside the walls: every process of the box
            assert light is not None and light > 20 * 2**20
            runtime.settings.fast_wake = False
    await runtime.aclose()
    assert wait_gone(uid) == []


DRIVER = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from spaceyard_runtime.api import AppSpec
    from spaceyard_runtime.local import LocalRuntime
    from spaceyard_runtime.settings import RuntimeSettings

    async def main():
        rt = LocalRuntime(RuntimeSettings(data_dir=Path(sys.argv[1]), fast_wake=False))
        spec = AppSpec(space_id="walls/orphan", revision="c" * 40, sdk="gradio", artifact=sys.argv[2],
                       app_dir=Path(sys.argv[3]), env={"PEEK": "/"})
        handle = await rt.start(spec, lambda _: None)
        await rt.wait_ready(handle, 180)
        print("ready", flush=True)
        await asyncio.sleep(3600)

    asyncio.run(main())
    """
)


async def test_apps_die_with_a_sigkilled_platform_and_leftovers_are_ended_at_the_next_start(
    gradio_env: Path, tmp_path: Path
) -> None:
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    (app_dir / "app.py").write_text(APP)
    uid = space_uid("walls/orphan")
    data = tmp_path / "data"
    driver = subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(data), str(gradio_env), str(app_dir)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert driver.stdout is not None and driver.stdout.readline().strip() == "ready"
    assert uid_processes(uid)
    driver.send_signal(signal.SIGKILL)  # the platform dies without a chance to clean up
    driver.wait()
    assert wait_gone(uid) == []
    # Something left in the box's cgroups anyway (here: put there by hand) is ended by the next runtime.
    stray = subprocess.Popen(["sleep", "600"], preexec_fn=lambda: os.setuid(uid))
    rt = LocalRuntime(RuntimeSettings(data_dir=data))
    root = rt.sandbox._roots()[2]  # type: ignore[attr-defined]
    (root / "leftover").mkdir(parents=True, exist_ok=True)
    (root / "leftover" / "cgroup.procs").write_text(str(stray.pid))
    LocalRuntime(RuntimeSettings(data_dir=data))  # a restarted platform
    assert stray.wait(timeout=10) == -signal.SIGKILL
    assert not (root / "leftover").exists()
    await rt.aclose()
