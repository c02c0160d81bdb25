"""Build handling: a push becomes a queued build; its result becomes a deploy or a build error.

Only the latest requested build of a Space deploys (a newer push supersedes an older build still
running). A build the queue refuses, or that does not finish in time, ends ``BUILD_ERROR`` with the
reason, never ``BUILDING`` for ever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from datetime import UTC, datetime

from spaceyard_builder.api import BuildRequest, BuildResult
from spaceyard_builder.engines import create_engine
from spaceyard_builder.errors import BuilderError
from spaceyard_builder.spaceconfig import README_PREFIX, SpaceConfig, parse_readme

from .. import metrics, names, oplog
from ..buildqueue import BuildTimeout
from ..db.models import Build, Space
from . import stages
from .core import LifecycleCore
from .stages import Stage
from .state import Serving, serving_of

log = logging.getLogger("spaceyard.deployer")


class Builds(LifecycleCore):
    async def on_push(self, pk: str, revision: str, pusher: str | None = None, no_cache: bool = False) -> str:
        """``main`` moved to ``revision`` (git push or API commit): build exactly that commit."""
        space = await asyncio.to_thread(self._get_space, pk)
        oplog.pushed(space.space_id, revision, pusher)
        return await self.request_build(pk, revision, no_cache=no_cache)

    async def request_build(self, pk: str, revision: str, no_cache: bool = False) -> str:
        build_id = uuid.uuid4().hex
        space = await asyncio.to_thread(self._get_space, pk)
        state = self._state(space)
        state.latest_build = build_id
        serving = state.handle is not None or (state.serving is not None and state.stage.serving)
        stage = stages.building(serving)
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
            stage = Stage.PAUSED
        await self._save_stage(pk, stage, None)
        request = self._build_request(space, build_id, revision, no_cache, variables, bool(secrets))
        try:
            await asyncio.to_thread(self.queue.submit, request)
        except Exception as exc:  # the broker is down or misconfigured: say so, never stay BUILDING
            log.exception("queueing build %s of %s", build_id, space.space_id)
            await self._fail_build(pk, build_id, f"could not queue the build: {exc}")
            return build_id
        self._spawn(self._await_build(pk, build_id))
        if not space.paused:
            self._spawn(self._warm_early(space, revision))
        return build_id

    async def _warm_early(self, space: Space, revision: str) -> None:
        """While the build runs, warm the Space's runtime (a warm parent) on the environment the build
        starts from, when it is already on this machine (the SDK layer, ``BuildEngine.warm_base``): a build
        that ends on it starts the app by a fork, not a cold SDK import. Not for a Space serving another
        environment (most of its pushes keep theirs). Best effort, never fails a push."""
        if not self.runtime.capabilities.light_sleep:
            return
        state = self.states.get(space.id)
        try:
            found = await asyncio.to_thread(self._warm_base, space, revision)
            if found is None:
                return
            base, config = found
            if state is not None and state.serving is not None and state.serving.artifact != base:
                return  # it serves another environment: an app-only push stays there, the warming would be waste
            app_dir = self.settings.data_dir / "sources" / names.space_folder(space.space_id)
            await asyncio.to_thread(app_dir.mkdir, mode=0o700, parents=True, exist_ok=True)  # the export's folder
            serving = Serving(
                build_id="",
                revision=revision,
                sdk=config.sdk,
                artifact=base,
                app_dir=str(app_dir / revision),
                app_file=config.effective_app_file,
                app_port=7860,
                config={},
            )
            if await self.runtime.prewarm(await self._spec(space, serving)):
                log.info("warmed %s on %s while it builds", space.space_id, base)
            if state is None or self.states.get(space.id) is not state:  # deleted meanwhile: nothing stays
                await self.runtime.forget(space.space_id)
                with contextlib.suppress(OSError):
                    app_dir.rmdir()  # the folder made above, if the build did not fill it
        except Exception:
            log.exception("warming %s while it builds", space.space_id)

    def _warm_base(self, space: Space, revision: str) -> tuple[str, SpaceConfig] | None:
        text = self.repos.read_file(space.owner, space.name, revision, "README.md", limit=README_PREFIX)
        try:
            config = parse_readme(text.decode("utf-8", errors="replace") if text is not None else None)
        except BuilderError:
            return None  # the build says why
        if config.sdk != "gradio":
            return None
        base = create_engine(self.settings.builder()).warm_base(config)
        return (base, config) if base is not None else None

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
            log_key=names.build_log_key(build_id),
            source_folder=names.space_folder(space.space_id),
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
        pending = [(s.pk, s.latest_build) for s in self.states.values() if s.latest_build]

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
                build.status, build.stage, build.reason = "failed", Stage.BUILD_ERROR.value, reason
                build.finished_at = datetime.now(UTC)
                return True

        if not await asyncio.to_thread(record):
            return
        metrics.BUILDS.labels(result=Stage.BUILD_ERROR.value).inc()
        with contextlib.suppress(Exception):
            self.log_store.append(f"build/{build_id}", f"--> BUILD_ERROR: {reason}")
            self.log_store.close(f"build/{build_id}")
        state = self.states.get(pk)
        if state is not None and state.latest_build == build_id:
            await self._save_stage(pk, Stage.BUILD_ERROR, reason)

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
            await self._save_stage(pk, Stage.of(result.stage), result.reason)
            return
        saved = await self._save_stage(pk, state.stage, None, card_data=result.config, sdk=result.sdk)
        await self._deploy(saved or space, state, serving_of(build))
