"""The route table contract and the gateway's own activity counters, in-process (no server)."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from spaceyard_platform.gateway.activity import ActivityTable
from spaceyard_platform.gateway.matching import MAX_HOSTS, Matcher
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


def _scope(host: bytes, path: str = "/") -> dict[str, object]:
    return {"type": "http", "path": path, "raw_path": path.encode(), "headers": [(b"host", host)]}


def test_remembered_hosts_match_as_a_fresh_parse_and_stay_bounded() -> None:
    routes = InMemoryRouteTable()
    routes.add_route(RouteSpec(space_id="alice/app", stage="RUNNING", upstream=Endpoint("127.0.0.1", 1)))
    matcher = Matcher(routes, "apps.example:8000")
    tricky = [
        b"alice-app.apps.example:8000",
        b"ALICE-App.Apps.Example:8000",
        b"alice-app.apps.example",
        b"alice-app.apps.example:9999",  # another port of the apps domain: still the bare domain
        b"alice-app.apps.example.evil.com",  # not the apps domain
        b"x.alice-app.apps.example",  # a label with a dot is no Space's
        b"evil.com",
        b"apps.example",
        b"",
    ]
    first = [(m.route, m.host, m.label) if (m := matcher(_scope(h))) else None for h in tricky]
    again = [(m.route, m.host, m.label) if (m := matcher(_scope(h))) else None for h in tricky]
    assert first == again  # remembered == parsed
    ids = [r[0].space_id if r and r[0] else None for r in first]
    assert ids == ["alice/app"] * 4 + [None] * 5
    # a visitor sending a new Host on every request cannot grow the memo without bound
    for i in range(MAX_HOSTS * 2 + 10):
        matcher(_scope(b"h%d.apps.example" % i))
    assert len(matcher._hosts) <= MAX_HOSTS
    match = matcher(_scope(b"Alice-App.apps.example:8000"))
    assert match is not None and match.route is not None and match.route.space_id == "alice/app"
    # the route is looked up on every request: a route published later is found for a remembered host
    assert (m := matcher(_scope(b"bob-app.apps.example"))) is not None and m.route is None
    routes.add_route(RouteSpec(space_id="bob/app", stage="RUNNING", upstream=Endpoint("127.0.0.1", 2)))
    assert (m := matcher(_scope(b"bob-app.apps.example"))) is not None and m.route is not None
