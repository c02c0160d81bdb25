"""What every part of the deployer shares: its collaborators, the per-Space states, and the only two
writers of what others see — :meth:`LifecycleCore._save_stage` (the stage, through the stage machine)
and :meth:`LifecycleCore._publish` (the gateway's route, by value)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import replace
from pathlib import Path
from typing import Any

from sqlalchemy import select

from spaceyard_builder.logs import LogStore
from spaceyard_builder.logwriter import LogWriter
from spaceyard_runtime.api import AppSpec, Flavor, LogSink, Runtime

from .. import hostpaths, metrics, names, oplog, spacetokens, storage
from ..buildqueue import BuildQueue
from ..crypto import SecretBox
from ..db.models import Space, SpaceSecret, SpaceVariable
from ..db.session import Database
from ..gateway.activity import ActivityReader
from ..gateway.routes import RouteSpec, RouteTable
from ..repos import RepoStore
from ..settings import Settings
from .stages import Stage, check_transition
from .state import Serving, SpaceState, SpaceStates

log = logging.getLogger("spaceyard.deployer")


class NoActivity:
    """An :class:`ActivityReader` for a deployer without a gateway (tests): nobody ever visits."""

    def last_activity(self, space_id: str) -> float | None:
        return None

    def in_flight(self, space_id: str) -> int:
        return 0

    def version_used(self, space_id: str, version: str) -> float | None:
        return None


class LifecycleCore:
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
        *,
        activity: ActivityReader | None = None,
        clock: Callable[[], float] = time.monotonic,
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
        self.activity: ActivityReader = activity if activity is not None else NoActivity()
        self.clock = clock
        """The monotonic clock of idle checks and retirements (the gateway's activity uses the same)."""
        self.states = SpaceStates()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._idle_task: asyncio.Task[None] | None = None
        # counted from the truth (a running handle) at each scrape: deploys, wakes, sleeps, crashes alike
        metrics.AWAKE.set_function(lambda: sum(1 for s in self.states.values() if s.handle is not None))

    # ------------------------------------------------------------------ implemented by the other parts
    async def _deploy(self, space: Space, state: SpaceState, serving: Serving) -> None:
        raise NotImplementedError  # lifecycle.running

    # ------------------------------------------------------------------ tasks and rows
    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:  # a bug (an illegal transition...): said
            log.error("lifecycle task %s failed", task.get_coro(), exc_info=task.exception())

    def _state(self, space: Space) -> SpaceState:
        return self.states.ensure(space.id, space.space_id, space.stage, space.error_message or "")

    def _get_space(self, pk: str) -> Space:
        with self.db.session() as s:
            space = s.get(Space, pk)
            if space is None:
                raise KeyError(pk)
            return space

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

    # ------------------------------------------------------------------ the stage: one writer
    async def _save_stage(self, pk: str, stage: Stage, error: str | None = None, **fields: Any) -> Space | None:
        """Write a Space's stage (and ``fields``) if the stage machine allows the move; publish it.

        Raises :class:`~.stages.IllegalTransition` (nothing written) for a move it does not allow.
        Returns the saved row, or ``None`` if the Space is gone."""
        if error:
            error = hostpaths.for_settings(self.settings).clean(error)  # reasons are shown to visitors

        previous: list[str] = []

        def save() -> Space | None:
            with self.db.session() as s:
                space = s.get(Space, pk)
                if space is None:
                    return None
                check_transition(Stage.of(space.stage), stage)
                previous.append(space.stage)
                space.stage = stage.value
                space.error_message = error
                for k, v in fields.items():
                    setattr(space, k, v)
                return space

        space = await asyncio.to_thread(save)
        if space is not None:
            oplog.stage_changed(space.space_id, previous[0] if previous else None, stage.value, error)
            state = self.states.get(pk)
            if state is not None:
                state.stage, state.reason = stage, error or ""
                self._publish(state, stage=stage.value, reason=error or "")
        return space

    # ------------------------------------------------------------------ the route: one writer, by value
    def _publish(self, state: SpaceState, **changes: Any) -> RouteSpec | None:
        """Publish the Space's route with ``changes`` to the spec last published (none yet: nothing)."""
        if state.route is None:
            return None
        spec = replace(state.route, **changes)
        self.routes.add_route(spec)
        state.route = spec
        return spec

    def _publish_full(self, space: Space, state: SpaceState, stage: Stage | None = None) -> RouteSpec:
        """Publish the Space's route rebuilt from its row and the deployer's state (settings, a new
        version, recovery); ``stage``: the one about to be saved. The idle clock starts again from here."""
        serving = state.serving
        card = serving.config if serving else space.card_data
        static_root = None
        static_index = "index.html"
        if serving is not None and serving.sdk == "static" and serving.app_dir:
            static_root = Path(serving.app_dir)
            static_index = serving.app_file or "index.html"
        upstream = state.handle.endpoint if state.handle else None
        previous = state.previous if upstream is not None else None
        spec = RouteSpec(
            space_id=space.space_id,
            label=space.app_label,
            stage=(stage or state.stage).value,
            upstream=upstream,
            static_root=static_root,
            static_index=static_index,
            private=space.private,
            disable_embedding=bool(card.get("disable_embedding", False)),
            custom_headers=dict(card.get("custom_headers") or {}),
            reason=state.reason,
            version=serving.build_id if serving is not None and state.handle is not None else "",
            previous=previous.endpoint if previous is not None else None,
            previous_version=previous.version if previous is not None else "",
            previous_draining=previous.draining if previous is not None else False,
        )
        self.routes.add_route(spec)
        state.route = spec
        state.active_at = self.clock()
        return spec

    # ------------------------------------------------------------------ what an app gets
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
            "HF_ENDPOINT": self.settings.space_hub_url or self.settings.resolved_public_url,
        }
        env.update(variables)
        env.update(secrets)
        return env

    async def _spec(self, space: Space, serving: Serving) -> AppSpec:
        secrets, variables = await asyncio.to_thread(self._secrets_and_variables, space.id)
        hub_token = await asyncio.to_thread(spacetokens.for_space, self.db, self.settings, space.id)
        if hub_token and "HF_TOKEN" not in secrets and "HF_TOKEN" not in variables:  # the owner's own wins
            variables = {**variables, "HF_TOKEN": hub_token}
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
            slug=names.runtime_slug(space.space_id),
            source_folder=names.space_folder(space.space_id),
            storage=storage.spec_of(self.settings, space),  # persistent /data (storage.py)
        )

    def _run_sink(self, key: str) -> LogSink:
        """Where an app's output goes: queued in memory, written in batches by the log writer's thread."""
        return self.log_writer.sink(key)

    def _run_key(self, space_id: str, serving: Serving) -> str:
        return names.run_log_key(space_id, serving.build_id, int(time.time() * 1000))
