"""Preloaded Hub files (``preload_from_hub``) into a local app's own Hugging Face cache, at start.

The build leaves a Hugging Face cache tree in the exported commit (``<app_dir>/.spaceyard-hub``: the
builder's ``preload.HUB_DIR``) whose blobs are hard links to the shared store's read-only objects.
:func:`install` adds it to ``~/.cache/huggingface/hub`` of the Space's HOME, where ``hf_hub_download``
looks (and still writes what it downloads itself): directories are made (owned by the Space's uid),
blobs hard-linked (the inode stays root's and read-only: the Space may remove its link, never change
what another Space reads), snapshot symlinks and refs recreated.

The destination is written by a hostile Space between starts, and this runs as root: every path is
walked with directory file descriptors and ``O_NOFOLLOW``, so a symlink the Space planted anywhere on
the way is never followed (that part is skipped, the start goes on).
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

HUB_DIR = ".spaceyard-hub"
CACHE = (".cache", "huggingface", "hub")
MAX_ENTRIES = 100_000
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC

log = logging.getLogger(__name__)


def _subdir(parent: int, name: str, uid: int | None) -> int:
    with contextlib.suppress(FileExistsError):
        os.mkdir(name, 0o755, dir_fd=parent)
        if uid is not None:
            os.chown(name, uid, uid, dir_fd=parent, follow_symlinks=False)
    return os.open(name, _DIR_FLAGS, dir_fd=parent)


def install(app_dir: Path | None, home: Path, uid: int | None) -> int:
    """Add ``app_dir/.spaceyard-hub`` to ``home``'s Hugging Face cache; how many files were added."""
    if app_dir is None:
        return 0
    source = Path(app_dir) / HUB_DIR
    if not source.is_dir() or source.is_symlink():
        return 0
    added = 0
    try:
        top = os.open(home, _DIR_FLAGS)
    except OSError:
        return 0
    if uid is not None and os.fstat(top).st_uid != uid:
        # HOME's first use: make it the Space's now, so that the sandbox's first-use chown (which would
        # recurse into these hard links and hand the shared objects to this Space) has nothing to do.
        os.fchown(top, uid, uid)
    fds = [top]
    try:
        cache = top
        for part in CACHE:
            cache = _subdir(cache, part, uid)
            fds.append(cache)
        added = _mirror(source, cache, uid, [0])
    except OSError as exc:
        log.warning("preloaded Hub files not added to %s: %s", home, exc)
    finally:
        for fd in fds:
            os.close(fd)
    return added


def install_view(app_dir: Path | None, view: Path) -> int:
    """Add ``app_dir/.spaceyard-hub`` to a Space's cache view (``hubpath.cache_view``: the platform's own
    directory, read-only to the app); how many files were added."""
    if app_dir is None:
        return 0
    source = Path(app_dir) / HUB_DIR
    if not source.is_dir() or source.is_symlink():
        return 0
    top = os.open(view, _DIR_FLAGS)
    try:
        return _mirror(source, top, None, [0])
    finally:
        os.close(top)


def _same(entry: os.DirEntry[str], dest: int) -> bool:
    """``entry`` is already at ``dest``: the same symlink, or a link to the same read-only inode."""
    try:
        there = os.stat(entry.name, dir_fd=dest, follow_symlinks=False)
        if entry.is_symlink():
            return os.readlink(entry.name, dir_fd=dest) == os.readlink(entry.path)
        return there.st_ino == entry.inode() and not there.st_mode & 0o222
    except OSError:
        return False


def _mirror(src: Path, dest: int, uid: int | None, seen: list[int]) -> int:
    added = 0
    for entry in os.scandir(src):
        seen[0] += 1
        if seen[0] > MAX_ENTRIES:
            return added
        try:
            if entry.is_dir(follow_symlinks=False):
                fd = _subdir(dest, entry.name, uid)
                try:
                    added += _mirror(Path(entry.path), fd, uid, seen)
                finally:
                    os.close(fd)
            elif _same(entry, dest):
                continue  # there from an earlier start (a wake): nothing to do
            elif entry.is_symlink():
                target = os.readlink(entry.path)
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.name, dir_fd=dest)
                os.symlink(target, entry.name, dir_fd=dest)
                if uid is not None:
                    os.chown(entry.name, uid, uid, dir_fd=dest, follow_symlinks=False)
            elif entry.is_file(follow_symlinks=False):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.name, dir_fd=dest)
                if entry.stat(follow_symlinks=False).st_mode & 0o222:  # refs: small, the Space's own copy
                    data = Path(entry.path).read_bytes()
                    fd = os.open(entry.name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644, dir_fd=dest)
                    with os.fdopen(fd, "wb") as f:
                        f.write(data)
                        if uid is not None:
                            os.fchown(f.fileno(), uid, uid)
                else:
                    os.link(entry.path, entry.name, dst_dir_fd=dest, follow_symlinks=False)
                added += 1
        except OSError as exc:  # a planted symlink (ELOOP/ENOTDIR), another file system: skip this one
            log.warning("preloaded Hub file %s not added: %s", entry.path, exc)
    return added


__all__ = ["HUB_DIR", "install", "install_view"]
