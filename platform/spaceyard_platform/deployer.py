"""The deployer: from a pushed commit to a serving app, and every lifecycle change after that.

It is the only writer of a Space's ``stage`` and of the gateway's routes. Per Space it keeps, in
memory, the app currently serving (an :class:`~spaceyard_runtime.api.AppHandle`) and a lock that
serialises lifecycle changes (deploy, sleep, wake, pause, restart). What it decides is persisted to the
database, so a restarted platform rebuilds its routes from there (Spaces that were serving come back
``SLEEPING`` and wake on their next visit).

Stage machine (the Hub's names)::

    push -> BUILDING (or RUNNING_BUILDING while an older version serves)
         -> CONFIG_ERROR | NO_APP_FILE | BUILD_ERROR            (older version, if any, keeps serving)
         -> APP_STARTING (RUNNING_APP_STARTING) -> RUNNING      (swap: the old version stops after)
                                                -> RUNTIME_ERROR (older version keeps serving)
    RUNNING -> SLEEPING (idle) -> RUNNING (a visit wakes it)
    any -> PAUSED (owner) -> restart -> RUNNING
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from spaceyard_builder.api import BuildRequest, BuildResult
from spaceyard_builder.logs import LogStore
from spaceyard_builder.logwriter import LogWriter
from spaceyard_runtime.api import AppHandle, AppSpec, AppState, Endpoint, Flavor, Runtime
from spaceyard_runtime.errors import CapacityPending, RuntimeBackendError
from spaceyard_runtime.idle import should_sleep

from . import diskgc, hostpaths, metrics, oplog
from .buildqueue import BuildQueue, BuildTimeout
from .crypto import SecretBox
from .db.models import Build, Space, SpaceSecret, SpaceVariable
from .db.session import Database
from .gateway.routes import Route, RouteTable, WakeRefused
from .repos import RepoStore
from .settings import Settings

log = logging.getLogger("spaceyard.deployer")

SERVING_STAGES = ("RUNNING", "RUNNING_BUILDING", "RUNNING_APP_STARTING")
RETIRE_MAX = 20
"""A replaced version is stopped at the latest this many grace periods after the swap."""
DRAIN = 1.0
"""Seconds requests already sent to a retired version get to finish before it stops."""
WAITING_STAGE = "SCHEDULING"
"""Waiting for hardware capacity (a Kubernetes pod Pending for a GPU node): never idle, never failed."""
ERROR_STAGES = ("CONFIG_ERROR", "NO_APP_FILE", "BUILD_ERROR", "RUNTIME_ERROR")
IN_PROGRESS_STAGES = ("BUILDING", "RUNNING_BUILDING", "APP_STARTING", "RUNNING_APP_STARTING", WAITING_STAGE)
"""Stages a restart may have interrupted: their build or deploy is resumed at start."""


@dataclass
class Serving:
    """The built version a Space serves (or would serve when awake)."""

    build_id: str
    revision: str
    sdk: str
    artifact: str
    app_dir: str | None
    app_file: str
    app_port: int
    config: dict[str, Any]


@dataclass
class SpaceState:
    pk: str
    space_id: str
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    serving: Serving | None = None
    handle: AppHandle | None = None
    suspended: AppHandle | None = None
    waking: asyncio.Future[Endpoint] | None = None
    monitor: asyncio.Task[None] | None = None
    latest_build: str | None = None
    starting: asyncio.Task[AppHandle | None] | None = None
    wake_task: asyncio.Task[None] | None = None
    """A new version being started (outside the lock): cancelled by a newer deploy, pause or delete."""


class Deployer:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        repos: RepoStore,
        routes: RouteTable,
        runtime: Runtime,
        log_store: LogStore,
        queue: BuildQueue,
        secretbox: SecretBox,
        flavors: dict[str, Flavor],
    ) -> None:
        self.settings = settings
        self.db = db
        self.repos = repos
        self.routes = routes
        self.runtime = runtime
        self.log_store = log_store
        self.log_writer = LogWriter(log_store)
        self.queue = queue
        self.secretbox = secretbox
        self.flavors = flavors
        self.states: dict[str, SpaceState] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._idle_task: asyncio.Task[None] | None = None
        routes.waker = self
        # counted from the truth (a running handle) at each scrape: deploys, wakes, sleeps, crashes alike
        metrics.AWAKE.set_function(lambda: sum(1 for s in list(self.states.values()) if s.handle is not None))

    # ------------------------------------------------------------------ lifecycle of the deployer
    async def start(self) -> None:
        """Rebuild routes from the database and resume what the previous process left in progress.

        Nothing runs after a restart, so a Space that was serving comes back ``SLEEPING`` (the next visit
        wakes it). Its latest build is then resumed where it stopped: still queued or running -> re-queued
        (the worker that held it may be gone) and awaited; finished but never deployed (the process
        stopped while it started, or before it learnt the result) -> deployed now, so the version that
        serves is the one the API reports."""
        spaces, builds = await asyncio.to_thread(self._load_all)
        for space in spaces:
            state = self._state(space.id, space.space_id)
            build = builds.get(space.serving_build_id or "")
            if build is not None:
                state.serving = _serving_of(build)
            latest = builds.get(space.latest_build_id or "")
            pending = latest is not None and latest.status == "queued"
            undeployed = (
                latest is not None
                and latest.status == "succeeded"
                and latest.id != space.serving_build_id
                and not space.paused
                and space.stage in IN_PROGRESS_STAGES
            )
            stage = space.stage
            if state.serving is not None and stage in SERVING_STAGES + ("APP_STARTING", "SLEEPING", WAITING_STAGE):
                stage = "SLEEPING"  # nothing runs after a restart; the next visit wakes it
            elif state.serving is None and stage in ("APP_STARTING", WAITING_STAGE) and not undeployed:
                stage = "BUILDING" if pending else space.stage
            if pending and not space.paused:
                stage = "RUNNING_BUILDING" if state.serving is not None else "BUILDING"
            self._set_route(space, stage, state)
            if stage != space.stage:
                await self._save_stage(space.id, stage, space.error_message)
            if latest is not None and pending:
                state.latest_build = latest.id
                await self._requeue_build(space, latest)
                self._spawn(self._await_build(space.id, latest.id))
            elif latest is not None and undeployed:
                state.latest_build = latest.id
                log.info("resuming the deploy of %s (build %s)", space.space_id, latest.id)
                self._spawn(self._deploy(space, state, _serving_of(latest)))
        self._idle_task = asyncio.create_task(self._idle_loop())
        if self.settings.gc_interval > 0:
            self._spawn(self._gc_loop())
        self._spawn(self._prewarm_sleeping())

    async def _prewarm_sleeping(self) -> None:
        """Warm what the next wake of each sleeping Space needs, one per artifact, in the background."""
        seen: set[str] = set()
        for state in list(self.states.values()):
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

    async def aclose(self) -> None:
        if self._idle_task:
            self._idle_task.cancel()
        for task in list(self._tasks):
            task.cancel()
        for state in self.states.values():
            for handle in (state.handle, state.suspended):
                if handle is not None:
                    try:
                        await self.runtime.remove(handle)
                    except Exception:  # shutting down: keep going
                        log.exception("stopping %s", state.space_id)
        await self.runtime.aclose()
        await asyncio.to_thread(self.log_writer.stop)

    def _load_all(self) -> tuple[list[Space], dict[str, Build]]:
        with self.db.session() as s:
            spaces = list(s.scalars(select(Space)))
            ids = {i for sp in spaces for i in (sp.serving_build_id, sp.latest_build_id) if i}
            builds = {b.id: b for b in s.scalars(select(Build).where(Build.id.in_(ids)))} if ids else {}
            return spaces, builds

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _state(self, pk: str, space_id: str) -> SpaceState:
        state = self.states.get(pk)
        if state is None:
            state = self.states[pk] = SpaceState(pk=pk, space_id=space_id)
        state.space_id = space_id
        return state

    # ------------------------------------------------------------------ persistence helpers
    def _get_space(self, pk: str) -> Space:
        with self.db.session() as s:
            space = s.get(Space, pk)
            if space is None:
                raise KeyError(pk)
            return space

    async def _save_stage(self, pk: str, stage: str, error: str | None = None, **fields: Any) -> Space | None:
        if error:
            error = hostpaths.for_settings(self.settings).clean(error)  # reasons are shown to visitors

        previous: list[str] = []

        def save() -> Space | None:
            with self.db.session() as s:
                space = s.get(Space, pk)
                if space is None:
                    return None
                previous.append(space.stage)
                space.stage = stage
                space.error_message = error
                for k, v in fields.items():
                    setattr(space, k, v)
                return space

        space = await asyncio.to_thread(save)
        if space is not None:
            oplog.stage_changed(space.space_id, previous[0] if previous else None, stage, error)
            route = self.routes.by_id(space.space_id)
            if route is not None:
                route.stage = stage
                route.reason = error or ""
        return space

    def _set_route(self, space: Space, stage: str, state: SpaceState) -> Route:
        serving = state.serving
        card = serving.config if serving else space.card_data
        static_root = None
        static_index = "index.html"
        if serving is not None and serving.sdk == "static" and serving.app_dir:
            static_root = Path(serving.app_dir)
            static_index = serving.app_file or "index.html"
        route = Route(
            space_id=space.space_id,
            label=space.app_label,
            stage=stage,
            upstream=state.handle.endpoint if state.handle else None,
            static_root=static_root,
            static_index=static_index,
            private=space.private,
            disable_embedding=bool(card.get("disable_embedding", False)),
            custom_headers=dict(card.get("custom_headers") or {}),
            reason=space.error_message or "",
            version=serving.build_id if serving is not None and state.handle is not None else "",
        )
        old = self.routes.by_id(space.space_id)
        if old is not None:  # what the gateway counts and learns outlives a rebuilt route
            route.open_requests, route.gradio_state = old.open_requests, old.gradio_state
            route.last_activity = max(route.last_activity, old.last_activity)
        if old is not None and old.previous is not None and route.upstream is not None:
            route.previous, route.previous_version = old.previous, old.previous_version
            route.previous_used = old.previous_used
        self.routes.set(route)
        return route

    def refresh_route(self, space: Space) -> None:
        """Apply changed settings (visibility, embedding) to the gateway at once."""
        state = self._state(space.id, space.space_id)
        self._set_route(space, space.stage, state)

    # ------------------------------------------------------------------ builds
    async def on_push(self, pk: str, revision: str, pusher: str | None = None, no_cache: bool = False) -> str:
        """``main`` moved to ``revision`` (git push or API commit): build exactly that commit."""
        space = await asyncio.to_thread(self._get_space, pk)
        oplog.pushed(space.space_id, revision, pusher)
        return await self.request_build(pk, revision, no_cache=no_cache)

    async def request_build(self, pk: str, revision: str, no_cache: bool = False) -> str:
        build_id = uuid.uuid4().hex
        space = await asyncio.to_thread(self._get_space, pk)
        state = self._state(pk, space.space_id)
        state.latest_build = build_id
        serving = state.handle is not None or (state.serving is not None and space.stage in SERVING_STAGES)
        stage = "RUNNING_BUILDING" if serving else "BUILDING"
        secrets, variables = await asyncio.to_thread(self._secrets_and_variables, pk)

        def record() -> None:
            with self.db.session() as s:
                s.add(Build(id=build_id, space_pk=pk, revision=revision, no_cache=no_cache))
                sp = s.get(Space, pk)
                assert sp is not None
                sp.latest_build_id = build_id
                sp.head_sha = revision
                sp.updated_at = datetime.now(UTC)

        await asyncio.to_thread(record)
        oplog.build_requested(space.space_id, build_id, revision, no_cache)
        if space.paused:
            stage = "PAUSED"
        await self._save_stage(pk, stage, None)
        request = self._build_request(space, build_id, revision, no_cache, variables, bool(secrets))
        try:
            await asyncio.to_thread(self.queue.submit, request)
        except Exception as exc:  # the broker is down or misconfigured: say so, never stay BUILDING
            log.exception("queueing build %s of %s", build_id, space.space_id)
            await self._fail_build(pk, build_id, f"could not queue the build: {exc}")
            return build_id
        self._spawn(self._await_build(pk, build_id))
        return build_id

    def _build_request(
        self,
        space: Space,
        build_id: str,
        revision: str,
        no_cache: bool,
        variables: dict[str, str],
        has_secrets: bool = True,
    ) -> BuildRequest:
        return BuildRequest(
            build_id=build_id,
            space_id=space.space_id,
            revision=revision,
            repo=str(self.repos.path(space.owner, space.name)),
            log_key=f"build/{build_id}",
            variables=variables,
            # read by the worker, never queued; only asked for when the Space has secrets
            secrets_ref=space.id if space.sdk == "docker" and has_secrets else None,
            no_cache=no_cache,
        )

    async def _requeue_build(self, space: Space, build: Build) -> None:
        secrets, variables = await asyncio.to_thread(self._secrets_and_variables, space.id)
        request = self._build_request(space, build.id, build.revision, build.no_cache, variables, bool(secrets))
        try:
            if await asyncio.to_thread(self.queue.requeue, request):
                log.info("re-queued build %s of %s", build.id, space.space_id)
        except Exception as exc:
            log.exception("re-queueing build %s", build.id)
            await self._fail_build(space.id, build.id, f"could not queue the build again: {exc}")

    async def requeue(self) -> None:
        """The build worker died: send again every latest build that has not finished (its message may
        have died with the worker). Called by the embedded worker's supervisor."""
        pending = [(s.pk, s.latest_build) for s in list(self.states.values()) if s.latest_build]

        def load() -> list[tuple[Space, Build]]:
            with self.db.session() as s:
                out = []
                for pk, build_id in pending:
                    build, space = s.get(Build, build_id), s.get(Space, pk)
                    if build is not None and space is not None and build.status == "queued":
                        out.append((space, build))
                return out

        for space, build in await asyncio.to_thread(load):
            await self._requeue_build(space, build)

    async def _fail_build(self, pk: str, build_id: str, reason: str) -> None:
        """End a build the worker will not finish: recorded failed, its log closed with the reason, and the
        Space ``BUILD_ERROR`` (an older version, if any, keeps serving)."""

        def record() -> bool:
            with self.db.session() as s:
                build = s.get(Build, build_id)
                if build is None or build.status != "queued":
                    return False
                build.status, build.stage, build.reason = "failed", "BUILD_ERROR", reason
                build.finished_at = datetime.now(UTC)
                return True

        if not await asyncio.to_thread(record):
            return
        metrics.BUILDS.labels(result="BUILD_ERROR").inc()
        with contextlib.suppress(Exception):
            self.log_store.append(f"build/{build_id}", f"--> BUILD_ERROR: {reason}")
            self.log_store.close(f"build/{build_id}")
        state = self.states.get(pk)
        if state is not None and state.latest_build == build_id:
            await self._save_stage(pk, "BUILD_ERROR", reason)

    def _secrets_and_variables(self, pk: str) -> tuple[dict[str, str], dict[str, str]]:
        with self.db.session() as s:
            secrets = {
                row.key: self.secretbox.decrypt(row.value_encrypted)
                for row in s.scalars(select(SpaceSecret).where(SpaceSecret.space_pk == pk))
            }
            variables = {
                row.key: row.value for row in s.scalars(select(SpaceVariable).where(SpaceVariable.space_pk == pk))
            }
            return secrets, variables

    async def _await_build(self, pk: str, build_id: str) -> None:
        try:
            result = await self.queue.result(build_id)
            await self._on_build_done(pk, result)
        except asyncio.CancelledError:
            raise
        except BuildTimeout as exc:
            await self._fail_build(pk, build_id, str(exc))
        except Exception as exc:
            log.exception("build %s", build_id)
            await self._fail_build(pk, build_id, f"internal error while building: {exc}")

    async def _on_build_done(self, pk: str, result: BuildResult) -> None:
        metrics.BUILDS.labels(result="ok" if result.ok else result.stage).inc()
        metrics.BUILD_SECONDS.observe(result.duration)
        oplog.build_finished(
            result.space_id, result.build_id, result.ok, result.stage, result.duration, result.cache_hit
        )

        def record() -> Build | None:
            with self.db.session() as s:
                build = s.get(Build, result.build_id)
                if build is None or build.status != "queued":
                    return None  # gone, or already ended (failed by a deadline)
                build.status = "succeeded" if result.ok else "failed"
                build.stage, build.reason = result.stage, result.reason
                build.artifact, build.app_dir = result.artifact, result.app_dir
                build.app_file, build.app_port, build.sdk = result.app_file, result.app_port, result.sdk
                build.config, build.cache_hit, build.duration = result.config, result.cache_hit, result.duration
                build.finished_at = datetime.now(UTC)
                return build

        build = await asyncio.to_thread(record)
        state = self.states.get(pk)
        if build is None or state is None or state.latest_build != result.build_id:
            return  # superseded by a newer push, or the Space is gone
        space = await asyncio.to_thread(self._get_space, pk)
        if space.paused:
            return
        if not result.ok:
            await self._save_stage(pk, result.stage, result.reason)
            return
        space = await self._save_stage(pk, space.stage, None, card_data=result.config, sdk=result.sdk) or space
        await self._deploy(space, state, _serving_of(build))

    # ------------------------------------------------------------------ running
    def _app_env(
        self, space: Space, serving: Serving, secrets: dict[str, str], variables: dict[str, str]
    ) -> dict[str, str]:
        flavor = self.flavors.get(space.hardware) or Flavor(name=space.hardware)
        apps_domain = self.settings.resolved_apps_domain
        env = {
            "SPACE_ID": space.space_id,
            "SPACE_AUTHOR_NAME": space.owner,
            "SPACE_REPO_NAME": space.name,
            "SPACE_TITLE": str(serving.config.get("title") or space.name),
            "SPACE_HOST": f"{space.app_label}.{apps_domain}",
            "SPACE_CREATOR_USER_ID": space.owner,
            "SYSTEM": "spaces",
            "ACCELERATOR": flavor.accelerator or "none",
            "CPU_CORES": f"{flavor.cpu:g}",
            "MEMORY": f"{flavor.memory_mib // 1024}Gi",
            "GRADIO_ANALYTICS_ENABLED": "False",
            "GRADIO_ALLOW_FLAGGING": "never",
            "GRADIO_NUM_PORTS": "1",
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "HF_ENDPOINT": self.settings.resolved_public_url,
        }
        env.update(variables)
        env.update(secrets)
        return env

    async def _spec(self, space: Space, serving: Serving) -> AppSpec:
        secrets, variables = await asyncio.to_thread(self._secrets_and_variables, space.id)
        return AppSpec(
            space_id=space.space_id,
            revision=serving.revision,
            sdk=serving.sdk,
            artifact=serving.artifact,
            app_file=serving.app_file,
            app_dir=Path(serving.app_dir) if serving.app_dir else None,
            app_port=serving.app_port,
            env=self._app_env(space, serving, secrets, variables),
            flavor=self.flavors.get(space.hardware) or Flavor(name=space.hardware),
        )

    def _run_sink(self, key: str) -> Any:
        """Where an app's output goes: queued in memory, written in batches by the log writer's thread."""
        return self.log_writer.sink(key)

    async def _deploy(self, space: Space, state: SpaceState, serving: Serving) -> None:
        """Start ``serving`` and swap it in. The start (which may take minutes, or hang until the start
        timeout) runs *outside* the Space's lock as its own task, ``state.starting``: a push, pause,
        restart or delete meanwhile does not wait for it, it cancels it (the half-started app is
        stopped). Only the swap takes the lock again, and only if this build is still the latest."""
        async with state.lock:
            if state.latest_build != serving.build_id:
                return
            if serving.sdk == "static":
                old = state.handle
                state.serving, state.handle, state.suspended = serving, None, None
                await self._save_stage(space.id, "RUNNING", None, serving_build_id=serving.build_id)
                self._set_route(space, "RUNNING", state)
                if old is not None:
                    self._spawn(self._stop_later(state, old))
                return
            self._cancel_start(state)
            was_serving = state.handle is not None
            await self._save_stage(space.id, "RUNNING_APP_STARTING" if was_serving else "APP_STARTING", None)
            run_key = f"run/{space.owner}--{space.name}/{serving.build_id}-{int(time.time() * 1000)}"
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
            space = (
                await self._save_stage(
                    space.id, "RUNNING", None, serving_build_id=serving.build_id, run_log_key=run_key
                )
                or space
            )
            route = self._set_route(space, "RUNNING", state)
            route.touch()
            if old is not None and old_serving is not None:
                route.previous, route.previous_version = old.endpoint, old_serving.build_id
                route.previous_used = time.monotonic()
            self._watch(state, handle)
            for previous in (old, old_suspended):
                if previous is not None:
                    self._spawn(self._stop_later(state, previous))

    def _cancel_start(self, state: SpaceState, wake: bool = False) -> None:
        """Cancel a version being started (and, for pause and delete, a wake in progress)."""
        if state.starting is not None and not state.starting.done():
            state.starting.cancel()
        state.starting = None
        if wake and state.wake_task is not None and not state.wake_task.done():
            state.wake_task.cancel()

    async def _start_version(self, space: Space, state: SpaceState, serving: Serving, run_key: str) -> AppHandle | None:
        """Start a version and wait until it answers; ``None`` (stage ``RUNTIME_ERROR`` saved) if it fails.
        Cancelled, it stops whatever it started."""

        def still_latest() -> bool:
            return state.latest_build == serving.build_id and self.states.get(state.pk) is state

        spec = await self._spec(space, serving)
        started = time.monotonic()
        start = asyncio.ensure_future(self.runtime.start(spec, self._run_sink(run_key)))
        try:
            handle = await asyncio.shield(start)
        except asyncio.CancelledError:
            start.add_done_callback(lambda f: self._remove_started(f))
            raise
        except RuntimeBackendError as exc:
            if still_latest():
                await self._save_stage(space.id, "RUNTIME_ERROR", str(exc))
            return None
        try:
            await self._await_ready(space.id, handle, self._start_timeout(serving))
        except asyncio.CancelledError:
            self._spawn(self._remove_quietly(handle))
            self.log_writer.close(run_key)
            raise
        except RuntimeBackendError as exc:
            await self.runtime.stop(handle)
            tail = getattr(exc, "log_tail", "")
            if still_latest():  # its run log is the one to read (Logs, the failure page)
                await self._save_stage(
                    space.id, "RUNTIME_ERROR", str(exc) + (f"\n{tail}" if tail else ""), run_log_key=run_key
                )
            self.log_writer.close(run_key)
            return None
        metrics.APP_START_SECONDS.observe(time.monotonic() - started)
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
                    await self._save_stage(pk, WAITING_STAGE, f"Waiting for hardware capacity: {exc}")
        finally:
            watcher.cancel()

    async def _watch_pending(self, pk: str, handle: AppHandle, interval: float = 2.0) -> None:
        shown = ""
        while True:
            await asyncio.sleep(interval)
            status = await self.runtime.poll(handle)
            if status.state is AppState.PENDING and status.message != shown:
                shown = status.message
                await self._save_stage(pk, WAITING_STAGE, f"Waiting for hardware capacity: {status.message}")

    def _start_timeout(self, serving: Serving) -> float:
        raw = str(serving.config.get("startup_duration_timeout") or "")
        units = {"s": 1, "m": 60, "h": 3600}
        if raw and raw[-1] in units and raw[:-1].isdigit():
            return float(int(raw[:-1]) * units[raw[-1]])
        return self.settings.runtime().start_timeout

    async def _stop_later(self, state: SpaceState, handle: AppHandle) -> None:
        """Retire a replaced version: visitors pinned to it (their session started there) keep reaching it
        until none has used it for ``version_grace`` seconds (at most ``RETIRE_MAX`` grace periods); then
        nobody is routed there, requests in flight get ``DRAIN`` seconds to finish, and it stops."""
        grace = self.settings.version_grace
        started = time.monotonic()
        while True:
            route = self.routes.by_id(state.space_id)
            pinned = route is not None and route.previous == handle.endpoint
            last = route.previous_used if route is not None and pinned else started
            quiet = time.monotonic() - last
            if quiet >= grace or time.monotonic() - started >= RETIRE_MAX * grace:
                break
            await asyncio.sleep(max(0.05, grace - quiet))
        route = self.routes.by_id(state.space_id)
        if route is not None and route.previous == handle.endpoint:
            route.previous, route.previous_version = None, ""
            await asyncio.sleep(DRAIN)
        try:
            await self.runtime.remove(handle)
        except Exception:
            log.exception("stopping an old version of %s", state.space_id)

    def _watch(self, state: SpaceState, handle: AppHandle) -> None:
        if state.monitor is not None:
            state.monitor.cancel()
        state.monitor = self._spawn(self._monitor(state, handle))

    async def _monitor(self, state: SpaceState, handle: AppHandle) -> None:
        """Turn an app that dies on its own into RUNTIME_ERROR with its last log lines."""
        while state.handle is handle:
            await asyncio.sleep(1.0)
            if state.handle is not handle:
                return
            status = await self.runtime.poll(handle)
            if status.state is AppState.EXITED and state.handle is handle:
                async with state.lock:
                    if state.handle is not handle:
                        return
                    state.handle = None
                    route = self.routes.by_id(state.space_id)
                    if route is not None:
                        route.upstream = None
                    space = await asyncio.to_thread(self._get_space, state.pk)
                    key = space.run_log_key or ""
                    await asyncio.to_thread(self.log_writer.flush)
                    entries = await asyncio.to_thread(self.log_store.tail, key, 20)
                    tail = "\n".join(e.data for e in entries)
                    self.log_writer.close(key)  # the app ended: so does its log (followers return)
                    reason = status.message or f"the app exited with code {status.exit_code}"
                    await self._save_stage(state.pk, "RUNTIME_ERROR", f"{reason}\n{tail}".strip())
                    await self.runtime.stop(handle)  # what the app left behind (its children) goes too
                return

    # ------------------------------------------------------------------ wake (the gateway's Waker)
    async def wake(self, route: Route) -> Endpoint:
        state = next((s for s in self.states.values() if s.space_id.lower() == route.space_id.lower()), None)
        if state is None:
            raise WakeRefused("This Space does not exist", 404)
        if state.handle is not None:
            return state.handle.endpoint
        if route.stage == "PAUSED":
            raise WakeRefused("This Space is paused by its owner", 503, "PAUSED")
        if state.serving is None:
            if route.stage in ("BUILDING", "APP_STARTING", "RUNNING_BUILDING"):
                raise WakeRefused("This Space is being built; it will be ready soon", 503, route.stage)
            raise WakeRefused(route.reason or f"This Space has no running version ({route.stage})", 503, route.stage)
        if route.stage == "RUNTIME_ERROR":
            raise WakeRefused(route.reason or "This Space failed to start", 503, route.stage)
        if state.waking is None or state.waking.done():
            state.waking = asyncio.get_running_loop().create_future()
            state.wake_task = self._spawn(self._do_wake(state))
        return await asyncio.shield(state.waking)

    async def _do_wake(self, state: SpaceState) -> None:
        fut = state.waking
        assert fut is not None
        started = time.monotonic()
        try:
            async with state.lock:
                if state.handle is not None:
                    fut.set_result(state.handle.endpoint)
                    return
                serving = state.serving
                assert serving is not None
                owner, _, name = state.space_id.partition("/")
                run_key = f"run/{owner}--{name}/{serving.build_id}-{int(time.time() * 1000)}"
                sink = self._run_sink(run_key)
                # Stage changes are recorded off the critical path: the held visitors wait for the app only.
                starting = self._spawn(self._save_stage(state.pk, "APP_STARTING", None))
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
                    tail = getattr(exc, "log_tail", "")
                    await starting
                    await self._save_stage(state.pk, "RUNTIME_ERROR", str(exc) + (f"\n{tail}" if tail else ""))
                    raise WakeRefused(str(exc), 503, "RUNTIME_ERROR") from exc
                state.handle, state.suspended = handle, None
                route = self.routes.by_id(state.space_id)
                if route is not None:
                    route.upstream, route.stage, route.version = handle.endpoint, "RUNNING", serving.build_id
                    route.touch()
                fut.set_result(handle.endpoint)
                metrics.WAKES.labels(space=state.space_id, mode=handle.start_mode).inc()
                ready = time.monotonic()
                metrics.WAKE_SECONDS.labels(space=state.space_id).observe(ready - started)
                metrics.WAKE_PHASE_SECONDS.labels(phase="start", mode=handle.start_mode).observe(launched - started)
                metrics.WAKE_PHASE_SECONDS.labels(phase="ready", mode=handle.start_mode).observe(ready - launched)
                metrics.observe_wake(state.space_id, handle.start_mode, handle.extra)
                self._watch(state, handle)
                await starting
                saved = await self._save_stage(state.pk, "RUNNING", None, run_log_key=run_key)
                if saved is not None:
                    self._set_route(saved, "RUNNING", state)
        except BaseException as exc:
            if not fut.done():
                fut.set_exception(exc if isinstance(exc, WakeRefused) else WakeRefused(f"Could not wake: {exc}", 503))
                fut.exception()  # mark retrieved: callers may all have given up
            if not isinstance(exc, Exception):
                raise

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
        if not awake:
            return
        sleep_times = await asyncio.to_thread(self._sleep_times, [s.pk for s in awake])
        now = time.monotonic()
        for state in awake:
            route = self.routes.by_id(state.space_id)
            if route is None:
                continue
            if should_sleep(
                now=now,
                last_activity=route.last_activity,
                sleep_time=sleep_times.get(state.pk),
                default_sleep_time=self.settings.default_sleep_time,
                stage=route.stage,
                in_flight=route.in_flight,
                busy_max=self.settings.sleep_busy_max,
            ):
                await self.sleep(state.pk)

    def _sleep_times(self, pks: list[str]) -> dict[str, int | None]:
        with self.db.session() as s:
            return {sp.id: sp.sleep_time for sp in s.scalars(select(Space).where(Space.id.in_(pks)))}

    async def sleep(self, pk: str) -> None:
        state = self.states.get(pk)
        if state is None:
            return
        async with state.lock:
            handle = state.handle
            if handle is None:
                return
            state.handle = None
            route = self.routes.by_id(state.space_id)
            if route is not None:
                route.upstream = None
            if state.monitor is not None:
                state.monitor.cancel()
            await self._save_stage(pk, "SLEEPING", None)
            await self.runtime.suspend(handle)
            space = await asyncio.to_thread(self._get_space, pk)
            if space.run_log_key:
                self.log_writer.close(space.run_log_key)  # the next wake writes a new one
            state.suspended = handle
            metrics.SLEEPS.labels(space=state.space_id).inc()

    # ------------------------------------------------------------------ owner actions
    async def pause(self, pk: str) -> None:
        state = self.states.get(pk)
        if state is not None:
            self._cancel_start(state, wake=True)
            async with state.lock:
                for handle in (state.handle, state.suspended):
                    if handle is not None:
                        await self.runtime.remove(handle)
                state.handle = state.suspended = None
                route = self.routes.by_id(state.space_id)
                if route is not None:
                    route.upstream = None
        await self._save_stage(pk, "PAUSED", None, paused=True)

    async def restart(self, pk: str, factory: bool = False) -> None:
        """Restart the serving version (after a pause, or with new secrets); ``factory``: rebuild without cache."""
        space = await asyncio.to_thread(self._get_space, pk)
        await asyncio.to_thread(self._unpause, pk)
        state = self._state(pk, space.space_id)
        head = await asyncio.to_thread(self.repos.head, space.owner, space.name)
        if factory or state.serving is None:
            if head:
                await self.request_build(pk, head, no_cache=factory)
            return
        async with state.lock:
            for handle in (state.handle, state.suspended):
                if handle is not None:
                    await self.runtime.remove(handle)
            state.handle = state.suspended = None
        state.latest_build = state.serving.build_id
        space = await asyncio.to_thread(self._get_space, pk)
        await self._deploy(space, state, state.serving)

    def _unpause(self, pk: str) -> None:
        with self.db.session() as s:
            sp = s.get(Space, pk)
            if sp is not None:
                sp.paused = False

    async def delete(self, pk: str) -> None:
        state = self.states.pop(pk, None)
        if state is None:
            return
        self._cancel_start(state, wake=True)
        async with state.lock:
            for handle in (state.handle, state.suspended):
                if handle is not None:
                    await self.runtime.remove(handle)
            await self.runtime.forget(state.space_id)
            state.latest_build = None
        self.routes.remove(state.space_id)
        # its exported commits go with it (environments are shared by content: kept for other Spaces)
        owner, _, name = state.space_id.partition("/")
        sources = self.settings.data_dir / "sources" / f"{owner}--{name}"
        await asyncio.to_thread(shutil.rmtree, sources, True)

    def register(self, space: Space) -> None:
        """A new Space exists: give it a route (stage only, nothing to serve yet)."""
        state = self._state(space.id, space.space_id)
        self._set_route(space, space.stage, state)

    def current_handle(self, pk: str) -> AppHandle | None:
        state = self.states.get(pk)
        return state.handle if state else None


def _serving_of(build: Build) -> Serving:
    return Serving(
        build_id=build.id,
        revision=build.revision,
        sdk=build.sdk,
        artifact=build.artifact,
        app_dir=build.app_dir,
        app_file=build.app_file,
        app_port=build.app_port,
        config=dict(build.config or {}),
    )
