"""Limits on what one request or one client may cost, each a setting (``docs/security.md``, "Limits on
input"). Two pieces:

* :func:`http_protocol` — the HTTP/1.1 protocol uvicorn runs (its ``httptools`` protocol, subclassed):
  a request head (request line + headers) over ``max_header_bytes`` gets ``431`` and the connection is
  closed; a head not complete ``header_timeout`` seconds after the connection opened (or after the next
  request on a kept-alive connection began) gets ``408``; at most ``max_pending_per_address``
  connections per client address may be in that phase at once (more get ``429`` at once; trusted
  proxies in ``forwarded_allow_ips`` are exempt). This applies to every request, apps included; once
  the head is in, nothing here touches the connection (streamed bodies, websockets, long responses).
  uvicorn's own knobs carry the rest: ``keep_alive_timeout`` (idle kept-alive connections) and
  ``max_connections`` (``limit_concurrency``: 503 above it).
* :class:`BodyLimit` — ASGI middleware in front of the control plane only (the gateway's traffic to apps
  never passes through it): request bodies are capped per endpoint — git smart HTTP
  (``max_git_body``), LFS uploads (``max_lfs_upload``), Hub API commits (``max_commit_body``), Xet
  xorbs and shards (the specification's 64 MiB, see ``xet/cas.py``), everything else
  (``max_api_body``). A declared ``Content-Length`` over the cap is refused before the body is read;
  a body that grows past it raises :class:`BodyTooLarge` from ``receive`` (413 with the Hub's error
  shape).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections import Counter

import httptools
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .errors import PlatformError
from .serving import LeanProtocol
from .settings import Settings
from .xet.cas import MAX_SHARD_BYTES, MAX_XORB_BYTES

XET_CAS_PREFIX = "/xet-cas/"
XET_MAX_BODY = max(MAX_XORB_BYTES, MAX_SHARD_BYTES)

TOO_LARGE = "The request line and headers are over the limit of %d bytes (SPACEYARD_MAX_HEADER_BYTES)"
_GIT_RPC = re.compile(r"^/spaces/[^/]+/[^/]+/git-(upload|receive)-pack$")
_COMMIT = re.compile(r"^/api/spaces/[^/]+/[^/]+/commit/")


class _HeadTooLarge(Exception):
    """Raised from a parser callback to stop parsing a head over the limit."""


class BodyTooLarge(PlatformError):
    status = 413
    code = "PayloadTooLarge"


def _reason(status: int) -> bytes:
    return {408: b"Request Timeout", 429: b"Too Many Requests", 431: b"Request Header Fields Too Large"}[status]


def http_protocol(settings: Settings) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol with the head limits of ``settings`` (module docstring)."""
    max_head = settings.max_header_bytes
    head_timeout = settings.header_timeout
    per_address = settings.max_pending_per_address
    trusted = {a.strip() for a in (settings.forwarded_allow_ips or "").split(",") if a.strip()}
    pending: Counter[str] = Counter()

    class LimitedProtocol(LeanProtocol):  # one write for a response's head and first chunk, fewer timers
        _in_head = False
        _head_bytes = 0
        _head_fields = 0
        _head_timer: asyncio.TimerHandle | None = None
        _head_began = 0.0
        _address = ""
        _counted = False

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._address = self.client[0] if self.client else ""
            exempt = self._address in trusted or "*" in trusted
            if per_address and not exempt and pending[self._address] >= per_address:
                self._refuse(429, "Too many connections from your address are still sending their request")
                return
            self._begin_head()

        def _begin_head(self) -> None:
            self._in_head = True
            self._head_bytes = 0
            self._head_fields = 0
            if not self._counted:
                pending[self._address] += 1
                self._counted = True
            if head_timeout:
                self._head_began = self.loop.time()
                if self._head_timer is None:
                    self._head_timer = self.loop.call_later(head_timeout, self._head_timed_out)

        def _end_head(self) -> None:
            # the head timer stays armed: when it fires outside a head it ends, and the next head on
            # this connection arms it again (one timer per connection and timeout, not per request)
            self._in_head = False
            if self._counted:
                pending[self._address] -= 1
                if pending[self._address] <= 0:
                    del pending[self._address]
                self._counted = False

        def _head_timed_out(self) -> None:
            self._head_timer = None
            if not self._in_head or self.transport.is_closing():
                return
            left = self._head_began + head_timeout - self.loop.time()
            if left > 0:  # this head began after the timer was armed: wait for its own deadline
                self._head_timer = self.loop.call_later(left, self._head_timed_out)
                return
            self._refuse(408, f"The request head was not received within {head_timeout:g} seconds")

        def _refuse(self, status: int, message: str) -> None:
            self._end_head()
            body = json.dumps({"error": message}).encode()
            head = (
                b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
                b"x-error-message: %s\r\nconnection: close\r\n\r\n"
                % (status, _reason(status), len(body), message.encode("ascii", errors="replace"))
            )
            self.transport.write(head + body)
            self.transport.close()

        def data_received(self, data: bytes) -> None:
            # uvicorn's data_received, telling a head over the limit (431) from a malformed request (400).
            if self._in_head:
                self._head_bytes += len(data)
            self._unset_keepalive_if_required()
            try:
                self.parser.feed_data(data)
            except httptools.HttpParserUpgrade:
                if self._should_upgrade():
                    self.handle_websocket_upgrade()
                else:
                    self._unsupported_upgrade_warning()
                return
            except httptools.HttpParserError as exc:
                if isinstance(exc.__context__, _HeadTooLarge):
                    self._refuse(431, TOO_LARGE % max_head)
                else:
                    self.send_400_response("Invalid HTTP request received.")
                return
            # A head still incomplete past the limit: httptools buffers it, so stop here.
            if self._in_head and self._head_bytes > max_head and not self.transport.is_closing():
                self._refuse(431, TOO_LARGE % max_head)

        def _count(self, size: int) -> None:
            self._head_fields += size
            if self._head_fields > max_head:
                raise _HeadTooLarge

        def on_message_begin(self) -> None:
            super().on_message_begin()
            if not self._in_head:
                self._begin_head()

        def on_url(self, url: bytes) -> None:
            self._count(len(url))
            super().on_url(url)

        def on_header(self, name: bytes, value: bytes) -> None:  # on every header of every request:
            self._head_fields += len(name) + len(value) + 4  # _count and uvicorn's on_header inline
            if self._head_fields > max_head:
                raise _HeadTooLarge
            name = name.lower()
            if name == b"expect" and value.lower() == b"100-continue":
                self.expect_100_continue = True
            self.headers.append((name, value))

        def on_headers_complete(self) -> None:
            self._end_head()
            super().on_headers_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._end_head()
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None
            super().connection_lost(exc)

    return LimitedProtocol


class BodyLimit:
    """Caps request bodies of the control plane per endpoint (module docstring)."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    def limit_for(self, method: str, path: str) -> tuple[int, str]:
        s = self.settings
        if method == "POST" and _GIT_RPC.match(path):
            return s.max_git_body, "SPACEYARD_MAX_GIT_BODY"
        if method == "PUT" and path.startswith("/api/lfs-upload/"):
            return s.max_lfs_upload, "SPACEYARD_MAX_LFS_UPLOAD"
        if method == "POST" and _COMMIT.match(path):
            return s.max_commit_body, "SPACEYARD_MAX_COMMIT_BODY"
        if method == "POST" and path.startswith(XET_CAS_PREFIX):
            # Xorbs and shards: the Xet specification's sizes, checked again per endpoint by the CAS.
            return XET_MAX_BODY, "the Xet CAS limit: a xorb at most 65 MiB, a shard 64 MiB"
        return s.max_api_body, "SPACEYARD_MAX_API_BODY"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit, setting = self.limit_for(scope["method"], scope["path"])
        message = f"The request body is over the limit of {limit} bytes for this endpoint ({setting})"
        declared = next((v for k, v in scope["headers"] if k == b"content-length"), None)
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _send_413(send, message)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            event = await receive()
            if event["type"] == "http.request":
                received += len(event.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(message)
            return event

        await self.app(scope, limited, send)


async def _send_413(send: Send, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"x-error-code", b"PayloadTooLarge"),
                (b"x-error-message", message.encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
