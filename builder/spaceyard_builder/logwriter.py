"""Writing app output off the event loop, in batches: :class:`LogWriter`.

A runtime hands every line an app prints to a sink on the platform's event loop; writing each one to
the store there (open, write, close per line) let one chatty app slow every other Space's requests.
``LogWriter.sink(key)`` returns a sink that only appends to an in-memory queue (thread-safe, O(1)); one
writer thread drains the queue every ``interval`` seconds and hands each key its lines at once
(:meth:`LogStore.append_many`: one write per batch). ``close(key)`` is queued behind the key's lines, so
a follower sees every line before the end.

Memory is bounded: past ``max_pending`` queued lines, new lines are dropped (counted), and the log says
how many when the writer catches up — an app printing faster than its log can be kept loses lines,
never the platform's memory or latency.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import threading
from collections.abc import Callable

from .logs import LogStore

log = logging.getLogger("spaceyard.logs")
_CLOSE = object()


class LogWriter:
    def __init__(self, store: LogStore, interval: float = 0.05, max_pending: int = 200_000) -> None:
        self.store = store
        self.interval = interval
        self.max_pending = max_pending
        self._queue: collections.deque[tuple[str, object]] = collections.deque()
        self._dropped: collections.Counter[str] = collections.Counter()
        self._wake = threading.Event()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="spaceyard-log-writer", daemon=True)
        self._thread.start()

    def sink(self, key: str) -> Callable[[str], None]:
        queue, dropped, limit = self._queue, self._dropped, self.max_pending

        def sink(line: str) -> None:
            if len(queue) >= limit:
                dropped[key] += 1
                return
            queue.append((key, line))

        return sink

    def close(self, key: str) -> None:
        self._queue.append((key, _CLOSE))
        self._wake.set()

    def flush(self) -> None:
        """Write everything queued so far (from any thread; blocks until done)."""
        self._drain()

    def stop(self) -> None:
        self._stopped = True
        self._wake.set()
        self._thread.join(timeout=10)
        self._drain()

    def _run(self) -> None:
        while not self._stopped:
            self._wake.wait(self.interval)
            self._wake.clear()
            try:
                self._drain()
            except Exception:
                log.exception("writing app logs")

    _drain_lock = threading.Lock()

    def _drain(self) -> None:
        with self._drain_lock:
            batch: dict[str, list[str]] = {}
            queue = self._queue
            for _ in range(len(queue)):
                key, item = queue.popleft()
                if item is _CLOSE:
                    self._write(key, batch.pop(key, []))
                    with contextlib.suppress(Exception):
                        self.store.close(key)
                    continue
                assert isinstance(item, str)
                batch.setdefault(key, []).append(item)
            for key, lines in batch.items():
                self._write(key, lines)

    def _write(self, key: str, lines: list[str]) -> None:
        dropped = self._dropped.pop(key, 0)
        if dropped:
            lines = [*lines, f"[{dropped} lines dropped: the app writes faster than its log can be kept]"]
        if lines:
            try:
                self.store.append_many(key, lines)
            except Exception:
                log.exception("writing %d lines to %s", len(lines), key)
