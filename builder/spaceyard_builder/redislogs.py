"""Redis log store: one Redis Stream per log, followed with blocking ``XREAD`` (no polling).

Keys, for a log key ``K`` and the prefix ``P`` (``BuilderSettings.redis_log_prefix``):

* ``P s:K``: the live stream. Each line is an entry ``{data, ts}`` added with ``XADD ... MAXLEN ~ N``
  (``redis_log_maxlen``), so an endless run log stays bounded. The entry id is the Redis stream id
  (``<ms>-<seq>``): strictly increasing, stable, usable to resume (SSE ``Last-Event-ID``).
* ``P a:K``: the archive, a plain list of JSON records ``{id, data, ts}``. :meth:`RedisLogStore.close`
  moves every live entry into it and trims the stream to nothing, atomically (one Lua script), then
  adds a *closed marker* entry to the stream. A finished build log is therefore kept in full (until
  :meth:`delete`) while the stream itself costs nothing.
* ``P c:K``: present while the log is closed. Appending again (a restarted build) deletes it.

Readers see the archive followed by the stream, filtered by id, so a reader resuming from any id gets
exactly the entries after it, whether they were archived meanwhile or not. :meth:`follow` reads what
exists, then blocks in ``XREAD BLOCK`` (on a ``redis.asyncio`` connection, not a thread) until a new
entry or the closed marker arrives, or ``heartbeat`` seconds pass (then it yields ``None``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any, cast

import redis
import redis.asyncio

from .logs import LogEntry, LogStore, utc_timestamp
from .settings import BuilderSettings

# Move the live entries of a stream into the archive list, empty the stream, add the closed marker and
# set the closed flag, as one atomic step (no append can slip between the copy and the trim).
_CLOSE_SCRIPT = """
local entries = redis.call('XRANGE', KEYS[1], '-', '+')
for _, entry in ipairs(entries) do
  local fields = entry[2]
  local rec = {id = entry[1]}
  local marker = false
  for i = 1, #fields, 2 do
    if fields[i] == 'closed' then marker = true end
    rec[fields[i]] = fields[i + 1]
  end
  if not marker then
    redis.call('RPUSH', KEYS[2], cjson.encode(rec))
  end
end
redis.call('XTRIM', KEYS[1], 'MAXLEN', 0)
redis.call('XADD', KEYS[1], '*', 'closed', '1')
redis.call('SET', KEYS[3], '1')
return #entries
"""


def _id_tuple(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def _text(value: Any) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)


class RedisLogStore(LogStore):
    """Log store on Redis Streams. See the module docstring for the key layout."""

    def __init__(self, url: str, prefix: str = "spaceyard:log:", maxlen: int = 100_000) -> None:
        self.url = url
        self.prefix = prefix
        self.maxlen = maxlen
        self.redis = redis.Redis.from_url(url)
        self._close_script = self.redis.register_script(_CLOSE_SCRIPT)
        self._async: dict[int, redis.asyncio.Redis] = {}

    @classmethod
    def from_settings(cls, settings: BuilderSettings) -> RedisLogStore:
        if not settings.redis_url:
            raise ValueError("RedisLogStore needs SPACEYARD_REDIS_URL")
        return cls(settings.redis_url, prefix=settings.redis_log_prefix, maxlen=settings.redis_log_maxlen)

    # ------------------------------------------------------------------ keys

    def _stream(self, key: str) -> str:
        return f"{self.prefix}s:{key}"

    def _archive(self, key: str) -> str:
        return f"{self.prefix}a:{key}"

    def _closed(self, key: str) -> str:
        return f"{self.prefix}c:{key}"

    # ------------------------------------------------------------------ writers

    def append(self, key: str, line: str) -> None:
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(self._closed(key))
        pipe.xadd(self._stream(key), {"data": line, "ts": utc_timestamp()}, maxlen=self.maxlen, approximate=True)
        pipe.execute()

    def append_many(self, key: str, lines: list[str]) -> None:
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(self._closed(key))
        stamp = utc_timestamp()
        for line in lines:
            pipe.xadd(self._stream(key), {"data": line, "ts": stamp}, maxlen=self.maxlen, approximate=True)
        pipe.execute()

    def close(self, key: str) -> None:
        self._close_script(keys=[self._stream(key), self._archive(key), self._closed(key)])

    def is_closed(self, key: str) -> bool:
        return bool(self.redis.exists(self._closed(key)))

    def delete(self, key: str) -> None:
        self.redis.delete(self._stream(key), self._archive(key), self._closed(key))

    def delete_under(self, folder: str) -> None:
        base = folder.rstrip("/") + "/"
        for kind in ("s", "a", "c"):
            pattern = f"{self.prefix}{kind}:{base}*".replace("[", "\\[")
            for name in self.redis.scan_iter(match=pattern, count=500):
                self.redis.delete(name)

    # ------------------------------------------------------------------ readers

    @staticmethod
    def _archived(raw_records: list[bytes], after: tuple[int, int] | None) -> list[LogEntry]:
        out = []
        for raw in raw_records:
            rec = json.loads(raw)
            if after is not None and _id_tuple(rec["id"]) <= after:
                continue
            out.append(LogEntry(id=rec["id"], data=rec.get("data", ""), timestamp=rec.get("ts", "")))
        return out

    @staticmethod
    def _entries(raw: list[tuple[Any, dict[Any, Any]]]) -> tuple[list[LogEntry], str | None]:
        """Stream entries -> log entries (markers dropped), and the id of the last raw entry."""
        out, last = [], None
        for entry_id, fields in raw:
            last = _text(entry_id)
            f = {_text(k): _text(v) for k, v in fields.items()}
            if "closed" in f:
                continue
            out.append(LogEntry(id=last, data=f.get("data", ""), timestamp=f.get("ts", "")))
        return out, last

    def _read(self, key: str, after: str | None, limit: int | None) -> tuple[list[LogEntry], str | None]:
        after_t = _id_tuple(after) if after is not None else None
        start = f"({after}" if after is not None else "-"
        # One MULTI: archive and stream are read at the same instant, so a concurrent close (which moves
        # entries from the stream to the archive) can neither hide nor duplicate an entry.
        pipe = self.redis.pipeline(transaction=True)
        pipe.lrange(self._archive(key), 0, -1)
        pipe.xrange(self._stream(key), min=start, max="+")
        archived_raw, stream_raw = pipe.execute()
        out = self._archived(cast(list[bytes], archived_raw), after_t)
        live, last = self._entries(cast(list[tuple[Any, dict[Any, Any]]], stream_raw))
        out += live
        if limit is not None:
            out = out[:limit]
        return out, last

    def read(self, key: str, after: str | None = None, limit: int | None = None) -> list[LogEntry]:
        return self._read(key, after, limit)[0]

    def tail(self, key: str, lines: int) -> list[LogEntry]:
        if lines <= 0:
            return []
        return self.read(key)[-lines:]

    def _aredis(self) -> redis.asyncio.Redis:
        loop_id = id(asyncio.get_running_loop())
        client = self._async.get(loop_id)
        if client is None:
            client = redis.asyncio.Redis.from_url(self.url)
            self._async[loop_id] = client
        return client

    async def follow(
        self, key: str, after: str | None = None, heartbeat: float = 15.0
    ) -> AsyncIterator[LogEntry | None]:
        """Yield entries as they arrive (``None`` as a heartbeat); return once closed and drained."""
        client = self._aredis()
        stream = self._stream(key)
        cursor = after or "0-0"  # last stream id seen, closed markers included
        block_ms = max(int(heartbeat * 1000), 1)
        while True:
            closed = bool(await client.exists(self._closed(key)))
            entries, last = await asyncio.to_thread(self._read, key, after, None)
            for entry in entries:
                after = entry.id
                yield entry
            if last is not None and _id_tuple(last) > _id_tuple(cursor):
                cursor = last
            if after is not None and _id_tuple(after) > _id_tuple(cursor):
                cursor = after
            if closed and not entries:
                return
            if entries:
                continue
            res = await client.xread({stream: cursor}, block=block_ms, count=1)
            if not res:
                yield None
