"""The runtime's side of a warm parent (:mod:`spaceyard_runtime.zygote`): spawn it, ask it to fork, learn
how its children end.

One :class:`Zygote` per (environment, preload modules). It runs the environment's own interpreter on the
``zygote.py`` script, talks over a ``SOCK_SEQPACKET`` socketpair and hands each child its output pipes
with ``SCM_RIGHTS``. The children are the zygote's, not ours: their exit codes come from the zygote, and
a ``pidfd`` per child tells us they ended even if the zygote itself is gone.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from .zygote import HEADER, MAX_PACKET

ZYGOTE_SCRIPT = Path(__file__).with_name("zygote.py")
HELLO_TIMEOUT = 180.0
FORK_TIMEOUT = 15.0
EXIT_REPORT_WAIT = 2.0
"""Seconds to wait for the zygote's exit report once a child's pidfd says it ended."""

logger = logging.getLogger(__name__)


class ZygoteError(Exception):
    """The warm parent could not be started or could not fork."""


Wrap = Callable[[list[str]], tuple[list[str], tuple[int, ...]]]
"""Turns the zygote's command line into the one to spawn (its sandbox), with the fds the spawn must pass."""
OnSpawn = Callable[[int], Awaitable[None]]
"""Called with the spawned process's pid, before waiting for the zygote's hello."""


class Zygote:
    def __init__(
        self,
        key: str,
        python: str,
        preload: list[str],
        env: dict[str, str],
        workdir: Path,
        *,
        wrap: Wrap | None = None,
        on_spawn: OnSpawn | None = None,
        host_pids: bool = True,
    ) -> None:
        """``host_pids=False``: the zygote runs in its own pid namespace, so the pids it reports mean nothing
        here; children are then signalled through the zygote and known to end from its reports only."""
        self.wrap = wrap
        self.on_spawn = on_spawn
        self.host_pids = host_pids
        self.key = key
        self.python = python
        self.preload = preload
        self.env = env
        self.workdir = workdir
        self.proc: asyncio.subprocess.Process | None = None
        self.hello: dict[str, Any] = {}
        self.alive = False
        self._sock: socket.socket | None = None
        self._hello: asyncio.Future[dict[str, Any]] | None = None
        self._pending: dict[int, asyncio.Future[int]] = {}
        self._exits: dict[int, asyncio.Future[int | None]] = {}
        self._pidfds: dict[int, int] = {}
        self._seq = 0
        self.started_at = 0.0
        self.preload_output: list[str] = []
        """What importing the preload modules printed (warnings...): a cold start would print it too."""

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def reads(self) -> dict[str, Any]:
        reads: dict[str, Any] = self.hello.get("reads", {})
        return reads

    @property
    def iterated(self) -> list[str]:
        iterated: list[str] = self.hello.get("iterated", [])
        return iterated

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.workdir.mkdir(parents=True, exist_ok=True)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.started_at = time.monotonic()
        log_path = self.workdir / "zygote.log"
        with open(log_path, "ab") as logf:
            offset = logf.tell()
            argv = [self.python, str(ZYGOTE_SCRIPT), str(theirs.fileno()), *self.preload]
            extra: tuple[int, ...] = ()
            try:
                if self.wrap is not None:
                    argv, extra = self.wrap(argv)
                self.proc = await asyncio.create_subprocess_exec(
                    *argv,
                    cwd=str(self.workdir),
                    env=self.env,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=logf,
                    stderr=logf,
                    pass_fds=(theirs.fileno(), *extra),
                    start_new_session=True,
                )
            except Exception as exc:
                ours.close()
                raise ZygoteError(f"could not start the warm parent: {exc}") from exc
            finally:
                theirs.close()
                for fd in extra:
                    with contextlib.suppress(OSError):
                        os.close(fd)
            if self.on_spawn is not None:
                try:
                    await self.on_spawn(self.proc.pid)
                except Exception as exc:
                    ours.close()
                    with contextlib.suppress(ProcessLookupError):
                        self.proc.kill()
                    raise ZygoteError(f"the warm parent's sandbox did not come up: {exc}") from exc
        self._sock = ours
        self._hello = loop.create_future()
        loop.add_reader(ours.fileno(), self._on_readable)
        self.alive = True
        try:
            self.hello = await asyncio.wait_for(asyncio.shield(self._hello), HELLO_TIMEOUT)
        except (TimeoutError, ZygoteError) as exc:
            await self.close()
            raise ZygoteError(f"the warm parent did not come up: {exc}") from exc
        with open(log_path, "rb") as f:
            f.seek(offset)
            self.preload_output = f.read(1 << 16).decode("utf-8", "replace").splitlines()
        logger.info(
            "warm parent %s ready: pid %s, preloaded %s in %.2f s",
            self.key,
            self.pid,
            ",".join(m for m in self.preload if not m.startswith("?")),
            self.hello.get("preload_seconds", 0.0),
        )

    def _on_readable(self) -> None:
        assert self._sock is not None
        try:
            data = self._sock.recv(1 << 20)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._lost("the warm parent exited")
            return
        message = json.loads(data)
        kind = message.get("type")
        if kind == "hello" and self._hello and not self._hello.done():
            self._hello.set_result(message)
        elif kind == "error" and self._hello and not self._hello.done():
            self._hello.set_exception(ZygoteError(message.get("message", "preload failed").strip()))
        elif kind in ("forked", "fork_failed"):
            future = self._pending.pop(int(message["id"]), None)
            if future is None or future.done():
                return
            if kind == "forked":
                pid = int(message["pid"])
                self._exits[pid] = asyncio.get_running_loop().create_future()
                future.set_result(pid)
            else:
                future.set_exception(ZygoteError(message.get("message", "fork failed")))
        elif kind == "exit":
            exited = self._exits.get(int(message["pid"]))
            if exited is not None and not exited.done():
                exited.set_result(int(message["code"]))

    def _lost(self, reason: str) -> None:
        if not self.alive:
            return
        self.alive = False
        if self._sock is not None:
            asyncio.get_running_loop().remove_reader(self._sock.fileno())
            self._sock.close()
        if self._hello and not self._hello.done():
            self._hello.set_exception(ZygoteError(reason))
        for future in self._pending.values():
            if not future.done():
                future.set_exception(ZygoteError(reason))
        self._pending.clear()
        if not self.host_pids:  # no pidfd to tell: the children died with the zygote's pid namespace
            for exited in list(self._exits.values()):
                if not exited.done():
                    exited.set_exception(ZygoteError(reason))
        logger.log(logging.INFO if reason == "shut down" else logging.WARNING, "warm parent %s: %s", self.key, reason)

    async def fork(
        self, request: dict[str, Any], stdout_fd: int, stderr_fd: int, ready_fd: int | None = None
    ) -> tuple[int, asyncio.Future[int | None]]:
        """Fork a child; returns its pid and a future of its exit code (``None``: unknown). ``ready_fd``: the
        write end of a pipe on which the child announces that it listens (:func:`announced`)."""
        if not self.alive or self._sock is None:
            raise ZygoteError("the warm parent is not running")
        self._seq += 1
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pending[self._seq] = future
        fds = array.array("i", [stdout_fd, stderr_fd, *([] if ready_fd is None else [ready_fd])])
        payload = HEADER.pack(self._seq) + json.dumps(request).encode()
        try:
            if len(payload) > MAX_PACKET:
                raise OSError("the request is too large")
            self._sock.sendmsg([payload], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])
        except OSError as exc:
            self._pending.pop(self._seq, None)
            raise ZygoteError(f"could not reach the warm parent: {exc}") from exc
        try:
            pid = await asyncio.wait_for(asyncio.shield(future), FORK_TIMEOUT)
        except TimeoutError as exc:
            raise ZygoteError("the warm parent did not fork in time") from exc
        return pid, self._watch(pid)

    def _watch(self, pid: int) -> asyncio.Future[int | None]:
        """The child's exit code from the zygote, or ``None`` if the zygote is gone when the child ends."""
        loop = asyncio.get_running_loop()
        reported = self._exits[pid]  # created when "forked" arrived; resolved by the "exit" report
        result: asyncio.Future[int | None] = loop.create_future()
        try:
            pidfd = os.pidfd_open(pid) if self.host_pids else -1
        except OSError:
            pidfd = -1

        if pidfd >= 0:
            self._pidfds[pid] = pidfd

        def done(code: int | None) -> None:
            if self._pidfds.pop(pid, None) is not None:
                loop.remove_reader(pidfd)
                os.close(pidfd)
            if not result.done():
                result.set_result(code)

        def on_report(f: asyncio.Future[int | None]) -> None:
            done(f.result() if not f.cancelled() and f.exception() is None else None)

        async def late_report() -> None:
            try:
                code = await asyncio.wait_for(asyncio.shield(reported), EXIT_REPORT_WAIT if self.alive else 0.01)
            except (TimeoutError, ZygoteError):
                code = None
            done(code)

        def on_pidfd() -> None:  # the child ended; its code should follow from the zygote
            loop.remove_reader(pidfd)
            if not result.done():
                asyncio.ensure_future(late_report())

        reported.add_done_callback(on_report)
        if pidfd >= 0:
            loop.add_reader(pidfd, on_pidfd)
        result.add_done_callback(lambda _: self._exits.pop(pid, None))
        return result

    @property
    def busy(self) -> bool:
        """Whether a child of this zygote still runs."""
        return bool(self._exits)

    def signal_child(self, pid: int, sig: int) -> None:
        """Signal a child's process group (it called setsid) and, through a pidfd, the child itself."""
        if not self.host_pids:
            if self.alive and self._sock is not None:
                with contextlib.suppress(OSError):
                    self._sock.send(HEADER.pack(0) + json.dumps({"signal": int(sig), "pid": pid}).encode())
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)
        fd = self._pidfds.get(pid)
        if fd is not None:
            with contextlib.suppress(OSError):
                signal.pidfd_send_signal(fd, sig)

    async def close(self) -> None:
        self._lost("shut down")
        proc = self.proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 5.0)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()


def announced(read_fd: int) -> asyncio.Future[bool]:
    """Read the child's readiness pipe (``Zygote.fork``'s ``ready_fd``; this function owns ``read_fd``):
    ``True`` once it announced that it listens, ``False`` if it closed the pipe without (or the future was
    cancelled: the pipe is closed then too)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[bool] = loop.create_future()
    os.set_blocking(read_fd, False)

    def finish(value: bool) -> None:
        loop.remove_reader(read_fd)
        os.close(read_fd)
        if not future.done():
            future.set_result(value)

    def readable() -> None:
        try:
            data = os.read(read_fd, 1)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        finish(bool(data))

    def cancelled(f: asyncio.Future[bool]) -> None:
        if f.cancelled():
            finish(False)

    loop.add_reader(read_fd, readable)
    future.add_done_callback(cancelled)
    return future


__all__ = ["ZYGOTE_SCRIPT", "Zygote", "ZygoteError", "announced"]
