"""The lifecycle as fast unit tests: the stage machine, build -> start -> ready -> swap -> retire,
sleep/wake, restart recovery, races and failures, with a fake runtime, a fake queue, a fake clock,
the gateway's activity faked, and a SQLite database in a temporary directory.

Nothing here sleeps on the clock: the idle check and the retirement read the fake clock, which the
tests move; the background idle loop is off (the tests run the check themselves)."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from spaceyard_builder.logs import FileLogStore
from spaceyard_platform.crypto import SecretBox
from spaceyard_platform.db.models import Build, Space
from spaceyard_platform.db.session import Database
from spaceyard_platform.deployer import Deployer
from spaceyard_platform.gateway.routes import InMemoryRouteTable, RouteSpec, WakeRefused
from spaceyard_platform.lifecycle import running, sleeping, stages
from spaceyard_platform.lifecycle.recovery import recovered_stage
from spaceyard_platform.lifecycle.stages import IllegalTransition, Stage
from spaceyard_platform.repos import RepoStore
from spaceyard_platform.settings import Settings
from spaceyard_runtime.api import AppState
from spaceyard_runtime.flavors import load_flavors
from tests.control_plane.doubles import FakeActivity, FakeClock, FakeQueue, FakeRuntime, SurvivingRuntime

SPACE = "unit/lifecycle"
GRACE = 0.2


class Lab:
    """One Space, its deployer and every double; ``restart()`` is a new platform process."""

    def __init__(self, tmp: Path, schema: Path) -> None:
        self.settings = Settings(
            data_dir=tmp, idle_check_interval=3600, default_sleep_time=300, version_grace=GRACE, gc_interval=0
        )
        shutil.copyfile(schema, tmp / "db.sqlite")  # migrated once per module: Alembic takes a second
        self.db = Database(f"sqlite:///{tmp / 'db.sqlite'}")
        self.runtime = FakeRuntime()
        self.queue = FakeQueue()
        self.routes = InMemoryRouteTable()
        self.clock = FakeClock()
        self.activity = FakeActivity()
        self.key = Fernet.generate_key()
        self.deployer = self.make_deployer()
        with self.db.session() as s:
            space = Space(owner="unit", name="lifecycle", sdk="gradio", card_data={})
            s.add(space)
            s.flush()
            self.pk = space.id

    def make_deployer(self) -> Deployer:
        return Deployer(
            self.settings,
            self.db,
            RepoStore(self.settings.data_dir / "repos"),
            self.routes,
            self.runtime,
            FileLogStore(self.settings.data_dir / "logs"),
            self.queue,
            SecretBox(self.key),
            load_flavors(None),
            activity=self.activity,
            clock=self.clock,
        )

    async def restart(self) -> None:
        await self.deployer.aclose()
        self.routes = InMemoryRouteTable()
        self.deployer = self.make_deployer()
        await self.deployer.start()

    def space(self) -> Space:
        with self.db.session() as s:
            sp = s.get(Space, self.pk)
            assert sp is not None
            return sp

    def route(self) -> RouteSpec:
        route = self.routes.by_id(SPACE)
        assert route is not None
        return route

    async def until(self, stage: Stage, timeout: float = 10.0) -> Space:
        """Wait until ``stage`` is stored and published (the gateway's route says it too)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            sp = self.space()
            route = self.routes.by_id(SPACE)
            if sp.stage == stage and route is not None and route.stage == stage:
                return sp
            await asyncio.sleep(0.01)
        raise AssertionError(f"stage {self.space().stage}, wanted {stage}")

    async def push_and_build(self, revision: str) -> str:
        build_id = await self.deployer.request_build(self.pk, revision)
        self.queue.finish(self.queue.submitted[-1])
        return build_id


@pytest.fixture(scope="module")
def schema(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("schema") / "db.sqlite"
    db = Database(f"sqlite:///{path}")
    db.migrate()
    db.engine.dispose()
    return path


@pytest.fixture
async def lab(tmp_path: Path, schema: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Lab]:
    monkeypatch.setattr(running, "DRAIN", 0.0)  # a retired version stops at once
    monkeypatch.setattr(running, "MONITOR_POLL", 0.05)  # a dying app is noticed at once
    w = Lab(tmp_path, schema)
    await w.deployer.start()
    w.deployer.register(w.space())
    yield w
    await w.deployer.aclose()
    w.db.engine.dispose()


# -- the stage machine, pure ----------------------------------------------------------------------


def test_the_stage_machine_allows_the_lifecycle_and_refuses_what_is_not_one() -> None:
    path = [
        Stage.NO_APP_FILE,
        Stage.BUILDING,
        Stage.APP_STARTING,
        Stage.SCHEDULING,
        Stage.RUNNING,
        Stage.RUNNING_BUILDING,
        Stage.RUNNING_APP_STARTING,
        Stage.RUNNING,
        Stage.SLEEPING,
        Stage.APP_STARTING,
        Stage.RUNNING,
        Stage.PAUSED,
        Stage.APP_STARTING,
        Stage.RUNTIME_ERROR,
        Stage.BUILDING,
        Stage.CONFIG_ERROR,
    ]
    for old, new in zip(path, path[1:], strict=False):
        stages.check_transition(old, new)
    refused = [
        (Stage.NO_APP_FILE, Stage.RUNNING),  # nothing was built
        (Stage.BUILD_ERROR, Stage.RUNNING),
        (Stage.PAUSED, Stage.SLEEPING),
        (Stage.PAUSED, Stage.SCHEDULING),
        (Stage.PAUSED, Stage.RUNTIME_ERROR),
        (Stage.RUNNING, Stage.SCHEDULING),
        (Stage.NO_APP_FILE, Stage.SLEEPING),
        (Stage.RUNNING, Stage.STOPPED),  # a Hub stage Spaceyard never writes
    ]
    for old, new in refused:
        assert not stages.allowed(old, new), (old, new)
        with pytest.raises(IllegalTransition):
            stages.check_transition(old, new)
    assert all(stages.allowed(s, s) for s in Stage)  # a new reason, same stage


def test_stage_groups_and_the_one_mapping_from_app_states() -> None:
    assert {s for s in Stage if s.serving} == {Stage.RUNNING, Stage.RUNNING_BUILDING, Stage.RUNNING_APP_STARTING}
    assert {s for s in Stage if s.sleepable} == {Stage.RUNNING, Stage.RUNNING_BUILDING}
    assert {s for s in Stage if s.error} == {
        Stage.CONFIG_ERROR,
        Stage.NO_APP_FILE,
        Stage.BUILD_ERROR,
        Stage.RUNTIME_ERROR,
    }
    assert Stage.SCHEDULING.in_progress and not Stage.SCHEDULING.sleepable and not Stage.SCHEDULING.error
    assert stages.from_app_state(AppState.PENDING) is Stage.SCHEDULING  # a capacity wait is one thing
    assert stages.from_app_state(AppState.EXITED) is Stage.RUNTIME_ERROR
    assert stages.from_app_state(AppState.RUNNING) is Stage.RUNNING
    assert stages.from_app_state(AppState.STARTING, serving_before=True) is Stage.RUNNING_APP_STARTING
    assert Stage.of("NOT_A_STAGE") is Stage.BUILD_ERROR
    assert Stage.RUNNING == "RUNNING"  # stored and compared as the Hub's strings


def test_restart_recovery_stages() -> None:
    def after(stage: Stage, **kw: bool) -> Stage:
        flags = {"serving": False, "pending": False, "undeployed": False, "paused": False, "reattached": False, **kw}
        return recovered_stage(stage, **flags)

    assert after(Stage.RUNNING, serving=True) is Stage.SLEEPING  # nothing runs after a restart
    assert after(Stage.RUNNING_APP_STARTING, serving=True) is Stage.SLEEPING
    assert after(Stage.SCHEDULING, serving=True) is Stage.SLEEPING
    assert after(Stage.APP_STARTING, pending=True) is Stage.BUILDING
    assert after(Stage.APP_STARTING, undeployed=True) is Stage.APP_STARTING  # its deploy resumes
    assert after(Stage.RUNNING, serving=True, pending=True) is Stage.RUNNING_BUILDING
    assert after(Stage.PAUSED, serving=True, pending=True, paused=True) is Stage.PAUSED
    assert after(Stage.BUILD_ERROR, serving=True) is Stage.BUILD_ERROR  # the old version sleeps untouched
    # a runtime whose apps survive the restart (Kubernetes): the re-attached app keeps serving
    assert after(Stage.RUNNING, serving=True, reattached=True) is Stage.RUNNING
    assert after(Stage.RUNNING, serving=True, pending=True, reattached=True) is Stage.RUNNING_BUILDING


# -- the deployer -----------------------------------------------------------------------------------


async def test_an_illegal_transition_is_refused_and_nothing_is_written(lab: Lab) -> None:
    with pytest.raises(IllegalTransition):
        await lab.deployer._save_stage(lab.pk, Stage.RUNNING)  # a new Space has nothing to run
    assert lab.space().stage == Stage.NO_APP_FILE
    assert lab.route().stage == "NO_APP_FILE"


async def test_build_start_ready_swap_retire(lab: Lab) -> None:
    first = await lab.push_and_build("a" * 40)
    await lab.until(Stage.RUNNING)
    route = lab.route()
    assert route.upstream is not None and route.version == first and route.previous is None
    old_endpoint = route.upstream

    lab.runtime.gate = asyncio.Event()  # the new version starts but is not ready yet
    second = await lab.deployer.request_build(lab.pk, "b" * 40)
    assert lab.space().stage == Stage.RUNNING_BUILDING
    lab.queue.finish(lab.queue.submitted[-1])
    await lab.until(Stage.RUNNING_APP_STARTING)
    assert lab.route().upstream == old_endpoint  # the old version serves meanwhile
    lab.runtime.gate.set()
    await lab.until(Stage.RUNNING)
    swapped = lab.route()
    assert swapped.version == second and swapped.upstream != old_endpoint
    assert swapped.previous == old_endpoint and swapped.previous_version == first  # pinned visitors go there

    lab.activity.used[(SPACE, first)] = lab.clock()  # a pinned visitor used it just now
    await asyncio.sleep(GRACE * 2)
    assert lab.route().previous == old_endpoint  # in use: kept (the clock has not moved)
    lab.clock.advance(GRACE * 2)  # nobody since
    for _ in range(100):
        if lab.route().previous is None:
            break
        await asyncio.sleep(0.02)
    assert lab.route().previous is None and lab.route().upstream == swapped.upstream
    assert "1" in lab.runtime.removed  # the old version stopped
    assert lab.space().serving_build_id == second


async def test_idle_sleep_and_wake_on_the_fake_clock(lab: Lab) -> None:
    await lab.push_and_build("c" * 40)
    await lab.until(Stage.RUNNING)
    await lab.deployer._check_idle()
    assert lab.space().stage == Stage.RUNNING  # not idle yet
    lab.clock.advance(299)
    lab.activity.last[SPACE] = lab.clock()  # a visit
    lab.clock.advance(299)
    await lab.deployer._check_idle()
    assert lab.space().stage == Stage.RUNNING  # the visit reset the idle clock
    lab.activity.open[SPACE] = 1  # a request still open holds it awake past its sleep time
    lab.clock.advance(301)
    await lab.deployer._check_idle()
    assert lab.space().stage == Stage.RUNNING
    lab.activity.open[SPACE] = 0
    await lab.deployer._check_idle()
    assert lab.space().stage == Stage.SLEEPING
    assert lab.route().upstream is None and lab.deployer.current_handle(lab.pk) is None

    endpoint = await lab.deployer.wake(SPACE.upper())  # Space ids are case-insensitive
    assert lab.route().upstream == endpoint  # published before the visitors are released
    await lab.until(Stage.RUNNING)
    assert lab.space().run_log_key


async def test_deep_sleep_after_the_platforms_time_or_the_spaces_own(lab: Lab) -> None:
    lab.settings.deep_sleep_after = 600
    await lab.push_and_build("c" * 40)
    await lab.until(Stage.RUNNING)
    assert lab.deployer.sleep_depth(lab.pk) is None  # awake
    await lab.deployer.sleep(lab.pk)
    assert lab.space().stage == Stage.SLEEPING and lab.deployer.sleep_depth(lab.pk) == "light"
    lab.clock.advance(599)
    await lab.deployer._check_idle()
    assert lab.runtime.deepened == [] and lab.deployer.sleep_depth(lab.pk) == "light"
    lab.clock.advance(1)
    await lab.deployer._check_idle()
    assert lab.runtime.deepened == ["1"]  # the suspended handle, once
    assert lab.space().stage == Stage.SLEEPING and lab.deployer.sleep_depth(lab.pk) == "deep"
    await lab.deployer._check_idle()
    assert lab.runtime.deepened == ["1"]

    await lab.deployer.wake(SPACE)  # a wake from deep sleep resumes the deepened handle (a cold start)
    await lab.until(Stage.RUNNING)
    assert lab.deployer.sleep_depth(lab.pk) is None
    with lab.db.session() as s:  # the Space's own setting wins: never, then at once
        row = s.get(Space, lab.pk)
        assert row is not None
        row.deep_sleep_after = -1
    await lab.deployer.sleep(lab.pk)
    lab.clock.advance(10 * 600)
    await lab.deployer._check_idle()
    assert lab.runtime.deepened == ["1"] and lab.deployer.sleep_depth(lab.pk) == "light"
    with lab.db.session() as s:
        row = s.get(Space, lab.pk)
        assert row is not None
        row.deep_sleep_after = 0
    await lab.deployer._check_idle()
    assert lab.runtime.deepened == ["1", "2"] and lab.deployer.sleep_depth(lab.pk) == "deep"


async def test_a_light_sleeper_the_runtime_deepened_itself_shows_as_deep(lab: Lab) -> None:
    lab.settings.deep_sleep_after = -1
    await lab.push_and_build("c" * 40)
    await lab.until(Stage.RUNNING)
    await lab.deployer.sleep(lab.pk)
    lab.runtime.costs["1"] = 0  # its memory budget ended the warm parent
    await lab.deployer._check_idle()
    assert lab.deployer.sleep_depth(lab.pk) == "light"  # not asked again yet
    lab.clock.advance(sleeping.DEPTH_CHECK_INTERVAL)
    await lab.deployer._check_idle()
    assert lab.deployer.sleep_depth(lab.pk) == "deep" and lab.runtime.deepened == []


async def test_wake_is_refused_while_paused_building_or_failed(lab: Lab) -> None:
    with pytest.raises(WakeRefused) as info:
        await lab.deployer.wake("unit/nothing-here")
    assert info.value.status == 404
    await lab.deployer.request_build(lab.pk, "d" * 40)
    with pytest.raises(WakeRefused) as info:
        await lab.deployer.wake(SPACE)
    assert info.value.stage == "BUILDING"
    lab.queue.finish(lab.queue.submitted[-1])
    await lab.until(Stage.RUNNING)
    await lab.deployer.pause(lab.pk)
    assert lab.space().stage == Stage.PAUSED and lab.route().upstream is None
    with pytest.raises(WakeRefused) as info:
        await lab.deployer.wake(SPACE)
    assert info.value.stage == "PAUSED"


async def test_a_failed_wake_is_a_runtime_error_and_a_refusal(lab: Lab) -> None:
    await lab.push_and_build("e" * 40)
    await lab.until(Stage.RUNNING)
    await lab.deployer.sleep(lab.pk)
    lab.runtime.crash_on_start = True
    with pytest.raises(WakeRefused) as info:
        await lab.deployer.wake(SPACE)
    assert info.value.stage == "RUNTIME_ERROR"
    space = await lab.until(Stage.RUNTIME_ERROR)
    assert "Traceback: boom" in (space.error_message or "")  # the typed log tail of the runtime's error


async def test_push_during_wake(lab: Lab) -> None:
    first = await lab.push_and_build("1" * 40)
    await lab.until(Stage.RUNNING)
    await lab.deployer.sleep(lab.pk)
    lab.runtime.gate = asyncio.Event()
    waking = asyncio.create_task(lab.deployer.wake(SPACE))
    await lab.until(Stage.APP_STARTING)
    second = await lab.deployer.request_build(lab.pk, "2" * 40)  # pushed while the app wakes
    lab.runtime.gate.set()
    endpoint = await waking
    assert endpoint.port > 0  # the visitors got the version that woke
    lab.queue.finish(lab.queue.submitted[-1])
    for _ in range(200):
        sp = lab.space()
        if sp.serving_build_id == second and sp.stage == Stage.RUNNING:
            break
        await asyncio.sleep(0.02)
    assert lab.space().serving_build_id == second and lab.space().stage == Stage.RUNNING
    route = lab.route()
    assert route.version == second and route.previous_version == first


async def test_wake_during_swap(lab: Lab) -> None:
    first = await lab.push_and_build("3" * 40)
    await lab.until(Stage.RUNNING)
    await lab.deployer.sleep(lab.pk)
    lab.runtime.gate = asyncio.Event()
    second = await lab.push_and_build("4" * 40)
    await lab.until(Stage.APP_STARTING)  # the new version is starting (nothing serves: asleep)
    waking = asyncio.create_task(lab.deployer.wake(SPACE))  # a visitor arrives meanwhile
    await asyncio.sleep(0.05)
    lab.runtime.gate.set()
    await waking
    for _ in range(200):
        if lab.space().serving_build_id == second and lab.route().version == second:
            break
        await asyncio.sleep(0.02)
    assert lab.space().serving_build_id == second
    assert lab.route().version == second and lab.route().upstream is not None
    assert lab.route().previous_version == first  # the woken old version is retired like any other


async def test_delete_during_build_starts_nothing(lab: Lab) -> None:
    await lab.deployer.request_build(lab.pk, "5" * 40)
    with lab.db.session() as s:
        sp = s.get(Space, lab.pk)
        assert sp is not None
        s.delete(sp)
    await lab.deployer.delete(lab.pk)
    assert lab.routes.by_id(SPACE) is None
    lab.queue.finish(lab.queue.submitted[-1])  # the worker finishes anyway
    await asyncio.sleep(0.1)
    assert lab.runtime.started == []
    assert lab.deployer.states.by_space_id(SPACE) is None


async def test_delete_during_start_stops_what_it_started(lab: Lab) -> None:
    lab.runtime.gate = asyncio.Event()
    await lab.push_and_build("6" * 40)
    for _ in range(250):
        if lab.runtime.started:
            break
        await asyncio.sleep(0.02)
    await lab.deployer.delete(lab.pk)
    for _ in range(100):
        if lab.runtime.removed:
            break
        await asyncio.sleep(0.02)
    assert lab.runtime.removed == ["1"] and lab.routes.by_id(SPACE) is None


async def test_a_queue_that_refuses_is_a_build_error_not_building_for_ever(lab: Lab) -> None:
    lab.queue.refuse = ConnectionError("broker down")
    build_id = await lab.deployer.request_build(lab.pk, "7" * 40)
    space = await lab.until(Stage.BUILD_ERROR)
    assert "could not queue the build: broker down" in (space.error_message or "")
    with lab.db.session() as s:
        build = s.get(Build, build_id)
        assert build is not None and build.status == "failed"


async def test_a_failed_build_keeps_the_serving_version(lab: Lab) -> None:
    first = await lab.push_and_build("8" * 40)
    await lab.until(Stage.RUNNING)
    await lab.deployer.request_build(lab.pk, "9" * 40)
    lab.queue.finish(lab.queue.submitted[-1], ok=False, stage="CONFIG_ERROR", reason="bad README")
    space = await lab.until(Stage.CONFIG_ERROR)
    assert space.serving_build_id == first and lab.route().upstream is not None
    assert lab.route().reason == "bad README"


async def test_restart_recovery_requeues_an_unfinished_build_and_sleeps_the_serving_one(lab: Lab) -> None:
    first = await lab.push_and_build("a1" * 20)
    await lab.until(Stage.RUNNING)
    pending = await lab.deployer.request_build(lab.pk, "b2" * 20)  # never finished: the process stops
    ended_before = lab.runtime.ended_previous
    await lab.restart()
    assert lab.runtime.ended_previous == ended_before + 1  # what a killed predecessor left is ended first
    assert lab.space().stage == Stage.RUNNING_BUILDING  # the old version sleeps, the build goes on
    assert [r.build_id for r in lab.queue.requeued] == [pending]
    assert lab.route().upstream is None
    lab.queue.finish(lab.queue.submitted[-1])
    await lab.until(Stage.RUNNING)
    assert lab.space().serving_build_id == pending != first


async def _with_surviving_apps(lab: Lab) -> SurvivingRuntime:
    await lab.deployer.aclose()
    lab.runtime = surviving = SurvivingRuntime()
    lab.deployer = lab.make_deployer()
    await lab.deployer.start()
    lab.deployer.register(lab.space())
    return surviving


async def test_restart_reattaches_a_running_space_whose_app_survived_it(lab: Lab) -> None:
    surviving = await _with_surviving_apps(lab)
    await lab.push_and_build("d4" * 20)
    await lab.until(Stage.RUNNING)
    upstream, starts = lab.route().upstream, len(surviving.started)
    state = lab.deployer.states.get(lab.pk)
    handle = state.handle if state else None
    assert handle is not None
    backend_id = handle.backend_id
    await lab.restart()
    assert surviving.removed == [] and surviving.stopped == []  # the stopping process left it running
    await lab.until(Stage.RUNNING)
    assert surviving.reattached == [backend_id] and len(surviving.started) == starts  # no new app, no cold start
    assert lab.route().upstream == upstream is not None
    # the crash watch is back on the re-attached app
    surviving.exited.add(backend_id)
    await lab.until(Stage.RUNTIME_ERROR)


async def test_restart_sleeps_a_space_whose_app_did_not_survive_it(lab: Lab) -> None:
    surviving = await _with_surviving_apps(lab)
    await lab.push_and_build("e5" * 20)
    await lab.until(Stage.RUNNING)
    surviving.gone = True  # its pod was deleted while the platform was down
    await lab.restart()
    await lab.until(Stage.SLEEPING)
    assert surviving.reattached == [] and lab.route().upstream is None


async def test_restart_recovery_deploys_a_build_that_finished_but_never_served(lab: Lab) -> None:
    lab.runtime.gate = asyncio.Event()  # the start never completes before the process stops
    built = await lab.push_and_build("c3" * 20)
    await lab.until(Stage.APP_STARTING)
    lab.runtime.gate.set()
    lab.runtime.gate = None
    await lab.deployer.aclose()
    with lab.db.session() as s:  # as if the process died before it swapped
        sp = s.get(Space, lab.pk)
        assert sp is not None
        sp.stage, sp.serving_build_id = Stage.APP_STARTING.value, None
    lab.routes = InMemoryRouteTable()
    lab.deployer = lab.make_deployer()
    await lab.deployer.start()
    await lab.until(Stage.RUNNING)
    assert lab.space().serving_build_id == built and lab.route().upstream is not None


async def test_the_old_version_dying_after_a_failed_build_is_a_runtime_error(lab: Lab) -> None:
    await lab.push_and_build("d4" * 20)
    await lab.until(Stage.RUNNING)
    await lab.deployer.request_build(lab.pk, "e5" * 20)
    lab.queue.finish(lab.queue.submitted[-1], ok=False, stage="BUILD_ERROR", reason="pip failed")
    await lab.until(Stage.BUILD_ERROR)
    handle = lab.deployer.current_handle(lab.pk)
    assert handle is not None  # the old version still serves
    lab.runtime.exited.add(handle.backend_id)
    space = await lab.until(Stage.RUNTIME_ERROR)
    assert "killed" in (space.error_message or "") and lab.route().upstream is None


async def test_restarting_a_static_space_after_a_failed_build(lab: Lab) -> None:
    static: dict[str, Any] = {
        "sdk": "static",
        "artifact": "static:site",
        "app_file": "index.html",
        "config": {"sdk": "static"},
    }
    await lab.deployer.request_build(lab.pk, "f6" * 20)
    lab.queue.finish(lab.queue.submitted[-1], **static)
    await lab.until(Stage.RUNNING)
    assert lab.route().static_root == Path("/src")
    await lab.deployer.request_build(lab.pk, "a7" * 20)
    lab.queue.finish(lab.queue.submitted[-1], ok=False, stage="CONFIG_ERROR", reason="bad README")
    await lab.until(Stage.CONFIG_ERROR)
    await lab.deployer.restart(lab.pk)  # serves the last good version again
    assert lab.space().stage == Stage.RUNNING and lab.route().static_root == Path("/src")
    assert lab.runtime.started == []  # static files need no app
