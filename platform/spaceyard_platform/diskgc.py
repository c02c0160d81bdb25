"""Disk: what each area of ``DATA_DIR`` holds, and collecting what no Space uses any more.

* **exported commits** (``sources/OWNER--NAME/<sha>``): kept for the builds a Space serves or is building
  (its serving and latest build); every other export, and the folders of Spaces that no longer exist,
  are removed. A build of a new push re-exports its commit if needed.
* **environments** (``envs/<id>``, local engine): kept if a serving or latest build uses it, if it is
  being built (its lock is held) or if it was used in the last ``keep_recent`` seconds; others are
  removed. Only when the environments live in this data directory: a shared ``SPACEYARD_ENV_DIR`` may
  serve other platforms, so it is collected only by an explicit ``spaceyard gc --envs``.

``spaceyard gc`` runs it once and prints what it freed; the deployer runs it every ``gc_interval``
seconds. Disk use per area is the ``spaceyard_disk_bytes`` gauge at ``/metrics`` (updated by each run).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import or_, select

from spaceyard_builder.hubstore import HubStore
from spaceyard_builder.settings import BuilderSettings
from spaceyard_runtime.hubpath import VIEWS
from spaceyard_runtime.settings import RuntimeSettings

from .db.models import Build, Space
from .db.session import Database
from .names import space_folder

AREAS = ("repos", "sources", "envs", "logs", "queue", "lfs", "hubcache")


@dataclass
class Collected:
    removed: list[str] = field(default_factory=list)
    freed: int = 0
    usage: dict[str, int] = field(default_factory=dict)


def du(path: Path) -> int:
    total = 0
    for root, dirs, files in os.walk(path, onerror=lambda e: None):
        for name in files:
            try:
                st = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            total += st.st_blocks * 512
        dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(root, d))]
    return total


def usage(data_dir: Path, envs_root: Path) -> dict[str, int]:
    roots = {area: data_dir / area for area in AREAS}
    roots["envs"] = envs_root
    return {area: du(path) if path.exists() else 0 for area, path in roots.items()}


@dataclass
class InUse:
    artifacts: set[str]
    revisions: dict[str, set[str]]
    """Per Space folder (``OWNER--NAME``): the commits whose exports are kept."""
    app_dirs: set[str]
    """Exports kept builds run from, wherever they are (a Space renamed since keeps its old folder)."""


def _in_use(db: Database, keep_recent: float) -> InUse:
    """What the serving and latest build of every Space use, and every build of the last ``keep_recent``
    seconds (a replaced version may still run in its grace period) or still running."""
    since = datetime.now(UTC) - timedelta(seconds=keep_recent)
    with db.session() as s:
        spaces = list(s.scalars(select(Space)))
        ids = {i for sp in spaces for i in (sp.serving_build_id, sp.latest_build_id) if i}
        recent = or_(Build.status == "queued", Build.created_at >= since.replace(tzinfo=None), Build.id.in_(ids))
        builds = list(s.scalars(select(Build).where(recent)))
        slug_of = {sp.id: space_folder(sp.space_id) for sp in spaces}
    revisions: dict[str, set[str]] = {slug: set() for slug in slug_of.values()}
    for b in builds:
        if b.space_pk in slug_of:
            revisions[slug_of[b.space_pk]].add(b.revision)
    return InUse(
        artifacts={b.artifact for b in builds if b.artifact},
        revisions=revisions,
        app_dirs={str(Path(b.app_dir).resolve()) for b in builds if b.app_dir},
    )


def _free(path: Path, out: Collected) -> None:
    size = du(path)
    shutil.rmtree(path, ignore_errors=True)
    out.removed.append(str(path))
    out.freed += size


def collect(db: Database, data_dir: Path, envs_root: Path, *, envs: bool, keep_recent: float = 3600.0) -> Collected:
    out = Collected()
    used = _in_use(db, keep_recent)
    sources = data_dir / "sources"
    if sources.is_dir():
        for space_dir in sources.iterdir():
            if not space_dir.is_dir():
                continue
            kept = used.revisions.get(space_dir.name, set())
            for export in space_dir.iterdir():
                unused = export.name not in kept and str(export.resolve()) not in used.app_dirs
                if export.is_dir() and not export.name.startswith(".") and unused:
                    _free(export, out)
            if space_dir.name not in used.revisions and not any(True for _ in space_dir.iterdir()):
                space_dir.rmdir()  # a Space that is gone
    if envs and envs_root.is_dir():
        now = time.time()
        for env in envs_root.iterdir():
            if not env.is_dir() or env.name.startswith(".") or str(env) in used.artifacts:
                continue
            if now - env.stat().st_mtime < keep_recent:
                continue
            lock = envs_root / f".{env.name}.lock"
            with open(lock, "a") as f:
                try:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # being (re)built right now
                _free(env, out)
    if (data_dir / "hubcache").is_dir():  # exports just freed may have been the last links to cached files
        views = RuntimeSettings(data_dir=data_dir).runtime_dir / VIEWS  # Spaces' cache views: releasable links
        HubStore(data_dir / "hubcache", BuilderSettings(data_dir=data_dir).hub_cache_max_bytes).evict(views)
    out.usage = usage(data_dir, envs_root)
    return out
