"""HF_ENDPOINT inside a Docker Space: the platform's Hub relay on the Space network's gateway address
answers the app's read requests (with the app's own token), refuses writes and pages, and the host's
other services stay out of reach."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import docker
import pytest
from starlette.types import Receive, Scope, Send

from spaceyard_builder.api import BuildResult
from spaceyard_platform.hubrelay import HubRelay
from spaceyard_platform.settings import Settings
from spaceyard_runtime.docker import DockerRuntime
from spaceyard_runtime.settings import RuntimeSettings
from tests.docker.conftest import spec_for

pytestmark = pytest.mark.docker


async def control_plane(scope: Scope, receive: Receive, send: Send) -> None:
    """Stands in for the FastAPI app behind the relay: echoes what reached it."""
    headers = {k.decode(): v.decode() for k, v in scope["headers"]}
    body = json.dumps({"path": scope["path"], "auth": headers.get("authorization"), "cookie": headers.get("cookie")})
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body.encode()})


PROBE = """
import json, os, socket, urllib.request
ep = os.environ["HF_ENDPOINT"]
def call(method, path):
    req = urllib.request.Request(ep + path, method=method, headers={"authorization": "Bearer hf_sy_space_x",
                                                                     "cookie": "spaceyard_session=stolen"})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, None
s = socket.socket(); s.settimeout(2)
print(json.dumps({"ep": ep, "info": call("GET", "/api/models/alice/m"), "create": call("POST", "/api/repos/create"),
                  "metrics": call("GET", "/metrics"), "redis": s.connect_ex(("127.0.0.1", 6379))}))
"""


async def test_a_docker_space_reaches_the_hub_relay_at_hf_endpoint(
    docker_build: BuildResult, docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    runtime = DockerRuntime(RuntimeSettings(runtime="docker", data_dir=tmp_path, stop_grace=1.0))
    runtime.attach_hub(HubRelay(control_plane, Settings(data_dir=tmp_path)))
    handle = await runtime.start(spec_for(docker_build, "hubrelay/docker-space"), lambda line: None)
    try:
        await runtime.wait_ready(handle, 60)
        container = docker_client.containers.get(handle.backend_id)
        out = await asyncio.to_thread(container.exec_run, ["python3", "-c", PROBE])
        result = json.loads(bytes(out.output).decode().strip().splitlines()[-1])
        gateway = docker_client.networks.get("spaceyard-hubrelay-docker-space").attrs["IPAM"]["Config"][0]["Gateway"]
        assert result["ep"] == f"http://{gateway}:7850"
        status, seen = result["info"]
        assert status == 200 and seen["path"] == "/api/models/alice/m"
        assert seen["auth"] == "Bearer hf_sy_space_x" and seen["cookie"] is None  # credentials yes, cookies no
        assert result["create"][0] == 403 and result["metrics"][0] == 403
        assert result["redis"] != 0  # the host's loopback services stay out of reach
    finally:
        await runtime.remove(handle)
        await runtime.aclose()
