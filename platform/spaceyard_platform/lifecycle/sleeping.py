"""Sleep and wake: an idle Space is suspended; a visit wakes it.

Every ``idle_check_interval`` the pure policy :func:`spaceyard_runtime.idle.should_sleep` decides from
the deployer's own stage and clock, and from what the gateway counted (last activity, open requests:
:class:`~spaceyard_platform.gateway.activity.ActivityReader`). A wake is asked by the gateway (its
:class:`~spaceyard_platform.gateway.routes.Waker`), which coalesces concurrent visitors into one call;
here it is serialised with every other lifecycle change by the Space's lock, and the visitors are
released as soon as the app answers (the stage is recorded just after).

Sleep has two depths, both the stage ``SLEEPING``: first *light* (the runtime keeps what makes the wake
fast: a warm parent, :attr:`~spaceyard_runtime.api.Capabilities.light_sleep`), then, once the Space has
slept ``deep_sleep_after`` seconds (its own setting, else the platform's; pure policy
:func:`spaceyard_runtime.idle.should_deep_sleep`), *deep*: :meth:`Runtime.deep_sleep` frees it all. A
runtime may deepen light sleepers itself to stay within its memory budget: the idle check asks it what a
light sleeper still costs every :data:`DEPTH_CHECK_INTERVAL` seconds (0 bytes: it is deep asleep).
"""

from __future__ import annotations

import asyncio
import logging
import time

from sqlalchemy import select

from spaceyard_runtime.api import Endpoint
from spaceyard_runtime.errors import RuntimeBackendError
from spaceyard_runtime.idle import should_deep_sleep, should_sleep

from .. import metrics
from ..db.models import Space
from ..gateway.routes import WakeRefused
from .running import Running, _failure
from .stages import Stage
from .state import SpaceState

log = logging.getLogger("spaceyard.deployer")

DEPTH_CHECK_INTERVAL = 30.0
"""Seconds between questions to the runtime about what a light sleeper still costs."""


class SleepWake(Running):
    # ------------------------------------------------------------------ wake (the gateway's Waker)
    async def wake(self, space_id: str) -> Endpoint:
        state = self.states.by_space_id(space_id)
        if state is None:
            raise WakeRefused("This Space does not exist", 404)
        if state.handle is not None:
            return state.handle.endpoint
        stage = state.stage
        if stage is Stage.PAUSED:
            raise WakeRefused("This Space is paused by its owner", 503, stage.value)
        if state.serving is None:
            if stage in (Stage.BUILDING, Stage.APP_STARTING, Stage.RUNNING_BUILDING):
                raise WakeRefused("This Space is being built; it will be ready soon", 503, stage.value)
            raise WakeRefused(state.reason or f"This Space has no running version ({stage})", 503, stage.value)
        if stage is Stage.RUNTIME_ERROR:
            raise WakeRefused(state.reason or "This Space failed to start", 503, stage.value)
        ready: asyncio.Future[Endpoint] = asyncio.get_running_loop().create_future()
        task = self._spawn(self._do_wake(state, ready))
        state.wakes.add(task)
        task.add_done_callback(state.wakes.discard)
        return await asyncio.shield(ready)

    async def _do_wake(self, state: SpaceState, ready: asyncio.Future[Endpoint]) -> None:
        started = time.monotonic()
        try:
            async with state.lock:
                if state.handle is not None:
                    ready.set_result(state.handle.endpoint)
                    return
                serving = state.serving
                if serving is None:  # replaced or paused while waiting for the lock
                    raise WakeRefused(state.reason or "This Space is not running", 503, state.stage.value)
                run_key = self._run_key(state.space_id, serving)
                sink = self._run_sink(run_key)
                # Stage changes are recorded off the critical path: the held visitors wait for the app only.
                starting = self._spawn(self._save_stage(state.pk, Stage.APP_STARTING, None))
                if state.suspended is not None:
                    handle = await self.runtime.resume(state.suspended, sink)
                else:
                    space = await asyncio.to_thread(self._get_space, state.pk)
                    handle = await self.runtime.start(await self._spec(space, serving), sink)
                launched = time.monotonic()
                try:
                    await self._await_ready(state.pk, handle, self._start_timeout(serving))
                except asyncio.CancelledError:  # paused or deleted while waking
                    self._spawn(self._remove_quietly(handle))
                    state.suspended = None
                    raise
                except RuntimeBackendError as exc:
                    await self.runtime.stop(handle)
                    state.suspended = None
                    await starting
                    await self._save_stage(state.pk, Stage.RUNTIME_ERROR, _failure(exc))
                    raise WakeRefused(str(exc), 503, Stage.RUNTIME_ERROR.value) from exc
                state.handle, state.suspended = handle, None
                self._publish(state, upstream=handle.endpoint, stage=Stage.RUNNING.value, version=serving.build_id)
                state.active_at = self.clock()
                ready.set_result(handle.endpoint)
                metrics.WAKES.labels(space=state.space_id, mode=handle.start_mode).inc()
                done = time.monotonic()
                metrics.WAKE_SECONDS.labels(space=state.space_id).observe(done - started)
                metrics.WAKE_PHASE_SECONDS.labels(phase="start", mode=handle.start_mode).observe(launched - started)
                metrics.WAKE_PHASE_SECONDS.labels(phase="ready", mode=handle.start_mode).observe(done - launched)
                metrics.observe_wake(state.space_id, handle.start_mode, handle.extra)
                self._watch(state, handle)
                await starting
                saved = await self._save_stage(state.pk, Stage.RUNNING, None, run_log_key=run_key)
                if saved is not None:
                    self._publish_full(saved, state)
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc if isinstance(exc, WakeRefused) else WakeRefused(f"Could not wake: {exc}", 503))
                ready.exception()  # mark retrieved: callers may all have given up
            if not isinstance(exc, Exception):
                raise

    # ------------------------------------------------------------------ sleep
    async def _idle_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.idle_check_interval)
            try:
                await self._check_idle()
            except Exception:
                log.exception("idle check")

    async def _check_idle(self) -> None:
        awake = [s for s in self.states.values() if s.handle is not None]
        light = [s for s in self.states.values() if s.handle is None and s.suspended is not None and not s.deep]
        if not awake and not light:
            return
        times = await asyncio.to_thread(self._sleep_times, [s.pk for s in awake + light])
        now = self.clock()
        for state in awake:
            if state.route is None:
                continue
            visited = self.activity.last_activity(state.space_id)
            last = state.active_at if visited is None else max(visited, state.active_at)
            if should_sleep(
                now=now,
                last_activity=last,
                sleep_time=times.get(state.pk, (None, None))[0],
                default_sleep_time=self.settings.default_sleep_time,
                stage=state.stage.value,
                in_flight=self.activity.in_flight(state.space_id),
                busy_max=self.settings.sleep_busy_max,
            ):
                await self.sleep(state.pk)
        for state in light:
            if should_deep_sleep(
                now=now,
                slept_at=state.slept_at,
                deep_sleep_after=times.get(state.pk, (None, None))[1],
                default_deep_sleep_after=self.settings.deep_sleep_after,
            ):
                await self.deep_sleep(state.pk)
            elif now - state.depth_checked_at >= DEPTH_CHECK_INTERVAL:
                await self._check_depth(state)

    async def _check_depth(self, state: SpaceState) -> None:
        """Learn whether the runtime deepened a light sleeper on its own (its memory budget)."""
        state.depth_checked_at = self.clock()
        handle = state.suspended
        if handle is None or state.deep:
            return
        try:
            cost = await self.runtime.sleep_cost(handle)
        except RuntimeBackendError:
            return
        if cost == 0 and state.suspended is handle:
            state.deep = True

    def sleep_depth(self, pk: str) -> str | None:
        """``light`` or ``deep`` for a sleeping Space (as last known), ``None`` for one that is not asleep."""
        state = self.states.get(pk)
        if state is None or state.handle is not None or state.stage is not Stage.SLEEPING:
            return None
        if state.suspended is not None and not state.deep and self.runtime.capabilities.light_sleep:
            return "light"
        return "deep"

    def _sleep_times(self, pks: list[str]) -> dict[str, tuple[int | None, int | None]]:
        """Each Space's own ``(sleep_time, deep_sleep_after)``."""
        with self.db.session() as s:
            return {
                sp.id: (sp.sleep_time, sp.deep_sleep_after) for sp in s.scalars(select(Space).where(Space.id.in_(pks)))
            }

    async def sleep(self, pk: str) -> None:
        state = self.states.get(pk)
        if state is None:
            return
        async with state.lock:
            handle = state.handle
            if handle is None:
                return
            state.handle = None
            self._publish(state, upstream=None)
            if state.monitor is not None:
                state.monitor.cancel()
            await self._save_stage(pk, Stage.SLEEPING, None)
            await self.runtime.suspend(handle)
            space = await asyncio.to_thread(self._get_space, pk)
            if space.run_log_key:
                self.log_writer.close(space.run_log_key)  # the next wake writes a new one
            state.suspended, state.deep = handle, False
            state.slept_at = self.clock()
            await self._check_depth(state)  # nothing kept (no warm parent for this app): deep at once
            metrics.SLEEPS.labels(space=state.space_id).inc()

    async def deep_sleep(self, pk: str) -> None:
        """Free what the runtime keeps for a sleeping Space's fast wake; its next wake is a cold start."""
        state = self.states.get(pk)
        if state is None:
            return
        async with state.lock:
            handle = state.suspended
            if state.handle is not None or handle is None or state.deep:
                return
            try:
                await self.runtime.deep_sleep(handle)
            except RuntimeBackendError as exc:  # tried again at the next idle check
                log.warning("deep sleep of %s: %s", state.space_id, exc)
                return
            state.deep = True
            metrics.DEEP_SLEEPS.labels(space=state.space_id).inc()
