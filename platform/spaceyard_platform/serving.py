"""How the platform's HTTP server process runs, beyond uvicorn's own settings: fewer system calls per
response, fewer timers, and a garbage collector tuned for a server.

**One socket write for a response's head and its first body chunk.** uvicorn's HTTP/1.1 protocol writes
the status line and headers when the app sends ``http.response.start`` and the body when it sends
``http.response.body``: two ``write`` system calls for a small response, where nginx makes one. On
loopback each costs several microseconds of kernel time (the receiving side's TCP work runs in the
sender's call), which is a sizeable share of a proxied request here (``docs/benchmarks.md``, "Gateway").

:class:`LeanProtocol` gives every request/response cycle a :class:`HeadHoldingWriter` in place of
the transport: the head is held until the first body chunk and both go out in one write. A head whose
body is not sent in the same event-loop turn (a stream whose first event comes later, a slow app) is
flushed at the end of that turn, so a client sees the headers as soon as it did before. Everything
after the first body chunk is written at once, as before; ``close`` flushes first.

**Garbage collector** (:func:`tune_gc`): CPython's youngest generation is collected every 700 net
allocations of container objects. A proxied request allocates a few hundred (scope, headers, task,
futures, messages), so the collector ran every few requests and each run walked every object of all
requests in flight (most of them freed by reference counting a moment later anyway). With 10 000 it
runs an order of magnitude less often for about the same walk; objects built at startup (the app,
routes, imported modules) are frozen out of every collection. Garbage in reference cycles lives a
little longer; nothing else changes.
"""

from __future__ import annotations

import asyncio
import gc
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class HeadHoldingWriter:
    """The part of a transport a request/response cycle uses (``write``, ``close``, ``is_closing``), with
    the first write (the response head) held for the next one (module docstring)."""

    __slots__ = ("_held", "_loop", "transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self.transport = transport
        self._loop = loop
        self._held: bytes | None = None

    def write(self, data: bytes) -> None:
        held = self._held
        if held is not None:
            self._held = None
            if len(data) <= 16384:
                self.transport.write(held + data)
            else:
                self.transport.writelines((held, data))  # one writev, a big chunk not copied
        elif data.startswith(b"HTTP/"):  # a response head (a body chunk never comes first)
            self._held = data
            self._loop.call_soon(self.flush)
        else:
            self.transport.write(data)

    def flush(self) -> None:
        held = self._held
        if held is not None:
            self._held = None
            if not self.transport.is_closing():
                self.transport.write(held)

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def is_closing(self) -> bool:
        return self.transport.is_closing()

    def __getattr__(self, name: str) -> Any:  # anything else a cycle might ask: the transport's own
        return getattr(self.transport, name)


class LeanProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol whose cycles write through a :class:`HeadHoldingWriter`, with one
    keep-alive timer per connection instead of one per response (uvicorn arms a new one after every
    response and cancels it on the next request's first bytes): the timer stays armed while the
    connection serves, and when it fires it closes the connection only if it has been idle for the whole
    ``timeout_keep_alive`` (else it waits for the rest, or ends while a request is open)."""

    _writer: HeadHoldingWriter | None = None
    _idle_since: float | None = None
    _idle_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._writer = HeadHoldingWriter(transport, self.loop)

    def on_headers_complete(self) -> None:
        before = self.cycle
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not None and cycle is not before and self._writer is not None:
            cycle.transport = self._writer  # type: ignore[assignment]  # the cycle only writes and closes

    # -- keep-alive: uvicorn 0.54's on_response_complete and _unset_keepalive_if_required, one timer

    def _unset_keepalive_if_required(self) -> None:
        self._idle_since = None  # busy (data arrived): an armed timer finds it so and ends
        super()._unset_keepalive_if_required()

    def on_response_complete(self) -> None:
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self._unset_keepalive_if_required()
        self.flow.resume_reading()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
            return
        self._idle_since = self.loop.time()
        if self._idle_timer is None:
            self._idle_timer = self.loop.call_later(self.timeout_keep_alive, self._keep_alive_check)

    def _keep_alive_check(self) -> None:
        self._idle_timer = None
        since = self._idle_since
        if since is None or self.transport.is_closing():
            return  # serving a request: the response that ends it arms the timer again
        left = since + self.timeout_keep_alive - self.loop.time()
        if left > 0:
            self._idle_timer = self.loop.call_later(left, self._keep_alive_check)
        else:
            self.timeout_keep_alive_handler()

    def connection_lost(self, exc: Exception | None) -> None:
        timer, self._idle_timer = self._idle_timer, None
        if timer is not None:
            timer.cancel()
        super().connection_lost(exc)


GC_THRESHOLDS = (10_000, 20, 20)
"""Collections of the young, middle and old generation: after 10 000 net allocations, every 20th young
collection, every 20th middle one (CPython: 700, 10, 10)."""


def tune_gc() -> None:
    """Called once by the server process after it built its app, before it serves (module docstring)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
