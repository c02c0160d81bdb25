"""Start, swap and retire: a built version becomes the serving one; the one it replaces is retired.

A version's start runs *outside* the Space's lock as a task of its own (``state.starting``): a push,
pause, restart or delete meanwhile does not wait for it, it cancels it (the half-started app is
stopped). Only the swap takes the lock again, and only if this build is still the latest. The replaced
version stays routed to visitors pinned to it (their session started there) until none has used it for
``version_grace`` seconds (at most :data:`RETIRE_MAX` grace periods), drains :data:`DRAIN` seconds (new
work goes to the serving version, follow-ups of the state it holds still to it), is routed to no more for
another :data:`DRAIN` seconds (what was sent to it finishes), and stops.
A monitor turns an app that dies while serving into ``RUNTIME_ERROR`` with its last lines.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging

from spaceyard_runtime.api import AppHandle
from spaceyard_runtime.errors import CapacityPending, RuntimeBackendError

from .. import metrics
from ..db.models import Space
from . import stages
from .core import LifecycleCore
from .stages import Stage
from .state import Previous, Serving, SpaceState

log = logging.getLogger("spaceyard.deployer")

RETIRE_MAX = 20
"""A replaced version is stopped at the latest this many grace periods after the swap."""
DRAIN = 1.0
"""Seconds requests already sent to a retired version get to finish before it stops."""
PENDING_POLL = 2.0
"""Seconds between polls of a start waiting for capacity (its reason may change)."""
MONITOR_POLL = 1.0
"""Seconds between polls of a serving app (one that dies becomes RUNTIME_ERROR)."""


def _failure(exc: RuntimeBackendError) -> str:
    """A failed start's reason: the error, then the app's last lines when the runtime has them."""
    return str(exc) + (f"\n{exc.log_tail}" if exc.log_tail else "")


class Running(LifecycleCore):
    async def _deploy(self, space: Space, state: SpaceState, serving: Serving) -> None:
        """Start ``serving`` and swap it in (see the module docstring)."""
        async with state.lock:
            if state.latest_build != serving.build_id:
                return
            if serving.sdk == "static":
                old = state.handle
                state.serving, state.handle, state.suspended = serving, None, None
                if not stages.allowed(state.stage, Stage.RUNNING):  # a restart after a failed build
                    await self._save_stage(space.id, Stage.APP_STARTING, None)
                self._publish_full(space, state, Stage.RUNNING)  # served at once; the stage is recorded next
                await self._save_stage(space.id, Stage.RUNNING, None, serving_build_id=serving.build_id)
                if old is not None:
                    self._spawn(self._stop_later(state, old))
                return
            self._cancel_start(state)
            await self._save_stage(space.id, stages.starting(state.handle is not None), None)
            run_key = self._run_key(space.space_id, serving)
            starting = self._spawn(self._start_version(space, state, serving, run_key))
            state.starting = starting
        try:
            handle = await asyncio.shield(starting)
        except asyncio.CancelledError:
            if not starting.cancelled():
                starting.cancel()  # we were cancelled (shutdown): the start goes too
                raise
            return  # superseded, paused or deleted while starting
        finally:
            if state.starting is starting:
                state.starting = None
        if handle is None:
            return
        async with state.lock:
            if state.latest_build != serving.build_id or self.states.get(state.pk) is not state:
                await self.runtime.remove(handle)  # superseded at the last moment
                return
            old, old_suspended, old_serving = state.handle, state.suspended, state.serving
            state.serving, state.handle, state.suspended = serving, handle, None
            if old is not None and old_serving is not None:
                state.previous = Previous(old.endpoint, old_serving.build_id)
            self._publish_full(space, state, Stage.RUNNING)  # served at once; the stage is recorded next
            self._watch(state, handle)
            await self._save_stage(
                space.id, Stage.RUNNING, None, serving_build_id=serving.build_id, run_log_key=run_key
            )
            for previous in (old, old_suspended):
                if previous is not None:
                    self._spawn(self._stop_later(state, previous))

    def _cancel_start(self, state: SpaceState, wake: bool = False) -> None:
        """Cancel a version being started (and, for pause and delete, a wake in progress)."""
        if state.starting is not None and not state.starting.done():
            state.starting.cancel()
        state.starting = None
        if wake:
            for task in list(state.wakes):
                task.cancel()

    async def _start_version(self, space: Space, state: SpaceState, serving: Serving, run_key: str) -> AppHandle | None:
        """Start a version and wait until it answers; ``None`` (stage ``RUNTIME_ERROR`` saved) if it fails.
        Cancelled, it stops whatever it started."""

        def still_latest() -> bool:
            return state.latest_build == serving.build_id and self.states.get(state.pk) is state

        spec = await self._spec(space, serving)
        started = self.clock()
        start = asyncio.ensure_future(self.runtime.start(spec, self._run_sink(run_key)))
        try:
            handle = await asyncio.shield(start)
        except asyncio.CancelledError:
            start.add_done_callback(lambda f: self._remove_started(f))
            raise
        except RuntimeBackendError as exc:
            if still_latest():
                await self._save_stage(space.id, Stage.RUNTIME_ERROR, str(exc))
            return None
        try:
            await self._await_ready(space.id, handle, self._start_timeout(serving))
        except asyncio.CancelledError:
            self._spawn(self._remove_quietly(handle))
            self.log_writer.close(run_key)
            raise
        except RuntimeBackendError as exc:
            await self.runtime.stop(handle)
            if still_latest():  # its run log is the one to read (Logs, the failure page)
                await self._save_stage(space.id, Stage.RUNTIME_ERROR, _failure(exc), run_log_key=run_key)
            self.log_writer.close(run_key)
            return None
        metrics.APP_START_SECONDS.observe(self.clock() - started)
        return handle

    def _remove_started(self, fut: asyncio.Future[AppHandle]) -> None:
        if not fut.cancelled() and fut.exception() is None:
            self._spawn(self._remove_quietly(fut.result()))

    async def _remove_quietly(self, handle: AppHandle) -> None:
        try:
            await self.runtime.remove(handle)
        except Exception:
            log.exception("stopping a cancelled start")

    async def _await_ready(self, pk: str, handle: AppHandle, timeout: float) -> None:
        """``Runtime.wait_ready``, except that waiting for capacity is a stage of its own (``SCHEDULING``
        with the scheduler's reason), does not count against the start timeout, and never fails."""
        watcher = self._spawn(self._watch_pending(pk, handle))
        try:
            while True:
                try:
                    await self.runtime.wait_ready(handle, timeout)
                    return
                except CapacityPending as exc:
                    await self._save_stage(pk, Stage.SCHEDULING, f"Waiting for hardware capacity: {exc}")
        finally:
            watcher.cancel()

    async def _watch_pending(self, pk: str, handle: AppHandle, interval: float = PENDING_POLL) -> None:
        shown = ""
        while True:
            await asyncio.sleep(interval)
            status = await self.runtime.poll(handle)
            if stages.from_app_state(status.state) is Stage.SCHEDULING and status.message != shown:
                shown = status.message
                await self._save_stage(pk, Stage.SCHEDULING, f"Waiting for hardware capacity: {status.message}")

    def _start_timeout(self, serving: Serving) -> float:
        raw = str(serving.config.get("startup_duration_timeout") or "")
        units = {"s": 1, "m": 60, "h": 3600}
        if raw and raw[-1] in units and raw[:-1].isdigit():
            return float(int(raw[:-1]) * units[raw[-1]])
        return self.settings.runtime().start_timeout

    async def _stop_later(self, state: SpaceState, handle: AppHandle) -> None:
        """Retire a replaced version (see the module docstring): the gateway says when it was last used."""
        grace = self.settings.version_grace
        started = self.clock()

        def pinned() -> Previous | None:
            previous = state.previous
            return previous if previous is not None and previous.endpoint == handle.endpoint else None

        while True:
            previous = pinned()
            used = self.activity.version_used(state.space_id, previous.version) if previous is not None else None
            last = max(started, used) if used is not None else started
            now = self.clock()
            if now - last >= grace or now - started >= RETIRE_MAX * grace:
                break
            await asyncio.sleep(max(0.05, grace - (now - last)))
        if (previous := pinned()) is not None:
            # drain: no new work, only follow-ups of what it holds (a session's stream after its join)
            state.previous = dataclasses.replace(previous, draining=True)
            if self.states.get(state.pk) is state:
                self._publish(state, previous_draining=True)
            await asyncio.sleep(DRAIN)
            if pinned() is not None:
                state.previous = None
                if self.states.get(state.pk) is state:
                    self._publish(state, previous=None, previous_version="", previous_draining=False)
            await asyncio.sleep(DRAIN)
        try:
            await self.runtime.remove(handle)
        except Exception:
            log.exception("stopping an old version of %s", state.space_id)

    # ------------------------------------------------------------------ a serving app that dies
    def _watch(self, state: SpaceState, handle: AppHandle) -> None:
        if state.monitor is not None:
            state.monitor.cancel()
        state.monitor = self._spawn(self._monitor(state, handle))

    async def _monitor(self, state: SpaceState, handle: AppHandle) -> None:
        """Turn an app that dies on its own into RUNTIME_ERROR with its last log lines."""
        while state.handle is handle:
            await asyncio.sleep(MONITOR_POLL)
            if state.handle is not handle:
                return
            status = await self.runtime.poll(handle)
            if stages.from_app_state(status.state) is Stage.RUNTIME_ERROR and state.handle is handle:
                async with state.lock:
                    if state.handle is not handle:
                        return
                    state.handle = None
                    self._publish(state, upstream=None)
                    space = await asyncio.to_thread(self._get_space, state.pk)
                    key = space.run_log_key or ""
                    await asyncio.to_thread(self.log_writer.flush)
                    entries = await asyncio.to_thread(self.log_store.tail, key, 20)
                    tail = "\n".join(e.data for e in entries)
                    self.log_writer.close(key)  # the app ended: so does its log (followers return)
                    reason = status.message or f"the app exited with code {status.exit_code}"
                    await self._save_stage(state.pk, Stage.RUNTIME_ERROR, f"{reason}\n{tail}".strip())
                    await self.runtime.stop(handle)  # what the app left behind (its children) goes too
                return
