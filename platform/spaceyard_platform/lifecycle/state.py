"""The deployer's memory of each Space, keyed by database id and indexed by Space id (O(1) both ways).

Only the deployer reads and writes it. What it decides is persisted (stage, serving build) and published
to the gateway by value (a :class:`~spaceyard_platform.gateway.routes.RouteSpec`); nothing here is
read back from the gateway.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from spaceyard_runtime.api import AppHandle, Endpoint

from ..db.models import Build
from ..gateway.routes import RouteSpec
from .stages import INITIAL, Stage


@dataclass(frozen=True)
class Serving:
    """The built version a Space serves (or would serve when awake)."""

    build_id: str
    revision: str
    sdk: str
    artifact: str
    app_dir: str | None
    app_file: str
    app_port: int
    config: dict[str, Any]


def serving_of(build: Build) -> Serving:
    return Serving(
        build_id=build.id,
        revision=build.revision,
        sdk=build.sdk,
        artifact=build.artifact,
        app_dir=build.app_dir,
        app_file=build.app_file,
        app_port=build.app_port,
        config=dict(build.config or {}),
    )


@dataclass(frozen=True)
class Previous:
    """The version the last swap replaced, still routed to visitors pinned to it until it is retired."""

    endpoint: Endpoint
    version: str
    draining: bool = False
    """Being retired: it gets only follow-ups of state it holds (``RouteSpec.previous_draining``)."""


@dataclass(eq=False)
class SpaceState:
    pk: str
    space_id: str
    stage: Stage = INITIAL
    """The stage last written (the deployer is its only writer, so this is the truth)."""
    reason: str = ""
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    """Serialises lifecycle changes (deploy swap, sleep, wake, pause, restart, delete)."""
    serving: Serving | None = None
    handle: AppHandle | None = None
    suspended: AppHandle | None = None
    slept_at: float = 0.0
    """When ``suspended`` was suspended (the deployer's clock): deep sleep is counted from there."""
    deep: bool = False
    """``suspended`` is in deep sleep: the runtime keeps nothing of it (its next wake is a cold start)."""
    depth_checked_at: float = 0.0
    """When the runtime was last asked what ``suspended`` still costs (it may deepen light sleepers itself)."""
    previous: Previous | None = None
    monitor: asyncio.Task[None] | None = None
    latest_build: str | None = None
    starting: asyncio.Task[AppHandle | None] | None = None
    """A new version being started (outside the lock): cancelled by a newer deploy, pause or delete."""
    wakes: set[asyncio.Task[Any]] = field(default_factory=set)
    """Wakes in progress (one at a time in practice: the gateway coalesces): cancelled by pause, delete."""
    route: RouteSpec | None = None
    """The spec last published to the gateway."""
    active_at: float = 0.0
    """When the deployer last made the Space serve anew (published, swapped, woke): the idle clock
    starts there when no visitor came since."""


class SpaceStates:
    """Every Space's :class:`SpaceState`, by database id (``get``) and by Space id (``by_space_id``)."""

    def __init__(self) -> None:
        self._by_pk: dict[str, SpaceState] = {}
        self._by_space: dict[str, SpaceState] = {}

    def ensure(self, pk: str, space_id: str, stage: str, reason: str = "") -> SpaceState:
        """The state of a Space, created (at its stored ``stage``) the first time it is seen."""
        state = self._by_pk.get(pk)
        if state is None:
            state = self._by_pk[pk] = SpaceState(pk=pk, space_id=space_id, stage=Stage.of(stage), reason=reason)
        if state.space_id.lower() != space_id.lower() and self._by_space.get(state.space_id.lower()) is state:
            del self._by_space[state.space_id.lower()]
        state.space_id = space_id
        self._by_space[space_id.lower()] = state
        return state

    def get(self, pk: str) -> SpaceState | None:
        return self._by_pk.get(pk)

    def by_space_id(self, space_id: str) -> SpaceState | None:
        return self._by_space.get(space_id.lower())

    def pop(self, pk: str) -> SpaceState | None:
        state = self._by_pk.pop(pk, None)
        if state is not None and self._by_space.get(state.space_id.lower()) is state:
            del self._by_space[state.space_id.lower()]
        return state

    def values(self) -> list[SpaceState]:
        return list(self._by_pk.values())

    def __iter__(self) -> Iterator[SpaceState]:
        return iter(self.values())

    def __len__(self) -> int:
        return len(self._by_pk)
