"""Log stores: where build logs and app output go, and how they are read back live.

A log is an append-only sequence of lines under an opaque *key* (``build/<build id>``,
``run/<space slug>/<deployment id>``). Writers (build workers, the platform pumping app output) call
:meth:`LogStore.append`; readers page with :meth:`LogStore.read` or follow with :meth:`LogStore.follow`,
resuming after an entry id (the SSE ``Last-Event-ID``). A writer calls :meth:`LogStore.close` when the
log is complete, which ends every follower.

Contract of every implementation:

* entry ids are strings, strictly increasing within a key, and stable (a reader may resume from any);
* ``read``/``follow`` with ``after=None`` start at the first entry still kept;
* ``follow`` yields ``None`` at least every ``heartbeat`` seconds while nothing new arrives, so the
  HTTP layer can send keep-alives, and returns once the log is closed and drained;
* appending to a closed key reopens it (a restarted build resumes the same key).

Implementations: :class:`FileLogStore` (embedded default, one JSON-lines file per key) and
:class:`RedisLogStore` (Redis Streams), chosen by ``BuilderSettings.log_store``.
"""

from __future__ import annotations

import abc
import asyncio
import json
import os
import re
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path


def utc_timestamp() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class LogEntry:
    id: str
    data: str
    timestamp: str


class LogStore(abc.ABC):
    """Base class of log stores. See the module docstring for the contract."""

    poll_interval: float = 0.1

    @abc.abstractmethod
    def append(self, key: str, line: str) -> None: ...

    @abc.abstractmethod
    def close(self, key: str) -> None: ...

    @abc.abstractmethod
    def is_closed(self, key: str) -> bool: ...

    @abc.abstractmethod
    def read(self, key: str, after: str | None = None, limit: int | None = None) -> list[LogEntry]: ...

    @abc.abstractmethod
    def delete(self, key: str) -> None: ...

    def tail(self, key: str, lines: int) -> list[LogEntry]:
        entries = self.read(key)
        return entries[-lines:] if lines > 0 else []

    async def follow(
        self, key: str, after: str | None = None, heartbeat: float = 15.0
    ) -> AsyncIterator[LogEntry | None]:
        """Yield entries as they arrive; ``None`` as a heartbeat. Polling default; override to block."""
        last_yield = time.monotonic()
        while True:
            closed = self.is_closed(key)
            entries = await asyncio.to_thread(self.read, key, after)
            for entry in entries:
                after = entry.id
                yield entry
            if entries:
                last_yield = time.monotonic()
            elif closed:
                return
            elif time.monotonic() - last_yield >= heartbeat:
                last_yield = time.monotonic()
                yield None
            if not entries:
                await asyncio.sleep(self.poll_interval)


_SAFE_KEY = re.compile(r"[^A-Za-z0-9._-]")


class FileLogStore(LogStore):
    """One JSON-lines file per key under ``root``; entry id = line number. Safe across processes."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._lock = threading.Lock()

    def _path(self, key: str) -> Path:
        parts = [_SAFE_KEY.sub("_", p) for p in key.split("/") if p not in ("", ".", "..")]
        return self.root.joinpath(*parts).with_suffix(".jsonl")

    def append(self, key: str, line: str) -> None:
        path = self._path(key)
        record = json.dumps({"data": line, "timestamp": utc_timestamp()}, ensure_ascii=False) + "\n"
        with self._lock:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            closed = path.with_suffix(".closed")
            if closed.exists():
                closed.unlink(missing_ok=True)
            # O_APPEND writes of one small record are atomic with respect to other appenders.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                os.write(fd, record.encode())
            finally:
                os.close(fd)

    def close(self, key: str) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.with_suffix(".closed").touch()

    def is_closed(self, key: str) -> bool:
        return self._path(key).with_suffix(".closed").exists()

    def read(self, key: str, after: str | None = None, limit: int | None = None) -> list[LogEntry]:
        path = self._path(key)
        start = int(after) + 1 if after is not None else 0
        out: list[LogEntry] = []
        try:
            with path.open("rb") as f:
                for i, raw in enumerate(f):
                    if i < start:
                        continue
                    if not raw.endswith(b"\n"):
                        break  # a record still being written
                    rec = json.loads(raw)
                    out.append(LogEntry(id=str(i), data=rec["data"], timestamp=rec["timestamp"]))
                    if limit is not None and len(out) >= limit:
                        break
        except FileNotFoundError:
            return []
        return out

    def delete(self, key: str) -> None:
        path = self._path(key)
        path.unlink(missing_ok=True)
        path.with_suffix(".closed").unlink(missing_ok=True)
