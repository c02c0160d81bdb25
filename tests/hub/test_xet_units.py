"""Fast checks of the Xet pieces without a server: hash strings, hostile xorbs and shards, ranges.

(That the hashes match hf_xet's is proven end to end in test_xet.py: the CAS refuses any xorb or
shard whose hashes it computes differently.)"""

from __future__ import annotations

import io
import os
import struct
from pathlib import Path

import pytest

from spaceyard_platform.xet import cas, formats, hashing
from spaceyard_platform.xet.store import FileRecord, LocalCasStore, Term


def test_hash_string_form_follows_the_specification() -> None:
    raw = bytes(range(32))
    # The specification's example (bytes 0..31); its printed string drops the "10" of the third group.
    assert hashing.to_hex(raw) == "07060504030201000f0e0d0c0b0a090817161514131211101f1e1d1c1b1a1918"
    assert hashing.from_hex(hashing.to_hex(raw)) == raw
    for bad in ("", "0" * 63, "G" * 64, "A" * 64, "0" * 65):
        with pytest.raises(ValueError):
            hashing.from_hex(bad)


def test_merkle_tree_of_one_chunk_is_the_chunk() -> None:
    h = hashing.chunk_hash(b"hello")
    assert hashing.xorb_hash([(h, 5)]) == h
    assert hashing.file_hash([(h, 5)]) != h
    assert hashing.file_hash([]) == bytes(32)
    many = [(hashing.chunk_hash(os.urandom(8)), 8) for _ in range(50)]
    assert hashing.xorb_hash(many) == hashing.xorb_hash(list(many))
    assert hashing.xorb_hash(many) != hashing.xorb_hash(many[::-1])


def test_byte_grouping_is_undone_for_every_length() -> None:
    for n in range(0, 13):
        data = os.urandom(n)
        grouped = b"".join(data[i::4] for i in range(4))
        assert formats._ungroup4(grouped) == data


def chunk(data: bytes, scheme: int = 0, csize: int | None = None, usize: int | None = None) -> bytes:
    c = len(data) if csize is None else csize
    u = len(data) if usize is None else usize
    return bytes([0]) + c.to_bytes(3, "little") + bytes([scheme]) + u.to_bytes(3, "little") + data


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "at least one chunk"),
        (chunk(b"x" * 10)[:-1], "truncated"),
        (chunk(b"abc", scheme=9), "compression scheme"),
        (chunk(b"abc", usize=200_000), "out of bounds"),
        (chunk(b"not lz4 at all", scheme=1), "LZ4"),
        (b"\x01" + chunk(b"abc")[1:], "header version"),
    ],
)
def test_hostile_xorbs_are_refused(body: bytes, message: str) -> None:
    with pytest.raises(formats.FormatError, match=message):
        formats.scan_xorb(io.BytesIO(body), 100)


def test_xorb_footer_ends_the_chunks() -> None:
    body = chunk(b"a" * 100) + chunk(b"b" * 50) + b"XETBLOB\x01" + os.urandom(80)
    chunks, end = formats.scan_xorb(io.BytesIO(body), 100)
    assert [(c.offset, c.length) for c in chunks] == [(0, 100), (108, 50)]
    assert end == 108 + 58


def test_hostile_shards_are_refused() -> None:
    header = formats.SHARD_TAG + struct.pack("<QQ", 2, 0)
    with pytest.raises(formats.FormatError, match="magic"):
        formats.read_shard(io.BytesIO(b"x" * 48), 48, 10)
    with pytest.raises(formats.FormatError, match="version"):
        formats.read_shard(io.BytesIO(formats.SHARD_TAG + struct.pack("<QQ", 3, 0)), 48, 10)
    huge = header + bytes(32) + struct.pack("<II", 0, 2**31) + bytes(8)
    with pytest.raises(formats.FormatError, match="more than its size allows"):
        formats.read_shard(io.BytesIO(huge), len(huge), 10)
    with pytest.raises(formats.FormatError, match="truncated"):
        formats.read_shard(io.BytesIO(header), len(header), 10)


def test_range_headers() -> None:
    assert cas.parse_range(None, 10) == (0, 10)
    assert cas.parse_range("bytes=2-4", 10) == (2, 5)
    assert cas.parse_range("bytes=2-", 10) == (2, 10)
    assert cas.parse_range("bytes=2-400", 10) == (2, 10)
    with pytest.raises(cas.RangeNotSatisfiable):
        cas.parse_range("bytes=10-", 10)
    for bad in ("bytes=5-2", "items=0-1", "bytes=a-b", "bytes=0-1,3-4", "bytes=-5"):
        with pytest.raises(cas.Invalid):
            cas.parse_range(bad, 10)


def test_reconstruction_trims_to_the_chunks_of_the_range(tmp_path: Path) -> None:
    store = LocalCasStore(tmp_path)
    datas = [os.urandom(1000), os.urandom(2000), os.urandom(3000)]
    body = b"".join(chunk(d) for d in datas)
    meta = [(hashing.chunk_hash(d), len(d)) for d in datas]
    xorb = hashing.xorb_hash(meta)
    upload = tmp_path / "upload"
    upload.write_bytes(body)
    assert cas.ingest_xorb(store, xorb, upload)
    record = FileRecord(hashing.file_hash(meta), 6000, None, (Term(xorb, 0, 3, 6000),))
    rec = cas.reconstruct(store, record, 1500, 2500)
    assert [(t.start, t.end, t.unpacked) for t in rec.terms] == [(1, 2, 2000)]
    assert rec.offset_into_first_range == 500
    (fetch,) = rec.fetches
    assert (fetch.byte_start, fetch.byte_end) == (1008, 1008 + 2008 - 1)
    assert b"".join(cas.file_bytes(store, record)) == b"".join(datas)
    whole = cas.reconstruct(store, record, 0, 6000)
    assert [(t.start, t.end) for t in whole.terms] == [(0, 3)] and whole.offset_into_first_range == 0
