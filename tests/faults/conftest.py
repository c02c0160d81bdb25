"""Fault fixtures: a real ``spaceyard up`` per test, on its own data directory, restartable on it.

``faulty`` starts a server whose worker builds with :class:`tests.faults.pausing.PausingEngine` (a slow
child process, then the real local engine reusing the shared Gradio environment). ``procs_of`` lists
every live process that belongs to a data directory (the server, its worker, apps, build children),
by command line, environment or working directory, so a test can assert that nothing was left behind.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, free_port
from tests.support import Server, start_server


def procs_of(data_dir: Path) -> dict[int, str]:
    """Live processes that belong to ``data_dir``: pid -> command line."""
    needle = str(data_dir.resolve()).encode()
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            environ = (entry / "environ").read_bytes()
            cwd = os.readlink(entry / "cwd").encode()
            status = (entry / "status").read_text()
        except OSError:
            continue
        if "State:\tZ" in status:
            continue
        if needle in cmdline or needle in environ or cwd.startswith(needle):
            found[int(entry.name)] = cmdline.replace(b"\0", b" ").decode(errors="replace").strip()
    return found


def wait_gone(data_dir: Path, timeout: float = 20) -> dict[int, str]:
    deadline = time.monotonic() + timeout
    left = procs_of(data_dir)
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = procs_of(data_dir)
    return left


def worker_pids(data_dir: Path) -> list[int]:
    return [pid for pid, cmd in procs_of(data_dir).items() if "spaceyard_builder.worker" in cmd and "celery" in cmd]


def wait_for(predicate: Callable[[], object], timeout: float = 60, what: str = "condition") -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


class Faulty:
    """Start, kill and restart a server on one data directory; at the end nothing may be left running."""

    def __init__(self, tmp: Path, env_dir: Path, extra: dict[str, str]) -> None:
        self.data = tmp / "data"
        self.markers = tmp / "markers.txt"
        self.port = free_port()
        self.env_dir = env_dir
        self.extra = {
            "SPACEYARD_ENGINE_FACTORY": "tests.faults.pausing:PausingEngine",
            "SPACEYARD_TEST_MARKERS": str(self.markers),
            "SPACEYARD_TEST_BUILD_SECONDS": "4",
            # The pausing step is the worker's own python with a marker file on the host, and the tests follow
            # its pid from outside: without the build walls (which have their own tests, tests/security),
            # so pids and paths are the host's. Apps still run in their sandbox.
            "SPACEYARD_BUILD_SANDBOX": "none",
            "PYTHONPATH": str(ROOT),
            **extra,
        }
        self.server: Server | None = None

    def start(self, **more: str) -> Server:
        self.extra.update(more)
        self.server = start_server(self.data, self.port, self.env_dir, self.extra)
        return self.server

    def kill(self, sig: int = signal.SIGKILL) -> None:
        assert self.server is not None
        self.server.proc.send_signal(sig)
        self.server.proc.wait(timeout=60)

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()


@pytest.fixture
def faulty(tmp_path: Path, shared_env_dir: Path) -> Iterator[Callable[..., Faulty]]:
    made: list[Faulty] = []

    def make(**extra: str) -> Faulty:
        f = Faulty(tmp_path, shared_env_dir, extra)
        made.append(f)
        return f

    yield make
    for f in made:
        f.stop()
        left = wait_gone(f.data)
        for pid in left:
            with __import__("contextlib").suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        assert not left, f"processes left running after the server stopped: {left}"
