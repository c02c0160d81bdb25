"""DockerRuntime against a real dockerd: samples answer HTTP, sandbox settings, sleep and wake, crashes."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from pathlib import Path

import docker
import pytest

from spaceyard_builder.api import BuildResult
from spaceyard_runtime.agent_client import AgentClient
from spaceyard_runtime.api import AppSpec, AppState, Flavor
from spaceyard_runtime.docker import DockerRuntime, GpuAllocator
from spaceyard_runtime.errors import AppCrashed, AppStartError, CapacityPending
from spaceyard_runtime.settings import RuntimeSettings

from .conftest import BuildFn, eventually_no_default_route, git_commit, spec_for, start_app

pytestmark = pytest.mark.docker


def _get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return resp.status, resp.read()


async def _http(url: str) -> tuple[int, bytes]:
    return await asyncio.to_thread(_get, url)


def _exec(client: docker.DockerClient, container_id: str, code: str) -> str:
    out = client.containers.get(container_id).exec_run(["python3", "-c", code])
    return bytes(out.output).decode().strip()


async def test_gradio_sample_runs_and_answers_its_api(
    runtime: DockerRuntime, gradio_build: BuildResult, docker_client: docker.DockerClient
) -> None:
    lines: list[str] = []
    spec = spec_for(gradio_build, env={"SPACE_ID": "samples/hello-gradio", "SYSTEM": "spaces"})
    handle = await start_app(runtime, spec, lines)
    await runtime.wait_ready(handle, 180)

    def call() -> str:
        req = urllib.request.Request(
            handle.endpoint.url + "/gradio_api/call/greet",
            data=json.dumps({"data": ["Docker"]}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            event_id = json.loads(resp.read())["event_id"]
        with urllib.request.urlopen(f"{handle.endpoint.url}/gradio_api/call/greet/{event_id}", timeout=30) as resp:
            body: bytes = resp.read()
            return body.decode()

    stream = await asyncio.to_thread(call)
    assert "event: complete" in stream and "Hello Docker!" in stream
    host = docker_client.api.inspect_container(handle.backend_id)["HostConfig"]
    assert host["ReadonlyRootfs"] is True and "/home/user/app/.gradio" in host["Tmpfs"]
    await asyncio.sleep(0.3)
    assert any("Running on local URL" in line for line in lines), lines


async def test_streamlit_sample_runs_read_only_as_uid_1000_with_limits(
    runtime: DockerRuntime, streamlit_build: BuildResult, docker_client: docker.DockerClient
) -> None:
    lines: list[str] = []
    spec = spec_for(streamlit_build, env={"SPACE_ID": "samples/hello-streamlit"},
                    flavor=Flavor(name="cpu-test", cpu=0.5, memory_mib=768))  # fmt: skip
    handle = await start_app(runtime, spec, lines)
    await runtime.wait_ready(handle, 120)
    status, body = await _http(handle.endpoint.url + "/")
    assert status == 200 and b"Streamlit" in body
    assert (await runtime.poll(handle)).state == AppState.RUNNING

    attrs = docker_client.api.inspect_container(handle.backend_id)
    host = attrs["HostConfig"]
    assert attrs["Config"]["User"] == "1000:1000"
    assert host["NanoCpus"] == 500_000_000
    assert host["Memory"] == 768 * 2**20 and host["MemorySwap"] == 768 * 2**20
    assert host["ReadonlyRootfs"] is True
    assert host["CapDrop"] == ["ALL"] and "no-new-privileges" in host["SecurityOpt"]
    assert set(host["Tmpfs"]) >= {"/tmp", "/home/user/.cache"}
    assert _exec(docker_client, handle.backend_id, "import os; print(os.getuid(), os.getgid())") == "1000 1000"
    assert "Read-only file system" in _exec(
        docker_client, handle.backend_id, "open('/home/user/app/x', 'w')"
    ) or "Errno 30" in _exec(docker_client, handle.backend_id, "open('/home/user/app/x', 'w')")
    await asyncio.sleep(0.3)
    assert any("Uvicorn server started" in line or "You can now view" in line for line in lines), lines


async def test_docker_sample_answers_on_app_port_with_only_its_env(
    runtime: DockerRuntime,
    docker_build: BuildResult,
    docker_client: docker.DockerClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SPACEYARD_ADMIN_TOKEN", "platform-credential-must-not-leak")
    lines: list[str] = []
    spec = spec_for(docker_build, env={"SPACE_ID": "samples/hello-docker", "MY_SECRET": "runtime-secret"})
    handle = await start_app(runtime, spec, lines)
    assert handle.endpoint.port == 8080
    await runtime.wait_ready(handle, 60)
    status, body = await _http(handle.endpoint.url + "/api/info")
    info = json.loads(body)
    assert status == 200 and info == {"greeting": "Howdy", "uid": 1000, "space": "samples/hello-docker"}
    env = dict(e.split("=", 1) for e in docker_client.api.inspect_container(handle.backend_id)["Config"]["Env"])
    assert env["MY_SECRET"] == "runtime-secret"
    assert not any("platform-credential" in v for v in env.values())
    assert not any(k.startswith("SPACEYARD_") for k in env)
    await asyncio.sleep(0.3)
    assert "listening on 0.0.0.0:8080" in lines


async def test_suspend_stops_and_resume_starts_the_same_container(
    runtime: DockerRuntime, docker_build: BuildResult, docker_client: docker.DockerClient
) -> None:
    lines: list[str] = []
    handle = await start_app(runtime, spec_for(docker_build, "samples/sleepy-docker"), lines)
    await runtime.wait_ready(handle, 60)
    await runtime.suspend(handle)
    assert docker_client.api.inspect_container(handle.backend_id)["State"]["Running"] is False
    assert (await runtime.poll(handle)).state == AppState.EXITED

    woken = await runtime.resume(handle, lines.append)
    runtime.started.append(woken)  # type: ignore[attr-defined]
    assert woken.backend_id == handle.backend_id and woken.start_mode == "reuse"
    await runtime.wait_ready(woken, 60)
    status, _ = await _http(woken.endpoint.url + "/")
    assert status == 200
    assert docker_client.api.inspect_container(woken.backend_id)["State"]["Running"] is True
    await asyncio.sleep(0.3)
    assert sum(1 for line in lines if line.startswith("===== Application Startup")) == 2
    assert lines.count("listening on 0.0.0.0:8080") == 2  # the first run's output is not replayed

    await runtime.stop(woken)
    with pytest.raises(docker.errors.NotFound):
        docker_client.api.inspect_container(woken.backend_id)
    assert (await runtime.poll(woken)).state == AppState.EXITED
    await runtime.stop(woken)  # idempotent


async def test_spaces_are_isolated_from_each_other_and_the_host(
    runtime: DockerRuntime, docker_build: BuildResult, docker_client: docker.DockerClient
) -> None:
    a = await start_app(runtime, spec_for(docker_build, "iso/space-a"))
    b = await start_app(runtime, spec_for(docker_build, "iso/space-b"))
    await asyncio.gather(runtime.wait_ready(a, 60), runtime.wait_ready(b, 60))
    assert (await _http(b.endpoint.url + "/"))[0] == 200  # the platform (host) reaches both
    probe = (
        "import socket\n"
        "def c(h, p):\n"
        "    s = socket.socket(); s.settimeout(2)\n"
        "    try: return s.connect_ex((h, p))\n"
        "    finally: s.close()\n"
        f"print(c({b.endpoint.host!r}, 8080), c('1.1.1.1', 443), c('127.0.0.1', 6379))\n"
    )
    codes = [int(c) for c in _exec(docker_client, a.backend_id, probe).split()]
    assert all(code != 0 for code in codes), codes  # no other Space, no internet, no host loopback
    routes = docker_client.containers.get(a.backend_id).exec_run(["cat", "/proc/net/route"]).output.decode()
    destinations = [line.split()[1] for line in routes.splitlines()[1:] if line.strip()]
    assert destinations and "00000000" not in destinations  # no default route
    lookup = _exec(docker_client, a.backend_id,
                   "import socket\ntry: socket.getaddrinfo('pypi.org', 443); print('resolved')\n"
                   "except OSError: print('no dns')")  # fmt: skip
    assert lookup == "no dns"
    attrs = docker_client.api.inspect_container(a.backend_id)
    assert attrs["HostConfig"]["NetworkMode"] == "spaceyard-iso-space-a"
    assert docker_client.networks.get("spaceyard-iso-space-a").attrs["Internal"] is True


async def test_crash_before_ready_raises_with_exit_code_and_log_tail(
    runtime: DockerRuntime, build: BuildFn, tmp_path: pytest.TempPathFactory
) -> None:
    work = tmp_path / "crashy"  # type: ignore[operator]
    work.mkdir()
    (work / "README.md").write_text("---\ntitle: Crashy\nsdk: docker\napp_port: 8080\n---\n")
    (work / "Dockerfile").write_text(
        "ARG BASE_IMAGE=python:3.11-slim\nFROM ${BASE_IMAGE}\n"
        'CMD ["python3", "-c", "import sys; print(\'starting up\', flush=True); '
        "print('boom: missing model', file=sys.stderr, flush=True); sys.exit(3)\"]\n"
    )
    repo, sha = git_commit(work)
    result, log = build(repo, sha, "tests/crashy")
    assert result.ok, "\n".join(log[-20:])
    handle = await start_app(runtime, spec_for(result))
    with pytest.raises(AppCrashed) as info:
        await runtime.wait_ready(handle, 60)
    assert info.value.exit_code == 3
    assert "boom: missing model" in info.value.log_tail and "starting up" in info.value.log_tail
    status = await runtime.poll(handle)
    assert status.state == AppState.EXITED and status.exit_code == 3 and "boom" in status.message


async def test_static_spaces_have_no_container(runtime: DockerRuntime, static_build: BuildResult) -> None:
    with pytest.raises(AppStartError):
        await runtime.start(spec_for(static_build), lambda line: None)


def test_gpu_flavors_get_device_requests_from_the_allocator(tmp_path: pytest.TempPathFactory) -> None:
    rt = DockerRuntime(RuntimeSettings(runtime="docker", docker_gpus=["0", "1", "2"]))
    spec = AppSpec(space_id="g/pu", revision="a" * 40, sdk="docker", artifact="img:tag",
                   flavor=Flavor(name="t4-medium", cpu=1, memory_mib=1024, gpus=2))  # fmt: skip
    gpus = rt.gpus.allocate("c1", spec.flavor.gpus)
    kwargs = rt.container_kwargs(spec, "c1", "net", gpus)
    (request,) = kwargs["device_requests"]
    assert request["DeviceIDs"] == ["0", "1"] and request["Capabilities"] == [["gpu"]]
    assert kwargs["labels"]["org.spaceyard.gpus"] == "0,1"
    with pytest.raises(CapacityPending):
        rt.gpus.allocate("c2", 2)
    assert rt.gpus.allocate("c3", 1) == ["2"]
    rt.gpus.release("c1")
    assert rt.gpus.allocate("c2", 2, prefer=["1", "0"]) == ["1", "0"]
    cpu_only = rt.container_kwargs(AppSpec(space_id="c/pu", revision="b" * 40, sdk="docker", artifact="i:t"), "c4",
                                   "net", [])  # fmt: skip
    assert "device_requests" not in cpu_only


def test_gpu_allocator_is_exclusive() -> None:
    alloc = GpuAllocator(["0"])
    assert alloc.allocate("a", 1) == ["0"]
    assert alloc.allocate("a", 1) == ["0"]  # same holder: same GPUs
    with pytest.raises(CapacityPending):
        alloc.allocate("b", 1)
    alloc.release("a")
    assert alloc.allocate("b", 1) == ["0"]


async def test_load_state_reattaches_after_a_platform_restart(
    runtime: DockerRuntime, runtime_settings: RuntimeSettings, docker_build: BuildResult
) -> None:
    handle = await start_app(runtime, spec_for(docker_build, "samples/reattach"))
    await runtime.wait_ready(handle, 60)
    state = runtime.get_state(handle)
    assert state["backend_id"] == handle.backend_id and state["port"] == 8080

    fresh = DockerRuntime(runtime_settings)  # a new platform process
    lines: list[str] = []
    again = await fresh.load_state(handle.spec, state, lines.append)
    assert again is not None and again.backend_id == handle.backend_id
    assert again.endpoint == handle.endpoint
    assert (await fresh.poll(again)).state == AppState.RUNNING
    await _http(again.endpoint.url + "/")
    await asyncio.sleep(0.5)
    assert any('"GET / HTTP/1.1" 200' in line for line in lines)  # its output flows to the new sink
    await fresh.stop(again)
    assert await fresh.load_state(handle.spec, state, lines.append) is None
    await fresh.aclose()


async def test_an_app_that_stops_answering_fails_its_health_checks(
    runtime_settings: RuntimeSettings, streamlit_build: BuildResult, docker_client: docker.DockerClient
) -> None:
    rt = DockerRuntime(runtime_settings.model_copy(update={"docker_health_interval": 1.0}))
    handle = await rt.start(spec_for(streamlit_build, "health/check"), lambda line: None)
    try:
        await rt.wait_ready(handle, 120)
        # The container's agent probes the app (a Docker HEALTHCHECK's exec'd probe would see its token).
        args = docker_client.api.inspect_container(handle.backend_id)["Args"]
        assert args[args.index("--health-interval") + 1] == "1"
        assert docker_client.api.inspect_container(handle.backend_id)["Config"].get("Healthcheck") is None
        agent = AgentClient(handle.endpoint.host, handle.extra["agent_token"])
        for _ in range(100):  # the agent's first probe answered: failures count from there
            if (await agent.status())["app"]["healthy"]:
                break
            await asyncio.sleep(0.2)
        assert (await agent.status())["app"]["healthy"] is True
        assert (await rt.poll(handle)).state == AppState.RUNNING
        freeze = (
            "import os, signal\n"
            "for pid in filter(str.isdigit, os.listdir('/proc')):\n"
            "    cmd = open(f'/proc/{pid}/cmdline', 'rb').read()\n"
            "    if b'streamlit' in cmd and int(pid) != os.getpid(): os.kill(int(pid), signal.SIGSTOP)\n"
        )
        docker_client.containers.get(handle.backend_id).exec_run(["python3", "-c", freeze])
        status = await rt.poll(handle)
        for _ in range(150):
            status = await rt.poll(handle)
            if status.state == AppState.EXITED:
                break
            await asyncio.sleep(0.2)
        assert status.state == AppState.EXITED and "stopped answering HTTP" in status.message
    finally:
        await rt.stop(handle, 0)
        await rt.aclose()


async def test_a_crash_after_ready_is_restarted_by_docker_and_its_output_followed(
    runtime: DockerRuntime, build: BuildFn, tmp_path: pytest.TempPathFactory, docker_client: docker.DockerClient
) -> None:
    work = tmp_path / "flaky"  # type: ignore[operator]
    work.mkdir()
    (work / "README.md").write_text("---\ntitle: Flaky\nsdk: docker\napp_port: 8080\n---\n")
    (work / "server.py").write_text(
        "import http.server, os, sys\n"
        "class H(http.server.BaseHTTPRequestHandler):\n"
        "    def do_GET(self):\n"
        "        if self.path == '/crash':\n"
        "            print('crashing on purpose', flush=True); os._exit(1)\n"
        "        self.send_response(200); self.end_headers(); self.wfile.write(b'ok')\n"
        "print('flaky up', flush=True)\n"
        "http.server.HTTPServer(('0.0.0.0', 8080), H).serve_forever()\n"
    )
    (work / "Dockerfile").write_text(
        "ARG BASE_IMAGE=python:3.11-slim\nFROM ${BASE_IMAGE}\nCOPY server.py /server.py\n"
        'CMD ["python3", "/server.py"]\n'
    )
    repo, sha = git_commit(work)
    result, log = build(repo, sha, "tests/flaky")
    assert result.ok, "\n".join(log[-20:])
    lines: list[str] = []
    handle = await start_app(runtime, spec_for(result), lines)
    await runtime.wait_ready(handle, 60)
    policy = docker_client.api.inspect_container(handle.backend_id)["HostConfig"]["RestartPolicy"]
    assert policy == {"Name": "on-failure", "MaximumRetryCount": 3}
    with pytest.raises(Exception):  # noqa: B017 - the connection dies with the app
        await _http(handle.endpoint.url + "/crash")
    for _ in range(100):
        attrs = docker_client.api.inspect_container(handle.backend_id)
        if attrs["RestartCount"] >= 1 and attrs["State"]["Running"] and lines.count("flaky up") >= 2:
            break
        await asyncio.sleep(0.1)
    assert attrs["RestartCount"] >= 1
    assert lines.count("flaky up") == 2 and "crashing on purpose" in lines  # followed across the restart
    ip = docker_client.api.inspect_container(handle.backend_id)["NetworkSettings"]["Networks"]
    address = next(iter(ip.values()))["IPAddress"]
    for _ in range(50):
        try:
            status, _ = await _http(f"http://{address}:8080/")
            break
        except OSError:
            await asyncio.sleep(0.1)
    assert status == 200
    assert (await runtime.poll(handle)).state == AppState.RUNNING
    # A hostile app crashes on purpose to get a fresh network namespace, with a default route, from
    # Docker's restart: the runtime's route guard deletes it as the engine reports the start.
    assert await eventually_no_default_route(docker_client, handle.backend_id), "no default route after the restart"


async def test_a_new_platform_ends_the_containers_a_killed_one_left_and_only_those(
    runtime_settings: RuntimeSettings, docker_build: BuildResult, docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    """A platform killed before it could stop its apps (SIGKILL) leaves containers; the next one on the same
    state ends them at start (``end_previous``, called by the lifecycle), never another platform's."""
    killed = DockerRuntime(runtime_settings.model_copy(update={"data_dir": tmp_path / "killed"}))
    other = DockerRuntime(runtime_settings.model_copy(update={"data_dir": tmp_path / "other"}))
    left = await killed.start(spec_for(docker_build, "samples/left-behind"), lambda line: None)
    kept = await other.start(spec_for(docker_build, "samples/someone-elses"), lambda line: None)
    try:
        fresh = DockerRuntime(killed.settings)  # the restarted platform: same state directory
        await fresh.end_previous()
        with pytest.raises(docker.errors.NotFound):
            docker_client.containers.get(left.backend_id)
        assert docker_client.containers.get(kept.backend_id).status == "running"
        await fresh.end_previous()  # nothing left: a no-op
        await fresh.aclose()
    finally:
        await other.stop(kept)
        await killed.aclose()
        await other.aclose()
