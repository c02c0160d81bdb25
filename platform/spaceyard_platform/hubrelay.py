"""The Hub relay: what a Space's app reaches at ``HF_ENDPOINT`` (the :class:`~spaceyard_runtime.hubpath.HubPath`).

A Space is hostile code, so the relay is a narrow door into the control plane, not a tunnel:

* it serves the control plane's FastAPI app *in process* (never the gateway: no app of any Space is
  reachable through it, nor the platform's pages, metrics or git);
* only the Hub's read endpoints pass (:data:`ALLOWED`): repository info and listings, trees,
  ``paths-info`` (a POST that only reads), ``/resolve/`` downloads and the Xet read path (read token,
  reconstructions, chunks). Every other request is refused ``403`` in the Hub's error shape, whatever
  token it carries;
* only a few request headers are passed (credentials, ranges, conditionals), none of the platform's
  cookies, no ``X-Forwarded-*``; what the request may read is then decided by the control plane from its
  token as for any client: the Space's own ``HF_TOKEN`` (``spacetokens``) reads what its owner may read;
* each listener (one per Space box) accepts at most ``hub_relay_max_connections`` at once, request heads
  are bounded as on the main server (``limits.http_protocol``), request bodies by ``MAX_BODY``;
* the *shared* listener (:meth:`HubRelay.serve_shared`: one for every Space, the Kubernetes relay Service)
  answers only requests whose token is a live Space token (``spacetokens.is_valid``): no anonymous request
  and no user's token pass there (``401``), and each client address has at most
  ``hub_relay_max_connections`` requests in flight (``429`` above).

URLs the control plane returns through the relay (Xet's ``casUrl``) name the relay's own address
(``scope["spaceyard.relay"]``, read by ``api.common.public_base``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import socket
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.server import ServerState

from spaceyard_builder.hubstore import HubStore
from spaceyard_runtime.hubpath import VIEWS, HubListener, HubPath

from . import metrics
from .hubfill import HubFill
from .limits import http_protocol
from .settings import Settings

log = logging.getLogger(__name__)

_REPO = r"(?:[^/]+/[^/]+|datasets/[^/]+/[^/]+|spaces/[^/]+/[^/]+)"
_API_REPO = r"/api/(?:models|datasets|spaces)/[^/]+/[^/]+"
ALLOWED: dict[str, tuple[re.Pattern[str], ...]] = {
    "GET": (
        re.compile(r"^/api/whoami-v2$"),
        re.compile(r"^/api/(?:models|datasets|spaces)$"),
        re.compile(_API_REPO + r"$"),
        re.compile(_API_REPO + r"/(?:revision|tree|refs|treesize|xet-read-token)(?:/.*)?$"),
        re.compile(r"^/" + _REPO + r"/resolve/.+$"),
        re.compile(r"^/xet-cas/(?:v1|v2)/(?:reconstructions|chunks)(?:/.*)?$"),
        re.compile(r"^/xet-cas/xorb/[^/]+$"),
    ),
    "POST": (re.compile(_API_REPO + r"/paths-info/.+$"),),
}
ALLOWED["HEAD"] = ALLOWED["GET"] + (re.compile(r"^/xet-cas/v1/files/[^/]+$"),)
PASSED_HEADERS = frozenset(
    {b"authorization", b"accept", b"accept-encoding", b"range", b"if-none-match", b"if-match", b"if-range",
     b"user-agent", b"content-type", b"content-length", b"host"}
)  # fmt: skip
MAX_BODY = 1 << 20
"""Request bodies (only ``paths-info`` has one) are at most 1 MiB."""
NOT_A_SPACE_TOKEN = (
    "Spaceyard's Hub relay in the cluster answers only a Space's own token (HF_TOKEN as the Space got it); "
    "this request carries none"
)
REFUSED = (
    "Spaceyard's Hub inside a Space serves only the Hub's read endpoints (repository info, files, downloads); "
    "this request is not one of them"
)


def allowed(method: str, path: str) -> bool:
    return any(p.match(path) for p in ALLOWED.get(method, ()))


_CODES = {401: b"Unauthorized", 403: b"Forbidden", 413: b"PayloadTooLarge", 429: b"TooManyRequests"}


async def _refuse(send: Send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"x-error-code", _CODES[status]),
                (b"x-error-message", message.encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class RelayApp:
    """ASGI: the filter in front of the control plane (module docstring)."""

    def __init__(
        self,
        control_plane: ASGIApp,
        space_token: Callable[[str], bool] | None = None,
        per_client: int = 0,
        fill: HubFill | None = None,
    ) -> None:
        """``space_token`` set: the shared mode (module docstring), ``per_client`` requests per address;
        ``fill``: the cache views of the listeners that have one (``hubfill.py``)."""
        self.control_plane = control_plane
        self.fill = fill
        self.space_token = space_token
        self.per_client = per_client
        self.in_flight: Counter[str] = Counter()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
            return
        method, path = scope["method"], scope["path"]
        if not allowed(method, path):
            metrics.HUB_RELAY_REQUESTS.labels(result="refused").inc()
            await _refuse(send, 403, REFUSED)
            return
        if self.space_token is None:
            await self._relay(scope, receive, send)
            return
        client = (scope.get("client") or ("?", 0))[0]
        if self.per_client and self.in_flight[client] >= self.per_client:
            metrics.HUB_RELAY_REQUESTS.labels(result="refused").inc()
            await _refuse(send, 429, f"at most {self.per_client} requests at once per Space through the Hub relay")
            return
        self.in_flight[client] += 1
        try:
            auth = next((v for k, v in scope["headers"] if k == b"authorization"), b"").decode("latin-1")
            scheme, _, value = auth.partition(" ")
            if scheme.lower() != "bearer" or not await asyncio.to_thread(self.space_token, value.strip()):
                metrics.HUB_RELAY_REQUESTS.labels(result="refused").inc()
                await _refuse(send, 401, NOT_A_SPACE_TOKEN)
                return
            await self._relay(scope, receive, send)
        finally:
            self.in_flight[client] -= 1
            if self.in_flight[client] <= 0:
                del self.in_flight[client]

    async def _relay(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(k, v) for k, v in scope["headers"] if k in PASSED_HEADERS]
        length = next((v for k, v in headers if k == b"content-length"), b"0")
        if not length.isdigit() or int(length) > MAX_BODY:
            metrics.HUB_RELAY_REQUESTS.labels(result="refused").inc()
            await _refuse(send, 413, f"request bodies through the Hub relay are at most {MAX_BODY} bytes")
            return
        metrics.HUB_RELAY_REQUESTS.labels(result="passed").inc()
        inner: dict[str, Any] = {**scope, "headers": headers, "spaceyard.relay": True, "root_path": ""}
        seen = 0

        async def bounded_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > MAX_BODY:
                    return {"type": "http.disconnect"}
            return message

        view = (scope.get("state") or {}).get("hub_view")
        if self.fill is None or view is None or scope["method"] != "HEAD" or "/resolve/" not in scope["path"]:
            await self.control_plane(inner, bounded_receive, send)
            return
        # the Space's cache view gets the file before the app hears back (hubfill.py)
        held: list[Message] = []

        async def hold(message: Message) -> None:
            held.append(message)

        await self.control_plane(inner, bounded_receive, hold)
        start = held[0] if held and held[0]["type"] == "http.response.start" else None
        if start is not None and start["status"] == 200:
            answer = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in start.get("headers", [])}
            try:
                await self.fill.fill(inner, answer, view)
            except Exception:  # the answer still goes back: the app's client then reports the missing file
                log.exception("Hub cache: filling %s failed", scope["path"])
        for message in held:
            await send(message)


class _Listener(HubListener):
    def __init__(self, server: asyncio.base_events.Server, state: ServerState) -> None:
        self.server, self.state = server, state

    def close(self) -> None:
        self.server.close()
        for connection in list(self.state.connections):
            with contextlib.suppress(Exception):
                connection.shutdown()


class HubRelay(HubPath):
    """Serves :class:`RelayApp` with uvicorn's HTTP protocol on sockets the runtime made."""

    def __init__(
        self,
        control_plane: ASGIApp,
        settings: Settings,
        space_token: Callable[[str], bool] | None = None,
        store: HubStore | None = None,
    ) -> None:
        """``space_token``: what :meth:`serve_shared` accepts (``spacetokens.is_valid`` on the database);
        ``store``: the shared store that run-time downloads fill, with the cache views (``hubfill.py``)."""
        self.settings = settings
        self.port = settings.hub_relay_port
        self.max_connections = settings.hub_relay_max_connections
        fill = HubFill(store, settings.runtime().runtime_dir / VIEWS, control_plane) if store is not None else None
        relay = RelayApp(control_plane, fill=fill)
        self.config = self._config(relay, self.max_connections + 1)  # uvicorn counts the connection asking too
        self.shared_config = (
            self._config(RelayApp(control_plane, space_token, self.max_connections), settings.max_connections)
            if space_token is not None
            else None
        )

    def _config(self, app: RelayApp, limit: int | None) -> uvicorn.Config:
        config = uvicorn.Config(
            app,
            lifespan="off",
            proxy_headers=False,
            server_header=False,
            date_header=False,
            access_log=False,
            log_level="warning",
            timeout_keep_alive=int(self.settings.keep_alive_timeout),
            limit_concurrency=limit,
        )
        config.load()
        return config

    async def serve(self, sock: socket.socket, space_id: str, cache: Path | None = None) -> HubListener:
        # Per listener: limit_concurrency and the slow-head limit count this Space's connections only
        # (every app connects from 127.0.0.1 of its own box).
        return await self._serve(sock, self.config, {"hub_view": cache} if cache is not None else {})

    async def serve_shared(self, sock: socket.socket) -> HubListener:
        if self.shared_config is None:
            raise RuntimeError("this Hub relay was made without a Space token check: it cannot serve every Space")
        return await self._serve(sock, self.shared_config, {})

    async def _serve(self, sock: socket.socket, config: uvicorn.Config, app_state: dict[str, Any]) -> HubListener:
        state = ServerState()
        protocol_class = http_protocol(self.settings)

        def protocol() -> asyncio.Protocol:  # app_state becomes each request's scope["state"]
            return protocol_class(config=config, server_state=state, app_state=app_state)  # type: ignore[arg-type]

        server = await asyncio.get_running_loop().create_server(protocol, sock=sock, backlog=64)
        return _Listener(server, state)


__all__ = ["ALLOWED", "HubRelay", "RelayApp", "allowed"]
