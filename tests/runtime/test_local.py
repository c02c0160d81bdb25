"""LocalRuntime against real processes: a tiny Gradio app in the session's built gradio environment.

These run without the sandbox (``local_sandbox="none"``) so that they can look at the app's host processes,
pids and ports directly; the same runtime inside its walls is tested in ``test_sandbox.py`` and, through
the real server, in ``tests/security/test_local_walls.py``."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import shutil
import socket
import textwrap
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from spaceyard_runtime.api import AppHandle, AppSpec, AppState
from spaceyard_runtime.errors import AppCrashed, AppStartError
from spaceyard_runtime.local import LocalRuntime, startup_banner
from spaceyard_runtime.settings import RuntimeSettings

MODES = ["cold", "fork"]

APP = textwrap.dedent(
    """
    import json, os, subprocess, sys, time
    import gradio as gr

    print("hello from the app", flush=True)
    print("to stderr", file=sys.stderr, flush=True)
    if os.environ.get("SPAWN_SLEEPER"):
        child = subprocess.Popen(["sleep", "600"])
        with open(os.environ["SPAWN_SLEEPER"], "w") as f:
            f.write(str(child.pid))

    def info(text):
        import tempfile, inspect
        import huggingface_hub.constants, gradio.route_utils, gradio_client.client
        return json.dumps({
            "hf_home": huggingface_hub.constants.HF_HOME,
            "hf_cache": huggingface_hub.constants.HF_HUB_CACHE,
            "hf_endpoint": huggingface_hub.constants.ENDPOINT,
            "tempdir": tempfile.gettempdir(),
            "gradio_temp": gradio.route_utils.DEFAULT_TEMP_DIR,
            "client_default": inspect.signature(gradio_client.Client).parameters["download_files"].default,
            "sys_path_head": sys.path[:2],
            "queue_idle": float(demo._queue.sleep_when_free),
            "orig_argv": sys.orig_argv,
            "echo": text,
            "env": dict(os.environ),
            "cwd": os.getcwd(),
            "argv": sys.argv,
            "path0": sys.path[0],
            "main": __name__,
            "pid": os.getpid(),
            "sid": os.getsid(0),
        })

    def count(n):
        for i in range(int(n)):
            time.sleep(0.05)
            yield str(i)

    with gr.Blocks() as demo:
        box = gr.Textbox()
        out = gr.Textbox()
        gr.Button("info").click(info, box, out, api_name="info")
        gr.Button("count").click(count, box, out, api_name="count")
    demo.launch()
    """
)

CRASH = textwrap.dedent(
    """
    print("about to fail")

    def load_model():
        raise RuntimeError("model weights not found: boom")

    load_model()
    """
)


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


def call(url: str, api_name: str, text: str) -> list[tuple[str, Any]]:
    """Call an endpoint through the queue; the (event, data) pairs of its SSE stream."""
    with httpx.Client(base_url=url, timeout=30) as client:
        event_id = client.post(f"/gradio_api/call/{api_name}", json={"data": [text]}).json()["event_id"]
        body = client.get(f"/gradio_api/call/{api_name}/{event_id}").text
    lines = body.splitlines()
    return [
        (line.removeprefix("event: "), json.loads(lines[i + 1].removeprefix("data: ")))
        for i, line in enumerate(lines)
        if line.startswith("event: ")
    ]


def call_info(url: str, text: str) -> dict[str, Any]:
    events = call(url, "info", text)
    assert events[-1][0] == "complete", events
    result: dict[str, Any] = json.loads(events[-1][1][0])
    return result


@pytest.fixture
async def runtime(request: pytest.FixtureRequest, tmp_path: Path, gradio_env: Path) -> AsyncIterator[LocalRuntime]:
    mode = getattr(request, "param", "cold")
    rt = LocalRuntime(RuntimeSettings(local_sandbox="none", data_dir=tmp_path / "data", fast_wake=(mode == "fork")))
    if mode == "fork":
        assert await rt.prewarm(make_spec(gradio_env, tmp_path))
    yield rt
    await rt.aclose()


def make_spec(env_dir: Path, app_dir: Path, **env: str) -> AppSpec:
    return AppSpec(
        space_id="alice/Hello_World",
        revision="a" * 40,
        sdk="gradio",
        artifact=str(env_dir),
        app_dir=app_dir,
        env={"SPACE_ID": "alice/Hello_World", "MY_SECRET": "s3cr3t", **env},
    )


@pytest.mark.parametrize("runtime", MODES, indirect=True)
async def test_app_runs_answers_and_stops(
    runtime: LocalRuntime, gradio_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mode = runtime.settings.fast_wake and "fork" or "cold"
    monkeypatch.setenv("SPACEYARD_ADMIN_TOKEN", "platform-only")
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    (app_dir / "app.py").write_text(APP)
    sleeper_file = tmp_path / "sleeper.pid"
    spec = make_spec(gradio_env, app_dir, SPAWN_SLEEPER=str(sleeper_file), HF_ENDPOINT="http://hub.example:8000")
    lines: list[str] = []

    handle = await runtime.start(spec, lines.append)
    assert handle.start_mode == mode
    assert (await runtime.poll(handle)).state in (AppState.STARTING, AppState.RUNNING)
    await runtime.wait_ready(handle, timeout=120)
    assert (await runtime.poll(handle)).state is AppState.RUNNING

    url = handle.endpoint.url
    assert httpx.get(url + "/", timeout=30).status_code == 200
    info = call_info(url, "ping")
    assert info["echo"] == "ping"
    # Forked apps get the quiet queue (no 1 ms idle poll); it still answers, also calls queued behind others.
    assert info["queue_idle"] == (0.5 if mode == "fork" else 0.001)
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        echoes = list(pool.map(lambda i: call_info(url, f"call {i}")["echo"], range(4)))
    assert echoes == [f"call {i}" for i in range(4)]
    # Streaming (generator) output arrives piece by piece.
    assert call(url, "count", "4") == [("generating", [str(i)]) for i in range(4)] + [("complete", ["3"])]

    env = info["env"]
    port = str(handle.endpoint.port)
    home = runtime.space_dir(spec) / "home"
    expected = {
        "PATH": f"{gradio_env.resolve()}/bin:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "TMPDIR": str(runtime.space_dir(spec) / "tmp"),
        "SPACE_ID": "alice/Hello_World",
        "MY_SECRET": "s3cr3t",
        "SPAWN_SLEEPER": str(sleeper_file),
        "HF_ENDPOINT": "http://hub.example:8000",
        "GRADIO_SERVER_NAME": "127.0.0.1",
        "GRADIO_SERVER_PORT": port,
        "PORT": port,
        "PYTHONUNBUFFERED": "1",
        "GRADIO_ANALYTICS_ENABLED": "False",
        "HF_HUB_DISABLE_TELEMETRY": "True",  # we pass "1"; gr.Blocks() rewrites it when analytics are off
        "SYSTEM": "spaces",
        "PYTHONPATH": str(app_dir.resolve()),
    }
    assert env == expected
    assert "SPACEYARD_ADMIN_TOKEN" not in env
    assert home.is_dir()
    # Like `python app.py` run from the checkout.
    assert info["cwd"] == str(app_dir.resolve())
    assert info["argv"] == ["app.py"]
    assert info["orig_argv"] == [str(gradio_env.resolve() / "bin" / "python"), "app.py"]
    assert info["path0"] == str(app_dir.resolve())
    assert info["main"] == "__main__"
    assert info["sys_path_head"] == [str(app_dir.resolve()), str(app_dir.resolve())]  # script dir, PYTHONPATH
    # Values libraries compute from the environment when imported are this app's, not a warm parent's.
    tmp = runtime.space_dir(spec) / "tmp"
    assert info["hf_home"] == str(home / ".cache" / "huggingface")
    assert info["hf_cache"] == str(home / ".cache" / "huggingface" / "hub")
    assert info["hf_endpoint"] == "http://hub.example:8000"
    assert info["tempdir"] == str(tmp)
    assert info["gradio_temp"] == info["client_default"] == str(tmp / "gradio")
    # Its own session (process group), so stop can take the whole group down.
    assert info["sid"] == info["pid"] == handle.extra["pid"]

    # Output reaches the log sink, stdout and stderr, after the startup banner.
    assert lines[0].startswith("===== Application Startup at ") and lines[0].endswith(" =====")
    assert len(lines[0]) == len(startup_banner())
    assert any(("Cold start" if mode == "cold" else "Fork") in line for line in lines[1:3])
    assert "hello from the app" in lines
    assert "to stderr" in lines

    sleeper = int(sleeper_file.read_text())
    assert alive(sleeper)
    await runtime.stop(handle, grace=5)
    await runtime.stop(handle, grace=5)  # idempotent
    status = await runtime.poll(handle)
    assert status.state is AppState.EXITED
    assert not alive(info["pid"])
    for _ in range(100):  # the sleeper is killed with the group; its new parent reaps it
        if not alive(sleeper):
            break
        time.sleep(0.05)
    assert not alive(sleeper)
    with socket.socket() as s:  # nobody listens any more, and the port can be bound again (as servers do)
        assert s.connect_ex(("127.0.0.1", handle.endpoint.port)) != 0
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", handle.endpoint.port))
        s.listen()


@pytest.mark.parametrize("runtime", MODES, indirect=True)
async def test_crash_at_start_reports_traceback(runtime: LocalRuntime, gradio_env: Path, tmp_path: Path) -> None:
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    (app_dir / "app.py").write_text(CRASH)
    lines: list[str] = []
    handle = await runtime.start(make_spec(gradio_env, app_dir), lines.append)
    with pytest.raises(AppCrashed) as info:
        await runtime.wait_ready(handle, timeout=120)
    assert info.value.exit_code == 1
    tail = info.value.log_tail
    assert "Traceback (most recent call last):" in tail
    assert "in load_model" in tail
    assert tail.splitlines()[-1] == "RuntimeError: model weights not found: boom"
    assert "about to fail" in lines
    status = await runtime.poll(handle)
    assert status.state is AppState.EXITED and status.exit_code == 1
    await runtime.stop(handle)  # stopping a dead app is fine


async def test_stop_unknown_and_bad_specs(runtime: LocalRuntime, gradio_env: Path, tmp_path: Path) -> None:
    spec = make_spec(gradio_env, tmp_path)
    ghost = AppHandle(spec=spec, endpoint=runtime_endpoint(), backend_id="local-1-999", started_at=0.0)
    await runtime.stop(ghost)
    assert (await runtime.poll(ghost)).state is AppState.EXITED
    with pytest.raises(AppStartError):
        await runtime.start(AppSpec(space_id="a/b", revision="x", sdk="docker", artifact="img"), lambda _: None)
    with pytest.raises(AppStartError):
        await runtime.start(
            AppSpec(space_id="a/b", revision="x", sdk="gradio", artifact=str(tmp_path / "nope"), app_dir=tmp_path),
            lambda _: None,
        )


def test_streamlit_command_line(tmp_path: Path, gradio_env: Path) -> None:
    rt = LocalRuntime(RuntimeSettings(local_sandbox="none", data_dir=tmp_path))
    spec = AppSpec(
        space_id="a/b", revision="x", sdk="streamlit", artifact=str(gradio_env), app_dir=tmp_path, app_file="main.py"
    )
    plan = rt.plan(spec, 8501)
    assert plan.argv == [
        str(gradio_env.resolve() / "bin" / "python"),
        "-m",
        "streamlit",
        "run",
        "main.py",
        "--server.port",
        "8501",
        "--server.address",
        "127.0.0.1",
        "--server.headless",
        "true",
        "--server.enableXsrfProtection",
        "false",
        "--server.enableCORS",
        "false",
        "--browser.gatherUsageStats",
        "false",
    ]
    assert plan.cwd == str(tmp_path.resolve())
    assert plan.env["PORT"] == "8501" and plan.env["GRADIO_SERVER_PORT"] == "8501"
    assert not any(k.startswith("SPACEYARD_") for k in plan.env)
    assert set(os.environ) - set(plan.env)  # nothing of the test process's environment is passed on wholesale


def runtime_endpoint() -> Any:
    from spaceyard_runtime.api import Endpoint

    return Endpoint("127.0.0.1", 1)


@pytest.mark.parametrize("runtime", ["fork"], indirect=True)
async def test_fork_falls_back_to_cold_when_it_would_differ(
    runtime: LocalRuntime, gradio_env: Path, tmp_path: Path
) -> None:
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    (app_dir / "app.py").write_text(CRASH)
    lines: list[str] = []
    handle = await runtime.start(make_spec(gradio_env, app_dir, PYTHONHASHSEED="0"), lines.append)
    assert handle.start_mode == "cold"
    assert any(line.startswith("Cold start") and "PYTHONHASHSEED is read when Python starts" in line for line in lines)
    with pytest.raises(AppCrashed):
        await runtime.wait_ready(handle, timeout=60)
    # Streamlit apps are not forked from a Gradio parent.
    lines.clear()
    spec = AppSpec(space_id="a/b", revision="x", sdk="streamlit", artifact=str(gradio_env), app_dir=app_dir)
    handle = await runtime.start(spec, lines.append)
    assert handle.start_mode == "cold"
    assert "fast wake is for Gradio Spaces" in lines[1]
    await runtime.stop(handle)


async def test_first_start_is_cold_and_warms_a_parent_once_it_answers(gradio_env: Path, tmp_path: Path) -> None:
    rt = LocalRuntime(RuntimeSettings(local_sandbox="none", data_dir=tmp_path / "data", fast_wake=True))
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    (app_dir / "app.py").write_text(APP)
    spec = make_spec(gradio_env, app_dir)
    try:
        lines: list[str] = []
        first = await rt.start(spec, lines.append)
        assert first.start_mode == "cold" and "one is warmed once the app answers" in lines[1]
        assert rt.zygote_key(spec) not in rt.warm.tasks  # not during the cold start: it would slow it down
        await rt.wait_ready(first, timeout=60)
        assert rt.zygote_key(spec) in rt.warm.tasks  # now, for the next start
        await rt.stop(first)
        second = await rt.start(spec, lines.append)  # waits for the parent if it is still warming
        assert second.start_mode == "fork"
        await rt.wait_ready(second, timeout=60)
        await rt.stop(second)
    finally:
        await rt.aclose()


async def test_a_start_retires_the_spaces_idle_warm_parent_on_another_environment(
    gradio_env: Path, tmp_path: Path
) -> None:
    rt = LocalRuntime(RuntimeSettings(local_sandbox="none", data_dir=tmp_path / "data", fast_wake=True))
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    (app_dir / "app.py").write_text(CRASH)
    other = tmp_path / "other-env"  # the same interpreter under another environment path
    other.mkdir()
    (other / "bin").mkdir()
    (other / "bin" / "python").symlink_to(gradio_env / "bin" / "python")
    try:
        assert await rt.prewarm(make_spec(gradio_env, app_dir))  # as the platform does while the Space builds
        early = rt.zygote_key(make_spec(gradio_env, app_dir))
        handle = await rt.start(make_spec(other, app_dir), lambda _: None)  # the build ended elsewhere
        assert handle.start_mode == "cold" and early not in rt.warm.tasks
        with pytest.raises(AppCrashed):
            await rt.wait_ready(handle, timeout=60)
    finally:
        await rt.aclose()


@pytest.mark.parametrize("runtime", ["fork"], indirect=True)
async def test_forked_app_outlives_its_warm_parent(runtime: LocalRuntime, gradio_env: Path, tmp_path: Path) -> None:
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    (app_dir / "app.py").write_text(APP)
    handle = await runtime.start(make_spec(gradio_env, app_dir), lambda _: None)
    assert handle.start_mode == "fork"
    await runtime.wait_ready(handle, timeout=60)
    zygote_pid = (await runtime.warm.tasks[runtime.zygote_key(handle.spec)]).pid
    assert zygote_pid is not None and zygote_pid != handle.extra["pid"]
    os.kill(zygote_pid, 9)
    for _ in range(100):
        if not alive(zygote_pid):
            break
        time.sleep(0.05)
    assert call_info(handle.endpoint.url, "still here")["echo"] == "still here"
    assert (await runtime.poll(handle)).state is AppState.RUNNING
    await runtime.stop(handle, grace=5)  # not our child, and its parent is gone: pidfd and process group
    assert (await runtime.poll(handle)).state is AppState.EXITED
    assert not alive(handle.extra["pid"])


def memory_count(pid: int, needle: bytes) -> int:
    found = 0
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", 0) as mem:
        for line in maps:
            start, end = (int(x, 16) for x in line.split()[0].split("-"))
            if not line.split()[1].startswith("r") or "[vvar]" in line or "[vsyscall]" in line:
                continue
            try:
                mem.seek(start)
                found += mem.read(end - start).count(needle)
            except OSError:
                continue
    return found


@pytest.mark.parametrize("runtime", ["fork"], indirect=True)
async def test_warm_parent_keeps_no_copy_of_an_apps_secrets(
    runtime: LocalRuntime, gradio_env: Path, tmp_path: Path
) -> None:
    # A later fork inherits the warm parent's memory: an earlier Space's secrets must not be in it.
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    (app_dir / "app.py").write_text("import time\nprint('up', flush=True)\ntime.sleep(600)\n")
    secret = "zq-" + os.urandom(8).hex()
    lines: list[str] = []
    handle = await runtime.start(make_spec(gradio_env, app_dir, MY_SECRET=secret), lines.append)
    assert handle.start_mode == "fork"
    for _ in range(200):
        if "up" in lines:
            break
        await asyncio.sleep(0.02)
    zygote = await runtime.warm.tasks[runtime.zygote_key(handle.spec)]
    assert zygote.pid is not None
    assert memory_count(handle.extra["pid"], secret.encode()) > 0  # the app has it (the scan works)
    assert memory_count(zygote.pid, secret.encode()) == 0
    await runtime.stop(handle)


async def test_load_state_stops_an_app_left_by_a_previous_platform(gradio_env: Path, tmp_path: Path) -> None:
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    (app_dir / "app.py").write_text("import time\nprint('up', flush=True)\ntime.sleep(600)\n")
    spec = make_spec(gradio_env, app_dir)
    before = LocalRuntime(RuntimeSettings(local_sandbox="none", data_dir=tmp_path / "data", fast_wake=False))
    after = LocalRuntime(RuntimeSettings(local_sandbox="none", data_dir=tmp_path / "data", fast_wake=False))
    try:
        handle = await before.start(spec, lambda _: None)
        state = before.get_state(handle)
        assert state["pid"] == handle.extra["pid"] and state["port"] == handle.endpoint.port
        # Not an app of ours on that port: left alone.
        assert await after.load_state(spec, {**state, "port": 1}, lambda _: None) is None
        assert alive(handle.extra["pid"])
        assert await after.load_state(spec, state, lambda _: None) is None
        assert not alive(handle.extra["pid"])
    finally:
        await before.aclose()
        await after.aclose()


def test_warm_parent_key_follows_the_build_of_an_environment(tmp_path: Path) -> None:
    rt = LocalRuntime(RuntimeSettings(local_sandbox="none", data_dir=tmp_path / "data"))
    env = tmp_path / "envs" / "abc"
    env.mkdir(parents=True)
    spec = AppSpec(space_id="a/b", revision="x", sdk="gradio", artifact=str(env), app_dir=tmp_path)
    first = rt.zygote_key(spec)
    assert rt.zygote_key(spec) == first
    assert rt.zygote_key(AppSpec(**{**spec.__dict__, "preload_modules": ("torch",)})) != first
    # The local engine rebuilds an environment in a new directory and renames it into place.
    fresh = tmp_path / "envs" / ".abc.tmp"
    fresh.mkdir()
    shutil.rmtree(env)
    fresh.rename(env)
    assert rt.zygote_key(spec) != first


async def test_preload_modules_and_a_failing_warm_parent(gradio_env: Path, tmp_path: Path) -> None:
    rt = LocalRuntime(RuntimeSettings(local_sandbox="none", data_dir=tmp_path / "data", fast_wake=True))
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    (app_dir / "app.py").write_text("import this\nprint('ok', flush=True)\nraise SystemExit(3)\n")
    base = make_spec(gradio_env, app_dir)
    try:
        # What importing the preload modules prints is in the forked app's log, as in a cold start's.
        spec = AppSpec(**{**base.__dict__, "preload_modules": ("this",)})
        assert await rt.prewarm(spec)
        lines: list[str] = []
        handle = await rt.start(spec, lines.append)
        assert handle.start_mode == "fork"
        with pytest.raises(AppCrashed) as info:
            await rt.wait_ready(handle, timeout=60)
        assert info.value.exit_code == 3
        assert "The Zen of Python, by Tim Peters" in lines and lines[-1] == "ok"
        # A preload module that cannot be imported: no warm parent, cold starts that say why.
        broken = AppSpec(**{**base.__dict__, "preload_modules": ("no_such_module_xyz",)})
        assert not await rt.prewarm(broken)
        lines.clear()
        handle = await rt.start(broken, lines.append)
        assert handle.start_mode == "cold"
        assert "failed" in lines[1] and "No module named 'no_such_module_xyz'" in lines[1]
        with pytest.raises(AppCrashed) as info:
            await rt.wait_ready(handle, timeout=60)
        assert info.value.exit_code == 3
    finally:
        await rt.aclose()


async def test_light_sleep_within_a_memory_budget_then_deep_sleep(gradio_env: Path, tmp_path: Path) -> None:
    """Real warm parents: a light sleeper costs its warm parent's PSS; past the budget the least recently
    used idle one ends first; ``deep_sleep`` ends one; a wake after either is cold, else a fork."""
    settings = RuntimeSettings(local_sandbox="none", data_dir=tmp_path / "data", fast_wake=True)
    rt = LocalRuntime(settings)
    assert rt.capabilities.light_sleep
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    (app_dir / "app.py").write_text(APP)
    first = make_spec(gradio_env, app_dir)
    second = AppSpec(**{**first.__dict__, "space_id": "bob/other", "slug": "", "source_folder": ""})
    try:
        assert await rt.prewarm(first) and await rt.prewarm(second)
        handle = await rt.start(second, lambda _: None)  # the most recently used
        assert handle.start_mode == "fork"
        await rt.wait_ready(handle, timeout=60)
        await rt.suspend(handle)
        cost = await rt.sleep_cost(handle)
        assert cost is not None and cost > 20 * 2**20  # Gradio imported: tens of MiB, counted by PSS
        first_cost = rt.warm.cost(rt.zygote_key(first))
        assert first_cost > 20 * 2**20
        settings.light_sleep_memory_mib = (cost + first_cost) // 2**20 - 1  # one of the two fits
        rt.warm.bound()
        assert rt.zygote_key(first) not in rt.warm.tasks  # the least recently used went
        assert (await rt.sleep_cost(handle) or 0) > 20 * 2**20  # it stays
        woken = await rt.resume(handle, lambda _: None)
        assert woken.start_mode == "fork"  # light sleep: a fork
        await rt.wait_ready(woken, timeout=60)
        await rt.suspend(woken)
        await rt.deep_sleep(woken)
        await rt.deep_sleep(woken)  # idempotent
        assert await rt.sleep_cost(woken) == 0
        cold = await rt.resume(woken, lambda _: None)
        assert cold.start_mode == "cold"  # deep sleep: nothing kept
        await rt.wait_ready(cold, timeout=60)
        assert call_info(cold.endpoint.url, "deep")["echo"] == "deep"
        await rt.stop(cold)
        settings.light_sleep_memory_mib = 0  # no light sleep: the warm parent that cold start began goes too
        await rt.prewarm(second)
        rt.warm.bound()
        assert rt.warm.tasks == {}
    finally:
        await rt.aclose()


PLAIN_HTTP = textwrap.dedent(
    """
    import http.server, os
    print("serving without uvicorn", flush=True)
    handler = http.server.SimpleHTTPRequestHandler
    http.server.HTTPServer((os.environ["GRADIO_SERVER_NAME"], int(os.environ["PORT"])), handler).serve_forever()
    """
)


@pytest.mark.parametrize("runtime", ["fork"], indirect=True)
async def test_a_forked_app_that_cannot_announce_is_still_found_ready(
    runtime: LocalRuntime, gradio_env: Path, tmp_path: Path
) -> None:
    """Forked Gradio apps say when uvicorn listens (no probing); one that serves another way never does,
    and the slow safety-net probe finds it."""
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    (app_dir / "app.py").write_text(PLAIN_HTTP)
    handle = await runtime.start(make_spec(gradio_env, app_dir), lambda _: None)
    assert handle.start_mode == "fork"
    await runtime.wait_ready(handle, timeout=60)
    with httpx.Client(timeout=10) as client:
        assert client.get(handle.endpoint.url + "/").status_code == 200
    app = runtime.processes.get(handle.backend_id)
    assert app is not None and app.announced is not None and not app.announced.done()  # it never said
    await runtime.stop(handle)
    await asyncio.wait_for(asyncio.shield(app.announced), 5)
    assert app.announced.result() is False  # the pipe closed with the app
