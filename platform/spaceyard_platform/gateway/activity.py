"""What the gateway learns by serving a Space, and owns: last activity, open requests and websockets,
when each version was last used, which version answered each Gradio event id.

The gateway is the only writer. The deployer reads through the narrow :class:`ActivityReader` (its idle
check and the retirement of a replaced version), never through a route. Keyed by Space id, so it
outlives any number of republished routes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from .gradiostate import StateMemo


class ActivityReader(Protocol):
    """Read-only view of the gateway's activity counters (what the deployer may ask)."""

    def last_activity(self, space_id: str) -> float | None:
        """Clock value of the last request, streamed chunk or websocket frame; ``None``: never visited."""
        ...

    def in_flight(self, space_id: str) -> int:
        """Requests and websockets open to the Space's app right now."""
        ...

    def version_used(self, space_id: str, version: str) -> float | None:
        """When a visitor was last routed to ``version`` (a replaced version still kept); ``None``: never."""
        ...


class SpaceActivity:
    """One Space's counters. ``clock`` is the table's (``time.monotonic``)."""

    __slots__ = ("_busy", "_clock", "gradio_state", "last_activity", "open", "used")

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self.last_activity: float | None = None
        self.open = 0
        self.used: dict[str, float] = {}
        self.gradio_state = StateMemo()
        """Which version answered each Gradio event id and upload path (cookie-less follow-ups, swaps)."""
        self._busy = _Busy(self)

    def touch(self) -> float:
        """Record activity (any request, streamed bytes, websocket frame); returns its time."""
        now = self.last_activity = self._clock()
        return now

    def use_version(self, version: str) -> None:
        """A visitor was routed to ``version`` (the one replaced by the last swap)."""
        if len(self.used) > 16:
            self.used.clear()
        self.used[version] = self._clock()

    def busy(self) -> _Busy:
        """Count an open request or websocket for as long as it lasts; its end is activity too
        (``with activity.busy(): ...``; one context object per Space, reentrant, nothing allocated)."""
        return self._busy


class _Busy:
    """:meth:`SpaceActivity.busy` without a generator per request (it is on every proxied request)."""

    __slots__ = ("activity",)

    def __init__(self, activity: SpaceActivity) -> None:
        self.activity = activity

    def __enter__(self) -> None:
        self.activity.open += 1

    def __exit__(self, *exc: object) -> None:
        activity = self.activity
        activity.open -= 1
        activity.touch()


class ActivityTable(ActivityReader):
    """The gateway's counters for every Space it served (an entry is a few hundred bytes)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._spaces: dict[str, SpaceActivity] = {}

    def of(self, space_id: str) -> SpaceActivity:
        key = space_id.lower()
        activity = self._spaces.get(key)
        if activity is None:
            activity = self._spaces[key] = SpaceActivity(self.clock)
        return activity

    def last_activity(self, space_id: str) -> float | None:
        activity = self._spaces.get(space_id.lower())
        return activity.last_activity if activity is not None else None

    def in_flight(self, space_id: str) -> int:
        activity = self._spaces.get(space_id.lower())
        return activity.open if activity is not None else 0

    def version_used(self, space_id: str, version: str) -> float | None:
        activity = self._spaces.get(space_id.lower())
        return activity.used.get(version) if activity is not None else None
