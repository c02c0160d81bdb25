"""A lean HTTP/1.1 client for the gateway's hot path: asyncio protocol + httptools (llhttp) parser.

aiohttp's client costs ~0.3 ms per proxied request on this class of machine (request/response
objects, multidicts, URL handling, tracing, timers) and caps a one-core gateway at ~4.5k req/s; the
gateway needs none of that. This client writes the request head the gateway already has as bytes,
parses the response with llhttp (the parser uvicorn uses) and hands back raw header pairs and body
chunks as they arrive. Connections are pooled per upstream (HTTP/1.1 keep-alive).

Properties the gateway relies on:

* streaming both ways with back-pressure: request body writes wait while the app's socket buffer is
  full; at most ``HIGH_WATER`` bytes of response body are buffered before the socket stops being
  read until the visitor has taken them;
* a silent app is cut off after ``idle_timeout`` seconds of no data (the connect has its own bound);
* a connection is reused only after a complete, keep-alive response; a request that fails on a
  reused idle connection before any answer (the app closed it meanwhile) is retried once on a new
  connection when its body has not been sent;
* ``close()`` drops the connection at once (visitor gone mid-stream -> the app sees its stream end);
* a body the app breaks off (the connection closes before the chunked terminator or the
  Content-Length, or is reset) is an :class:`UpstreamError` from ``read``, never a clean end.

Websockets do not use this client (see :mod:`.websocket`, aiohttp).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import socket

import httptools

from spaceyard_runtime import netns

PoolKey = tuple[str, int, str | None]
"""``(host, port, network namespace token)``: connections are pooled per app."""
HIGH_WATER = 1 << 20
LOW_WATER = 1 << 18


class UpstreamError(Exception):
    """The app could not be reached or broke the exchange (maps to 502/504 or a cut stream)."""


class UpstreamTimeout(UpstreamError):
    pass


class UpstreamConnection(asyncio.Protocol):
    __slots__ = (
        "_body_framing",
        "_buffered",
        "_chunks",
        "_complete",
        "_drain",
        "_error",
        "_got_data",
        "_head",
        "_headers",
        "_idle_timeout",
        "_keep_alive",
        "_lost",
        "_no_reuse",
        "_paused",
        "_pool_key",
        "_reading_paused",
        "_skip",
        "_status",
        "_timer",
        "_wait_began",
        "_waiter",
        "_waiting",
        "in_pool",
        "loop",
        "parser",
        "pool",
        "reused",
        "transport",
    )

    def __init__(
        self, loop: asyncio.AbstractEventLoop, pool: UpstreamPool, pool_key: PoolKey, idle_timeout: float
    ) -> None:
        self.loop = loop
        self.pool = pool
        self.in_pool = False
        self._pool_key = pool_key
        self._idle_timeout = idle_timeout
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self._lost = False
        self._paused = False
        self._drain: asyncio.Future[None] | None = None
        self.reused = False
        self._no_reuse = False
        self._timer: asyncio.TimerHandle | None = None
        self._wait_began = 0.0
        self._waiting = False
        self._reset()

    def _reset(self) -> None:
        self._status = 0
        self._headers: list[tuple[bytes, bytes]] = []
        self._head: asyncio.Future[None] | None = None
        self._chunks: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._complete = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._got_data = False
        self._skip = False
        self._body_framing = False
        self._reading_paused = False
        self._keep_alive = False

    # -- asyncio.Protocol --------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports are not subclasses
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        if self.in_pool:  # an idle connection has nothing to say (a 408 before closing...): drop it
            self.abort()
            return
        self._got_data = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(UpstreamError(f"invalid response from the app: {exc}"))
            self.abort()

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self._stop_timer()
        if self.in_pool:
            self.pool.discard(self)
        if not self._complete:
            if self._status and not self._body_framing and not self._skip and exc is None:
                # no Content-Length, not chunked: the body ends when the connection closes cleanly (a
                # reset is the app breaking off, not an end)
                self.on_message_complete()
            else:
                self._fail(UpstreamError("the app closed the connection"))
        drain = self._drain
        if drain is not None and not drain.done():
            drain.set_exception(UpstreamError("the app closed the connection"))

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        drain = self._drain
        if drain is not None and not drain.done():
            drain.set_result(None)

    # -- httptools callbacks ----------------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            self._skip = True  # interim response (103 Early Hints...): wait for the real one
            self._headers = []
            return
        self._status = status
        self._keep_alive = self.parser.should_keep_alive() and not self._no_reuse
        for name, value in self._headers:
            if name == b"content-length" or (name == b"transfer-encoding" and b"chunked" in value.lower()):
                self._body_framing = True
                break
        if status in (204, 304):
            self._body_framing = True
        drain = self._drain
        if drain is not None and not drain.done():
            drain.set_result(None)  # an upload waiting for the app to read: the app answered instead
        head = self._head
        if head is not None and not head.done():
            head.set_result(None)

    def on_body(self, body: bytes) -> None:
        self._chunks.append(body)
        self._buffered += len(body)
        if self._buffered > HIGH_WATER and not self._reading_paused and self.transport is not None:
            self._reading_paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self._skip:
            self._skip = False
            return
        self._complete = True
        self._wake()

    # -- internal ---------------------------------------------------------------------------------

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fail(self, exc: BaseException) -> None:
        if self._error is None:
            self._error = exc
        head = self._head
        if head is not None and not head.done():
            head.set_exception(exc)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def _on_timeout(self) -> None:
        self._fail(UpstreamTimeout(f"the app sent nothing for {self._idle_timeout:g} s"))
        self.abort()

    async def _wait(self, fut: asyncio.Future[None]) -> None:
        # One idle timer per connection, not one per wait (a wait is on every request): it stays armed
        # between waits and, when it fires, either cuts off a wait older than the idle timeout or
        # re-arms for the rest of a younger one's; outside a wait it just ends.
        self._wait_began = self.loop.time()
        if self._timer is None:
            self._timer = self.loop.call_later(self._idle_timeout, self._idle_check)
        self._waiting = True
        try:
            await fut
        finally:
            self._waiting = False

    def _idle_check(self) -> None:
        self._timer = None
        if not self._waiting or self._lost:
            return
        left = self._wait_began + self._idle_timeout - self.loop.time()
        if left > 0:
            self._timer = self.loop.call_later(left, self._idle_check)
        else:
            self._on_timeout()

    def _stop_timer(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()

    # -- the exchange -----------------------------------------------------------------------------

    @property
    def alive(self) -> bool:
        return not self._lost and self.transport is not None and not self.transport.is_closing()

    def write(self, data: bytes) -> None:
        if self._lost or self.transport is None:
            raise UpstreamError("the app closed the connection")
        self.transport.write(data)

    def no_reuse(self) -> None:
        """This connection's exchange did not end cleanly (request body cut short): close it after."""
        self._keep_alive = False
        self._no_reuse = True

    async def drain(self) -> None:
        if self._paused and not self._lost and not self._status:
            self._drain = self.loop.create_future()
            try:
                await self._wait(self._drain)
            finally:
                self._drain = None
        if self._lost:
            raise UpstreamError("the app closed the connection")

    async def response_head(self) -> tuple[int, list[tuple[bytes, bytes]]]:
        if self._status == 0:
            if self._error is not None:
                raise self._error
            if self._lost:
                raise UpstreamError("the app closed the connection")
            self._head = self.loop.create_future()
            await self._wait(self._head)
        return self._status, self._headers

    async def read(self) -> bytes:
        """The next body chunk as it came from the app; ``b""`` at the end of the body."""
        while True:
            if self._chunks:
                chunk = self._chunks.popleft()
                self._buffered -= len(chunk)
                if self._reading_paused and self._buffered < LOW_WATER and self.transport is not None:
                    self._reading_paused = False
                    self.transport.resume_reading()
                return chunk
            if self._complete:
                return b""
            if self._error is not None:
                raise self._error
            self._waiter = self.loop.create_future()
            try:
                await self._wait(self._waiter)
            finally:
                self._waiter = None

    @property
    def answered(self) -> bool:
        """The response head has arrived."""
        return self._status != 0

    @property
    def complete(self) -> bool:
        """The whole response has arrived (body chunks may still be waiting to be read)."""
        return self._complete

    @property
    def at_eof(self) -> bool:
        return self._complete and not self._chunks

    @property
    def reusable(self) -> bool:
        return self._complete and not self._chunks and self._keep_alive and self.alive

    def abort(self) -> None:
        self._lost = True
        self._stop_timer()
        if self.transport is not None:
            self.transport.abort()


class UpstreamPool:
    """Keep-alive connections per ``(host, port)``; LIFO so the warmest connection is reused."""

    def __init__(self, connect_timeout: float, idle_timeout: float, max_idle_per_upstream: int = 256) -> None:
        self.connect_timeout = connect_timeout
        self.idle_timeout = idle_timeout
        self.max_idle = max_idle_per_upstream
        self._idle: dict[PoolKey, list[UpstreamConnection]] = {}

    async def acquire(
        self, host: str, port: int, *, fresh: bool = False, netns: str | None = None
    ) -> UpstreamConnection:
        """``netns``: the app listens in its own network namespace (local sandbox): the socket is created
        there (:mod:`spaceyard_runtime.netns`), then used like any other."""
        key = (host, port, netns)
        if not fresh:
            conn = self.take_idle(key)
            if conn is not None:
                return conn
        loop = asyncio.get_running_loop()
        try:
            _, protocol = await asyncio.wait_for(self._connect(loop, key), self.connect_timeout)
        except TimeoutError as exc:
            raise UpstreamTimeout(f"connecting to the app took over {self.connect_timeout:g} s") from exc
        except OSError as exc:
            raise UpstreamError(f"cannot connect to the app: {exc.strerror or exc}") from exc
        return protocol

    def take_idle(self, key: PoolKey) -> UpstreamConnection | None:
        """A pooled keep-alive connection to ``key`` ready for the next exchange, or ``None`` (then
        :meth:`acquire` connects): the hot path takes one without a coroutine."""
        idle = self._idle.get(key)
        while idle:
            conn = idle.pop()
            conn.in_pool = False
            if conn.alive:
                conn._reset()
                conn.reused = True
                return conn
        return None

    async def _connect(
        self, loop: asyncio.AbstractEventLoop, key: PoolKey
    ) -> tuple[asyncio.BaseTransport, UpstreamConnection]:
        host, port, token = key
        factory = lambda: UpstreamConnection(loop, self, key, self.idle_timeout)  # noqa: E731
        if token is None:
            return await loop.create_connection(factory, host, port)
        return await loop.create_connection(factory, sock=await netns.connect(host, port, token))

    def release(self, conn: UpstreamConnection) -> None:
        """Back to the pool if the exchange ended cleanly, else closed."""
        if conn.reusable:
            idle = self._idle.setdefault(conn._pool_key, [])
            if len(idle) < self.max_idle:
                conn.in_pool = True
                idle.append(conn)
                return
        conn.abort()

    def discard(self, conn: UpstreamConnection) -> None:
        """A pooled connection the app closed: forget it (and the app, when it was the last one)."""
        conn.in_pool = False
        idle = self._idle.get(conn._pool_key)
        if idle is not None:
            with contextlib.suppress(ValueError):
                idle.remove(conn)
            if not idle:
                del self._idle[conn._pool_key]

    def close(self) -> None:
        for idle in self._idle.values():
            for conn in idle:
                conn.abort()
        self._idle.clear()
