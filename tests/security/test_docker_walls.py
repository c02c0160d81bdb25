"""The Docker runtime's walls, probed from inside a real Space container, and the warning at start.

Each probe runs inside a Gradio Space container (``SYSTEM=spaces``, so Gradio's reload server listens on
7887 there): it must not run as root, must not write its root filesystem, must see nothing of the host's
files or processes, reach no host loopback service and no other Space; ``spaceyard up`` with the docker
runtime must warn about the host services it cannot protect without firewall rules.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

import docker
import pytest

from spaceyard_builder.api import BuildResult
from spaceyard_runtime.docker import DockerRuntime
from spaceyard_runtime.settings import RuntimeSettings
from tests.docker.conftest import (  # noqa: F401 (the Docker fixtures, shared with tests/docker)
    base_image,
    build,
    builder_settings,
    docker_client,
    engine,
    gradio_build,
    runtime,
    runtime_settings,
    sample_repo,
    spec_for,
    start_app,
)
from tests.support import start_server

pytestmark = pytest.mark.docker

PROBE = """
import json, os, socket
def connect(host, port):
    s = socket.socket(); s.settimeout(2)
    try: return s.connect_ex((host, port))
    finally: s.close()
def can_write(path):
    try:
        open(path, "w").write("x"); return True
    except OSError:
        return False
environs = []
for pid in os.listdir("/proc"):
    if pid.isdigit():
        try: environs.append(open(f"/proc/{pid}/environ", "rb").read().decode(errors="replace"))
        except OSError: pass
print(json.dumps({
    "uid": os.getuid(),
    "write_usr": can_write("/usr/probe"),
    "write_root": can_write("/probe"),
    "paths": {p: os.path.exists(p) for p in PATHS},
    "environs": environs,
    "pids": len(environs),
    "loopback": {p: connect("127.0.0.1", p) for p in (6379, 5432, 8000)},
    "other": connect(OTHER, 7887) if OTHER else None,
}))
"""


def probe(client: docker.DockerClient, container_id: str, paths: list[str], other: str | None) -> dict[str, Any]:
    code = f"PATHS = {paths!r}\nOTHER = {other!r}\n" + PROBE
    out = client.containers.get(container_id).exec_run(["python3", "-c", code])
    result: dict[str, Any] = json.loads(bytes(out.output).decode().strip().splitlines()[-1])
    return result


async def test_a_space_container_sees_nothing_of_the_host_or_other_spaces(
    runtime: DockerRuntime,  # noqa: F811
    gradio_build: BuildResult,  # noqa: F811
    docker_client: docker.DockerClient,  # noqa: F811
    tmp_path: Path,
) -> None:
    env = {"SPACE_ID": "walls/a", "SYSTEM": "spaces"}
    a = await start_app(runtime, spec_for(gradio_build, "walls/space-a", env=env))
    b = await start_app(runtime, spec_for(gradio_build, "walls/space-b", env={**env, "SPACE_ID": "walls/b"}))
    await runtime.wait_ready(a, 240)
    await runtime.wait_ready(b, 240)
    host_paths = [str(tmp_path), "/work", "/var/run/docker.sock", "/root/.cache/spaceyard", "/root/.pyenv"]
    found = probe(docker_client, a.backend_id, host_paths, b.endpoint.host)
    assert found["uid"] != 0
    assert found["write_usr"] is False and found["write_root"] is False  # read-only root filesystem
    assert found["paths"] == dict.fromkeys(host_paths, False), found["paths"]
    environs = "\n".join(found["environs"])
    assert "SPACEYARD_" not in environs and "walls/b" not in environs
    assert all(code != 0 for code in found["loopback"].values()), found["loopback"]
    assert found["other"] != 0  # space-b's reload port (and everything else of it) is out of reach
    # The host (the gateway) does reach the app; nothing is published on the host's own addresses.
    with socket.socket() as s:
        s.settimeout(2)
        assert s.connect_ex((a.endpoint.host, a.endpoint.port)) == 0
    ports = docker_client.api.inspect_container(a.backend_id)["NetworkSettings"]["Ports"] or {}
    assert all(not bindings for bindings in ports.values()), ports


def test_docker_runtime_warns_at_start_about_host_services(shared_env_dir: Path, tmp_path: Path) -> None:
    assert DockerRuntime.start_warnings(RuntimeSettings(runtime="docker", docker_host_firewall=True)) == []
    from tests.conftest import free_port

    server = start_server(tmp_path / "data", free_port(), shared_env_dir, {"SPACEYARD_RUNTIME": "docker"})
    try:
        log = server.log_path.read_text()
    finally:
        server.stop()
    assert "WARNING: docker runtime: services of this host listening on all interfaces" in log, log
    assert "docs/docker.md" in log and "SPACEYARD_DOCKER_HOST_FIREWALL=true" in log
    assert os.environ.get("SPACEYARD_DOCKER_HOST_FIREWALL") is None
