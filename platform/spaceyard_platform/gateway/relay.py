"""The relay to an app: plain HTTP through :mod:`.upstream` (pooled keep-alive HTTP/1.1 on llhttp), and
websockets through :mod:`.websocket` (aiohttp client).

Plain HTTP has no buffering: each chunk is forwarded as it arrives and each send is awaited, so a slow
visitor slows the app down instead of filling memory; a visitor leaving mid-stream closes the app's
connection; an app breaking a body off is passed on broken (no chunked terminator), never as a clean end.

Forwarded headers: hop-by-hop headers removed both ways; ``X-Forwarded-For/Proto/Host`` set; for the
path form ``X-Forwarded-Prefix`` and ``X-Gradio-Server`` (the app's public root as a full URL, which
Gradio uses to build its URLs). Gradio 6.31 prefers ``X-Forwarded-Host`` over ``X-Gradio-Server``
and drops the prefix when it sees it (``gradio/route_utils.py:get_request_origin``), so the path form
sends no ``X-Forwarded-Host``; the ``Host`` header is the visitor's in both forms.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import aiohttp
from yarl import URL

from spaceyard_runtime import netns
from spaceyard_runtime.api import Endpoint

from ..settings import Settings
from . import gradiostate as gs
from . import headers as hdr
from . import pages, websocket
from .activity import SpaceActivity
from .asgi import Receive, Scope, Send
from .matching import Match
from .responses import header
from .upstream import UpstreamConnection, UpstreamError, UpstreamPool, UpstreamTimeout

log = logging.getLogger("spaceyard.gateway")


class Relay:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._session: aiohttp.ClientSession | None = None
        self._pool: UpstreamPool | None = None

    async def aclose(self) -> None:
        session, self._session = self._session, None
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()
        if session is not None:
            await session.close()

    # -- HTTP -------------------------------------------------------------------------------------

    def _pool_get(self) -> UpstreamPool:
        pool = self._pool
        if pool is None:
            pool = self._pool = UpstreamPool(self.settings.upstream_connect_timeout, self.settings.stream_idle_timeout)
        return pool

    def request_head(self, scope: Scope, match: Match) -> tuple[bytes, int]:
        """The request line and headers for the app, and the body framing: 0 none, 1 length, 2 chunked."""
        raw_path = match.raw_path or match.path.encode("utf-8") or b"/"
        query: bytes = scope.get("query_string") or b""
        parts = [scope["method"].encode("latin-1"), b" ", raw_path]
        if query:
            parts += [b"?", query]
        parts.append(b" HTTP/1.1\r\n")
        framing = 0
        for name, value in hdr.filter_request_headers(scope["headers"]):
            if name == b"content-length" and framing == 0 and value.strip() != b"0":
                framing = 1
            parts += [name, b": ", value, b"\r\n"]
        for name, _ in scope["headers"]:
            if name == b"transfer-encoding":
                framing = 2
                parts.append(b"transfer-encoding: chunked\r\n")
                break
        host = match.host
        scheme = scope.get("scheme", "http")
        proto = b"https" if scheme in ("https", "wss") else b"http"
        if host:
            host_b = host.encode("latin-1")
            parts += [b"host: ", host_b, b"\r\n"]
        client = scope.get("client")
        if client:
            parts += [b"x-forwarded-for: ", client[0].encode("latin-1"), b"\r\n"]
        parts += [b"x-forwarded-proto: ", proto, b"\r\n"]
        if match.prefix:
            prefix = match.prefix.encode("utf-8")
            parts += [b"x-forwarded-prefix: ", prefix, b"\r\n"]
            if host:
                parts += [b"x-gradio-server: ", proto, b"://", host_b, prefix, b"\r\n"]
        elif host:
            parts += [b"x-forwarded-host: ", host_b, b"\r\n"]
        parts.append(b"\r\n")
        return b"".join(parts), framing

    async def http(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        match: Match,
        space_id: str,
        stage: str,
        disable_embedding: bool,
        activity: SpaceActivity,
        endpoint: Endpoint,
        extra: list[tuple[bytes, bytes]],
        on_answer: Callable[[bytes], None] | None = None,
    ) -> None:
        """Relay one request to ``endpoint``; ``on_answer`` gets a Gradio call's (bounded) 200 answer."""
        head_bytes, framing = self.request_head(scope, match)
        pool = self._pool_get()
        conn: UpstreamConnection | None = None
        try:
            conn = pool.take_idle((endpoint.host, endpoint.port, endpoint.netns)) or await pool.acquire(
                endpoint.host, endpoint.port, netns=endpoint.netns
            )
            if framing == 0:
                conn.write(head_bytes)
                try:
                    status, raw_headers = await conn.response_head()
                except UpstreamTimeout:
                    raise
                except UpstreamError:
                    if not conn.reused or conn._got_data:
                        raise
                    # the app closed this idle keep-alive connection meanwhile: once more on a new one
                    conn.abort()
                    conn = await pool.acquire(endpoint.host, endpoint.port, fresh=True, netns=endpoint.netns)
                    conn.write(head_bytes)
                    status, raw_headers = await conn.response_head()
            else:
                conn.write(head_bytes)
                try:
                    sent = await _send_body(receive, conn, chunked=framing == 2)
                except UpstreamError:
                    if not conn.answered:
                        raise
                    sent = True  # the app answered early (413...) and stopped reading: pass its answer on
                if not sent:
                    conn.abort()
                    return  # the visitor left during the upload
                status, raw_headers = await conn.response_head()
        except UpstreamError as exc:
            if conn is not None:
                conn.abort()
            await self._upstream_error(scope, send, space_id, stage, exc)
            return

        watcher: asyncio.Future[None] | None = None
        try:
            out_headers = hdr.response_headers(
                raw_headers, extra, disable_embedding=disable_embedding, path_form=bool(match.prefix)
            )
            if match.prefix:
                out_headers = _rewrite_location(out_headers, match.prefix, endpoint)
            await send({"type": "http.response.start", "status": status, "headers": out_headers})
            if scope["method"] == "HEAD":
                conn.abort()  # llhttp cannot be told the response to HEAD has no body: no reuse
                await send({"type": "http.response.body", "body": b""})
                return
            if not conn.complete:  # a stream: notice a visitor who leaves, even while the app is quiet
                watcher = asyncio.ensure_future(_close_on_disconnect(receive, conn))
            complete = False
            # a Gradio call or upload: remember which version holds the event id / paths it answers
            learned: bytearray | None = bytearray() if on_answer is not None and status == 200 else None
            try:
                while True:
                    chunk = await conn.read()
                    if learned is not None and len(learned) < gs.MAX_ANSWER:
                        learned += chunk
                    if not chunk:
                        complete = True
                        break
                    if conn.at_eof:
                        await send({"type": "http.response.body", "body": chunk})
                        if learned and on_answer is not None:
                            on_answer(bytes(learned))
                        return
                    activity.touch()
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            except UpstreamError:
                # The app died or went silent mid-stream (or the visitor left and the watcher closed it):
                # returning without completing makes the server drop the connection without the chunked
                # terminator (or short of Content-Length), so the visitor sees a broken response, never a
                # truncated body that looks whole.
                complete = False
            if complete:
                await send({"type": "http.response.body", "body": b""})
                if learned and on_answer is not None:
                    on_answer(bytes(learned))
        finally:
            if watcher is not None:
                watcher.cancel()
            pool.release(conn)

    async def _upstream_error(self, scope: Scope, send: Send, space_id: str, stage: str, exc: BaseException) -> None:
        accept = header(scope, b"accept")
        head = scope["method"] == "HEAD"
        if isinstance(exc, UpstreamTimeout):
            await pages.send_page(
                send, 504, f"{space_id} did not answer", "The app did not answer in time.", accept=accept, head=head
            )
        else:
            log.info("upstream of %s unreachable: %r", space_id, exc)
            await pages.send_page(
                send,
                502,
                f"{space_id} is not reachable",
                "The app is not answering (it may have crashed or be restarting).",
                accept=accept,
                stage=stage,
                head=head,
            )

    # -- websockets -------------------------------------------------------------------------------

    async def websocket(
        self, scope: Scope, receive: Receive, send: Send, match: Match, endpoint: Endpoint, activity: SpaceActivity
    ) -> None:
        raw_path = match.raw_path or match.path.encode("utf-8") or b"/"
        query: bytes = scope.get("query_string") or b""
        target = (raw_path + b"?" + query) if query else raw_path
        url = URL(f"http://{endpoint.host}:{endpoint.port}{target.decode('latin-1')}", encoded=True)
        forward = self._forward_headers(scope, match)
        timeout = self.settings.stream_idle_timeout
        if endpoint.netns is None:
            await websocket.relay(self._session_get(), scope, receive, send, url, forward, activity, timeout)
            return
        session = self._netns_session(endpoint.netns)
        try:
            await websocket.relay(session, scope, receive, send, url, forward, activity, timeout)
        finally:
            await session.close()

    def _session_get(self) -> aiohttp.ClientSession:
        session = self._session
        if session is None or session.closed:
            # no pooled keep-alive: a Kubernetes Space's ClusterIP is the same before and after a rolling
            # update, and a pooled connection stays on the old pod (conntrack) until it stops mid-call
            connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, force_close=True, ttl_dns_cache=10)
            session = self._session = self._new_session(connector)
        return session

    def _netns_session(self, token: str) -> aiohttp.ClientSession:
        """A one-off session whose sockets are made inside an app's own network namespace (local sandbox);
        never pooled, so a connection can never be reused for another app with the same address."""
        connector = aiohttp.TCPConnector(
            force_close=True, socket_factory=lambda info: netns.socket_in(token, info[0], info[1])
        )
        return self._new_session(connector)

    def _new_session(self, connector: aiohttp.TCPConnector) -> aiohttp.ClientSession:
        s = self.settings
        return aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(
                total=None, connect=None, sock_connect=s.upstream_connect_timeout, sock_read=s.stream_idle_timeout
            ),
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
            max_line_size=65536,
            max_field_size=65536,
            read_bufsize=2**16,
        )

    @staticmethod
    def _forward_headers(scope: Scope, match: Match) -> list[tuple[str, str]]:
        out = hdr.upstream_request_headers(scope["headers"], websocket=True)
        host = match.host
        scheme = scope.get("scheme", "http")
        proto = "https" if scheme in ("https", "wss") else "http"
        if host:
            out.append(("Host", host))
        client = scope.get("client")
        if client:
            out.append(("X-Forwarded-For", client[0]))
        out.append(("X-Forwarded-Proto", proto))
        if match.prefix:
            out.append(("X-Forwarded-Prefix", match.prefix))
            if host:
                out.append(("X-Gradio-Server", f"{proto}://{host}{match.prefix}"))
        elif host:
            out.append(("X-Forwarded-Host", host))
        return out


async def _send_body(receive: Receive, conn: UpstreamConnection, *, chunked: bool) -> bool:
    """Stream the visitor's request body to the app as it arrives; False if the visitor left."""
    while True:
        if conn.answered:  # the app answered before taking the whole body (413...): stop sending
            conn.no_reuse()
            return True
        message = await receive()
        if message["type"] == "http.disconnect":
            return False
        chunk: bytes = message.get("body", b"")
        more: bool = message.get("more_body", False)
        if chunk:
            if chunked:
                conn.write(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
            else:
                conn.write(chunk)
            await conn.drain()
        if not more:
            if chunked:
                conn.write(b"0\r\n\r\n")
            return True


async def _close_on_disconnect(receive: Receive, conn: UpstreamConnection) -> None:
    """Drop the app's connection as soon as the visitor goes away mid-response."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            conn.abort()
            conn._fail(UpstreamError("the visitor went away"))
            return


def _rewrite_location(headers: list[tuple[bytes, bytes]], prefix: str, endpoint: Endpoint) -> list[tuple[bytes, bytes]]:
    """Path form: an app redirecting to ``/x`` (or to its own URL) means ``PREFIX/x``."""
    for i, (name, value) in enumerate(headers):
        if name == b"location":
            upstream = endpoint.url.encode("latin-1")
            if value.startswith(upstream):
                value = value[len(upstream) :] or b"/"
            if value.startswith(b"/") and not value.startswith(b"//") and not value.startswith(prefix.encode() + b"/"):
                headers[i] = (name, prefix.encode("utf-8") + value)
    return headers
