"""Test doubles for deployer logic: real subclasses of the contracts with a personality. Used only in
tests/control_plane; the features themselves are proven against real processes in tests/e2e."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from spaceyard_builder.api import BuildRequest, BuildResult
from spaceyard_runtime.api import AppHandle, AppSpec, AppState, AppStatus, Endpoint, LogSink, Runtime
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
        self._next = 0

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
        if self.crash_on_start:
            raise AppCrashed("the app exited with code 1", exit_code=1, log_tail="Traceback: boom")
        if self.pending_polls > 0:  # each wait consumes one round of waiting for a node
            self.pending_polls -= 1
            await asyncio.sleep(0.05)
            raise CapacityPending("0/3 nodes are available: 3 Insufficient nvidia.com/gpu")

    async def stop(self, handle: AppHandle, grace: float = 5.0) -> None:
        self.stopped.append(handle.backend_id)

    async def poll(self, handle: AppHandle) -> AppStatus:
        if handle.backend_id in self.exited:
            return AppStatus(AppState.EXITED, exit_code=137, message="killed")
        if self.pending_polls > 0:
            return AppStatus(AppState.PENDING, message="0/3 nodes are available: 3 Insufficient nvidia.com/gpu")
        return AppStatus(AppState.RUNNING)


class FakeQueue:
    """A build queue whose results the test releases by hand, in any order."""

    def __init__(self) -> None:
        self.submitted: list[BuildRequest] = []
        self.results: dict[str, asyncio.Future[BuildResult]] = {}

    def submit(self, request: BuildRequest) -> None:
        self.submitted.append(request)

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
