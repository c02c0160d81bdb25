"""Git LFS objects: the pointer format, the object store, and which repository may use which object.

* A pointer is the small text git keeps instead of an LFS file (``version https://git-lfs.github.com/spec/v1``,
  ``oid sha256:<hex>``, ``size <n>``; at most :data:`POINTER_MAX` bytes).
* Objects are stored once, by sha256, under ``DATA_DIR/lfs/objects/ab/cd/<oid>`` (shared by all Spaces).
* A repository may only read an object it was given: uploading it through that repository writes a
  *grant* (an empty file ``<repo>.git/spaceyard-lfs/<oid>``). Knowing a sha256 is therefore not enough
  to read another Space's file, through the API, git-lfs or a build. Grants live inside the bare
  repository, so they move, copy (duplicate) and disappear with it.

Shared by the platform (the LFS API, ``/resolve/``) and the builder (checking out real contents).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

POINTER_MAX = 1024
SPEC = b"version https://git-lfs.github.com/spec/v1"
GRANTS = "spaceyard-lfs"
_OID = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Pointer:
    oid: str
    size: int
    pointer_size: int


def is_oid(oid: str) -> bool:
    return bool(_OID.fullmatch(oid))


def parse_pointer(data: bytes) -> Pointer | None:
    """The pointer ``data`` is, or None when it is ordinary content."""
    if len(data) > POINTER_MAX or not data.startswith(SPEC):
        return None
    try:
        lines = data.decode("ascii").split("\n")
    except UnicodeDecodeError:
        return None
    if lines[-1] != "" or any(" " not in line for line in lines[:-1]):
        return None
    fields = dict(line.split(" ", 1) for line in lines[1:-1])
    oid, size = fields.get("oid", ""), fields.get("size", "")
    if not oid.startswith("sha256:") or not is_oid(oid[7:]) or not size.isdigit() or len(size) > 18:
        return None
    return Pointer(oid[7:], int(size), len(data))


def pointer_text(oid: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {size}\n".encode()


def object_path(data_dir: Path, oid: str) -> Path:
    if not is_oid(oid):
        raise ValueError(f"Invalid LFS oid {oid!r}: expected a sha256 in hex")
    return data_dir / "lfs" / "objects" / oid[:2] / oid[2:4] / oid


def grant(git_dir: Path, oid: str) -> None:
    """Record that the repository at ``git_dir`` holds object ``oid``."""
    if not is_oid(oid):
        raise ValueError(f"Invalid LFS oid {oid!r}")
    folder = git_dir / GRANTS
    folder.mkdir(exist_ok=True)
    (folder / oid).touch()


def granted(git_dir: Path, oid: str) -> bool:
    return is_oid(oid) and (git_dir / GRANTS / oid).exists()


def available(data_dir: Path, git_dir: Path, pointer: Pointer) -> Path | None:
    """The stored object for ``pointer`` if the repository may read it and it is complete, else None."""
    if not granted(git_dir, pointer.oid):
        return None
    path = object_path(data_dir, pointer.oid)
    try:
        return path if path.stat().st_size == pointer.size else None
    except FileNotFoundError:
        return None


class MissingObjects(Exception):
    def __init__(self, missing: list[str]) -> None:
        super().__init__(
            f"{len(missing)} LFS file(s) have no uploaded object in this Space: {', '.join(missing[:5])}"
            + (" ..." if len(missing) > 5 else "")
            + " (push them with git lfs push --all, or upload them with huggingface_hub)"
        )
        self.missing = missing


def smudge_tree(root: Path, data_dir: Path, git_dir: Path, log: Callable[[str], None]) -> int:
    """Replace every LFS pointer file under ``root`` by its object's content; return how many.

    Idempotent (a replaced file is no longer a pointer). Raises :class:`MissingObjects` when a pointer's
    object is absent or not granted to this repository; the pointers that could be replaced are."""
    done = 0
    missing: list[str] = []
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            path = Path(dirpath) / name
            if path.is_symlink():
                continue
            try:
                if path.stat().st_size > POINTER_MAX:
                    continue
                pointer = parse_pointer(path.read_bytes())
            except OSError:
                continue
            if pointer is None:
                continue
            source = available(data_dir, git_dir, pointer)
            rel = str(path.relative_to(root))
            if source is None:
                missing.append(rel)
                continue
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".lfs-")
            os.close(fd)
            try:
                shutil.copyfile(source, tmp)
                os.chmod(tmp, 0o644)
                os.replace(tmp, path)
            finally:
                Path(tmp).unlink(missing_ok=True)
            done += 1
    if done:
        log(f"--> LFS: checked out {done} file(s)")
    if missing:
        raise MissingObjects(sorted(missing))
    return done
