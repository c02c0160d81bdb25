"""An app's output, as every runtime hands it on: bytes split into lines, the last lines kept for errors.

:class:`LineSplitter` turns a byte stream (a pipe, ``docker logs``) into lines without their newline
(UTF-8, undecodable bytes replaced, a trailing ``\\r`` dropped). :class:`AppOutput` is the part of a
started app that receives them: each line goes to the ``log`` sink given to ``start`` and into a bounded
tail that :class:`~spaceyard_runtime.errors.AppCrashed` carries. :func:`startup_banner` is the first line
of every start, as on the Hub.
"""

from __future__ import annotations

import codecs
import contextlib
import time
from collections import deque
from dataclasses import dataclass, field

from .api import LogSink

LOG_TAIL_LINES = 40
"""How many of the last output lines an :class:`~spaceyard_runtime.errors.AppCrashed` carries."""


def startup_banner(now: float | None = None) -> str:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(time.time() if now is None else now))
    return f"===== Application Startup at {stamp} ====="


class LineSplitter:
    """Incremental bytes -> complete lines."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = ""

    def feed(self, data: bytes) -> list[str]:
        """The lines completed by ``data``."""
        self._pending += self._decoder.decode(data)
        *lines, self._pending = self._pending.split("\n")
        return [line.removesuffix("\r") for line in lines]

    def finish(self) -> list[str]:
        """The stream ended: the unterminated last line, if any."""
        rest = self._pending + self._decoder.decode(b"", final=True)
        self._pending = ""
        return [rest.removesuffix("\r")] if rest else []


@dataclass(kw_only=True)
class AppOutput:
    """Where a started app's lines go: its ``log`` sink and its last lines."""

    log: LogSink
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=LOG_TAIL_LINES))

    def emit(self, line: str) -> None:
        self.tail.append(line)
        with contextlib.suppress(Exception):  # a broken sink must not stop the app's output pump
            self.log(line)

    def tail_text(self) -> str:
        return "\n".join(self.tail)
