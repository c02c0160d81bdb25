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
import shutil
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .settings import BuilderSettings


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

    def append_many(self, key: str, lines: list[str]) -> None:
        """Append lines in order; stores override it to write a batch at once."""
        for line in lines:
            self.append(key, line)

    @abc.abstractmethod
    def close(self, key: str) -> None: ...

    @abc.abstractmethod
    def is_closed(self, key: str) -> bool: ...

    @abc.abstractmethod
    def read(self, key: str, after: str | None = None, limit: int | None = None) -> list[LogEntry]: ...

    @abc.abstractmethod
    def delete(self, key: str) -> None: ...

    @abc.abstractmethod
    def delete_under(self, folder: str) -> None:
        """Delete every log whose key starts with ``folder/`` (a deleted Space's run logs)."""

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
    """One JSON-lines file per key under ``root``; entry id = line number. Safe across processes.

    A key's file holds at most about ``max_bytes``: past half of it, the file becomes the key's one
    older segment (``NAME.old.jsonl``, the previous older one is dropped) and a new one starts, its first
    id written beside it (``NAME.base``), so ids stay stable and increasing. ``follow`` reads on from a
    byte offset (one ``stat`` per poll while nothing is written), never the whole file again, and
    ``tail`` reads from the end.
    """

    def __init__(self, root: Path, max_bytes: int = 16 * 1024 * 1024) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._dirs: set[Path] = set()

    @classmethod
    def from_settings(cls, settings: BuilderSettings) -> FileLogStore:
        return cls(settings.data_dir / "logs", max_bytes=settings.log_max_bytes)

    def _path(self, key: str) -> Path:
        parts = [_SAFE_KEY.sub("_", p) for p in key.split("/") if p not in ("", ".", "..")]
        return self.root.joinpath(*parts).with_suffix(".jsonl")

    @staticmethod
    def _sibling(path: Path, suffix: str) -> Path:
        return path.parent / (path.stem + suffix)

    @staticmethod
    def _base(base_file: Path) -> int:
        try:
            return int(base_file.read_text() or 0)
        except (OSError, ValueError):
            return 0

    def append(self, key: str, line: str) -> None:
        self.append_many(key, [line])

    def append_many(self, key: str, lines: list[str]) -> None:
        if not lines:
            return
        path = self._path(key)
        stamp = utc_timestamp()
        data = "".join(
            json.dumps({"data": line, "timestamp": stamp}, ensure_ascii=False) + "\n" for line in lines
        ).encode()
        with self._lock:
            if path.parent not in self._dirs:
                path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                self._dirs.add(path.parent)
            path.with_suffix(".closed").unlink(missing_ok=True)
            # O_APPEND writes are atomic with respect to other appenders (one batch, one write)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                os.write(fd, data)
                size = os.fstat(fd).st_size
            finally:
                os.close(fd)
            if self.max_bytes > 0 and size > self.max_bytes // 2:
                self._rotate(path)

    def _rotate(self, path: Path) -> None:
        base_file = self._sibling(path, ".base")
        base = self._base(base_file)
        with path.open("rb") as f:
            count = sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
        old = self._sibling(path, ".old.jsonl")
        os.replace(path, old)
        self._sibling(path, ".old.base").write_text(str(base))
        base_file.write_text(str(base + count))

    def close(self, key: str) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.with_suffix(".closed").touch()

    def is_closed(self, key: str) -> bool:
        return self._path(key).with_suffix(".closed").exists()

    def _segments(self, path: Path) -> list[tuple[Path, int]]:
        out = []
        old = self._sibling(path, ".old.jsonl")
        if old.exists():
            out.append((old, self._base(self._sibling(path, ".old.base"))))
        out.append((path, self._base(self._sibling(path, ".base"))))
        return out

    @staticmethod
    def _read_from(
        path: Path, offset: int, first: int, start: int, out: list[LogEntry], limit: int | None
    ) -> tuple[int, int]:
        """Append the entries of ``path`` from byte ``offset`` (whose line has id ``first``) with id >=
        ``start`` to ``out``; returns (byte offset, id) just after the last complete line read."""
        try:
            f = path.open("rb")
        except FileNotFoundError:
            return offset, first
        i = first
        with f:
            f.seek(offset)
            for raw in f:
                if not raw.endswith(b"\n"):
                    break  # a record still being written
                offset += len(raw)
                if i >= start:
                    rec = json.loads(raw)
                    out.append(LogEntry(id=str(i), data=rec["data"], timestamp=rec["timestamp"]))
                i += 1
                if limit is not None and len(out) >= limit:
                    break
        return offset, i

    def _catch_up(self, path: Path, start: int, limit: int | None = None) -> tuple[list[LogEntry], int, int]:
        """Entries with id >= ``start`` across segments; and (offset, id) reached in the current one."""
        out: list[LogEntry] = []
        segments = self._segments(path)
        offset, next_id = 0, segments[-1][1]
        for n, (seg, base) in enumerate(segments):
            current = n == len(segments) - 1
            if not current and start >= segments[n + 1][1]:
                continue  # everything wanted is in a later segment
            reached = self._read_from(seg, 0, base, start, out, limit)
            if current:
                offset, next_id = reached
            if limit is not None and len(out) >= limit:
                break
        return out, offset, next_id

    def read(self, key: str, after: str | None = None, limit: int | None = None) -> list[LogEntry]:
        start = int(after) + 1 if after is not None else 0
        return self._catch_up(self._path(key), start, limit)[0]

    def tail(self, key: str, lines: int) -> list[LogEntry]:
        """The last ``lines`` entries of the current segment, read from the end of the file."""
        if lines <= 0:
            return []
        path = self._path(key)
        base = self._base(self._sibling(path, ".base"))
        try:
            with path.open("rb") as f:
                pos = f.seek(0, os.SEEK_END)
                data = b""
                while pos > 0 and data.count(b"\n") <= lines:
                    step = min(1 << 16, pos)
                    pos -= step
                    f.seek(pos)
                    data = f.read(step) + data
                first = base
                if pos > 0:  # ids need the lines before the block: count them (no JSON parsing)
                    f.seek(0)
                    before = 0
                    left = pos
                    while left > 0:
                        chunk = f.read(min(1 << 20, left))
                        before += chunk.count(b"\n")
                        left -= len(chunk)
                    cut = data.index(b"\n") + 1  # a partial (or one spare) line at the block's start
                    data, first = data[cut:], base + before + 1
        except FileNotFoundError:
            return []
        raws = data.split(b"\n")[:-1]  # the last piece is empty, or a record still being written
        entries = []
        for i, raw in enumerate(raws[-lines:], start=first + max(0, len(raws) - lines)):
            rec = json.loads(raw)
            entries.append(LogEntry(id=str(i), data=rec["data"], timestamp=rec["timestamp"]))
        return entries

    async def follow(
        self, key: str, after: str | None = None, heartbeat: float = 15.0
    ) -> AsyncIterator[LogEntry | None]:
        """Catch up with a read, then read on from the byte offset reached: while nothing is written, a
        poll costs one ``stat`` (the file is never scanned again; after a rotation, once)."""
        path = self._path(key)
        start = int(after) + 1 if after is not None else 0
        last_yield = time.monotonic()
        inode: int | None = None
        offset = next_id = 0
        while True:
            closed = self.is_closed(key)
            try:
                st: os.stat_result | None = os.stat(path)
            except FileNotFoundError:
                st = None
            entries: list[LogEntry] = []
            if st is not None and st.st_ino != inode:  # first look, or the file rotated
                entries, offset, next_id = await asyncio.to_thread(self._catch_up, path, start)
                inode = st.st_ino
            elif st is not None and st.st_size > offset:
                offset, next_id = await asyncio.to_thread(self._read_from, path, offset, next_id, start, entries, None)
            for entry in entries:
                start = int(entry.id) + 1
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

    def delete_under(self, folder: str) -> None:
        parts = [_SAFE_KEY.sub("_", p) for p in folder.split("/") if p not in ("", ".", "..")]
        if parts:
            shutil.rmtree(self.root.joinpath(*parts), ignore_errors=True)

    def delete(self, key: str) -> None:
        path = self._path(key)
        for p in (
            path,
            path.with_suffix(".closed"),
            self._sibling(path, ".base"),
            self._sibling(path, ".old.jsonl"),
            self._sibling(path, ".old.base"),
        ):
            p.unlink(missing_ok=True)
