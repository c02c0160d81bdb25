"""HF_ENDPOINT inside a Docker Space: the platform's Hub relay on the Space network's gateway address
answers the app's read requests (with the app's own token), refuses writes and pages, and the host's
other services stay out of reach."""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import docker
import pytest
from starlette.types import Receive, Scope, Send

from spaceyard_builder.api import BuildRequest, BuildResult, SecretSource
from spaceyard_builder.engines.docker import DockerEngine
from spaceyard_builder.hubstore import HubStore
from spaceyard_builder.logs import FileLogStore
from spaceyard_builder.pipeline import run_build
from spaceyard_builder.settings import BuilderSettings
from spaceyard_platform.hubrelay import HubRelay
from spaceyard_platform.settings import Settings
from spaceyard_runtime.docker import DockerRuntime
from spaceyard_runtime.settings import RuntimeSettings
from tests.docker.conftest import ROOT, git_commit, spec_for, start_app

pytestmark = pytest.mark.docker


WEIGHTS = b'{"w": 3}'


async def control_plane(scope: Scope, receive: Receive, send: Send) -> None:
    """Stands in for the FastAPI app behind the relay: echoes what reached it; one file to resolve."""
    headers = {k.decode(): v.decode() for k, v in scope["headers"]}
    if scope["path"] == "/alice/m/resolve/main/w.json":
        answer = [(b"x-repo-commit", b"c" * 40), (b"etag", f'"{hashlib.sha256(WEIGHTS).hexdigest()}"'.encode())]
        await send({"type": "http.response.start", "status": 200, "headers": answer})
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else WEIGHTS})
        return
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
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, None
s = socket.socket(); s.settimeout(2)
# what hf_hub_download asks first (this image has no huggingface_hub): the relay puts the file in the view
head = call("HEAD", "/alice/m/resolve/main/w.json")[0]
path = os.path.join(os.environ["HF_HUB_CACHE"], "models--alice--m", "snapshots", "c" * 40, "w.json")
try:
    open(os.path.join(os.environ["HF_HUB_CACHE"], "planted"), "w").close()
    planted = "written"
except OSError as exc:
    planted = type(exc).__name__
print(json.dumps({"ep": ep, "info": call("GET", "/api/models/alice/m"), "create": call("POST", "/api/repos/create"),
                  "metrics": call("GET", "/metrics"), "redis": s.connect_ex(("127.0.0.1", 6379)),
                  "head": head, "path": path, "content": open(path).read(), "cache": os.environ["HF_HUB_CACHE"],
                  "planted": planted}))
"""


async def test_a_docker_space_reaches_the_hub_relay_at_hf_endpoint(
    docker_build: BuildResult, docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    runtime = DockerRuntime(RuntimeSettings(runtime="docker", data_dir=tmp_path, stop_grace=1.0))
    store = HubStore(tmp_path / "hubcache", 1 << 20)
    runtime.attach_hub(HubRelay(control_plane, Settings(data_dir=tmp_path), store=store))
    handle = await runtime.start(spec_for(docker_build, "hubrelay/docker-space"), lambda line: None)
    try:
        await runtime.wait_ready(handle, 60)
        container = docker_client.containers.get(handle.backend_id)
        out = await asyncio.to_thread(container.exec_run, ["python", "-c", PROBE])
        result = json.loads(bytes(out.output).decode().strip().splitlines()[-1])
        gateway = docker_client.networks.get("spaceyard-hubrelay-docker-space").attrs["IPAM"]["Config"][0]["Gateway"]
        assert result["ep"] == f"http://{gateway}:7850"
        status, seen = result["info"]
        assert status == 200 and seen["path"] == "/api/models/alice/m"
        assert seen["auth"] == "Bearer hf_sy_space_x" and seen["cookie"] is None  # credentials yes, cookies no
        assert result["create"][0] == 403 and result["metrics"][0] == 403
        assert result["redis"] != 0  # the host's loopback services stay out of reach
        # a run-time download: the file is the shared store's object, in the Space's read-only cache view
        assert result["head"] == 200 and result["content"] == WEIGHTS.decode()
        assert result["planted"] in ("OSError", "PermissionError"), "the app cannot write its cache view"
        (obj,) = [p for p in store.objects.rglob("*") if p.is_file()]
        assert Path(result["path"]).stat().st_ino == obj.stat().st_ino
    finally:
        await runtime.remove(handle)
        await runtime.aclose()


class NoSecrets(SecretSource):
    """The build's SecretSource here: no secrets, a fixed Space token (what the stub Hub expects)."""

    def secrets(self, ref: str) -> dict[str, str]:
        return {}

    def hub_token(self, space_id: str) -> str | None:
        return "hf_sy_space_test"


class StubHub(BaseHTTPRequestHandler):
    """A model ``alice/m`` with one file, readable with the Space's token only."""

    COMMIT = "c" * 40
    FILE = b'{"w": 3}'

    def do_GET(self) -> None:
        if self.headers.get("authorization") != "Bearer hf_sy_space_test":
            self.send_error(401)
            return
        if self.path == "/api/models/alice/m/revision/main":
            body = json.dumps({"sha": self.COMMIT, "siblings": [{"rfilename": "w.json"}]}).encode()
        elif self.path == f"/alice/m/resolve/{self.COMMIT}/w.json":
            body = self.FILE
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.send_header("etag", '"e0"')
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


async def test_preload_from_hub_lands_in_a_docker_images_cache(
    builder_settings: BuilderSettings,
    engine: DockerEngine,
    runtime: DockerRuntime,
    docker_client: docker.DockerClient,
    tmp_path: Path,
) -> None:
    hub = ThreadingHTTPServer(("127.0.0.1", 0), StubHub)
    threading.Thread(target=hub.serve_forever, daemon=True).start()
    settings = builder_settings.model_copy(
        update={"hub_url": f"http://127.0.0.1:{hub.server_port}", "secret_source": f"{__name__}:NoSecrets"}
    )
    work = tmp_path / "preloaded"
    work.mkdir()
    readme = "---\nsdk: gradio\nsdk_version: 6.31.0\npreload_from_hub:\n  - alice/m w.json\n---\n"
    (work / "README.md").write_text(readme)
    (work / "app.py").write_text((ROOT / "sample_spaces" / "hello-gradio" / "app.py").read_text())
    repo, sha = git_commit(work)
    request = BuildRequest(build_id=f"preload-{sha[:7]}", space_id="hubrelay/preloaded", revision=sha, repo=repo,
                           log_key=f"build/preload-{sha[:7]}")  # fmt: skip
    store = FileLogStore(settings.data_dir / "logs")
    try:
        result = await asyncio.to_thread(run_build, request, settings, store, engine=engine)
    finally:
        hub.shutdown()
    log = [e.data for e in store.read(request.log_key)]
    assert result.ok, log[-20:]
    assert any("preload_from_hub: alice/m @ ccccccc: 1 file(s)" in line for line in log)
    handle = await start_app(runtime, spec_for(result, "hubrelay/preloaded"))
    await runtime.wait_ready(handle, 120)
    code = "from huggingface_hub import hf_hub_download\nprint(open(hf_hub_download('alice/m', 'w.json')).read())"
    container = docker_client.containers.get(handle.backend_id)
    out = await asyncio.to_thread(container.exec_run, ["python", "-c", code], environment={"HF_HUB_OFFLINE": "1"})
    assert bytes(out.output).decode().strip().splitlines()[-1] == '{"w": 3}', out.output
