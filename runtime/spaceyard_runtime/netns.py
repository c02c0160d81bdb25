"""Connect to an app that listens inside its own network namespace (the local sandbox).

A sandboxed app has a network namespace of its own with nothing but loopback: nothing outside it can
reach what it listens on, and it can reach nothing outside. The platform (root) reaches it by creating
the socket *inside* that namespace: the calling thread enters the namespace with ``setns``, creates the
socket and goes back at once (a socket stays in the namespace it was created in). The connection itself
is then an ordinary TCP connection on the app's loopback, as fast as any other: no forwarder in the path.

Namespaces are registered by the runtime (:func:`register`) and named by an opaque token that
:class:`~spaceyard_runtime.api.Endpoint` carries in ``netns``; a token is never reused, so a stale
endpoint can never reach another app.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import itertools
import os
import socket
import threading

CLONE_NEWNET = 0x40000000

_libc = ctypes.CDLL(None, use_errno=True)
_registry: dict[str, int] = {}
_seq = itertools.count(1)
_lock = threading.Lock()
_home: int | None = None


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def _home_fd() -> int:
    global _home
    if _home is None:
        _home = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    return _home


def register(pid: int) -> str:
    """Hold the network namespace of process ``pid``; the token that names it."""
    home = _home_fd()
    fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    if os.fstat(fd).st_ino == os.fstat(home).st_ino:
        os.close(fd)
        raise OSError(f"process {pid} shares the platform's network namespace")
    token = f"netns-{os.getpid()}-{next(_seq)}"
    with _lock:
        _registry[token] = fd
    return token


def release(token: str | None) -> None:
    if token is None:
        return
    with _lock:
        fd = _registry.pop(token, None)
    if fd is not None:
        os.close(fd)


def socket_in(token: str | None, family: int = socket.AF_INET, kind: int = socket.SOCK_STREAM) -> socket.socket:
    """A new non-blocking socket in the namespace ``token`` names (``None``: the platform's own)."""
    if token is None:
        sock = socket.socket(family, kind)
    else:
        with _lock:
            fd = _registry.get(token)
        if fd is None:
            raise ConnectionRefusedError(f"the app's network ({token}) is gone")
        home = _home_fd()
        _setns(fd)
        try:
            sock = socket.socket(family, kind)
        finally:
            _setns(home)
    sock.setblocking(False)
    return sock


async def connect(host: str, port: int, token: str | None) -> socket.socket:
    """A connected TCP socket to ``host:port`` as seen from inside the namespace ``token``."""
    sock = socket_in(token)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        await asyncio.get_running_loop().sock_connect(sock, (host, port))
    except BaseException:
        sock.close()
        raise
    return sock


async def open_connection(
    host: str, port: int, token: str | None, **kwargs: object
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """``asyncio.open_connection`` into the namespace ``token`` (``None``: a plain connection)."""
    if token is None:
        return await asyncio.open_connection(host, port, **kwargs)  # type: ignore[arg-type]
    return await asyncio.open_connection(sock=await connect(host, port, token), **kwargs)  # type: ignore[arg-type]


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        if writer.can_write_eof():
            with contextlib.suppress(OSError):
                writer.write_eof()


async def forward(host: str, port: int, token: str | None, listen: str = "127.0.0.1") -> asyncio.Server:
    """A plain TCP port on the host that relays to ``host:port`` in the namespace ``token``: for tools and
    tests that need a URL (the gateway connects directly). ``server.sockets[0].getsockname()[1]`` is it."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await open_connection(host, port, token)
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        for w in (writer, up_writer):
            w.close()

    return await asyncio.start_server(handle, listen, 0)


__all__ = ["connect", "forward", "open_connection", "register", "release", "socket_in"]
