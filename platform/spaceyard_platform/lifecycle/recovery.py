"""Restart recovery: routes rebuilt from the database, and what the previous process left in progress resumed.

Nothing runs after a restart (apps are not re-attached: the previous process's sandboxes, containers
or pods are ended or reused by the runtime itself), so a Space that was serving comes back ``SLEEPING``
(the next visit wakes it) — unless the runtime ``survives_restart`` (Kubernetes): then a Space that was
serving is re-attached to its app (``load_state``: the same pod keeps serving, no cold start), its
route and its crash watch restored, and only a Space whose app is gone comes back ``SLEEPING``.
Its latest build is then resumed where it stopped: still queued or running -> re-queued (the worker
that held it may be gone) and awaited; finished but never deployed (the process stopped while it
started, or before it learnt the result) -> deployed now, so the version that serves is the one the
API reports.
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import select

from spaceyard_runtime.api import AppHandle

from ..db.models import Build, Space
from .builds import Builds
from .running import Running
from .stages import Stage
from .state import SpaceState, serving_of

log = logging.getLogger("spaceyard.deployer")


def recovered_stage(
    stage: Stage, *, serving: bool, pending: bool, undeployed: bool, paused: bool, reattached: bool = False
) -> Stage:
    """The stage a Space resumes at after a restart (pure: the unit tests call it directly); ``reattached``:
    its serving app survived the restart and is re-attached (it keeps its stage)."""
    out = stage
    if serving and reattached:
        out = Stage.RUNNING
    elif serving and (stage.serving or stage in (Stage.APP_STARTING, Stage.SLEEPING, Stage.SCHEDULING)):
        out = Stage.SLEEPING  # nothing runs after a restart; the next visit wakes it
    elif not serving and stage in (Stage.APP_STARTING, Stage.SCHEDULING) and not undeployed:
        out = Stage.BUILDING if pending else stage
    if pending and not paused:
        out = Stage.RUNNING_BUILDING if serving else Stage.BUILDING
    return out


class Recovery(Builds, Running):
    async def _recover(self) -> None:
        await self.runtime.end_previous()  # nothing of a killed predecessor keeps running beside what starts
        spaces, builds = await asyncio.to_thread(self._load_all)
        for space in spaces:
            state = self._state(space)
            build = builds.get(space.serving_build_id or "")
            if build is not None:
                state.serving = serving_of(build)
            latest = builds.get(space.latest_build_id or "")
            pending = latest is not None and latest.status == "queued"
            stored = Stage.of(space.stage)
            undeployed = (
                latest is not None
                and latest.status == "succeeded"
                and latest.id != space.serving_build_id
                and not space.paused
                and stored.in_progress
            )
            handle = await self._reattach(space, state, stored)
            stage = recovered_stage(
                stored,
                serving=state.serving is not None,
                pending=pending,
                undeployed=undeployed,
                paused=space.paused,
                reattached=handle is not None,
            )
            if stage is not stored:
                space = await self._save_stage(space.id, stage, space.error_message) or space
            state.handle = handle
            self._publish_full(space, state)
            if handle is not None:
                self._watch(state, handle)
            if latest is not None and pending:
                state.latest_build = latest.id
                await self._requeue_build(space, latest)
                self._spawn(self._await_build(space.id, latest.id))
            elif latest is not None and undeployed:
                state.latest_build = latest.id
                log.info("resuming the deploy of %s (build %s)", space.space_id, latest.id)
                self._spawn(self._deploy(space, state, serving_of(latest)))

    async def _reattach(self, space: Space, state: SpaceState, stored: Stage) -> AppHandle | None:
        """The app a Space was serving before the restart, if the runtime keeps apps across it and it still
        runs (``load_state``); ``None`` otherwise (the Space sleeps). Its output goes on into its run log."""
        serving = state.serving
        if not self.runtime.capabilities.survives_restart or serving is None or serving.sdk == "static":
            return None
        if space.paused or not (stored.serving or stored is Stage.RUNNING_BUILDING):
            return None
        try:
            spec = await self._spec(space, serving)
            handle = await self.runtime.load_state(spec, {}, self._run_sink(space.run_log_key or ""))
        except Exception:  # the backend cannot say: the Space sleeps, as without re-attaching
            log.exception("re-attaching %s", space.space_id)
            return None
        if handle is not None:
            log.info("re-attached %s to its running app %s", space.space_id, handle.backend_id)
        return handle

    def _load_all(self) -> tuple[list[Space], dict[str, Build]]:
        with self.db.session() as s:
            spaces = list(s.scalars(select(Space)))
            ids = {i for sp in spaces for i in (sp.serving_build_id, sp.latest_build_id) if i}
            builds = {b.id: b for b in s.scalars(select(Build).where(Build.id.in_(ids)))} if ids else {}
            return spaces, builds

    async def _prewarm_sleeping(self) -> None:
        """Warm what the next wake of each sleeping Space needs, one per artifact, in the background."""
        seen: set[str] = set()
        for state in self.states.values():
            serving = state.serving
            if serving is None or state.handle is not None or serving.artifact in seen:
                continue
            seen.add(serving.artifact)
            try:
                space = await asyncio.to_thread(self._get_space, state.pk)
                if not space.paused:
                    await self.runtime.prewarm(await self._spec(space, serving))
            except Exception:
                log.exception("prewarming %s", state.space_id)
