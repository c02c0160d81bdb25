"""The CAS operations, independent of HTTP: accept a xorb, register a shard, answer a reconstruction,
and materialise a file (rebuild its bytes from xorbs, checking its sha256).

Nothing is trusted: a xorb is stored only if its chunks hash to the xorb hash in its URL; a shard's
file is registered only if every term points at stored chunks, its lengths add up, each verification
hash matches the stored chunk hashes (so the uploader knew the chunks it references, possibly
uploaded by another Space) and the file hash is the merkle hash of its chunks. The sha256 a shard
declares is checked when the file is first materialised for a commit.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from blake3 import blake3

from . import formats, hashing
from .formats import FormatError, XorbChunk
from .store import CasStore, FileRecord, Term

MAX_XORB_BYTES = 64 * 1024 * 1024 + 1024 * 1024  # the spec's 64 MiB of chunks, plus hf_xet's footer
MAX_XORB_CHUNKS = 64 * 1024 * 1024 // 4096
MAX_SHARD_BYTES = 64 * 1024 * 1024
MAX_SHARD_FILES = 100_000
DEDUP_XORBS = 64  # ~4 GiB of a file offered per deduplication answer
DEDUP_SHARD_TTL = 7 * 24 * 3600


class Invalid(ValueError):
    """The request is well formed HTTP but its content is not acceptable (a 400)."""


class RangeNotSatisfiable(ValueError):
    pass


# ---------------------------------------------------------------------------------------------- xorbs
def ingest_xorb(store: CasStore, xorb: bytes, body: Path) -> bool:
    """Verify the uploaded body against ``xorb`` and store it; True if it was new."""
    if store.xorb_size(xorb) is not None:
        body.unlink(missing_ok=True)
        return False
    try:
        with body.open("rb") as f:
            chunks, end = formats.scan_xorb(f, MAX_XORB_CHUNKS)
    except FormatError as exc:
        raise Invalid(f"The xorb is not serialized as the Xet specification says: {exc}") from exc
    actual = hashing.xorb_hash([(c.hash, c.length) for c in chunks])
    if actual != xorb:
        raise Invalid(f"The xorb's chunks hash to {hashing.to_hex(actual)}, not {hashing.to_hex(xorb)} as its URL says")
    inserted = store.put_xorb(xorb, body, chunks, end)
    for c in chunks:
        if hashing.dedup_eligible(c.hash):
            store.index_chunk(c.hash, [xorb])
    return inserted


# --------------------------------------------------------------------------------------------- shards
def register_shard(store: CasStore, scope: str, f: BinaryIO, size: int) -> bool:
    """Verify and record every file of an uploaded shard for ``scope``; True if any was new."""
    try:
        shard = formats.read_shard(f, size, MAX_SHARD_FILES)
    except FormatError as exc:
        raise Invalid(f"The shard is not serialized as the Xet specification says: {exc}") from exc
    for cas in shard.xorbs:
        if store.xorb_size(cas.xorb) is None:
            raise Invalid(f"The shard lists xorb {hashing.to_hex(cas.xorb)}, which was not uploaded")
    indexes: dict[bytes, list[XorbChunk]] = {}
    records = [_verify_file(store, info, indexes) for info in shard.files]
    new = False
    for record in records:
        new = store.put_file(record) or new
        store.grant(scope, record.file_hash)
        if record.terms:
            # A client that has this file's first chunk is offered all of the file's xorbs.
            first = record.terms[0]
            xorbs = list(dict.fromkeys(t.xorb for t in record.terms))[:DEDUP_XORBS]
            store.index_chunk(indexes[first.xorb][first.start].hash, xorbs)
    return new


def dedup_shard(store: CasStore, chunk: bytes) -> bytes | None:
    """The global deduplication answer for a chunk hash: a shard describing the xorbs that hold it
    (chunk hashes keyed with a fresh HMAC key, so the answer reveals no hash the client lacks)."""
    xorbs = store.chunk_xorbs(chunk)
    if not xorbs:
        return None
    key = os.urandom(32)
    infos = []
    for x in xorbs:
        index = store.xorb_index(x)
        if index is None:
            continue
        chunks, _ = index
        protected = [(blake3(c.hash, key=key).digest(), c.offset, c.length) for c in chunks]
        infos.append(formats.CasInfo(x, protected, sum(c.length for c in chunks), store.xorb_size(x) or 0))
    if not infos:
        return None
    now = int(time.time())
    return formats.write_dedup_shard(infos, key, now, now + DEDUP_SHARD_TTL)


def _verify_file(store: CasStore, info: formats.FileInfo, indexes: dict[bytes, list[XorbChunk]]) -> FileRecord:
    name = hashing.to_hex(info.file_hash)
    if info.verification and len(info.verification) != len(info.terms):
        raise Invalid(f"File {name}: {len(info.terms)} terms but {len(info.verification)} verification entries")
    if not info.verification and info.terms:
        raise Invalid(f"File {name}: a shard upload carries a verification entry for every term")
    all_chunks: list[tuple[bytes, int]] = []
    terms: list[Term] = []
    for i, term in enumerate(info.terms):
        if term.xorb not in indexes:
            index = store.xorb_index(term.xorb)
            if index is None:
                raise Invalid(f"File {name} uses xorb {hashing.to_hex(term.xorb)}, which was not uploaded")
            indexes[term.xorb] = index[0]
        chunks = indexes[term.xorb]
        if term.end > len(chunks):
            raise Invalid(f"File {name}: chunks {term.start}..{term.end} are not all in their xorb")
        part = chunks[term.start : term.end]
        if sum(c.length for c in part) != term.unpacked:
            raise Invalid(f"File {name}: a term's length does not match its chunks")
        if hashing.verification_hash([c.hash for c in part]) != info.verification[i]:
            raise Invalid(f"File {name}: a term's verification hash does not match the stored chunks")
        all_chunks.extend((c.hash, c.length) for c in part)
        terms.append(Term(term.xorb, term.start, term.end, term.unpacked))
    if hashing.file_hash(all_chunks) != info.file_hash:
        raise Invalid(f"File {name}: its chunks do not hash to the file hash")
    # hf_xet writes the sha256 as a Xet hash value: its string form is the usual sha256 hex digest.
    sha = hashing.to_hex(info.sha256) if info.sha256 else None
    return FileRecord(info.file_hash, sum(n for _, n in all_chunks), sha, tuple(terms))


# ------------------------------------------------------------------------------------- reconstruction
@dataclass(frozen=True)
class Fetch:
    xorb: bytes
    start: int  # chunk index
    end: int  # exclusive
    byte_start: int
    byte_end: int  # inclusive


@dataclass(frozen=True)
class Reconstruction:
    offset_into_first_range: int
    terms: list[Term]
    fetches: list[Fetch]


def parse_range(header: str | None, size: int) -> tuple[int, int]:
    """``[start, end)`` of a ``bytes=a-b`` header (whole file without one)."""
    if not header:
        return 0, size
    unit, _, spec = header.partition("=")
    first, _, last = spec.partition("-")
    try:
        start = int(first)
        end = int(last) + 1 if last.strip() else size
    except ValueError as exc:
        raise Invalid(f"Invalid Range header {header[:100]!r}: expected bytes=START-END") from exc
    if unit.strip() != "bytes" or "," in spec or start < 0 or (last.strip() and end <= start):
        raise Invalid(f"Invalid Range header {header[:100]!r}: expected bytes=START-END")
    if start >= size:
        raise RangeNotSatisfiable(f"The range starts at {start}, past the end of the file ({size} bytes)")
    return start, min(end, size)


def reconstruct(store: CasStore, record: FileRecord, start: int, end: int) -> Reconstruction:
    terms: list[Term] = []
    fetches: dict[tuple[bytes, int, int], Fetch] = {}
    offset = 0
    pos = 0
    for term in record.terms:
        term_end = pos + term.unpacked
        if term_end <= start or pos >= end:
            pos = term_end
            continue
        index = store.xorb_index(term.xorb)
        if index is None:
            raise Invalid(f"xorb {hashing.to_hex(term.xorb)} is missing from the store")
        chunks, xorb_end = index
        first, last, at = term.start, term.end, pos
        # Trim chunks wholly before ``start`` or from ``end`` on (only at the edges of the range).
        while first < last - 1 and at + chunks[first].length <= start:
            at += chunks[first].length
            first += 1
        if not terms:
            offset = max(0, start - at)
        cursor = at
        cut = first
        while cut < last and cursor < end:
            cursor += chunks[cut].length
            cut += 1
        last = cut
        length = sum(c.length for c in chunks[first:last])
        terms.append(Term(term.xorb, first, last, length))
        byte_end = (chunks[last].offset if last < len(chunks) else xorb_end) - 1
        key = (term.xorb, first, last)
        fetches.setdefault(key, Fetch(term.xorb, first, last, chunks[first].offset, byte_end))
        pos = term_end
    return Reconstruction(offset, terms, list(fetches.values()))


# ------------------------------------------------------------------------------------ materialising
def file_bytes(store: CasStore, record: FileRecord) -> Iterator[bytes]:
    """The file's content, chunk by chunk, read from its xorbs."""
    for term in record.terms:
        index = store.xorb_index(term.xorb)
        if index is None:
            raise Invalid(f"xorb {hashing.to_hex(term.xorb)} is missing from the store")
        chunks, _ = index
        with store.open_xorb(term.xorb) as f:
            f.seek(chunks[term.start].offset)
            for _ in range(term.start, term.end):
                item = formats.read_chunk(f)
                if item is None:
                    raise Invalid(f"xorb {hashing.to_hex(term.xorb)} ends early")
                yield item[0]


@dataclass(frozen=True)
class Materialized:
    file_hash: bytes
    git_blob: str  # the git blob id of the content (what a commit of it as a plain blob stores)


def materialize(store: CasStore, sha256: str, dest: Path, scope: str | None = None) -> Materialized | None:
    """Write the content whose sha256 is ``sha256`` to ``dest`` from the CAS, or return None.

    Each file whose uploader declared that sha256 is rebuilt and checked; a wrong declaration is
    never written. With ``scope``, only files that scope registered are considered (a Space cannot
    pull another Space's upload into its commit by naming its sha256).
    """
    for candidate in store.sha256_candidates(sha256):
        if scope is not None and not store.granted(scope, candidate):
            continue
        record = store.get_file(candidate)
        if record is None:
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".xet-")
        try:
            digest = hashlib.sha256()
            blob = hashlib.sha1(f"blob {record.size}\0".encode(), usedforsecurity=False)
            with os.fdopen(fd, "wb") as out:
                for data in file_bytes(store, record):
                    digest.update(data)
                    blob.update(data)
                    out.write(data)
            if digest.hexdigest() == sha256:
                os.replace(tmp, dest)
                store.alias_blob(blob.hexdigest(), sha256)
                return Materialized(candidate, blob.hexdigest())
        finally:
            Path(tmp).unlink(missing_ok=True)
    return None
