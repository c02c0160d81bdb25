"""The local runtime's contract methods, wiring :mod:`.launch`, :mod:`.process` and :mod:`.warm` together."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from pathlib import Path
from typing import Any

from .. import hubcache, hubpath
from ..api import AppHandle, AppSpec, AppStatus, Capabilities, Endpoint, LogSink, Runtime
from ..errors import AppCrashed, AppStartError
from ..hubpath import HubPath
from ..output import startup_banner
from ..readiness import wait_for_http
from ..sandbox import NoSandbox, create_sandbox, space_uid
from ..settings import RuntimeSettings
from ..spacefiles import SpaceFiles
from ..zygote_client import ZygoteError
from . import launch
from .launch import LaunchPlan
from .process import LocalApp, Processes, end_left_over
from .warm import WarmParents, zygote_key

ANNOUNCED_PROBE = 1.0
"""Seconds between readiness probes of a forked app that will say when it listens (a safety net for an app
that serves HTTP without uvicorn: it never announces)."""


class LocalRuntime(Runtime):
    name = "local"

    @classmethod
    def start_warnings(cls, settings: RuntimeSettings) -> list[str]:
        sandbox = create_sandbox(settings.local_sandbox, settings.data_dir, settings.runtime_dir)
        if isinstance(sandbox, NoSandbox):
            return [
                "local runtime without walls (SPACEYARD_LOCAL_SANDBOX=none): every Space runs as this user, sees its "
                "files and processes and can listen on every interface. Trusted Spaces only (docs/security.md)."
            ]
        try:
            sandbox.check()
        except AppStartError as exc:
            return [f"local runtime: {exc} Apps will fail to start until this is fixed."]
        return []

    def __init__(self, settings: RuntimeSettings, *, quiet_queue: bool = True) -> None:
        """``quiet_queue``: forked Gradio apps get a queue that sleeps until work arrives instead of polling
        every millisecond (:func:`spaceyard_runtime.zygote.quiet_gradio_queue`)."""
        self.settings = settings
        self.quiet_queue = quiet_queue
        self.sandbox = create_sandbox(settings.local_sandbox, settings.data_dir, settings.runtime_dir)
        self.sandbox.cleanup()  # whatever a previous platform process on this DATA_DIR left running
        self.processes = Processes(self.sandbox)
        self.warm = WarmParents(settings, self.sandbox)
        self.files = SpaceFiles(settings.runtime_dir)

    def space_dir(self, spec: AppSpec) -> Path:
        """Per-Space writable directory (holds the app's ``HOME`` and ``TMPDIR``)."""
        return launch.space_dir(self.settings, spec)

    def plan(self, spec: AppSpec, port: int) -> LaunchPlan:
        plan = launch.plan(self.settings, spec, port)
        if self.hub is not None and self.sandbox.isolated:  # the Hub relay on the box's loopback (sandbox.py)
            plan.env["HF_ENDPOINT"] = hubpath.endpoint("127.0.0.1", self.hub.port)
            plan.env.update(hubpath.app_env(hubpath.cache_view(self.settings.runtime_dir, spec.slug)))
        return plan

    def attach_hub(self, hub: HubPath) -> None:
        self.hub = self.sandbox.hub = hub

    @staticmethod
    def zygote_key(spec: AppSpec) -> str:
        return zygote_key(spec)

    @property
    def capabilities(self) -> Capabilities:
        """Light sleep: a suspended Gradio app's warm parent stays (within ``light_sleep_memory_mib``) and
        its wake is a fork (:mod:`.warm`)."""
        return Capabilities(light_sleep=self.settings.fast_wake and self.settings.light_sleep_memory_mib > 0)

    # ------------------------------------------------------------------ start

    async def start(self, spec: AppSpec, log: LogSink) -> AppHandle:
        if (why_not := self.unavailable(spec.flavor)) is not None:
            raise AppStartError(why_not)  # never a GPU flavor run on the CPU as if it were one
        port = self.sandbox.app_port(self.settings.app_host)
        plan = self.plan(spec, port)
        if self.sandbox.isolated:
            launch.make_readable(Path(plan.cwd))
        log(startup_banner())
        uid = space_uid(spec.space_id) if self.sandbox.isolated else None
        if self.hub is not None and self.sandbox.isolated:  # preloaded files into the cache view (HF_HUB_CACHE)
            view = hubpath.cache_view(self.settings.runtime_dir, spec.slug)
            added = await asyncio.to_thread(hubcache.install_view, spec.app_dir, view)
        else:
            added = await asyncio.to_thread(hubcache.install, spec.app_dir, self.space_dir(spec) / "home", uid)
        if added:
            log(f"Hub cache: {added} preloaded file(s) (preload_from_hub)")
        self.warm.retire_others(spec)
        await self.warm.warming(spec, log)
        zygote, reason = self.warm.source(spec, plan)
        app: LocalApp | None = None
        if zygote is not None:
            try:
                app = await self.processes.spawn_fork(
                    zygote,
                    self.warm.box(zygote.key),
                    plan,
                    log,
                    quiet_queue=self.quiet_queue,
                    on_exit=lambda: self.warm.app_ended(zygote),
                )
            except ZygoteError as exc:
                reason = f"fork failed: {exc}"
            finally:
                self.warm.forked(zygote)
        if app is None:
            why = f" ({reason})" if reason else ""
            shown = " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(plan.argv))
            log(f"Cold start: {shown}{why}")
            box = self.sandbox.create(launch.box_spec(self.settings, spec, "app", Path(plan.cwd)))
            app = await self.processes.spawn_cold(box, plan, log)
        self.processes.add(app)
        return AppHandle(
            spec=spec,
            endpoint=Endpoint(self.settings.app_host, port, app.box.netns if app.box else None),
            backend_id=app.backend_id,
            started_at=time.time(),
            start_mode=app.mode,
            extra={"pid": app.pid},
        )

    async def prewarm(self, spec: AppSpec) -> bool:
        """Warm the parent that ``spec``'s apps fork from, and wait for it. ``True`` when it is ready.

        Optional: without it the first start of an environment is cold and warms the parent for the next.
        """
        return await self.warm.prewarm(spec)

    async def sleep_cost(self, handle: AppHandle) -> int | None:
        """The PSS of the warm parent a wake of ``handle`` would fork from (0: none, a cold wake)."""
        return self.warm.cost(zygote_key(handle.spec))  # one read of smaps_rollup per process: ~1 ms

    async def deep_sleep(self, handle: AppHandle) -> None:
        """End the warm parent of ``handle``'s Space (if idle): its next wake is a cold start."""
        self.warm.deepen(handle.spec)

    async def forget(self, space_id: str) -> None:
        """End the Space's warm parents (and their sandboxes)."""
        await self.warm.forget(space_id)

    async def purge(self, space_id: str, slug: str) -> None:
        await asyncio.to_thread(self.files.purge, space_id, slug)

    async def delete_volume(self, volume: str) -> None:
        await asyncio.to_thread(self.files.delete_volume, volume)

    async def volume_usage(self, volume: str) -> int | None:
        return await asyncio.to_thread(self.files.volume_usage, volume)

    # ------------------------------------------------------------------ lifecycle

    async def wait_ready(self, handle: AppHandle, timeout: float) -> None:
        app = self.processes.get(handle.backend_id)
        if app is None:
            raise AppCrashed("the app is not running", exit_code=self.processes.finished_code(handle.backend_id))
        host, port = handle.endpoint.host, handle.endpoint.port
        interval = self.settings.readiness_interval
        if app.announced is not None:  # a forked app says when it listens: no GET / to render, no probe step
            started = time.monotonic()
            netns = handle.endpoint.netns
            slow = asyncio.ensure_future(wait_for_http(host, port, app.exited, timeout, ANNOUNCED_PROBE, netns))
            try:
                either: list[asyncio.Future[Any]] = [app.announced, slow]
                await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
                if app.announced.done() and app.announced.result():
                    app.ready = True
                    return
                if slow.done():  # an app that serves without uvicorn: found by the slow probe
                    if not slow.result():  # AppStartTimeout raises here
                        raise await self.processes.crashed(app, "before answering HTTP")
                    app.ready = True
                    return
            finally:
                if not slow.done():
                    slow.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await slow
            timeout = max(timeout - (time.monotonic() - started), 0.0)  # it could not say: probe the rest
        if not await wait_for_http(host, port, app.exited, timeout, interval, handle.endpoint.netns):
            raise await self.processes.crashed(app, "before answering HTTP")
        app.ready = True
        if app.mode == "cold":  # now, not during the start: two SDK imports at once slow both down
            self.warm.after_cold_start(handle.spec)

    async def stop(self, handle: AppHandle, grace: float = 5.0) -> None:
        app = self.processes.get(handle.backend_id)
        if app is not None:
            await asyncio.shield(self.processes.stopping(app, grace))

    async def poll(self, handle: AppHandle) -> AppStatus:
        return self.processes.status(handle.backend_id)

    def get_state(self, handle: AppHandle) -> dict[str, Any]:
        state = super().get_state(handle)
        state.update(pid=handle.extra.get("pid"), start_mode=handle.start_mode)
        return state

    async def load_state(self, spec: AppSpec, state: dict[str, Any], log: LogSink) -> AppHandle | None:
        """Local apps are not re-attached: their output went to pipes of the previous platform process.

        Always ``None``. An app that process left running (same pid, port and session, still ours) is
        stopped, so that it does not hold its port and memory forever; the platform starts a new one.
        """
        await end_left_over(state.get("pid"), state.get("port"), self.settings.stop_grace)
        return None

    async def aclose(self) -> None:
        """Stop every app this runtime started, then the warm parents."""
        apps = list(self.processes.apps.values())
        await asyncio.gather(
            *(self.processes.stopping(a, self.settings.stop_grace) for a in apps), return_exceptions=True
        )
        await self.warm.aclose()
        if not self.processes.apps:
            self.sandbox.close()
