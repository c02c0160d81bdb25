"""How the platform's HTTP server process runs, beyond uvicorn's own settings: fewer system calls per
response and a garbage collector tuned for a server.

**One socket write for a response's head and its first body chunk.** uvicorn's HTTP/1.1 protocol writes
the status line and headers when the app sends ``http.response.start`` and the body when it sends
``http.response.body``: two ``write`` system calls for a small response, where nginx makes one. On
loopback each costs several microseconds of kernel time (the receiving side's TCP work runs in the
sender's call), which is a sizeable share of a proxied request here (``docs/benchmarks.md``, "Gateway").

:class:`CoalescingProtocol` gives every request/response cycle a :class:`HeadHoldingWriter` in place of
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


class CoalescingProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol whose cycles write through a :class:`HeadHoldingWriter`."""

    _writer: HeadHoldingWriter | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._writer = HeadHoldingWriter(transport, self.loop)

    def on_headers_complete(self) -> None:
        before = self.cycle
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not None and cycle is not before and self._writer is not None:
            cycle.transport = self._writer  # type: ignore[assignment]  # the cycle only writes and closes


GC_THRESHOLDS = (10_000, 20, 20)
"""Collections of the young, middle and old generation: after 10 000 net allocations, every 20th young
collection, every 20th middle one (CPython: 700, 10, 10)."""


def tune_gc() -> None:
    """Called once by the server process after it built its app, before it serves (module docstring)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
