"""Follow a build from the command line: its log lines and its stage, until the Space settles.

In a terminal a spinner shows the current stage and the last log line, with the log printed above it;
elsewhere (a pipe, CI) each log line and each stage change is one plain line. The log comes from the
server-sent events of ``/api/spaces/ID/logs/build`` (read on a thread), the stage from polling
``/api/spaces/ID/runtime``.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
from rich.console import Console
from rich.text import Text

from .lifecycle.stages import ERRORS, SETTLED

ERROR_STAGES = frozenset(s.value for s in ERRORS)
SETTLED_STAGES = frozenset(s.value for s in SETTLED)


def sse_lines(resp: httpx.Response) -> Iterator[tuple[str, str]]:
    """(timestamp, line) of each ``data:`` event of an open SSE response."""
    for raw in resp.iter_lines():
        if raw.startswith("data: "):
            event = json.loads(raw[6:])
            yield str(event.get("timestamp", "")), str(event.get("data", ""))


def log_line(timestamp: str, line: str) -> Text:
    """A log line with a dim timestamp (Rich ``Text``: the line itself is never parsed as markup)."""
    return Text.assemble((timestamp, "dim"), " ", line)


class BuildFollower:
    """Waits for ``space_id`` to settle at revision ``sha`` (any revision when None), printing progress.

    ``runtime`` returns the runtime JSON; ``open_log`` opens the build log stream (or None to skip it).
    Returns the final runtime JSON, or raises TimeoutError after ``timeout`` seconds.
    """

    def __init__(
        self,
        console: Console,
        runtime: Callable[[], dict[str, Any]],
        open_log: Callable[[], Any] | None,
        sha: str | None = None,
        timeout: float = 1800.0,
        poll: float = 0.5,
    ) -> None:
        self.console = console
        self.runtime = runtime
        self.open_log = open_log
        self.sha = sha
        self.timeout = timeout
        self.poll = poll
        self.lines: queue.Queue[tuple[str, str] | None] = queue.Queue()

    def _read_log(self) -> None:
        try:
            assert self.open_log is not None
            with self.open_log() as resp:
                if resp.status_code == 200:
                    for item in sse_lines(resp):
                        self.lines.put(item)
        except httpx.HTTPError:
            pass
        finally:
            self.lines.put(None)

    def settled(self, rt: dict[str, Any]) -> bool:
        return rt.get("stage") in SETTLED_STAGES and (self.sha is None or rt.get("sha") == self.sha)

    def run(self) -> dict[str, Any]:
        reader: threading.Thread | None = None
        if self.open_log is not None:
            reader = threading.Thread(target=self._read_log, daemon=True)
            reader.start()
        deadline = time.monotonic() + self.timeout
        last_stage: str | None = None
        last_line = ""
        log_open = reader is not None
        status = self.console.status("waiting for the build") if self.console.is_terminal else None
        if status is not None:
            status.start()
        try:
            while True:
                while True:
                    try:
                        item = self.lines.get_nowait()
                    except queue.Empty:
                        break
                    if item is None:
                        log_open = False
                        continue
                    self.console.print(log_line(*item), highlight=False, soft_wrap=True)
                    last_line = item[1]
                rt = self.runtime()
                stage = str(rt.get("stage"))
                if stage != last_stage:
                    last_stage = stage
                    if status is None:
                        self.console.print(f"stage: {stage}", highlight=False, markup=False)
                if status is not None:
                    status.update(Text.assemble((stage, "bold"), "  ", (last_line[-80:], "dim")))
                if self.settled(rt):
                    if log_open and reader is not None:
                        reader.join(timeout=2.0)  # the last lines of a finished build are on their way
                        log_open = reader.is_alive()
                        if not log_open:
                            continue  # print what arrived, then settle
                    return rt
                if time.monotonic() > deadline:
                    raise TimeoutError(f"still {stage} after {self.timeout:.0f}s")
                time.sleep(self.poll)
        finally:
            if status is not None:
                status.stop()
