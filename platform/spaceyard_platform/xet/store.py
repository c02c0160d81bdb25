"""Where the CAS keeps xorbs, their chunk index, file reconstructions and who may read them.

:class:`CasStore` is the contract; :class:`LocalCasStore` keeps everything under ``DATA_DIR/xet``
(shared by every Space: chunk-level deduplication works across files and Spaces).
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from .formats import XorbChunk
from .hashing import from_hex, to_hex

_IDX = struct.Struct("<32sII")


@dataclass(frozen=True)
class Term:
    xorb: bytes
    start: int
    end: int  # exclusive chunk index
    unpacked: int


@dataclass(frozen=True)
class FileRecord:
    file_hash: bytes
    size: int
    sha256: str | None  # as the uploader declared it; checked when the file is materialised
    terms: tuple[Term, ...]


class CasStore(ABC):
    """Content-addressed storage of the Xet CAS.

    Contract:
    * ``put_xorb`` is called only with a xorb whose hash the caller verified against its chunks; it is
      atomic and idempotent (True when it was new). ``xorb_index`` is None for an unknown xorb.
    * ``open_xorb`` opens a stored xorb; ``read_xorb(h, start, end)`` yields its serialized bytes
      ``[start, end)`` (an exclusive end).
    * ``put_file`` records a verified reconstruction; ``sha256_candidates`` lists the files whose
      uploader declared that sha256 (not proven until someone reconstructs and checks them).
    * ``grant``/``granted`` record which scope (a Space) registered or committed a file: a read token
      of one Space does not reach another Space's files.
    * ``index_chunk``/``chunk_xorbs`` serve the global deduplication query (chunk -> xorbs).
    * ``stored_bytes`` is what the xorbs take (the deduplicated content).
    """

    @abstractmethod
    def xorb_index(self, xorb: bytes) -> tuple[list[XorbChunk], int] | None:
        """The xorb's chunks and the offset where they end, or None for an unknown xorb."""

    @abstractmethod
    def xorb_size(self, xorb: bytes) -> int | None: ...

    @abstractmethod
    def put_xorb(self, xorb: bytes, body: Path, chunks: list[XorbChunk], end: int) -> bool: ...

    @abstractmethod
    def open_xorb(self, xorb: bytes) -> BinaryIO:
        """The serialized xorb, seekable."""

    def read_xorb(self, xorb: bytes, start: int, end: int) -> Generator[bytes]:
        with self.open_xorb(xorb) as f:
            f.seek(start)
            left = end - start
            while left > 0:
                block = f.read(min(left, 1 << 20))
                if not block:
                    return
                left -= len(block)
                yield block

    @abstractmethod
    def put_file(self, record: FileRecord) -> bool: ...

    @abstractmethod
    def get_file(self, file_hash: bytes) -> FileRecord | None: ...

    @abstractmethod
    def sha256_candidates(self, sha256: str) -> list[bytes]: ...

    @abstractmethod
    def grant(self, scope: str, file_hash: bytes) -> None: ...

    @abstractmethod
    def granted(self, scope: str, file_hash: bytes) -> bool: ...

    @abstractmethod
    def alias_blob(self, blob: str, sha256: str) -> None:
        """Remember that git blob ``blob`` holds the content whose sha256 is ``sha256``."""

    @abstractmethod
    def blob_sha256(self, blob: str) -> str | None: ...

    @abstractmethod
    def index_chunk(self, chunk: bytes, xorbs: list[bytes]) -> None:
        """Remember (the first time only) which xorbs to offer a client whose data has this chunk."""

    @abstractmethod
    def chunk_xorbs(self, chunk: bytes) -> list[bytes]: ...

    @abstractmethod
    def stored_bytes(self) -> int: ...

    @abstractmethod
    def scratch(self) -> Path:
        """A directory for request bodies being received (same filesystem as the store)."""


def _fan(root: Path, name: str, suffix: str = "") -> Path:
    return root / name[:2] / f"{name}{suffix}"


def _atomic_write(dest: Path, data: bytes) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, dest)
    finally:
        Path(tmp).unlink(missing_ok=True)


class LocalCasStore(CasStore):
    """Files under one directory: ``xorbs/`` (bodies + ``.idx``), ``files/``, ``sha256/``, ``scopes/``,
    ``chunks/`` (the deduplication index), ``blobs/`` (git blob -> sha256)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        for sub in ("xorbs", "files", "sha256", "scopes", "chunks", "blobs", "tmp"):
            (root / sub).mkdir(parents=True, exist_ok=True)

    def _xorb(self, xorb: bytes, suffix: str = "") -> Path:
        return _fan(self.root / "xorbs", to_hex(xorb), suffix)

    def xorb_index(self, xorb: bytes) -> tuple[list[XorbChunk], int] | None:
        if not self._xorb(xorb).exists():
            return None
        raw = self._xorb(xorb, ".idx").read_bytes()
        chunks = [XorbChunk(h, off, n) for h, off, n in _IDX.iter_unpack(raw[8:])]
        return chunks, int.from_bytes(raw[:8], "little")

    def xorb_size(self, xorb: bytes) -> int | None:
        try:
            return self._xorb(xorb).stat().st_size
        except FileNotFoundError:
            return None

    def put_xorb(self, xorb: bytes, body: Path, chunks: list[XorbChunk], end: int) -> bool:
        dest = self._xorb(xorb)
        if dest.exists():
            return False
        index = end.to_bytes(8, "little") + b"".join(_IDX.pack(c.hash, c.offset, c.length) for c in chunks)
        _atomic_write(self._xorb(xorb, ".idx"), index)  # the index first: a body implies its index
        os.replace(body, dest)
        return True

    def open_xorb(self, xorb: bytes) -> BinaryIO:
        return self._xorb(xorb).open("rb")

    def _file(self, file_hash: bytes) -> Path:
        return _fan(self.root / "files", to_hex(file_hash), ".json")

    def put_file(self, record: FileRecord) -> bool:
        dest = self._file(record.file_hash)
        if record.sha256:
            marker = self.root / "sha256" / record.sha256 / to_hex(record.file_hash)
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.touch()
        if dest.exists():
            return False
        body = {
            "size": record.size,
            "sha256": record.sha256,
            "terms": [[to_hex(t.xorb), t.start, t.end, t.unpacked] for t in record.terms],
        }
        _atomic_write(dest, json.dumps(body).encode())
        return True

    def get_file(self, file_hash: bytes) -> FileRecord | None:
        try:
            body = json.loads(self._file(file_hash).read_text())
        except FileNotFoundError:
            return None
        terms = tuple(Term(from_hex(x), s, e, n) for x, s, e, n in body["terms"])
        return FileRecord(file_hash, int(body["size"]), body.get("sha256"), terms)

    def sha256_candidates(self, sha256: str) -> list[bytes]:
        folder = self.root / "sha256" / sha256
        if len(sha256) != 64 or not folder.is_dir():
            return []
        return [from_hex(p.name) for p in sorted(folder.iterdir())]

    def grant(self, scope: str, file_hash: bytes) -> None:
        marker = self.root / "scopes" / scope / to_hex(file_hash)
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()

    def granted(self, scope: str, file_hash: bytes) -> bool:
        return (self.root / "scopes" / scope / to_hex(file_hash)).exists()

    def alias_blob(self, blob: str, sha256: str) -> None:
        _atomic_write(_fan(self.root / "blobs", blob), sha256.encode())

    def blob_sha256(self, blob: str) -> str | None:
        if len(blob) not in (40, 64) or any(c not in "0123456789abcdef" for c in blob):
            return None
        try:
            return _fan(self.root / "blobs", blob).read_text()
        except FileNotFoundError:
            return None

    def index_chunk(self, chunk: bytes, xorbs: list[bytes]) -> None:
        dest = _fan(self.root / "chunks", to_hex(chunk))
        if not dest.exists():
            _atomic_write(dest, b"".join(xorbs))

    def chunk_xorbs(self, chunk: bytes) -> list[bytes]:
        try:
            raw = _fan(self.root / "chunks", to_hex(chunk)).read_bytes()
        except FileNotFoundError:
            return []
        return [raw[i : i + 32] for i in range(0, len(raw) - 31, 32)]

    def stored_bytes(self) -> int:
        total = 0
        for dirpath, _dirs, names in os.walk(self.root / "xorbs"):
            total += sum(os.path.getsize(os.path.join(dirpath, n)) for n in names if not n.startswith(".tmp-"))
        return total

    def scratch(self) -> Path:
        return self.root / "tmp"
