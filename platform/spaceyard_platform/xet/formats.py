"""The Xet wire formats the CAS reads: serialized xorbs and shards (Xet protocol specification).

Xorb: a run of chunks, each an 8-byte header (version 0, compressed size u24 LE, compression scheme,
uncompressed size u24 LE) and its data (0 = none, 1 = LZ4 frame, 2 = byte-grouping-4 then LZ4 frame).
``hf_xet`` appends a metadata footer starting with ``XETBLOB``; the chunks end there.

Shard (as uploaded: no footer): a 48-byte header (magic tag, version 2, footer size), the file info
section (per file: header, terms, optional verification entries, optional sha256), a bookend, the CAS
info section (per xorb: header and chunk entries), a bookend.

Every reader here works on a binary file object and bounds what it reads by the sizes in
:mod:`.limits`, so a hostile body cannot make it allocate more than one chunk at a time.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

import lz4.frame

from . import hashing

MAX_CHUNK = 128 * 1024
# A compressed chunk may come out slightly larger than its data (then it should be stored raw).
MAX_COMPRESSED_CHUNK = MAX_CHUNK + 4096
CHUNK_HEADER = 8
XORB_FOOTER_IDENT = b"XETBLOB"
SHARD_TAG = bytes(
    [72, 70, 82, 101, 112, 111, 77, 101, 116, 97, 68, 97, 116, 97, 0, 85,
     105, 103, 69, 106, 123, 129, 87, 131, 165, 189, 217, 92, 205, 209, 74, 169]
)  # fmt: skip
SHARD_VERSION = 2
ENTRY = 48
BOOKEND = b"\xff" * 32
FLAG_VERIFICATION = 1 << 31
FLAG_METADATA_EXT = 1 << 30


class FormatError(ValueError):
    """The body does not follow the specification; the message says where."""


# --------------------------------------------------------------------------------------------- xorbs
@dataclass(frozen=True)
class XorbChunk:
    hash: bytes
    offset: int  # of its header within the serialized xorb
    length: int  # uncompressed


def _ungroup4(data: bytes) -> bytes:
    n = len(data)
    split, rem = divmod(n, 4)
    sizes = [split + (1 if i < rem else 0) for i in range(4)]
    out = bytearray(n)
    pos = 0
    for i, size in enumerate(sizes):
        out[i::4] = data[pos : pos + size]
        pos += size
    return bytes(out)


def decompress(scheme: int, payload: bytes, length: int) -> bytes:
    if scheme == 0:
        data = payload
    elif scheme in (1, 2):
        try:
            data = lz4.frame.decompress(payload)
        except RuntimeError as exc:
            raise FormatError(f"a chunk's LZ4 data is corrupt: {exc}") from exc
        if scheme == 2:
            data = _ungroup4(data)
    else:
        raise FormatError(f"unknown chunk compression scheme {scheme}")
    if len(data) != length:
        raise FormatError(f"a chunk decompresses to {len(data)} bytes, its header says {length}")
    return data


def read_chunk(f: BinaryIO) -> tuple[bytes, int] | None:
    """The next chunk's data and its serialized size, or None at the end of the chunks."""
    head = f.read(CHUNK_HEADER)
    if not head or head[: len(XORB_FOOTER_IDENT)] == XORB_FOOTER_IDENT:
        return None
    if len(head) < CHUNK_HEADER:
        raise FormatError("truncated chunk header")
    if head[0] != 0:
        raise FormatError(f"unknown chunk header version {head[0]}")
    csize = int.from_bytes(head[1:4], "little")
    scheme = head[4]
    usize = int.from_bytes(head[5:8], "little")
    if usize > MAX_CHUNK or csize > MAX_COMPRESSED_CHUNK or usize == 0:
        raise FormatError(f"chunk sizes out of bounds ({csize} compressed, {usize} raw; at most {MAX_CHUNK})")
    payload = f.read(csize)
    if len(payload) != csize:
        raise FormatError("truncated chunk data")
    return decompress(scheme, payload, usize), CHUNK_HEADER + csize


def scan_xorb(f: BinaryIO, max_chunks: int) -> tuple[list[XorbChunk], int]:
    """Every chunk of a serialized xorb (hash, offset, length) and where the chunks end."""
    chunks: list[XorbChunk] = []
    offset = 0
    while (item := read_chunk(f)) is not None:
        data, size = item
        if len(chunks) >= max_chunks:
            raise FormatError(f"more than {max_chunks} chunks in one xorb")
        chunks.append(XorbChunk(hashing.chunk_hash(data), offset, len(data)))
        offset += size
    if not chunks:
        raise FormatError("a xorb holds at least one chunk")
    return chunks, offset


# -------------------------------------------------------------------------------------------- shards
@dataclass
class FileTerm:
    xorb: bytes
    unpacked: int
    start: int
    end: int


@dataclass
class FileInfo:
    file_hash: bytes
    terms: list[FileTerm]
    verification: list[bytes] = field(default_factory=list)
    sha256: bytes | None = None


@dataclass
class CasInfo:
    xorb: bytes
    chunks: list[tuple[bytes, int, int]]  # hash, byte offset, length
    bytes_in_xorb: int
    bytes_on_disk: int


@dataclass
class Shard:
    files: list[FileInfo]
    xorbs: list[CasInfo]


def _entry(f: BinaryIO) -> bytes:
    raw = f.read(ENTRY)
    if len(raw) != ENTRY:
        raise FormatError("truncated shard")
    return raw


def _entries(f: BinaryIO, count: int, budget: int) -> Iterator[bytes]:
    if count > budget:
        raise FormatError(f"a shard section claims {count} entries, more than its size allows")
    for _ in range(count):
        yield _entry(f)


def read_shard(f: BinaryIO, size: int, max_files: int) -> Shard:
    head = f.read(48)
    if len(head) != 48 or head[:32] != SHARD_TAG:
        raise FormatError("not a Xet shard (bad magic tag)")
    version, _footer = struct.unpack("<QQ", head[32:48])
    if version != SHARD_VERSION:
        raise FormatError(f"shard header version {version}; this server reads version {SHARD_VERSION}")
    budget = size // ENTRY
    files: list[FileInfo] = []
    while True:
        raw = _entry(f)
        if raw[:32] == BOOKEND:
            break
        if len(files) >= max_files:
            raise FormatError(f"more than {max_files} files in one shard")
        flags, count = struct.unpack("<II", raw[32:40])
        info = FileInfo(raw[:32], [])
        for e in _entries(f, count, budget):
            _flags, unpacked, start, end = struct.unpack("<IIII", e[32:48])
            if end <= start:
                raise FormatError("a file term has an empty chunk range")
            info.terms.append(FileTerm(e[:32], unpacked, start, end))
        if flags & FLAG_VERIFICATION:
            info.verification = [e[:32] for e in _entries(f, count, budget)]
        if flags & FLAG_METADATA_EXT:
            info.sha256 = _entry(f)[:32]
        files.append(info)
    xorbs: list[CasInfo] = []
    while True:
        raw = _entry(f)
        if raw[:32] == BOOKEND:
            break
        _flags, count, in_cas, on_disk = struct.unpack("<IIII", raw[32:48])
        chunks = []
        for e in _entries(f, count, budget):
            offset, length = struct.unpack("<II", e[32:40])
            chunks.append((e[:32], offset, length))
        xorbs.append(CasInfo(raw[:32], chunks, in_cas, on_disk))
    return Shard(files, xorbs)


def write_dedup_shard(xorbs: list[CasInfo], hmac_key: bytes, created: int, expiry: int) -> bytes:
    """The global deduplication answer: a shard with no files and these xorbs, footer included.

    The chunk hashes in ``xorbs`` must already be protected with ``hmac_key``. The footer carries the
    xorb and chunk lookup tables (truncated hash -> entry index) that ``hf_xet`` searches.
    """
    body = bytearray(BOOKEND + bytes(16))  # an empty file info section
    xorb_info_offset = 48 + len(body)
    xorb_lookup: list[tuple[int, int]] = []
    chunk_lookup: list[tuple[int, int, int]] = []
    index = 0
    for x in xorbs:
        xorb_lookup.append((int.from_bytes(x.xorb[:8], "little"), index))
        body += x.xorb + struct.pack("<IIII", 0, len(x.chunks), x.bytes_in_xorb, x.bytes_on_disk)
        for i, (h, offset, length) in enumerate(x.chunks):
            body += h + struct.pack("<II", offset, length) + bytes(8)
            chunk_lookup.append((int.from_bytes(h[:8], "little"), index, i))
        index += 1 + len(x.chunks)
    body += BOOKEND + bytes(16)
    xorb_lookup_offset = 48 + len(body)
    for key, at in sorted(xorb_lookup):
        body += struct.pack("<QI", key, at)
    chunk_lookup_offset = 48 + len(body)
    for key, at, i in sorted(chunk_lookup):
        body += struct.pack("<QII", key, at, i)
    footer_offset = 48 + len(body)
    stored = sum(x.bytes_in_xorb for x in xorbs)
    on_disk = sum(x.bytes_on_disk for x in xorbs)
    footer = struct.pack(
        "<QQQQQQQQQ",
        1,
        48,
        xorb_info_offset,
        xorb_lookup_offset,  # no file lookup entries: point it at the (empty) place they would start
        0,
        xorb_lookup_offset,
        len(xorb_lookup),
        chunk_lookup_offset,
        len(chunk_lookup),
    )
    footer += hmac_key + struct.pack("<QQ", created, expiry) + bytes(48)
    footer += struct.pack("<QQQQ", on_disk, stored, stored, footer_offset)
    header = SHARD_TAG + struct.pack("<QQ", SHARD_VERSION, len(footer))
    return bytes(header + body + footer)
