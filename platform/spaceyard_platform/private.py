"""``DATA_DIR`` is private: the directory and what the platform creates in it are readable by the
server's user only (0700 directories, 0600 files), on first start and on every start after (modes of an
older install are tightened). The build worker does the same for its queue and logs
(``spaceyard_builder.worker.celery_config``, ``FileLogStore``); exported commits keep git's usual modes
inside their private parent (a docker build context needs them readable)."""

from __future__ import annotations

import os
from pathlib import Path

from .settings import Settings

PRIVATE_DIRS = ("repos", "logs", "queue", "lfs", "sources")


def private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)
    return path


def private_file(path: Path) -> Path:
    """Create ``path`` (empty) if missing, with mode 0600 either way."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.close(fd)
    os.chmod(path, 0o600)
    return path


def prepare_data_dir(settings: Settings) -> None:
    root = private_dir(settings.data_dir)
    for name in PRIVATE_DIRS:
        private_dir(root / name)
    if settings.database_url is None:  # the default SQLite database (and its WAL files, if any)
        private_file(root / "spaceyard.db")
        for suffix in ("-wal", "-shm"):
            extra = root / f"spaceyard.db{suffix}"
            if extra.exists():
                os.chmod(extra, 0o600)
    for name in ("worker.log", "secret.key"):
        if (root / name).exists():
            os.chmod(root / name, 0o600)
