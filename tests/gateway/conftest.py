"""Gateway fixtures: the gateway under a real uvicorn (uvloop + the platform's httptools protocol), real upstream apps.

* ``gateway``: ``Gateway(FastAPI app, routes, settings, ...)`` served by uvicorn in a thread; tests
  publish routes into ``gateway.routes`` (each test its own Space names) and talk to ``gateway.port``.
  ``gateway.configure(waker=..., authorizer=..., access=...)`` serves a new ``Gateway`` built with those
  collaborators (the others kept), as the platform builds its one gateway with its own.
* ``upstream``: a small aiohttp.web app with the special behaviours tests need (header echo,
  streaming with disconnect tracking, websocket echo, big bodies, dying mid-stream).
* ``gradio_app``: a real Gradio 6.31 app from ``gradio_env``, started once per module.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest
import uvicorn
from aiohttp import web
from fastapi import FastAPI

from spaceyard_platform.gateway.access import AppAccess
from spaceyard_platform.gateway.activity import ActivityTable
from spaceyard_platform.gateway.asgi import Message, Receive, Scope, Send
from spaceyard_platform.gateway.proxy import Gateway
from spaceyard_platform.gateway.routes import Authorizer, InMemoryRouteTable, RouteSpec, Waker
from spaceyard_platform.limits import http_protocol
from spaceyard_platform.settings import Settings
from spaceyard_runtime.api import Endpoint
from tests.conftest import free_port

# -- the gateway --------------------------------------------------------------------------------


class Served:
    """The ASGI app uvicorn serves: whichever gateway the test configured last."""

    def __init__(self, target: Gateway) -> None:
        self.target = target
        self.loop: asyncio.AbstractEventLoop | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.loop = asyncio.get_running_loop()
        if scope["type"] != "lifespan":
            await self.target(scope, receive, send)
            return
        first = self.target

        async def at_shutdown(message: Message) -> None:
            if message["type"] == "lifespan.shutdown.complete" and self.target is not first:
                await self.target.aclose()  # the gateway serving at the end (the first one closes itself)
            await send(message)

        await first(scope, receive, at_shutdown)

    def replace(self, target: Gateway) -> None:
        """Serve ``target`` from now on; the gateway it replaces closes its upstream connections."""
        old, self.target = self.target, target
        if self.loop is not None:
            asyncio.run_coroutine_threadsafe(old.aclose(), self.loop).result(10)


@dataclass(frozen=True)
class RouteView:
    """What a test holds after publishing a route: its spec, and the gateway's activity for it."""

    spec: RouteSpec
    activity: ActivityTable
    published_at: float

    @property
    def last_activity(self) -> float:
        seen = self.activity.last_activity(self.spec.space_id)
        return self.published_at if seen is None else max(seen, self.published_at)


@dataclass
class GatewayServer:
    port: int
    routes: InMemoryRouteTable
    activity: ActivityTable
    settings: Settings
    served: Served
    app: Any
    server: uvicorn.Server
    thread: threading.Thread
    lifespan_events: list[str]
    collaborators: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def host(self, label: str) -> str:
        return f"{label}.localhost:{self.port}"

    def add(self, space_id: str, upstream: Endpoint | None, **kwargs: Any) -> RouteView:
        spec = RouteSpec(space_id=space_id, stage="RUNNING", upstream=upstream, **kwargs)
        self.routes.add_route(spec)
        return RouteView(spec, self.activity, time.monotonic())

    def configure(
        self, *, waker: Waker | None = None, authorizer: Authorizer | None = None, access: AppAccess | None = None
    ) -> None:
        """Serve a gateway built with these collaborators (those not named stay as they were)."""
        changes = {"waker": waker, "authorizer": authorizer, "access": access}
        self.collaborators.update({k: v for k, v in changes.items() if v is not None})
        self.served.replace(make_gateway(self.app, self.routes, self.settings, self.activity, **self.collaborators))

    def without_access(self) -> None:
        self.collaborators.pop("access", None)
        self.served.replace(make_gateway(self.app, self.routes, self.settings, self.activity, **self.collaborators))


def make_gateway(
    app: Any, routes: InMemoryRouteTable, settings: Settings, activity: ActivityTable, **collaborators: Any
) -> Gateway:
    return Gateway(app, routes, settings, activity=activity, **collaborators)


def platform_app(events: list[str]) -> FastAPI:
    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        events.append("startup")
        yield
        events.append("shutdown")

    app = FastAPI(lifespan=lifespan)

    @app.get("/")
    async def home() -> dict[str, str]:
        return {"app": "platform"}

    @app.get("/apps/{owner}")
    async def owner_page(owner: str) -> dict[str, str]:
        return {"app": "platform", "owner": owner}

    return app


def serve_in_thread(app: Any, port: int, keep_alive: int = 5) -> tuple[uvicorn.Server, threading.Thread]:
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http=http_protocol(Settings()),  # as `spaceyard up` serves: httptools with head limits, coalesced writes
        lifespan="on",
        log_level="warning",
        proxy_headers=False,
        timeout_keep_alive=keep_alive,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    return server, thread


@pytest.fixture(scope="session")
def gateway() -> Iterator[GatewayServer]:
    port = free_port()
    settings = Settings(port=port, wake_timeout=2.0, upstream_connect_timeout=2.0, stream_idle_timeout=30.0)
    routes = InMemoryRouteTable()
    activity = ActivityTable()
    events: list[str] = []
    app = platform_app(events)
    served = Served(make_gateway(app, routes, settings, activity))
    server, thread = serve_in_thread(served, port)
    yield GatewayServer(port, routes, activity, settings, served, app, server, thread, events)
    server.should_exit = True
    thread.join(10)


# -- a small upstream with special behaviours -----------------------------------------------------


@dataclass
class UpstreamState:
    streams_started: list[str] = field(default_factory=list)
    streams_closed: list[str] = field(default_factory=list)
    ws_client_close: list[int] = field(default_factory=list)
    uploads: list[int] = field(default_factory=list)
    release_late: threading.Event = field(default_factory=threading.Event)


@dataclass
class Upstream:
    endpoint: Endpoint
    state: UpstreamState
    loop: asyncio.AbstractEventLoop


LOOKALIKE_PARTS = (
    b"HTTP/1.1 200 OK\r\n",
    b"HTTP/1.1 302 Found\r\nLocation: https://evil.example/\r\nSet-Cookie: spaceyard_session=x\r\n\r\n",
    b"HTTP/",
    b"1.1 200 OK\r\nContent-Length: 5\r\n\r\nevil!",
)
LOOKALIKE_BODY = b"".join(LOOKALIKE_PARTS)


def upstream_app(state: UpstreamState) -> web.Application:
    async def headers(request: web.Request) -> web.Response:
        body = {
            "path": request.raw_path,
            "method": request.method,
            "headers": [[k, v] for k, v in request.headers.items()],
        }
        return web.json_response(
            body,
            headers={
                "X-Frame-Options": "DENY",
                "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'",
                "Connection": "keep-alive, X-Hop",
                "X-Hop": "secret",
                "Keep-Alive": "timeout=5",
            },
        )

    async def upload(request: web.Request) -> web.Response:
        size = 0
        digest = hashlib.sha256()
        async for chunk in request.content.iter_any():
            size += len(chunk)
            digest.update(chunk)
        state.uploads.append(size)
        return web.json_response({"size": size, "sha256": digest.hexdigest()})

    async def download(request: web.Request) -> web.StreamResponse:
        size = int(request.query["size"])
        chunk = b"x" * (1 << 20)
        resp = web.StreamResponse()
        resp.content_length = size
        resp.content_type = "application/octet-stream"
        await resp.prepare(request)
        sent = 0
        while sent < size:
            part = chunk[: min(len(chunk), size - sent)]
            await resp.write(part)
            sent += len(part)
        await resp.write_eof()
        return resp

    async def ticks(request: web.Request) -> web.StreamResponse:
        """An endless event stream: one event every 0.1 s until the reader goes away."""
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)
        stream_id = request.query.get("id", "")
        state.streams_started.append(stream_id)
        try:
            i = 0
            while True:
                await resp.write(f"data: {i} {time.time()}\n\n".encode())
                i += 1
                await asyncio.sleep(0.1)
        except (ConnectionResetError, asyncio.CancelledError):
            state.streams_closed.append(stream_id)
        return resp

    async def die(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await resp.prepare(request)
        await resp.write(b"first part\n")
        await asyncio.sleep(0.2)
        assert request.transport is not None
        request.transport.abort()
        return resp

    async def silent(request: web.Request) -> web.StreamResponse:
        """Starts an answer, then goes quiet for a minute."""
        resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await resp.prepare(request)
        await resp.write(b"hello\n")
        for _ in range(600):
            if request.transport is None or request.transport.is_closing():
                state.streams_closed.append("silent:" + request.query.get("id", ""))
                break
            await asyncio.sleep(0.1)
        return resp

    async def late(request: web.Request) -> web.StreamResponse:
        """Sends its head, then its body only once the test sets ``state.release_late``."""
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        released = await asyncio.get_running_loop().run_in_executor(None, state.release_late.wait, 20)
        await resp.write(b"data: released\n\n" if released else b"data: never released\n\n")
        await resp.write_eof()
        return resp

    async def lookalike(request: web.Request) -> web.StreamResponse:
        """A body whose chunks look like response heads (and a whole second response)."""
        resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
        resp.content_length = len(LOOKALIKE_BODY)
        await resp.prepare(request)
        for part in LOOKALIKE_PARTS:
            await resp.write(part)
            await asyncio.sleep(0.01)
        await resp.write_eof()
        return resp

    async def reject(request: web.Request) -> web.Response:
        """Refuses an upload without reading it, and hangs up."""
        resp = web.json_response({"error": "too large"}, status=413)
        resp.force_close()
        return resp

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound("/headers")

    async def ws(request: web.Request) -> web.WebSocketResponse:
        sock = web.WebSocketResponse(protocols=("chat.v2", "chat.v1"))
        await sock.prepare(request)
        async for msg in sock:
            if msg.type is aiohttp.WSMsgType.TEXT:
                if msg.data == "drop":  # vanish without a close frame
                    assert request.transport is not None
                    request.transport.abort()
                    break
                if msg.data.startswith("close:"):
                    await sock.close(code=int(msg.data[6:]), message=b"bye")
                    break
                await sock.send_str(msg.data)
            elif msg.type is aiohttp.WSMsgType.BINARY:
                await sock.send_bytes(msg.data)
        if sock.close_code is not None:
            state.ws_client_close.append(sock.close_code)
        return sock

    app = web.Application(client_max_size=1 << 34)
    app.router.add_route("*", "/headers", headers)
    app.router.add_route("*", "/headers/{tail:.*}", headers)
    app.router.add_post("/upload", upload)
    app.router.add_get("/download", download)
    app.router.add_get("/ticks", ticks)
    app.router.add_get("/die", die)
    app.router.add_get("/redirect", redirect)
    app.router.add_get("/silent", silent)
    app.router.add_post("/reject", reject)
    app.router.add_get("/late", late)
    app.router.add_get("/lookalike", lookalike)
    app.router.add_get("/ws", ws)
    return app


@pytest.fixture(scope="session")
def upstream() -> Iterator[Upstream]:
    port = free_port()
    state = UpstreamState()
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(upstream_app(state), access_log=None, keepalive_timeout=1.0)
    ready = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(10)
    yield Upstream(Endpoint("127.0.0.1", port), state, loop)
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


# -- a real Gradio app ------------------------------------------------------------------------------

GRADIO_APP = """
import time
import gradio as gr


def greet(name):
    return "Hello " + name + "!"


def count(n):
    for i in range(int(n)):
        time.sleep(0.3)
        yield f"tick {i}"


with gr.Blocks() as demo:
    name = gr.Textbox(label="name")
    out = gr.Textbox(label="greeting")
    gr.Button("greet").click(greet, name, out, api_name="greet")
    n = gr.Number(label="n")
    ticks = gr.Textbox(label="ticks")
    gr.Button("count").click(count, n, ticks, api_name="count")

demo.queue().launch()
"""


@pytest.fixture(scope="module")
def gradio_app(gradio_env: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoint]:
    workdir = tmp_path_factory.mktemp("gradio-app")
    (workdir / "app.py").write_text(GRADIO_APP)
    port = free_port()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(workdir),
        "GRADIO_SERVER_NAME": "127.0.0.1",
        "GRADIO_SERVER_PORT": str(port),
        "GRADIO_ANALYTICS_ENABLED": "False",
        "HF_HUB_OFFLINE": "1",
    }
    python = gradio_env / "bin" / "python"
    log = (workdir / "app.log").open("wb")
    proc = subprocess.Popen([str(python), "app.py"], cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError("gradio app exited:\n" + (workdir / "app.log").read_text())
            try:
                if httpx.get(f"http://127.0.0.1:{port}/config", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("gradio app did not start:\n" + (workdir / "app.log").read_text())
            time.sleep(0.1)
        yield Endpoint("127.0.0.1", port)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def rss_kib(pid: int | None = None) -> int:
    with open(f"/proc/{pid or os.getpid()}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


__all__ = ["GatewayServer", "RouteView", "Upstream", "json", "rss_kib", "sys"]
