"""The build queue: how the deployer hands a build to a worker and learns its result.

:class:`BuildQueue` is the contract (the deployer's only view of the queue); :class:`CeleryBuildQueue`
submits to Celery (the embedded SQLite broker, or Redis) and awaits results without blocking the event
loop. Waiting is bounded: a build may wait ``build_queue_timeout`` seconds for a worker to take it, then
``build_timeout`` (+ a minute) seconds once one runs it; :meth:`BuildQueue.result` raises
:class:`BuildTimeout` with the reason after that, so no Space stays ``BUILDING`` forever.
"""

from __future__ import annotations

import abc
import asyncio
import time

from celery import Celery
from celery.states import READY_STATES, STARTED

from spaceyard_builder.api import BuildRequest, BuildResult
from spaceyard_builder.settings import BuilderSettings
from spaceyard_builder.worker import BUILD_TASK, make_celery

RUN_SLACK = 60.0
"""Seconds the platform waits beyond ``build_timeout`` (the worker enforces the deadline itself)."""


class BuildTimeout(Exception):
    """The build did not finish in time; ``str()`` says why, for the Space's ``errorMessage``."""


class BuildQueue(abc.ABC):
    """Contract of a build queue.

    * :meth:`submit` enqueues a build, at most once per build id (a retried submit is the same build);
      it raises when the queue refuses it (broker down): the deployer then records ``BUILD_ERROR``.
    * :meth:`requeue` sends again a build whose worker may have died with it, and restarts its deadline;
      safe when the build is in fact still queued or running; returns whether it sent anything (a
      broker that re-delivers by itself sends nothing).
    * :meth:`result` awaits a build's :class:`~spaceyard_builder.api.BuildResult` (which may have been
      ready long ago) without blocking the event loop; a worker's crash is a failed result, never an
      exception; waiting too long raises :class:`BuildTimeout` with the reason.
    """

    @abc.abstractmethod
    def submit(self, request: BuildRequest) -> None: ...

    @abc.abstractmethod
    def requeue(self, request: BuildRequest) -> bool: ...

    @abc.abstractmethod
    async def result(self, build_id: str) -> BuildResult: ...


class CeleryBuildQueue(BuildQueue):
    """Builds as Celery tasks named ``spaceyard.build``, the task id being the build id."""

    def __init__(self, settings: BuilderSettings, poll_interval: float = 0.1) -> None:
        self.settings = settings
        self.celery: Celery = make_celery(settings)
        self.poll_interval = poll_interval
        self.redelivers = bool(settings.redis_url)
        """Redis re-delivers the message of a dead worker by itself; the embedded SQLite broker never does."""
        self._clock: dict[str, float] = {}

    def submit(self, request: BuildRequest) -> None:
        """Enqueue a build; the task id is the build id, so a retried submit is the same build."""
        self.celery.send_task(BUILD_TASK, args=[request.queue_message()], task_id=request.build_id)

    def requeue(self, request: BuildRequest) -> bool:
        """Send again a build whose worker may have died with it (a no-op where the broker re-delivers).

        Safe when the build is in fact still queued or running: the task is idempotent by build id and
        holds a per-build lock. Restarts the build's deadline. Returns whether it was sent."""
        self._clock.pop(request.build_id, None)
        if self.redelivers:
            return False
        self.submit(request)
        return True

    async def result(self, build_id: str) -> BuildResult:
        """Wait for a build's result (it may have finished long ago: results are kept)."""
        async_result = self.celery.AsyncResult(build_id)
        queued_since = time.monotonic()
        try:
            while True:
                state = await asyncio.to_thread(lambda: async_result.state)
                if state in READY_STATES:
                    break
                now = time.monotonic()
                if state == STARTED:
                    since = self._clock.setdefault(build_id, now)
                    limit = self.settings.build_timeout + RUN_SLACK
                    if now - since > limit:
                        raise BuildTimeout(
                            f"the build did not finish within {self.settings.build_timeout:g} s "
                            "(SPACEYARD_BUILD_TIMEOUT); it was stopped"
                        )
                elif now - queued_since > self.settings.build_queue_timeout:
                    raise BuildTimeout(
                        f"no build worker took the build within {self.settings.build_queue_timeout:g} s "
                        "(SPACEYARD_BUILD_QUEUE_TIMEOUT): is a worker running?"
                    )
                await asyncio.sleep(self.poll_interval)
        finally:
            self._clock.pop(build_id, None)
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
