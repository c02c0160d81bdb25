"""The LogStore contract (spaceyard_builder.logs), checked against every implementation.

Each test runs twice: on :class:`FileLogStore` (a temporary directory) and on :class:`RedisLogStore`
(the Redis at ``SPACEYARD_TEST_REDIS_URL``, default ``redis://127.0.0.1:6379/15``, under a unique key
prefix whose keys are deleted afterwards).
"""

from __future__ import annotations

import asyncio
import os
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from spaceyard_builder.logs import FileLogStore, LogEntry, LogStore
from spaceyard_builder.logstores import create_log_store
from spaceyard_builder.redislogs import RedisLogStore
from spaceyard_builder.settings import BuilderSettings

REDIS_URL = os.environ.get("SPACEYARD_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def _id_key(entry_id: str) -> tuple[int, ...]:
    return tuple(int(p) for p in entry_id.split("-"))


@pytest.fixture(params=["file", pytest.param("redis", marks=pytest.mark.redis)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LogStore]:
    if request.param == "file":
        yield FileLogStore(tmp_path / "logs")
        return
    prefix = f"spaceyard-test:{uuid.uuid4().hex}:"
    yield RedisLogStore(REDIS_URL, prefix=prefix, maxlen=1000)
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"{prefix}*"))
    if keys:
        client.delete(*keys)


async def _collect(store: LogStore, key: str, after: str | None = None, heartbeat: float = 15.0) -> list[LogEntry]:
    out = []
    async for entry in store.follow(key, after=after, heartbeat=heartbeat):
        if entry is not None:
            out.append(entry)
    return out


def test_append_and_read_in_order(store: LogStore) -> None:
    for i in range(5):
        store.append("build/b1", f"line {i}")
    entries = store.read("build/b1")
    assert [e.data for e in entries] == [f"line {i}" for i in range(5)]
    ids = [_id_key(e.id) for e in entries]
    assert ids == sorted(ids) and len(set(ids)) == 5
    assert all(isinstance(e.id, str) and e.timestamp.endswith("Z") for e in entries)


def test_read_after_and_limit(store: LogStore) -> None:
    for i in range(6):
        store.append("k", str(i))
    entries = store.read("k")
    assert [e.data for e in store.read("k", after=entries[2].id)] == ["3", "4", "5"]
    assert [e.data for e in store.read("k", after=entries[1].id, limit=2)] == ["2", "3"]
    assert store.read("k", after=entries[-1].id) == []
    assert [e.data for e in store.tail("k", 2)] == ["4", "5"]
    assert store.tail("k", 0) == []


def test_unknown_key_is_empty_and_open(store: LogStore) -> None:
    assert store.read("nothing/here") == []
    assert not store.is_closed("nothing/here")


def test_keys_are_independent_and_unicode_survives(store: LogStore) -> None:
    store.append("run/a--b/1", "héllo 👋 \t tabs")
    store.append("run/a--b/2", "other")
    assert [e.data for e in store.read("run/a--b/1")] == ["héllo 👋 \t tabs"]
    assert [e.data for e in store.read("run/a--b/2")] == ["other"]


def test_close_and_reopen(store: LogStore) -> None:
    store.append("k", "a")
    store.close("k")
    assert store.is_closed("k")
    assert [e.data for e in store.read("k")] == ["a"]
    store.append("k", "b")  # a restarted build resumes the same key
    assert not store.is_closed("k")
    entries = store.read("k")
    assert [e.data for e in entries] == ["a", "b"]
    assert _id_key(entries[0].id) < _id_key(entries[1].id)
    store.close("k")
    assert [e.data for e in store.read("k", after=entries[0].id)] == ["b"]


def test_delete(store: LogStore) -> None:
    store.append("k", "a")
    store.close("k")
    store.delete("k")
    assert store.read("k") == []
    assert not store.is_closed("k")


def test_delete_under_removes_a_folder_of_logs_and_nothing_beside_it(store: LogStore) -> None:
    for key in ("run/a--b/1-1", "run/a--b/2-2", "run/a--bc/3-3", "build/x"):
        store.append(key, "line")
    store.close("run/a--b/1-1")
    store.delete_under("run/a--b")
    assert store.read("run/a--b/1-1") == [] and store.read("run/a--b/2-2") == []
    assert not store.is_closed("run/a--b/1-1")
    assert [e.data for e in store.read("run/a--bc/3-3")] == ["line"]  # a Space whose name starts the same
    assert [e.data for e in store.read("build/x")] == ["line"]


async def test_follow_returns_after_close_and_drain(store: LogStore) -> None:
    for i in range(3):
        store.append("k", str(i))
    store.close("k")
    assert [e.data for e in await _collect(store, "k")] == ["0", "1", "2"]


async def test_follow_live_entries_then_close(store: LogStore) -> None:
    store.append("k", "first")

    def writer() -> None:
        for i in range(20):
            store.append("k", f"live {i}")
        store.close("k")

    async def delayed_writer() -> None:
        await asyncio.sleep(0.2)
        await asyncio.to_thread(writer)

    task = asyncio.ensure_future(delayed_writer())
    got = await asyncio.wait_for(_collect(store, "k"), 30)
    await task
    assert [e.data for e in got] == ["first"] + [f"live {i}" for i in range(20)]


async def test_follow_resumes_after_id(store: LogStore) -> None:
    for i in range(4):
        store.append("k", str(i))
    entries = store.read("k")
    store.close("k")
    got = await _collect(store, "k", after=entries[1].id)
    assert [e.data for e in got] == ["2", "3"]
    assert [e.id for e in got] == [e.id for e in entries[2:]]


async def test_follow_heartbeats_while_idle(store: LogStore) -> None:
    store.append("k", "only")
    seen: list[LogEntry | None] = []

    async def follow() -> None:
        async for entry in store.follow("k", heartbeat=0.2):
            seen.append(entry)
            if sum(1 for e in seen if e is None) >= 2:
                break

    await asyncio.wait_for(follow(), 10)
    assert seen[0] is not None and seen[0].data == "only"
    assert seen.count(None) >= 2


async def test_concurrent_writers_lose_nothing(store: LogStore) -> None:
    def writer(n: int) -> None:
        for i in range(50):
            store.append("k", f"{n}:{i}")

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    store.close("k")
    got = await _collect(store, "k")
    assert sorted(e.data for e in got) == sorted(f"{n}:{i}" for n in range(4) for i in range(50))
    ids = [_id_key(e.id) for e in got]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    for n in range(4):  # each writer's own lines stay in order
        mine = [int(e.data.split(":")[1]) for e in got if e.data.startswith(f"{n}:")]
        assert mine == list(range(50))


@pytest.mark.redis
def test_redis_close_archives_and_empties_the_stream() -> None:
    prefix = f"spaceyard-test:{uuid.uuid4().hex}:"
    store = RedisLogStore(REDIS_URL, prefix=prefix, maxlen=50)
    client = redis.Redis.from_url(REDIS_URL)
    try:
        for i in range(30):
            store.append("build/x", str(i))
        assert client.xlen(f"{prefix}s:build/x") == 30
        store.close("build/x")
        # The stream holds only the closed marker; the finished log lives on in the archive list.
        assert client.xlen(f"{prefix}s:build/x") == 1
        assert client.llen(f"{prefix}a:build/x") == 30
        assert [e.data for e in store.read("build/x")] == [str(i) for i in range(30)]
    finally:
        keys = list(client.scan_iter(match=f"{prefix}*"))
        if keys:
            client.delete(*keys)


@pytest.mark.redis
def test_redis_live_stream_is_trimmed() -> None:
    prefix = f"spaceyard-test:{uuid.uuid4().hex}:"
    store = RedisLogStore(REDIS_URL, prefix=prefix, maxlen=100)
    client = redis.Redis.from_url(REDIS_URL)
    try:
        for i in range(2000):
            store.append("run/s/1", str(i))
        length = client.xlen(f"{prefix}s:run/s/1")
        assert 100 <= length < 2000  # MAXLEN ~: trimmed in whole macro-nodes, never below maxlen
        assert store.read("run/s/1")[-1].data == "1999"
    finally:
        keys = list(client.scan_iter(match=f"{prefix}*"))
        if keys:
            client.delete(*keys)


@pytest.mark.redis
def test_settings_select_the_redis_store(tmp_path: Path) -> None:
    settings = BuilderSettings(data_dir=tmp_path, redis_url=REDIS_URL)
    assert isinstance(create_log_store(settings), RedisLogStore)
    assert isinstance(create_log_store(BuilderSettings(data_dir=tmp_path)), FileLogStore)


def test_append_many_tail_and_batches(store: LogStore) -> None:
    store.append_many("run/a", [f"line {i}" for i in range(1000)])
    store.append("run/a", "last")
    tail = store.tail("run/a", 3)
    assert [(e.id, e.data) for e in tail] == [
        (store.read("run/a")[-3].id, "line 998"),
        (store.read("run/a")[-2].id, "line 999"),
        (store.read("run/a")[-1].id, "last"),
    ]


def test_file_log_rotates_within_its_size_limit_with_stable_ids(tmp_path: Path) -> None:
    store = FileLogStore(tmp_path / "logs", max_bytes=64 * 1024)
    for batch in range(50):
        store.append_many("run/chatty", [f"{batch}-{i} " + "x" * 80 for i in range(100)])
    files = list((tmp_path / "logs").rglob("*.jsonl"))
    assert sum(f.stat().st_size for f in files) <= 64 * 1024 + 16 * 1024  # one batch beyond at most
    kept = store.read("run/chatty")
    ids = [int(e.id) for e in kept]
    assert ids == list(range(ids[0], ids[0] + len(ids))) and ids[-1] == 50 * 100 - 1  # newest kept, in order
    assert kept[-1].data.startswith("49-99 ")
    assert [e.id for e in store.tail("run/chatty", 5)] == [e.id for e in kept[-5:]]
    assert store.read("run/chatty", after=str(ids[-3])) == kept[-2:]


async def test_file_follow_reads_on_across_a_rotation(tmp_path: Path) -> None:
    store = FileLogStore(tmp_path / "logs", max_bytes=8 * 1024)
    store.poll_interval = 0.01
    got: list[str] = []

    async def follow() -> None:
        async for entry in store.follow("run/f", heartbeat=60):
            if entry is not None:
                got.append(entry.data)

    task = asyncio.ensure_future(follow())
    sent = []
    for i in range(300):
        sent.append(f"line {i:04d} " + "y" * 40)
        store.append("run/f", sent[-1])
        if i % 20 == 0:
            await asyncio.sleep(0.03)  # the follower keeps up between bursts
    store.close("run/f")
    await asyncio.wait_for(task, 10)
    assert got == sent  # every line once, in order, across several rotations
