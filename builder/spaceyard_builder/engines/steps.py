"""One build step run inside the walls: its output streamed to the build log, its failure a ``BuildFailed``.

Shared by the engines whose steps run installers (``local``, ``oci``): :func:`run_step` starts the
already-walled argv with a clean environment, sends every line to the log with host paths replaced
by public names (the build log and ``BUILD_ERROR`` are public for a public Space), kills the step at
the build's deadline, and raises ``BuildFailed`` with the step's last lines when it fails.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

from .. import cancel
from ..api import BuildLog
from ..errors import BuildFailed
from ..lifeline import die_with_parent
from ..walls import public_text

TAIL_LINES = 15


def shown(args: list[str]) -> str:
    """How a step is announced: the program's name and its arguments."""
    return " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(args)).removeprefix("uv ")


def run_step(
    argv: list[str],
    *,
    announce: str,
    what: str,
    log: BuildLog,
    env: dict[str, str],
    cwd: Path,
    deadline: float,
    timeout_setting: float,
    public: dict[str, str] | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> None:
    """Run ``argv`` (already wrapped by the walls); see the module docstring. ``cancelled``: polled while
    the step runs; once true (the Space was deleted) the step is killed and the build ends."""
    public = public or {}
    log(public_text(f"--> RUN {announce}", public))
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
        cwd=cwd,
        text=True,
        bufsize=1,
        errors="replace",
        preexec_fn=die_with_parent(),  # installers die with the worker
    )
    expired = threading.Event()

    def expire() -> None:
        expired.set()
        proc.kill()

    timer = threading.Timer(max(0.0, deadline - time.monotonic()), expire)
    timer.daemon = True
    timer.start()
    stopped = cancel.kill_when_cancelled(proc, cancelled) if cancelled is not None else threading.Event()
    tail: list[str] = []
    assert proc.stdout is not None
    try:
        for raw in proc.stdout:
            line = public_text(raw.rstrip("\n"), public)
            log(line)
            tail = (tail + [line])[-TAIL_LINES:]
        rc = proc.wait()
    finally:
        timer.cancel()
    if stopped.is_set():
        raise BuildFailed(f"{what}: {cancel.REASON}")
    if expired.is_set():
        raise BuildFailed(
            f"{what} did not finish within the build deadline ({timeout_setting:g} s, SPACEYARD_BUILD_TIMEOUT)"
        )
    if rc != 0:
        detail = "\n".join(t for t in tail if t.strip())
        raise BuildFailed(f"{what} failed (exit {rc}):\n{detail}")
