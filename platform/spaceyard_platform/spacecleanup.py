"""Deleting a Space removes everything of it, and cancels its build.

``DELETE /api/repos/delete`` calls :func:`prepare` before the Space's rows go (it notes the Space's
builds and asks the worker to cancel those not finished: the installer is killed within
``cancel.POLL`` seconds, the half-built environment removed by the engine), then, after the deployer
stopped its apps (processes, containers, pods, warm parents) and the repository is gone,
:func:`purge`:

* the runtime's files of the Space (``HOME``, ``TMPDIR``: a later Space of the same name starts empty)
  and its persistent ``/data`` volume (``Runtime.purge``, ``Runtime.delete_volume``);
* its run logs (``run/OWNER--NAME/...``) and each build's log;
* its exported commits (``sources/OWNER--NAME``);
* what the queue kept per build: lock, attempt count, cancel request — once the build has ended
  (waited for up to ``CANCEL_WAIT`` seconds; after that the rest is done in the background).

Shared things stay: environments are shared by content (collected by ``diskgc`` once unused).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import time
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from spaceyard_builder.cancel import BuildCancel

from . import names
from .db.models import Build, Space
from .deps import Services

log = logging.getLogger("spaceyard.cleanup")

CANCEL_WAIT = 15.0
"""Seconds a delete waits for its cancelled build to end before finishing the clean-up in the background."""
BACKGROUND_WAIT = 3600.0
_background: set[asyncio.Task[None]] = set()


@dataclass(frozen=True)
class Gone:
    """What a deleted Space leaves to remove, noted before its rows are deleted."""

    pk: str
    space_id: str
    builds: tuple[str, ...]
    unfinished: tuple[str, ...]

    @property
    def slug(self) -> str:
        return names.space_folder(self.space_id)


def prepare(svc: Services, session: Session, space: Space) -> Gone:
    """Note the Space's builds and cancel the unfinished ones (call before deleting its rows)."""
    rows = list(session.execute(select(Build.id, Build.status).where(Build.space_pk == space.id)))
    builds = tuple(r[0] for r in rows)
    unfinished = tuple(r[0] for r in rows if r[1] not in ("succeeded", "failed"))
    cancel = BuildCancel(svc.settings.builder())
    for build_id in unfinished:
        try:
            cancel.request(build_id)
        except Exception:  # the queue's store is down: the build ends on its own; the delete goes on
            log.warning("could not cancel build %s of %s", build_id, space.space_id, exc_info=True)
    return Gone(pk=space.id, space_id=space.space_id, builds=builds, unfinished=unfinished)


async def purge(svc: Services, gone: Gone) -> None:
    """Remove what :func:`prepare` noted, once the deployer has stopped the Space's apps."""
    runtime = svc.deployer.runtime
    await runtime.purge(gone.space_id, names.runtime_slug(gone.space_id))
    await runtime.delete_volume(gone.pk)
    store = svc.log_store
    await asyncio.to_thread(store.delete_under, f"run/{gone.slug}")
    sources = svc.settings.data_dir / "sources" / gone.slug
    await asyncio.to_thread(shutil.rmtree, sources, True)
    if not await _builds_ended(svc, gone, CANCEL_WAIT):
        task = asyncio.ensure_future(_finish_later(svc, gone))
        _background.add(task)
        task.add_done_callback(_background.discard)
        return
    await asyncio.to_thread(_forget_builds, svc, gone)


async def _builds_ended(svc: Services, gone: Gone, timeout: float) -> bool:
    cancel = BuildCancel(svc.settings.builder())
    deadline = time.monotonic() + timeout
    while True:
        running = await asyncio.to_thread(lambda: [b for b in gone.unfinished if cancel.running(b)])
        if not running:
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.2)


async def _finish_later(svc: Services, gone: Gone) -> None:
    with contextlib.suppress(asyncio.CancelledError):
        await _builds_ended(svc, gone, BACKGROUND_WAIT)
        await asyncio.to_thread(_forget_builds, svc, gone)


def _forget_builds(svc: Services, gone: Gone) -> None:
    """Build-keyed leftovers only (a new Space of the same name may exist by now: nothing named by it)."""
    cancel = BuildCancel(svc.settings.builder())
    for build_id in gone.builds:
        if build_id in gone.unfinished and not cancel.started(build_id):
            continue  # still queued: the worker that takes it ends it at once and removes its files
        svc.log_store.delete(names.build_log_key(build_id))
        cancel.forget(build_id)
