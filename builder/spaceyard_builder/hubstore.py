"""The shared, bounded, content-addressed store of Hub files downloaded for Spaces (``DATA_DIR/hubcache``).

One per machine. Filled only by trusted code (the build worker, outside every Space's walls) with what
it downloaded itself from the platform, never with a file a Space wrote. Contract:

* :meth:`HubStore.lookup` ``(key)`` -> the object for a repository file at an exact commit
  (:func:`file_key`: kind, repo id, commit sha, path), or ``None``. The caller must have checked, with
  the Space's own token, that the Space may read that repository at that commit *before* asking: the
  store holds every owner's files and knows nothing of access (it is never mounted into a Space).
* :meth:`HubStore.put` ``(key, stream)`` writes the content (sha256 computed while writing; a temporary
  file renamed into place, so readers never see half a file) and records the key; two Spaces that use
  the same file store it once (``objects/<sha256>``, files 0444, the folder 0700).
* Objects reach Spaces as *hard links* (:meth:`link`) into the per-build tree the runtime serves from:
  a Space's own file system view holds only what it was given, and the object's inode is read-only
  and not the Space's, so a Space cannot change what another reads.
* :meth:`HubStore.incoming` is :meth:`put` for a body that arrives piece by piece (the relay's download):
  ``write`` the chunks, then ``commit`` (or ``abort``).
* Size: :meth:`evict` removes least recently used objects (their mtime is bumped on every use) until the
  store is under ``limit`` bytes; an object still linked somewhere (``st_nlink > 1``) frees nothing when
  unlinked and is kept, unless every other link is in ``views`` (the per-Space Hugging Face cache views
  the platform writes, ``<views>/<space>/<repo folder>/blobs/<etag>``): those links are released with it
  (the app's next ``hf_hub_download`` of the file fetches it again through the relay). :meth:`stats` says
  how much is stored and what was hit, missed and evicted (``stats.json``, for the platform's ``/metrics``).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
import stat
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def file_key(kind: str, repo_id: str, commit: str, path: str) -> str:
    return hashlib.sha256(f"{kind}\0{repo_id}\0{commit}\0{path}".encode()).hexdigest()


@dataclass(frozen=True)
class Stats:
    bytes: int
    objects: int
    hits: int
    misses: int
    evictions: int
    limit: int


class HubStore:
    def __init__(self, root: Path, limit: int) -> None:
        self.root = root
        self.limit = limit
        self.objects = root / "objects"
        self.index = root / "index"
        for path in (root, self.objects, self.index):
            path.mkdir(parents=True, exist_ok=True)
        os.chmod(root, 0o700)

    # ------------------------------------------------------------------ objects
    def object_path(self, sha256: str) -> Path:
        assert _SHA256.match(sha256)
        return self.objects / sha256[:2] / sha256

    def lookup(self, key: str) -> Path | None:
        try:
            sha = (self.index / key).read_text().strip()
        except OSError:
            self._count("misses")
            return None
        path = self.object_path(sha) if _SHA256.match(sha) else None
        if path is None or not path.exists():
            self._count("misses")
            return None
        with contextlib.suppress(OSError):
            os.utime(path)  # last use, for LRU
        self._count("hits")
        return path

    def put(self, key: str, chunks: Iterable[bytes]) -> Path:
        digest = hashlib.sha256()
        fd, tmp = tempfile.mkstemp(dir=self.objects, prefix=".incoming-")
        try:
            with os.fdopen(fd, "wb") as f:
                for chunk in chunks:
                    digest.update(chunk)
                    f.write(chunk)
            return self._adopt(key, Path(tmp), digest.hexdigest())
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def incoming(self, key: str) -> Incoming:
        fd, tmp = tempfile.mkstemp(dir=self.objects, prefix=".incoming-")
        return Incoming(self, key, os.fdopen(fd, "wb"), Path(tmp))

    def _adopt(self, key: str, tmp: Path, sha: str) -> Path:
        final = self.object_path(sha)
        final.parent.mkdir(exist_ok=True)
        os.chmod(tmp, 0o444)
        os.replace(tmp, final)
        index_tmp = self.index / f".{key}.{os.getpid()}"
        index_tmp.write_text(sha)
        os.replace(index_tmp, self.index / key)
        return final

    @staticmethod
    def link(obj: Path, dest: Path) -> None:
        """``dest`` becomes a hard link to ``obj`` (a copy across file systems)."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            dest.unlink()
        try:
            os.link(obj, dest)
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
                raise
            shutil.copyfile(obj, dest)
            os.chmod(dest, 0o444)

    # ------------------------------------------------------------------ size
    def _all(self) -> Iterator[tuple[Path, os.stat_result]]:
        for sub in self.objects.iterdir():
            if sub.is_dir():
                for obj in sub.iterdir():
                    with contextlib.suppress(OSError):
                        yield obj, obj.stat()

    def evict(self, views: Path | None = None) -> int:
        """Remove least recently used objects until under the limit (module docstring); how many were removed."""
        with self._locked():
            entries = sorted(self._all(), key=lambda e: e[1].st_mtime)
            total = sum(st.st_size for _, st in entries)
            removed = 0
            in_views: dict[int, list[Path]] | None = None
            for obj, st in entries:
                if total <= self.limit:
                    break
                if st.st_nlink > 1:
                    if views is None:
                        continue  # still linked into a build: unlinking frees nothing
                    in_views = _view_links(views) if in_views is None else in_views
                    links = in_views.get(st.st_ino, [])
                    if st.st_nlink - 1 != len(links):
                        continue  # also linked into a build's export
                    for link in links:
                        with contextlib.suppress(OSError):
                            link.unlink()
                with contextlib.suppress(OSError):
                    obj.unlink()
                    total -= st.st_size
                    removed += 1
            if removed:
                self._count("evictions", removed, locked=True)
            return removed

    def stats(self) -> Stats:
        entries = list(self._all())
        counts = self._read_counts()
        return Stats(
            bytes=sum(st.st_size for _, st in entries),
            objects=len(entries),
            hits=counts.get("hits", 0),
            misses=counts.get("misses", 0),
            evictions=counts.get("evictions", 0),
            limit=self.limit,
        )

    # ------------------------------------------------------------------ counters
    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with open(self.root / ".lock", "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            yield

    def _read_counts(self) -> dict[str, int]:
        try:
            data = json.loads((self.root / "stats.json").read_text())
            return {k: int(v) for k, v in data.items()}
        except (OSError, ValueError, AttributeError):
            return {}

    def _count(self, name: str, n: int = 1, locked: bool = False) -> None:
        def bump() -> None:
            counts = self._read_counts()
            counts[name] = counts.get(name, 0) + n
            counts["updated"] = int(time.time())
            tmp = self.root / f".stats.{os.getpid()}"
            tmp.write_text(json.dumps(counts))
            os.replace(tmp, self.root / "stats.json")

        if locked:
            bump()
        else:
            with self._locked():
                bump()


class Incoming:
    """One object being written (:meth:`HubStore.incoming`): its sha256 is computed on the way."""

    def __init__(self, store: HubStore, key: str, file: Any, tmp: Path) -> None:
        self.store, self.key, self.file, self.tmp = store, key, file, tmp
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, chunk: bytes) -> None:
        self.digest.update(chunk)
        self.file.write(chunk)
        self.size += len(chunk)

    def commit(self) -> Path:
        self.file.close()
        try:
            return self.store._adopt(self.key, self.tmp, self.digest.hexdigest())
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        with contextlib.suppress(OSError):
            self.file.close()
        with contextlib.suppress(OSError):
            self.tmp.unlink()


def _view_links(views: Path) -> dict[int, list[Path]]:
    """Inode -> the blobs of the cache views linking it (``<views>/<space>/<repo folder>/blobs/<etag>``)."""
    found: dict[int, list[Path]] = {}
    for blob in views.glob("*/*/blobs/*"):
        with contextlib.suppress(OSError):
            st = blob.lstat()
            if stat.S_ISREG(st.st_mode):
                found.setdefault(st.st_ino, []).append(blob)
    return found


__all__ = ["HubStore", "Incoming", "Stats", "file_key"]
