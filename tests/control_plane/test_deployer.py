"""Deployer logic with in-process doubles: superseded builds, capacity waits, crashes, restarts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from spaceyard_builder.logs import FileLogStore
from spaceyard_platform.crypto import SecretBox
from spaceyard_platform.db.models import Space
from spaceyard_platform.db.session import Database
from spaceyard_platform.deployer import Deployer
from spaceyard_platform.gateway.routes import InMemoryRouteTable
from spaceyard_platform.repos import RepoStore
from spaceyard_platform.settings import Settings
from spaceyard_runtime.flavors import load_flavors
from tests.control_plane.doubles import FakeQueue, FakeRuntime


class World:
    def __init__(self, tmp: Path) -> None:
        self.settings = Settings(data_dir=tmp, idle_check_interval=0.05)
        self.db = Database(f"sqlite:///{tmp / 'db.sqlite'}")
        self.db.migrate()
        self.runtime = FakeRuntime()
        self.queue = FakeQueue()
        self.routes = InMemoryRouteTable()
        self.deployer = self.make_deployer()
        with self.db.session() as s:
            space = Space(owner="o", name="s", sdk="gradio", card_data={})
            s.add(space)
            s.flush()
            self.pk = space.id

    def make_deployer(self) -> Deployer:
        from cryptography.fernet import Fernet

        return Deployer(
            self.settings,
            self.db,
            RepoStore(self.settings.data_dir / "repos"),
            self.routes,
            self.runtime,
            FileLogStore(self.settings.data_dir / "logs"),
            self.queue,
            SecretBox(Fernet.generate_key()),
            load_flavors(None),
        )

    def space(self) -> Space:
        with self.db.session() as s:
            sp = s.get(Space, self.pk)
            assert sp is not None
            return sp

    async def until(self, stage: str, timeout: float = 5.0) -> Space:
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            sp = self.space()
            if sp.stage == stage:
                return sp
            await asyncio.sleep(0.02)
        raise AssertionError(f"stage {self.space().stage}, wanted {stage}")


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    w = World(tmp_path)
    await w.deployer.start()
    w.deployer.register(w.space())
    yield w
    await w.deployer.aclose()


async def test_a_newer_push_supersedes_an_older_build(world: World) -> None:
    await world.deployer.request_build(world.pk, "a" * 40)
    await world.deployer.request_build(world.pk, "b" * 40)
    old, new = world.queue.submitted
    world.queue.finish(new)
    await world.until("RUNNING")
    world.queue.finish(old)  # finishes late: must not replace the newer version
    await asyncio.sleep(0.2)
    assert [spec.revision for spec in world.runtime.started] == ["b" * 40]
    assert world.space().head_sha == "b" * 40


async def test_waiting_for_capacity_is_a_stage_of_its_own(world: World) -> None:
    world.runtime.pending_polls = 1000
    await world.deployer.request_build(world.pk, "c" * 40)
    world.queue.finish(world.queue.submitted[0])
    space = await world.until("SCHEDULING")
    assert "Insufficient nvidia.com/gpu" in (space.error_message or "")
    world.settings.default_sleep_time = 0  # even "sleep at once" never sleeps a Space waiting for capacity
    for _ in range(10):
        await asyncio.sleep(0.05)
        assert world.space().stage == "SCHEDULING"
    world.settings.default_sleep_time = 3600
    world.runtime.pending_polls = 0  # a GPU node joined
    await world.until("RUNNING")
    assert world.space().error_message is None


async def test_crash_at_start_keeps_the_serving_version(world: World) -> None:
    await world.deployer.request_build(world.pk, "d" * 40)
    world.queue.finish(world.queue.submitted[0])
    await world.until("RUNNING")
    serving = world.routes.by_id("o/s")
    assert serving is not None and serving.upstream is not None
    endpoint = serving.upstream
    world.runtime.crash_on_start = True
    await world.deployer.request_build(world.pk, "e" * 40)
    world.queue.finish(world.queue.submitted[1])
    space = await world.until("RUNTIME_ERROR")
    assert "Traceback: boom" in (space.error_message or "")
    route = world.routes.by_id("o/s")
    assert route is not None and route.upstream == endpoint


async def test_an_app_that_dies_while_serving_is_a_runtime_error(world: World) -> None:
    await world.deployer.request_build(world.pk, "f" * 40)
    world.queue.finish(world.queue.submitted[0])
    await world.until("RUNNING")
    handle = world.deployer.current_handle(world.pk)
    assert handle is not None
    world.runtime.exited.add(handle.backend_id)
    space = await world.until("RUNTIME_ERROR", timeout=5)
    assert "killed" in (space.error_message or "")


async def test_after_a_platform_restart_serving_spaces_sleep_until_visited(world: World, tmp_path: Path) -> None:
    await world.deployer.request_build(world.pk, "9" * 40)
    world.queue.finish(world.queue.submitted[0])
    await world.until("RUNNING")
    await world.deployer.aclose()
    world.routes = InMemoryRouteTable()
    world.runtime.started.clear()
    world.deployer = world.make_deployer()
    await world.deployer.start()
    assert world.space().stage == "SLEEPING"
    route = world.routes.by_id("o/s")
    assert route is not None and route.upstream is None
    endpoint = await world.deployer.wake(route.space_id)
    route = world.routes.by_id("o/s")  # the deployer published the awake route (a new value)
    assert route is not None
    assert endpoint.port > 0 and route.upstream == endpoint  # visitors are released at once
    await world.until("RUNNING")  # the stage is recorded just after
    assert [s.revision for s in world.runtime.started] == ["9" * 40]
