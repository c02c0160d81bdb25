"""Test doubles for deployer logic: real subclasses of the contracts with a personality. Used only in
tests/control_plane; the features themselves are proven against real processes in tests/e2e."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from spaceyard_builder.api import BuildRequest, BuildResult
from spaceyard_platform.buildqueue import BuildQueue
from spaceyard_runtime.api import AppHandle, AppSpec, AppState, AppStatus, Capabilities, Endpoint, LogSink, Runtime
from spaceyard_runtime.errors import AppCrashed, CapacityPending


class FakeRuntime(Runtime):
    """Starts nothing; 'apps' are records. ``pending_polls`` makes the next start wait for capacity."""

    name = "fake"

    def __init__(self) -> None:
        self.started: list[AppSpec] = []
        self.stopped: list[str] = []
        self.exited: set[str] = set()
        self.pending_polls = 0
        self.crash_on_start = False
        self.gate: asyncio.Event | None = None
        """Set: ``wait_ready`` holds every start until the test sets the event."""
        self.removed: list[str] = []
        self.ended_previous = 0
        """How often the lifecycle asked to end what a killed predecessor left (once per start)."""
        self.deepened: list[str] = []
        """Suspended handles the lifecycle put to deep sleep (backend ids)."""
        self.costs: dict[str, int] = {}
        """What each suspended handle still holds (bytes; default 1 MiB until deepened)."""
        self._next = 0

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(light_sleep=True)

    async def deep_sleep(self, handle: AppHandle) -> None:
        self.deepened.append(handle.backend_id)
        self.costs[handle.backend_id] = 0

    async def sleep_cost(self, handle: AppHandle) -> int | None:
        return self.costs.get(handle.backend_id, 1 << 20)

    async def end_previous(self) -> None:
        self.ended_previous += 1

    async def start(self, spec: AppSpec, log: LogSink) -> AppHandle:
        self._next += 1
        self.started.append(spec)
        log(f"started {spec.revision}")
        return AppHandle(
            spec=spec,
            endpoint=Endpoint("127.0.0.1", 10000 + self._next),
            backend_id=str(self._next),
            started_at=time.time(),
        )

    async def wait_ready(self, handle: AppHandle, timeout: float) -> None:
        if self.gate is not None:
            await self.gate.wait()
        if self.crash_on_start:
            raise AppCrashed("the app exited with code 1", exit_code=1, log_tail="Traceback: boom")
        if self.pending_polls > 0:  # each wait consumes one round of waiting for a node
            self.pending_polls -= 1
            await asyncio.sleep(0.05)
            raise CapacityPending("0/3 nodes are available: 3 Insufficient nvidia.com/gpu")

    async def stop(self, handle: AppHandle, grace: float = 5.0) -> None:
        self.stopped.append(handle.backend_id)

    async def remove(self, handle: AppHandle) -> None:
        self.removed.append(handle.backend_id)
        await self.stop(handle)

    async def poll(self, handle: AppHandle) -> AppStatus:
        if handle.backend_id in self.exited:
            return AppStatus(AppState.EXITED, exit_code=137, message="killed")
        if self.pending_polls > 0:
            return AppStatus(AppState.PENDING, message="0/3 nodes are available: 3 Insufficient nvidia.com/gpu")
        return AppStatus(AppState.RUNNING)


class SurvivingRuntime(FakeRuntime):
    """Apps outlive the platform (``survives_restart``, as pods do): ``load_state`` finds the Space's last
    app again unless it was removed, it exited, or ``gone`` is set (it ended while the platform was down)."""

    def __init__(self) -> None:
        super().__init__()
        self.gone = False
        self.reattached: list[str] = []
        self._live: dict[str, AppHandle] = {}

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(reattach=True, survives_restart=True)

    async def start(self, spec: AppSpec, log: LogSink) -> AppHandle:
        handle = await super().start(spec, log)
        self._live[spec.space_id] = handle
        return handle

    async def load_state(self, spec: AppSpec, state: dict[str, Any], log: LogSink) -> AppHandle | None:
        handle = self._live.get(spec.space_id)
        if self.gone or handle is None or handle.backend_id in self.removed or handle.backend_id in self.exited:
            return None
        self.reattached.append(handle.backend_id)
        log("re-attached")
        return AppHandle(spec=spec, endpoint=handle.endpoint, backend_id=handle.backend_id, started_at=time.time())


class FakeQueue(BuildQueue):
    """A build queue whose results the test releases by hand, in any order."""

    def __init__(self) -> None:
        self.submitted: list[BuildRequest] = []
        self.requeued: list[BuildRequest] = []
        self.results: dict[str, asyncio.Future[BuildResult]] = {}
        self.refuse: Exception | None = None
        """Set: the next submits raise it (a broker that is down)."""

    def submit(self, request: BuildRequest) -> None:
        if self.refuse is not None:
            raise self.refuse
        self.submitted.append(request)

    def requeue(self, request: BuildRequest) -> bool:
        self.requeued.append(request)
        return True

    def _future(self, build_id: str) -> asyncio.Future[BuildResult]:
        if build_id not in self.results:
            self.results[build_id] = asyncio.get_event_loop().create_future()
        return self.results[build_id]

    async def result(self, build_id: str) -> BuildResult:
        return await self._future(build_id)

    def finish(self, request: BuildRequest, ok: bool = True, **kw: Any) -> None:
        fields: dict[str, Any] = {
            "build_id": request.build_id,
            "space_id": request.space_id,
            "revision": request.revision,
            "ok": ok,
            "stage": "" if ok else "BUILD_ERROR",
            "artifact": f"/envs/{request.revision}",
            "app_dir": "/src",
            "config": {"sdk": "gradio", "title": "T"},
            "sdk": "gradio",
            "app_file": "app.py",
        }
        fields.update(kw)
        self._future(request.build_id).set_result(BuildResult(**fields))


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeActivity:
    """What the gateway would have counted, set by the test (an ``ActivityReader``)."""

    def __init__(self) -> None:
        self.last: dict[str, float] = {}
        self.open: dict[str, int] = {}
        self.used: dict[tuple[str, str], float] = {}

    def last_activity(self, space_id: str) -> float | None:
        return self.last.get(space_id)

    def in_flight(self, space_id: str) -> int:
        return self.open.get(space_id, 0)

    def version_used(self, space_id: str, version: str) -> float | None:
        return self.used.get((space_id, version))
