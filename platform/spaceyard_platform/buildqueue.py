"""Submitting builds to the Celery queue and awaiting their results without blocking the event loop."""

from __future__ import annotations

import asyncio

from celery import Celery

from spaceyard_builder.api import BuildRequest, BuildResult
from spaceyard_builder.settings import BuilderSettings
from spaceyard_builder.worker import BUILD_TASK, make_celery


class BuildQueue:
    def __init__(self, settings: BuilderSettings, poll_interval: float = 0.1) -> None:
        self.celery: Celery = make_celery(settings)
        self.poll_interval = poll_interval

    def submit(self, request: BuildRequest) -> None:
        """Enqueue a build; the task id is the build id, so a retried submit is the same build."""
        self.celery.send_task(BUILD_TASK, args=[request.queue_message()], task_id=request.build_id)

    async def result(self, build_id: str) -> BuildResult:
        """Wait for a build's result (it may have finished long ago: results are kept)."""
        async_result = self.celery.AsyncResult(build_id)
        while True:
            ready = await asyncio.to_thread(async_result.ready)
            if ready:
                break
            await asyncio.sleep(self.poll_interval)
        value = await asyncio.to_thread(async_result.get, propagate=False)
        if isinstance(value, dict):
            return BuildResult.model_validate(value)
        return BuildResult(
            build_id=build_id,
            space_id="",
            revision="",
            ok=False,
            stage="BUILD_ERROR",
            reason=f"the build worker failed: {value!r}",
        )
