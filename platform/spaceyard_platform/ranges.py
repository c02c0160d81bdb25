"""HTTP byte ranges (``Range: bytes=a-b``, one range) for downloads, and streaming a file's slice."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import Response
from fastapi.responses import StreamingResponse

from .errors import PlatformError

CHUNK = 1 << 16


class RangeNotSatisfiable(PlatformError):
    status = 416


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``(start, end)`` inclusive for a single satisfiable range; None to send the whole body.

    Several ranges, other units and malformed values are ignored (the whole body is sent, as RFC 9110
    allows); a range that starts beyond the end is :class:`RangeNotSatisfiable`."""
    if not header:
        return None
    unit, _, spec = header.strip().partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    if not dash or not (first.isdigit() or last.isdigit()) or (first and not first.isdigit()):
        return None
    if last and not last.isdigit():
        return None
    if not first:  # suffix: the last N bytes
        n = int(last)
        if n == 0:
            raise RangeNotSatisfiable(f"Range {header!r} is empty", headers={"Content-Range": f"bytes */{size}"})
        return max(0, size - n), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or (last and int(last) < start):
        raise RangeNotSatisfiable(
            f"Range {header!r} is outside the file ({size} bytes)", headers={"Content-Range": f"bytes */{size}"}
        )
    return start, end


def range_headers(span: tuple[int, int], size: int) -> dict[str, str]:
    start, end = span
    return {"Content-Range": f"bytes {start}-{end}/{size}", "Content-Length": str(end - start + 1)}


async def file_chunks(path: Path, start: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
    """``length`` bytes of ``path`` from ``start`` (to the end when None), without holding them in memory."""
    with open(path, "rb") as f:
        f.seek(start)
        left = length
        while left is None or left > 0:
            chunk = await asyncio.to_thread(f.read, CHUNK if left is None else min(CHUNK, left))
            if not chunk:
                break
            if left is not None:
                left -= len(chunk)
            yield chunk


async def skip_chunks(chunks: AsyncIterator[bytes], start: int, length: int) -> AsyncIterator[bytes]:
    """The slice ``[start, start + length)`` of a stream (for git blobs, which cannot seek)."""
    pos = 0
    async for chunk in chunks:
        lo, hi = max(start - pos, 0), min(start + length - pos, len(chunk))
        pos += len(chunk)
        if lo < hi:
            yield chunk[lo:hi]
        if pos >= start + length:
            break


def object_response(path: Path, size: int, range_header: str | None, headers: dict[str, str]) -> Response:
    """A stored object as a download: whole, or the requested byte range (206)."""
    span = parse_range(range_header, size)
    headers = {**headers, "Accept-Ranges": "bytes"}
    if span is None:
        headers["Content-Length"] = str(size)
        return StreamingResponse(file_chunks(path), headers=headers, media_type="application/octet-stream")
    headers.update(range_headers(span, size))
    start, end = span
    return StreamingResponse(
        file_chunks(path, start, end - start + 1),
        status_code=206,
        headers=headers,
        media_type="application/octet-stream",
    )
