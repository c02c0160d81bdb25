"""Persistent ``/data`` on this machine: one loop-mounted ext4 image per Space, its size the limit.

A volume (:class:`~spaceyard_runtime.api.StorageSpec`) is ``ROOT/<volume>.img``, a sparse file
(only what is written takes disk) holding an ext4 filesystem made with no reserved blocks, mounted
``nosuid,nodev`` on ``ROOT/<volume>/`` and owned by the Space's uid. The local runtime binds that
mount at ``/data`` inside the app's walls; the Docker runtime makes it a named Docker volume. Past its
size a write fails with ``ENOSPC`` inside the app, whatever its uid. A larger tier grows it in place
(``losetup -c`` + ``resize2fs``, online); a smaller one is refused by the platform, as on the Hub. A
platform restart finds the image and mounts it again; :meth:`LoopVolumes.delete` unmounts it and
removes both, for good.

Loop mounts need root. Without it (``spaceyard up`` as a user, no walls either) a volume is a plain
directory with no size limit, and :meth:`LoopVolumes.enforced` is ``False`` (said at start).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

from .api import StorageSpec
from .errors import AppStartError

_NAME = re.compile(r"^[0-9A-Za-z_-]{1,64}$")
MIN_BYTES = 8 * 2**20
"""ext4 needs a few MiB for itself; smaller sizes are rounded up to this."""


class LoopVolumes:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    @property
    def enforced(self) -> bool:
        return os.geteuid() == 0 and shutil.which("mkfs.ext4") is not None

    def _paths(self, volume: str) -> tuple[Path, Path]:
        if not _NAME.match(volume):
            raise AppStartError(f"invalid volume name {volume!r}")
        return self.root / f"{volume}.img", self.root / volume

    @contextlib.contextmanager
    def _locked(self, volume: str) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / f".{volume}.lock", "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            yield

    def ensure(self, storage: StorageSpec, uid: int) -> Path:
        """The volume's directory, made and mounted if needed, at least ``storage.size_bytes`` large."""
        image, mount = self._paths(storage.volume)
        with self._locked(storage.volume):
            mount.mkdir(parents=True, exist_ok=True)
            if not self.enforced:
                if mount.stat().st_uid != uid and os.geteuid() == 0:
                    os.chown(mount, uid, uid)
                return mount
            size = max(storage.size_bytes, MIN_BYTES)
            fresh = not image.exists()
            if fresh:
                with open(image, "wb") as f:
                    f.truncate(size)
                _run(["mkfs.ext4", "-q", "-F", "-m", "0", "-E", f"root_owner={uid}:{uid}", str(image)])
            if not os.path.ismount(mount):
                _run(["mount", "-o", "loop,nosuid,nodev,noatime", str(image), str(mount)])
            if fresh:  # an empty /data, as the app expects (e2fsck makes it again if it ever needs it)
                shutil.rmtree(mount / "lost+found", ignore_errors=True)
            if image.stat().st_size < size:
                self._grow(image, mount, size)
            if mount.stat().st_uid != uid:  # the Space's uid is derived from its id: a rename changes it
                os.chown(mount, uid, uid)
            return mount

    @staticmethod
    def _grow(image: Path, mount: Path, size: int) -> None:
        device = _run(["findmnt", "-n", "-o", "SOURCE", "--target", str(mount)]).strip()
        with open(image, "r+b") as f:
            f.truncate(size)
        _run(["losetup", "-c", device])
        _run(["resize2fs", device])

    def delete(self, volume: str) -> None:
        image, mount = self._paths(volume)
        with self._locked(volume):
            if os.path.ismount(mount):
                # lazily: an app still holding a file open must not keep the volume alive or fail the delete
                _run(["umount", "-l", str(mount)])
            shutil.rmtree(mount, ignore_errors=True)
            image.unlink(missing_ok=True)
        (self.root / f".{volume}.lock").unlink(missing_ok=True)

    def usage(self, volume: str) -> int | None:
        _, mount = self._paths(volume)
        if not mount.is_dir():
            return None
        if os.path.ismount(mount):
            st = os.statvfs(mount)
            return (st.f_blocks - st.f_bfree) * st.f_frsize
        return sum(p.lstat().st_size for p in mount.rglob("*") if p.is_file())

    def size(self, volume: str) -> int | None:
        """The filesystem's usable size, ``None`` if not mounted."""
        _, mount = self._paths(volume)
        if not os.path.ismount(mount):
            return None
        st = os.statvfs(mount)
        return st.f_blocks * st.f_frsize

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and _NAME.match(p.name))


def _run(argv: list[str]) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise AppStartError(f"persistent storage: {' '.join(argv[:2])} failed: {proc.stderr.strip()[-300:]}")
    return proc.stdout
