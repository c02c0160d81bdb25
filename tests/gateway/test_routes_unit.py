"""The route table contract and the gateway's own activity counters, in-process (no server)."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from spaceyard_platform.gateway.activity import ActivityTable
from spaceyard_platform.gateway.routes import InMemoryRouteTable, RouteSpec, WakeRefused
from spaceyard_platform.gateway.waking import Wakes
from spaceyard_runtime.api import Endpoint
from tests.control_plane.doubles import FakeClock


def test_routes_are_values_published_whole() -> None:
    table = InMemoryRouteTable()
    spec = RouteSpec(space_id="Ann/App", stage="RUNNING", upstream=Endpoint("127.0.0.1", 1))
    table.add_route(spec)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.stage = "PAUSED"  # type: ignore[misc]  # what this test proves: nobody can
    assert table.by_id("ann/app") is spec and table.by_subdomain("ann-app") is spec
    moved = dataclasses.replace(spec, label="ann-app-2", upstream=None)
    table.add_route(moved)
    assert table.by_subdomain("ann-app") is None and table.by_subdomain("ann-app-2") is moved
    with pytest.raises(ValueError):  # never another Space's address
        table.add_route(RouteSpec(space_id="eve/app", stage="RUNNING", label="ann-app-2"))
    table.remove_route("ANN/app")
    assert table.by_id("ann/app") is None and table.all() == []


def test_activity_is_the_gateways_own_and_read_through_a_narrow_view() -> None:
    clock = FakeClock(50.0)
    activity = ActivityTable(clock)
    assert activity.last_activity("a/b") is None and activity.in_flight("a/b") == 0
    space = activity.of("A/B")
    with space.busy():
        assert activity.in_flight("a/b") == 1
        clock.advance(5)
    assert activity.in_flight("a/b") == 0 and activity.last_activity("a/b") == 55.0  # its end is activity
    space.use_version("build-1")
    assert activity.version_used("a/b", "build-1") == 55.0 and activity.version_used("a/b", "x") is None


async def test_one_wake_however_many_visitors() -> None:
    calls: list[str] = []
    release = asyncio.Event()

    class Waker:
        async def wake(self, space_id: str) -> Endpoint:
            calls.append(space_id)
            await release.wait()
            return Endpoint("127.0.0.1", 7)

    wakes = Wakes(Waker(), wake_timeout=5)
    asleep = RouteSpec(space_id="a/b", stage="SLEEPING")
    visitors = [asyncio.create_task(wakes.endpoint(asleep)) for _ in range(5)]
    impatient = asyncio.create_task(wakes.endpoint(asleep, patience=0.01))
    with pytest.raises(TimeoutError):
        await impatient  # gave up; the wake goes on
    release.set()
    assert {e.port for e in await asyncio.gather(*visitors)} == {7}
    assert calls == ["a/b"]
    with pytest.raises(WakeRefused):
        await Wakes(None, 5).endpoint(asleep)  # no waker: a clear refusal
