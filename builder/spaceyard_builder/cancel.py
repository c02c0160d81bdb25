"""Cancelling a build: the platform asks (a Space is deleted), the worker running it stops at once.

The platform calls :meth:`BuildCancel.request` with a build id; the worker's engine checks
:meth:`BuildCancel.requested` while each installer runs (every :data:`POLL` seconds) and kills it,
so the build ends with ``BUILD_ERROR "cancelled: ..."`` and its half-built environment is removed by
the engine's usual clean-up. A build not started yet ends as soon as a worker takes it. The request is
stored where both sides see it: a Redis key (with ``SPACEYARD_REDIS_URL``, one day) or a marker file
``DATA_DIR/builds/<id>.cancel`` (the embedded queue; removed with the Space's other build files).
"""

from __future__ import annotations

import contextlib
import fcntl
import re
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import redis

from .settings import BuilderSettings

POLL = 0.25
"""Seconds between checks while an installer runs."""
REASON = "cancelled: the Space was deleted"
_ID = re.compile(r"^[0-9A-Za-z_-]{1,64}$")


def kill_when_cancelled(proc: subprocess.Popen[str], cancelled: Callable[[], bool]) -> threading.Event:
    """Watch ``proc`` from a daemon thread: once ``cancelled()`` is true while it runs (checked every
    :data:`POLL` seconds), kill it. The returned event is set if it was killed for that."""
    killed = threading.Event()

    def watch() -> None:
        while proc.poll() is None:
            time.sleep(POLL)
            if cancelled():
                killed.set()
                proc.kill()
                return

    threading.Thread(target=watch, daemon=True).start()
    return killed


class BuildCancelled(Exception):
    """Raised inside a build step that was cancelled."""


class BuildCancel:
    def __init__(self, settings: BuilderSettings) -> None:
        self.settings = settings
        self.redis = redis.Redis.from_url(settings.redis_url) if settings.redis_url else None

    def _key(self, build_id: str) -> str:
        return f"spaceyard:build:{build_id}:cancel"

    def _path(self, build_id: str) -> Path:
        return self.settings.data_dir / "builds" / f"{build_id}.cancel"

    def request(self, build_id: str) -> None:
        if not _ID.match(build_id):
            return
        if self.redis is not None:
            self.redis.set(self._key(build_id), "1", ex=24 * 3600)
            return
        path = self._path(build_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("1")

    def requested(self, build_id: str) -> bool:
        if not _ID.match(build_id):
            return False
        if self.redis is not None:
            try:
                return bool(self.redis.exists(self._key(build_id)))
            except redis.RedisError:
                return False
        return bool(self._path(build_id).exists())

    def checker(self, build_id: str) -> Callable[[], bool]:
        return lambda: self.requested(build_id)

    def running(self, build_id: str) -> bool:
        """Whether a worker holds the build's lock (``worker.BuildGuard``) right now."""
        if not _ID.match(build_id):
            return False
        if self.redis is not None:
            try:
                return bool(self.redis.exists(f"spaceyard:build:{build_id}:lock"))
            except redis.RedisError:
                return False
        lock = self.settings.data_dir / "builds" / f"{build_id}.lock"
        if not lock.exists():
            return False
        with open(lock, "a") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(f, fcntl.LOCK_UN)
        return False

    def started(self, build_id: str) -> bool:
        """Whether a worker ever took the build (it has an attempt count)."""
        if not _ID.match(build_id):
            return False
        if self.redis is not None:
            try:
                return bool(self.redis.exists(f"spaceyard:build:{build_id}:attempts"))
            except redis.RedisError:
                return True
        return (self.settings.data_dir / "builds" / f"{build_id}.attempts").exists()

    def forget(self, build_id: str) -> None:
        """Remove what the queue kept of a build (lock, attempt count, cancel request); once it ended."""
        if not _ID.match(build_id):
            return
        if self.redis is not None:
            with contextlib.suppress(redis.RedisError):
                self.redis.delete(self._key(build_id), f"spaceyard:build:{build_id}:attempts")
            return
        for suffix in (".lock", ".attempts", ".cancel"):
            (self.settings.data_dir / "builds" / f"{build_id}{suffix}").unlink(missing_ok=True)
