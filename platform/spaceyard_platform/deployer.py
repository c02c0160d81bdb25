"""The deployer: from a pushed commit to a serving app, and every lifecycle change after that.

It is the only writer of a Space's ``stage`` (through the stage machine, :mod:`.lifecycle.stages`) and
of the gateway's routes (published by value, :class:`~.gateway.routes.RouteSpec`). Per Space it keeps,
in memory, the app currently serving (an :class:`~spaceyard_runtime.api.AppHandle`) and a lock that
serialises lifecycle changes (:mod:`.lifecycle.state`). What it decides is persisted to the database,
so a restarted platform rebuilds its routes from there (:mod:`.lifecycle.recovery`).

One job per module, composed here:

* :mod:`.lifecycle.builds` — push -> queued build -> its result;
* :mod:`.lifecycle.running` — start, swap, retire the replaced version, watch the serving app;
* :mod:`.lifecycle.sleeping` — the idle check, sleep, and wake (the gateway's :class:`Waker`);
* :mod:`.lifecycle.recovery` — restart recovery;
* :mod:`.lifecycle.owner` — register, settings refresh, pause, restart, delete.
"""

from __future__ import annotations

import asyncio
import logging

from . import diskgc, metrics
from .lifecycle.owner import OwnerActions
from .lifecycle.recovery import Recovery
from .lifecycle.running import DRAIN, RETIRE_MAX
from .lifecycle.state import Serving, SpaceState

log = logging.getLogger("spaceyard.deployer")

__all__ = ["DRAIN", "RETIRE_MAX", "Deployer", "Serving", "SpaceState"]


class Deployer(Recovery, OwnerActions):
    async def start(self) -> None:
        """Rebuild routes from the database, resume what the previous process left in progress, and
        start the idle check (and the disk collector)."""
        await self._recover()
        self._idle_task = asyncio.create_task(self._idle_loop())
        if self.settings.gc_interval > 0:
            self._spawn(self._gc_loop())
        self._spawn(self._prewarm_sleeping())

    async def aclose(self) -> None:
        if self._idle_task:
            self._idle_task.cancel()
        for task in list(self._tasks):
            task.cancel()
        keep = self.runtime.capabilities.survives_restart  # re-attached by the next process (recovery)
        for state in self.states.values():
            for handle in (state.handle, state.suspended):
                if handle is not None and not keep:
                    try:
                        await self.runtime.remove(handle)
                    except Exception:  # shutting down: keep going
                        log.exception("stopping %s", state.space_id)
        await self.runtime.aclose()
        await asyncio.to_thread(self.log_writer.stop)

    # ------------------------------------------------------------------ disk
    async def collect_garbage(self) -> diskgc.Collected:
        builder = self.settings.builder()
        out = await asyncio.to_thread(
            diskgc.collect,
            self.db,
            self.settings.data_dir,
            builder.envs_root,
            envs=builder.env_dir is None,
            keep_recent=self.settings.gc_grace,
        )
        for area, used in out.usage.items():
            metrics.DISK.labels(area=area).set(used)
        if out.removed:
            log.info("collected %d unused exports/environments, %d MB", len(out.removed), out.freed // 2**20)
        return out

    async def _gc_loop(self) -> None:
        await asyncio.sleep(min(60.0, self.settings.gc_interval))  # not in the way of a start
        while True:
            try:
                await self.collect_garbage()
            except Exception:
                log.exception("collecting unused exports and environments")
            await asyncio.sleep(self.settings.gc_interval)
