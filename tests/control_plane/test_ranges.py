"""Byte ranges of downloads: what is honoured, ignored (whole body) or refused (416)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from spaceyard_platform.ranges import RangeNotSatisfiable, file_chunks, parse_range, skip_chunks


def test_parse_range() -> None:
    assert parse_range(None, 100) is None
    assert parse_range("bytes=0-9", 100) == (0, 9)
    assert parse_range("bytes=90-200", 100) == (90, 99)
    assert parse_range("bytes=50-", 100) == (50, 99)
    assert parse_range("bytes=-10", 100) == (90, 99)
    assert parse_range("bytes=-500", 100) == (0, 99)
    for ignored in ("items=0-1", "bytes=0-1,5-6", "bytes=a-b", "bytes=-", "bytes=1-x", "bytes=5"):
        assert parse_range(ignored, 100) is None, ignored
    for refused in ("bytes=100-", "bytes=500-600", "bytes=9-3", "bytes=-0"):
        with pytest.raises(RangeNotSatisfiable) as exc:
            parse_range(refused, 100)
        assert exc.value.headers["Content-Range"] == "bytes */100"


async def _collect(chunks: AsyncIterator[bytes]) -> bytes:
    return b"".join([c async for c in chunks])


def test_file_and_stream_slices(tmp_path: Path) -> None:
    data = bytes(range(256)) * 1000
    path = tmp_path / "f"
    path.write_bytes(data)
    assert asyncio.run(_collect(file_chunks(path))) == data
    assert asyncio.run(_collect(file_chunks(path, 70_000, 5))) == data[70_000:70_005]

    async def pieces() -> AsyncIterator[bytes]:
        for i in range(0, len(data), 777):
            yield data[i : i + 777]

    for start, length in ((0, 10), (776, 2), (100_000, 50_000), (len(data) - 1, 1)):
        assert asyncio.run(_collect(skip_chunks(pieces(), start, length))) == data[start : start + length]
