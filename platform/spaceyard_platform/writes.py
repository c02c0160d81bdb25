"""One socket write for a response's head and its first body chunk.

uvicorn's HTTP/1.1 protocol writes the status line and headers when the app sends
``http.response.start`` and the body when it sends ``http.response.body``: two ``write`` system calls
for a small response, where nginx makes one. On loopback each costs several microseconds of kernel
time (the receiving side's TCP work runs in the sender's call), which is a sizeable share of a proxied
request here (``docs/benchmarks.md``, "Gateway").

:class:`CoalescingProtocol` gives every request/response cycle a :class:`HeadHoldingWriter` in place of
the transport: the head is held until the first body chunk and both go out in one write. A head whose
body is not sent in the same event-loop turn (a stream whose first event comes later, a slow app) is
flushed at the end of that turn, so a client sees the headers as soon as it did before. Everything
after the first body chunk is written at once, as before; ``close`` flushes first.
"""

from __future__ import annotations

import asyncio
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
            self.transport.writelines((held, data))  # one writev, the body not copied
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
