"""The embedded build worker of ``spaceyard up``: one Celery worker process, supervised.

* **Dies with the platform.** The worker is started with ``PR_SET_PDEATHSIG`` (SIGKILL), so even a
  ``kill -9`` of the control plane takes it down, and its pid is kept in ``DATA_DIR/worker.pid``: a
  platform starting on the same data directory first ends a worker a previous run left behind (a
  platform started some other way), so there is never a second copy taking jobs.
* **Restarted when it dies.** A monitor task notices the exit, calls ``on_death`` (the deployer re-queues
  the builds the dead worker held: the embedded broker never re-delivers them) and starts a new one,
  1, 2, 4 ... at most 30 s apart while it keeps dying at once.
* **Stopped gently.** ``stop`` sends SIGTERM to the worker process only, not its process group: the
  installer it runs keeps going, and Celery's warm shutdown lets the build finish for ``grace`` seconds.
  After that the whole group is killed; the build is not failed, it is started again by the next
  platform (its message was never acknowledged, and the deployer re-queues it at start).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from pydantic_settings import BaseSettings

from spaceyard_builder.lifeline import die_with_parent

from .private import private_file
from .settings import Settings

log = logging.getLogger("spaceyard.worker")
MODULE = "spaceyard_builder.worker"


def as_environment(part: BaseSettings) -> dict[str, str | None]:
    """``part``'s fields as the variables that read them back (``None``: unset), so a child process builds
    the same settings: the platform's root hands the worker its builder part by value."""
    prefix = str(part.model_config.get("env_prefix", ""))
    out: dict[str, str | None] = {}
    for name in type(part).model_fields:
        value = getattr(part, name)
        key = f"{prefix}{name}".upper()
        if value is None:
            out[key] = None
        elif isinstance(value, str | Path):
            out[key] = str(value)
        else:  # numbers, booleans, lists and dicts: JSON, as pydantic-settings parses them
            out[key] = json.dumps(value)
    return out


def worker_env(settings: Settings) -> dict[str, str]:
    """The worker's environment: this process's, with the builder part of ``settings`` written over it."""
    env = dict(os.environ)
    for key, value in as_environment(settings.builder()).items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    env["SPACEYARD_DATA_DIR"] = str(settings.data_dir.resolve())
    return env


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def end_leftover(pidfile: Path) -> int | None:
    """Kill the worker (and its process group) a previous platform left running; returns its pid."""
    try:
        pid = int(pidfile.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    if MODULE not in _cmdline(pid):
        return None  # gone, or the pid was reused by something else
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while MODULE in _cmdline(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return pid


def forget_delivered(settings: Settings) -> None:
    """Drop the embedded broker's delivered messages: kombu's SQL transport keeps them forever (acked or
    not), and with no worker running none of them is in flight (the deployer re-submits unfinished builds)."""
    if settings.redis_url:
        return
    broker = settings.data_dir / "queue" / "broker.db"
    if not broker.exists():
        return
    with contextlib.suppress(sqlite3.Error), contextlib.closing(sqlite3.connect(broker, timeout=30)) as conn:
        conn.execute("DELETE FROM kombu_message WHERE visible = 0")
        conn.commit()


class EmbeddedWorker:
    def __init__(self, settings: Settings, grace: float = 10.0) -> None:
        self.settings = settings
        self.grace = grace
        self.pidfile = settings.data_dir / "worker.pid"
        self.proc: subprocess.Popen[bytes] | None = None
        self.on_death: Callable[[], Awaitable[None]] | None = None
        self.restarts = 0
        self._monitor: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def _spawn(self) -> subprocess.Popen[bytes]:
        logfile = open(private_file(self.settings.data_dir / "worker.log"), "ab")  # noqa: SIM115 - owned by the process
        try:
            proc = subprocess.Popen(
                [
                    sys.executable, "-m", "celery", "-A", MODULE, "worker", "--pool=solo", "--concurrency=1",
                    "--loglevel=INFO", "--without-gossip", "--without-mingle", "--without-heartbeat",
                    "-n", f"embedded-{os.getpid()}@%h",
                ],
                env=worker_env(self.settings),
                stdout=logfile,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent(),
            )  # fmt: skip
        finally:
            logfile.close()
        self.pidfile.write_text(f"{proc.pid}\n")
        return proc

    def start(self) -> None:
        """Start the worker (call from the event loop's thread: the death signal follows that thread)."""
        left = end_leftover(self.pidfile)
        if left is not None:
            log.warning("ended build worker %s left running by a previous platform", left)
        forget_delivered(self.settings)
        self.proc = self._spawn()
        self._monitor = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        backoff = 1.0
        while not self._stopping:
            proc = self.proc
            assert proc is not None
            started = time.monotonic()
            while proc.poll() is None and not self._stopping:
                await asyncio.sleep(0.2)
            if self._stopping:
                return
            log.error("the build worker (pid %s) exited with %s; restarting it", proc.pid, proc.returncode)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)  # whatever it left running (an installer)
            if time.monotonic() - started > 60:
                backoff = 1.0
            await asyncio.sleep(backoff)
            backoff = min(30.0, backoff * 2)
            if self._stopping:
                return
            self.proc = self._spawn()
            self.restarts += 1
            if self.on_death is not None:
                try:
                    await self.on_death()
                except Exception:
                    log.exception("re-queueing the dead worker's builds")

    def stop(self) -> None:
        """SIGTERM the worker alone (its running build may finish), then kill its group after ``grace``."""
        self._stopping = True
        if self._monitor is not None:
            self._monitor.cancel()
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=self.grace)
            except subprocess.TimeoutExpired:
                log.warning("the build worker did not stop in %gs; killing it (its build resumes at start)", self.grace)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
        with contextlib.suppress(OSError):
            if self.pidfile.read_text().split()[0] == str(proc.pid):
                self.pidfile.unlink()
