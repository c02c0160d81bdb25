"""Local app processes: spawn (cold, or forked by a warm parent), output pumps, exit, stop, status.

:class:`Processes` is the one owner of the apps a :class:`~spaceyard_runtime.local.LocalRuntime` started:
it spawns them inside their box, reads their pipes line by line into the ``log`` sink, notices their
exit (and whether the kernel killed them for their memory limit), stops them (``SIGTERM``, then
``SIGKILL`` to the whole group after ``grace``) and remembers the exit code of the last 1000 stopped
ones for :meth:`Processes.status`. :func:`end_left_over` ends an app that a previous platform process
left running.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from ..api import AppState, AppStatus, LogSink
from ..errors import AppCrashed, AppStartError
from ..output import AppOutput, LineSplitter
from ..sandbox import Box, Sandbox
from ..zygote_client import Zygote, announced
from .launch import LaunchPlan

DRAIN_TIMEOUT = 2.0
"""Seconds to wait for the last output after the process exited (a grandchild may hold the pipe)."""
FINISHED_KEPT = 1000
"""How many stopped apps' exit codes :meth:`Processes.status` still knows."""


@dataclass(kw_only=True)
class LocalApp(AppOutput):
    """One started app, however it was started."""

    backend_id: str
    pid: int
    mode: str
    exited: asyncio.Future[int | None]
    """Exit code (negative: killed by that signal); ``None`` when nobody could tell."""
    readers: list[asyncio.Task[None]] = field(default_factory=list)
    ready: bool = False
    stop_task: asyncio.Task[None] | None = None
    kill: Callable[[int], None] | None = None
    """Send a signal to the app's whole process group."""
    box: Box | None = None
    """The sandbox the app runs in (a warm parent's, for a forked app)."""
    oom_base: int = 0
    oom: bool = False
    """The kernel killed a process of the app for its memory limit."""
    announced: asyncio.Future[bool] | None = None
    """A forked app's own word that it listens (``True``), or that it cannot say (``False``): readiness
    without probing (:func:`spaceyard_runtime.zygote_client.announced`). ``None``: probe."""


async def pump(fd: int, app: AppOutput) -> None:
    """Read ``fd`` to EOF, handing complete lines (without newline) to the app's log."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=2**20)
    pipe = os.fdopen(fd, "rb", buffering=0)
    transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), pipe)
    lines = LineSplitter()
    try:
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                break
            for line in lines.feed(chunk):
                app.emit(line)
        for line in lines.finish():
            app.emit(line)
    finally:
        transport.close()


def process_exists(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def is_left_over_app(pid: int, port: int) -> bool:
    """Whether ``pid`` is still an app this runtime started on ``port`` (not a reused pid)."""
    try:
        if os.getsid(pid) != pid:
            return False
        with open(f"/proc/{pid}/environ", "rb") as f:
            items = f.read().split(b"\0")
    except (OSError, ProcessLookupError):
        return False
    env = dict(item.split(b"=", 1) for item in items if b"=" in item)
    return env.get(b"SYSTEM") == b"spaces" and env.get(b"PORT") == str(port).encode()


def killpg(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


async def end_left_over(pid: object, port: object, grace: float) -> None:
    """Stop the app a previous platform process left running as ``pid`` on ``port``, if it still is one."""
    if isinstance(pid, int) and isinstance(port, int) and is_left_over_app(pid, port):
        killpg(pid, signal.SIGTERM)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while process_exists(pid) and loop.time() < deadline:
            await asyncio.sleep(0.05)
        killpg(pid, signal.SIGKILL)


class Processes:
    """The apps one runtime started, by backend id."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.apps: dict[str, LocalApp] = {}
        self._finished: OrderedDict[str, int | None] = OrderedDict()
        self._seq = 0

    def _new_id(self, pid: int) -> str:
        self._seq += 1
        return f"local-{pid}-{self._seq}"

    def add(self, app: LocalApp) -> None:
        self.apps[app.backend_id] = app

    def get(self, backend_id: str) -> LocalApp | None:
        return self.apps.get(backend_id)

    # ------------------------------------------------------------------ spawn

    @staticmethod
    def _attach_pipes(app: LocalApp, fds: list[int]) -> None:
        app.readers = [asyncio.ensure_future(pump(fd, app)) for fd in fds]

    async def spawn_cold(self, box: Box, plan: LaunchPlan, log: LogSink) -> LocalApp:
        """Run ``plan.argv`` in ``box`` (which it then owns: destroyed when the app ends)."""
        argv, pass_fds = self.sandbox.command(box, plan.argv, plan.cwd)
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                cwd=plan.cwd,
                env=plan.env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out_w,
                stderr=err_w,
                start_new_session=True,
                close_fds=True,
                pass_fds=pass_fds,
            )
        except OSError as exc:
            for fd in (out_r, err_r):
                os.close(fd)
            await self.sandbox.destroy(box)
            raise AppStartError(f"could not start the app: {exc}") from exc
        finally:
            for fd in (out_w, err_w, *pass_fds):
                os.close(fd)
        loop = asyncio.get_running_loop()
        app = LocalApp(
            backend_id=self._new_id(proc.pid), pid=proc.pid, mode="cold", log=log, exited=loop.create_future(), box=box
        )
        app.oom_base = box.oom_base

        def kill(sig: int) -> None:
            self.sandbox.signal(box, sig)

        app.kill = kill
        self._attach_pipes(app, [out_r, err_r])
        try:
            await self.sandbox.started(box, proc.pid)
        except AppStartError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            await self.drain(app)
            await self.sandbox.destroy(box)
            raise AppStartError("the app's sandbox did not come up: " + " / ".join(list(app.tail)[-3:])) from None

        async def reap() -> None:
            code = await proc.wait()
            self.oom_check(app)
            await self.sandbox.destroy(box)  # anything the app left behind goes with it
            if not app.exited.done():
                app.exited.set_result(code)

        app.readers.append(asyncio.ensure_future(reap()))
        return app

    async def spawn_fork(
        self,
        zygote: Zygote,
        box: Box | None,
        plan: LaunchPlan,
        log: LogSink,
        *,
        quiet_queue: bool,
        on_exit: Callable[[], None],
    ) -> LocalApp:
        """Fork the app from ``zygote`` (running in ``box``); ``on_exit`` runs after it ended and what it
        left in the box was killed."""
        oom_base = self.sandbox.oom_kills(box) if box is not None else 0
        preloaded = ", ".join(m for m in zygote.preload if not m.startswith("?"))
        log(f"Fork: from the warm parent (pid {zygote.pid}, {preloaded} already imported)")
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        ready_r, ready_w = os.pipe()
        request = {
            "argv": plan.app_argv,
            "orig_argv": plan.argv,
            "cwd": plan.cwd,
            "env": self.sandbox.exec_env(plan.env, plan.cwd),  # what a cold start in the box would get
            "app_path": plan.app_path,
            "quiet_queue": quiet_queue,
        }
        try:
            pid, exited = await zygote.fork(request, out_w, err_w, ready_w)
        except BaseException:
            os.close(out_r)
            os.close(err_r)
            os.close(ready_r)
            raise
        finally:
            os.close(out_w)
            os.close(err_w)
            os.close(ready_w)
        app = LocalApp(backend_id=self._new_id(pid), pid=pid, mode="fork", log=log, exited=exited, box=box)
        app.announced = announced(ready_r)
        app.oom_base = oom_base
        app.kill = lambda sig: zygote.signal_child(pid, sig)

        def ended(_: asyncio.Future[int | None]) -> None:
            self.oom_check(app)
            if box is not None and not box.destroyed:  # what the app left (setsid children...) goes with it
                self.sandbox.signal(box, signal.SIGKILL, keep=(2,))
            on_exit()

        exited.add_done_callback(ended)
        for line in zygote.preload_output:  # a cold start would have printed these while importing
            app.emit(line)
        self._attach_pipes(app, [out_r, err_r])
        return app

    # ------------------------------------------------------------------ exit

    def oom_check(self, app: LocalApp) -> None:
        if app.box is not None and not app.oom and self.sandbox.oom_kills(app.box) > app.oom_base:
            app.oom = True

    async def drain(self, app: LocalApp) -> None:
        if app.readers:
            _, pending = await asyncio.wait(app.readers, timeout=DRAIN_TIMEOUT)
            for task in pending:
                task.cancel()

    def exit_reason(self, app: LocalApp, code: int | None) -> str:
        self.oom_check(app)
        if app.oom and app.box is not None:
            return f"the app ran {app.box.spec.limits.oom_message()}"
        return f"exited with code {code}" if code is not None else "exited (exit code unknown)"

    async def crashed(self, app: LocalApp, when: str) -> AppCrashed:
        """The error of an app that exited: reason, exit code and its last lines."""
        await self.drain(app)
        code = app.exited.result()
        reason = self.exit_reason(app, code)
        message = reason if app.oom else f"the app {reason} {when}"
        return AppCrashed(message, exit_code=code, log_tail=app.tail_text())

    def finished_code(self, backend_id: str) -> int | None:
        return self._finished.get(backend_id)

    def status(self, backend_id: str) -> AppStatus:
        app = self.apps.get(backend_id)
        if app is None:
            code = self._finished.get(backend_id)
            return AppStatus(AppState.EXITED, exit_code=code, message="stopped" if code is not None else "unknown")
        if app.exited.done():
            code = app.exited.result()
            return AppStatus(AppState.EXITED, exit_code=code, message=self.exit_reason(app, code))
        return AppStatus(AppState.RUNNING if app.ready else AppState.STARTING)

    # ------------------------------------------------------------------ stop

    def stopping(self, app: LocalApp, grace: float) -> asyncio.Task[None]:
        """The one task that stops ``app`` (started by the first caller)."""
        if app.stop_task is None:
            app.stop_task = asyncio.ensure_future(self._stop(app, grace))
        return app.stop_task

    async def _stop(self, app: LocalApp, grace: float) -> None:
        assert app.kill is not None
        if not app.exited.done():
            app.kill(signal.SIGTERM)
            try:
                await asyncio.wait_for(asyncio.shield(app.exited), grace)
            except TimeoutError:
                app.kill(signal.SIGKILL)
                await app.exited
        app.kill(signal.SIGKILL)  # whatever the app left behind in its group
        await self.drain(app)
        self.apps.pop(app.backend_id, None)
        self._finished[app.backend_id] = app.exited.result()
        while len(self._finished) > FINISHED_KEPT:
            self._finished.popitem(last=False)
