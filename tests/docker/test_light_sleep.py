"""Light and deep sleep on the Docker runtime, with the real hello-gradio image and its in-container agent:
a wake from light sleep is a fork in the same container, deep sleep removes the container, the memory
budget deepens the least recently suspended, and the agent's port is closed to other Spaces and to
anyone without the token."""

from __future__ import annotations

import asyncio
import json
import urllib.request

import docker
import pytest

from spaceyard_builder.api import BuildResult
from spaceyard_runtime.agent_client import AGENT_PORT, AgentClient, AgentError
from spaceyard_runtime.api import AppHandle, AppState
from spaceyard_runtime.docker import DockerRuntime
from spaceyard_runtime.settings import RuntimeSettings

from .conftest import spec_for, start_app

pytestmark = pytest.mark.docker


def _get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=30) as resp:
        return resp.status, resp.read()


async def serves_gradio(handle: AppHandle) -> bool:
    try:
        status, body = await asyncio.to_thread(_get, handle.endpoint.url + "/")
    except OSError:
        return False
    return status == 200 and b"Hello Gradio" in body


def _exec(client: docker.DockerClient, container_id: str, code: str) -> str:
    out = client.containers.get(container_id).exec_run(["python3", "-c", code])
    return bytes(out.output).decode().strip()


def zygote_processes(client: docker.DockerClient, container_id: str) -> int:
    """Processes in the container running zygote.py: the warm parent and its forked app (which keeps the
    parent's command line)."""
    code = (
        "import os\nprint(sum(b'zygote.py' in open(f'/proc/{p}/cmdline', 'rb').read()"
        " for p in os.listdir('/proc') if p.isdigit() and int(p) != os.getpid()))"
    )
    return int(_exec(client, container_id, code))


def running(client: docker.DockerClient, container_id: str) -> bool:
    try:
        return bool(client.api.inspect_container(container_id)["State"]["Running"])
    except docker.errors.NotFound:
        return False


async def test_light_sleep_wakes_by_fork_in_the_same_container_and_deep_sleep_removes_it(
    runtime: DockerRuntime, gradio_build: BuildResult, docker_client: docker.DockerClient
) -> None:
    lines: list[str] = []
    handle = await start_app(runtime, spec_for(gradio_build, "light/sleeper"), lines)
    await runtime.wait_ready(handle, 180)
    assert await serves_gradio(handle)
    assert runtime.capabilities.light_sleep and await runtime.sleep_cost(handle) is not None

    await runtime.suspend(handle)
    assert running(docker_client, handle.backend_id)  # the container stays, with its warm parent
    assert (await runtime.poll(handle)).state is AppState.EXITED
    assert not await serves_gradio(handle)
    cost = await runtime.sleep_cost(handle)
    assert cost is not None and cost > 20 * 2**20  # Gradio imported: tens of MiB, measured by the agent
    assert zygote_processes(docker_client, handle.backend_id) == 1  # the warm parent, no forked app

    woken_lines: list[str] = []
    woken = await runtime.resume(handle, woken_lines.append)
    runtime.started.append(woken)  # type: ignore[attr-defined]
    assert woken.start_mode == "fork" and woken.backend_id == handle.backend_id
    assert woken_lines[0].startswith("===== Application Startup at ")
    await runtime.wait_ready(woken, 60)
    assert await serves_gradio(woken) and (await runtime.poll(woken)).state is AppState.RUNNING
    assert zygote_processes(docker_client, woken.backend_id) == 2  # the app is a fork of the warm parent
    await asyncio.sleep(0.3)
    assert any("Running on local URL" in line for line in woken_lines), woken_lines  # to the new sink
    assert sum("Running on local URL" in line for line in lines) == 1  # the first sink got the first run only

    await runtime.suspend(woken)
    await runtime.deep_sleep(woken)
    with pytest.raises(docker.errors.NotFound):
        docker_client.api.inspect_container(woken.backend_id)
    assert await runtime.sleep_cost(woken) == 0
    await runtime.deep_sleep(woken)  # idempotent
    cold = await runtime.resume(woken, lambda line: None)
    runtime.started.append(cold)  # type: ignore[attr-defined]
    assert cold.start_mode == "cold" and cold.backend_id != woken.backend_id
    await runtime.wait_ready(cold, 180)
    assert await serves_gradio(cold)


async def test_other_spaces_cannot_reach_an_agent_and_the_budget_deepens_the_least_recent_sleeper(
    runtime_settings: RuntimeSettings, gradio_build: BuildResult, docker_client: docker.DockerClient
) -> None:
    rt = DockerRuntime(runtime_settings)
    rt.started = []  # type: ignore[attr-defined]
    try:
        a = await start_app(rt, spec_for(gradio_build, "light/hostile-a"))
        b = await start_app(rt, spec_for(gradio_build, "light/victim-b"))
        await asyncio.gather(rt.wait_ready(a, 180), rt.wait_ready(b, 180))

        # Space A's app tries B's agent (and B's app), then its own agent without the token.
        probe = (
            "import socket, urllib.request, urllib.error\n"
            "def c(h, p):\n"
            "    s = socket.socket(); s.settimeout(2)\n"
            "    try: return s.connect_ex((h, p))\n"
            "    finally: s.close()\n"
            "def own(token):\n"
            f"    url = 'http://127.0.0.1:{AGENT_PORT}/status'\n"
            "    r = urllib.request.Request(url, headers={'Authorization': token})\n"
            "    try: return urllib.request.urlopen(r, timeout=5).status\n"
            "    except urllib.error.HTTPError as e: return e.code\n"
            f"print(c({b.endpoint.host!r}, {AGENT_PORT}), c({b.endpoint.host!r}, 7860), own(''), own('Bearer guess'))\n"
        )
        to_b_agent, to_b_app, no_token, guessed = (int(x) for x in _exec(docker_client, a.backend_id, probe).split())
        assert to_b_agent != 0 and to_b_app != 0 and no_token == 401 and guessed == 401
        # No environment the app can read holds the token: the agent (PID 1) is not dumpable, the warm
        # parent and the app got their environment without it.
        readable = json.loads(_exec(docker_client, a.backend_id,
            "import json, os\nseen = {}\nfor p in filter(str.isdigit, os.listdir('/proc')):\n"
            "    try: seen[p] = open(f'/proc/{p}/environ', 'rb').read().decode(errors='replace')\n"
            "    except OSError: pass\n"
            "seen.pop(str(os.getpid()))\nprint(json.dumps(seen))"))  # fmt: skip
        assert "1" not in readable and len(readable) >= 2, readable.keys()  # the warm parent and the app
        assert not [p for p, env in readable.items() if "SPACEYARD_AGENT" in env or a.extra["agent_token"] in env]
        with pytest.raises(AgentError) as refused:  # the platform's side, with a wrong token
            await AgentClient(a.endpoint.host, a.extra["agent_token"][:-1] + "x").status()
        assert refused.value.status == 401

        # The budget: room for one light sleeper. A sleeps first, so B's sleep sends A to deep sleep.
        await rt.suspend(a)
        cost_a = await rt.sleep_cost(a)
        assert cost_a
        rt.settings = rt.settings.model_copy(update={"light_sleep_memory_mib": int(cost_a * 1.5) // 2**20})
        await rt.suspend(b)
        assert not running(docker_client, a.backend_id) and running(docker_client, b.backend_id)
        assert await rt.sleep_cost(a) == 0 and (await rt.sleep_cost(b) or 0) > 0
        woken = await rt.resume(b, lambda line: None)
        rt.started.append(woken)  # type: ignore[attr-defined]
        assert woken.start_mode == "fork"
        await rt.wait_ready(woken, 60)
        assert await serves_gradio(woken)
    finally:
        for handle in rt.started:  # type: ignore[attr-defined]
            await rt.remove(handle)
        await rt.aclose()
