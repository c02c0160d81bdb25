"""Readiness, shared by the runtimes that probe an app over HTTP: poll ``GET /`` every
``interval`` seconds (never backoff) until it answers below 500, the app exits, or time runs out."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from .errors import AppStartTimeout
from .netns import open_connection

PROBE_TIMEOUT = 5.0
"""Seconds one readiness probe may wait for a status line once connected."""


async def probe_http(host: str, port: int, timeout: float = PROBE_TIMEOUT, netns: str | None = None) -> int | None:
    """``GET /`` once; the status code, or ``None`` when nothing answers yet. ``netns``: the app's own
    network namespace (:mod:`spaceyard_runtime.netns`)."""
    try:
        reader, writer = await asyncio.wait_for(open_connection(host, port, netns), timeout)
    except (TimeoutError, OSError):
        return None
    try:
        writer.write(
            f"GET / HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: spaceyard-readiness\r\n"
            "Accept: */*\r\nConnection: close\r\n\r\n".encode()
        )
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), timeout)
        parts = line.split()
        if len(parts) >= 2 and parts[0].startswith(b"HTTP/") and parts[1].isdigit():
            return int(parts[1])
        return None
    except (TimeoutError, OSError, asyncio.IncompleteReadError):
        return None
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def wait_for_http(
    host: str, port: int, exited: asyncio.Future[Any], timeout: float, interval: float, netns: str | None = None
) -> bool:
    """``True`` once the app answers HTTP below 500; ``False`` if ``exited`` completes first (the caller
    turns that into AppCrashed with the exit code and log tail); AppStartTimeout past ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        if exited.done():
            return False
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise AppStartTimeout(f"the app did not answer HTTP on port {port} within {timeout:g} s")
        probe = asyncio.ensure_future(probe_http(host, port, min(PROBE_TIMEOUT, remaining), netns))
        waiting: list[asyncio.Future[Any]] = [probe, exited]
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        if not probe.done():
            probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await probe
            continue
        status = probe.result()
        if status is not None and status < 500:
            return True
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(exited), min(interval, max(deadline - loop.time(), 0)))
