"""The route table: which app answers for which Space, looked up in O(1) on every request.

The platform (:mod:`spaceyard_platform.deployer`) is the only writer: it :meth:`RouteTable.set`\\ s a
:class:`Route` whenever a Space's serving version, stage or settings change; the gateway only reads.
Changes apply to the next request, with nothing restarted. A route is found by subdomain label
(``owner-name``) or by ``(owner, name)`` for the path form ``/apps/OWNER/NAME/``.

A route whose app is not awake has ``upstream=None``; the gateway then calls the table's
:class:`Waker` (the deployer), which returns the upstream once the app is ready, holding the request
meanwhile, or raises :class:`WakeRefused` (paused, failed, building for the first time...).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from spaceyard_runtime.api import Endpoint

from ..names import default_subdomain
from .access import AppAccess
from .gradiostate import StateMemo


def subdomain_for(space_id: str) -> str:
    """``Owner/My_Space`` -> ``owner-my-space`` (the Hub's ``*.hf.space`` rule). Not injective: a Space's
    address is its stored label (``Space.app_label``, ``Route.label``), this is only its first choice."""
    return default_subdomain(space_id)


class WakeRefused(Exception):
    """The Space will not be woken by a visit; ``status`` and ``str()`` are what the visitor gets."""

    def __init__(self, message: str, status: int = 503, stage: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.stage = stage


@dataclass
class Route:
    space_id: str
    stage: str
    upstream: Endpoint | None = None
    static_root: Path | None = None
    """Static Spaces: files served by the gateway itself."""
    static_index: str = "index.html"
    private: bool = False
    disable_embedding: bool = False
    custom_headers: dict[str, str] = field(default_factory=dict)
    last_activity: float = field(default_factory=time.monotonic)
    reason: str = ""
    version: str = ""
    """The serving version (build id). Visitors are stamped with it (cookie ``spaceyard_version``)."""
    previous: Endpoint | None = None
    """The version replaced by the last swap, kept for a grace period: a visitor whose cookie names
    ``previous_version`` still reaches it, so sessions started before the swap (Gradio event ids,
    session state) finish where their state lives."""
    previous_version: str = ""
    previous_used: float = 0.0
    """When a visitor was last routed to ``previous`` (monotonic); it is retired once unused for a while."""
    label: str = ""
    """The Space's stored subdomain label (``Space.app_label``); empty means the Hub derivation."""

    @property
    def subdomain(self) -> str:
        return self.label or subdomain_for(self.space_id)

    gradio_state: StateMemo = field(default_factory=StateMemo)
    """Which version answered each Gradio event id and upload path (cookie-less follow-ups, swaps)."""
    open_requests: list[int] = field(default_factory=lambda: [0])
    """Requests and websockets open to the app right now (one counter shared by the successive Route
    objects of a Space, so a route rebuilt mid-request keeps counting): the idle check waits for them."""

    @property
    def in_flight(self) -> int:
        return self.open_requests[0]

    def touch(self) -> None:
        """Record activity (any request, streamed bytes, websocket frame)."""
        self.last_activity = time.monotonic()

    @contextmanager
    def busy(self) -> Iterator[None]:
        """Count an open request or websocket for as long as it lasts; its end is activity too."""
        counter = self.open_requests
        counter[0] += 1
        try:
            yield
        finally:
            counter[0] -= 1
            self.touch()


class Waker(Protocol):
    async def wake(self, route: Route) -> Endpoint:
        """Make the route's app ready and return its upstream; raise WakeRefused when it cannot."""
        ...


class Authorizer(Protocol):
    def can_read(self, space_id: str, token: str | None, session: str | None) -> bool:
        """Whether a visitor holding this bearer token or session cookie may see a private Space."""
        ...

    def can_read_grant(self, space_id: str, session_ref: str) -> bool:
        """Whether the web session ``session_ref`` (the stored hash of its id, as carried by an app
        access cookie, see :mod:`.access`) is still valid and may see the private Space."""
        ...


class RouteTable:
    def __init__(self) -> None:
        self._by_subdomain: dict[str, Route] = {}
        self._by_id: dict[str, Route] = {}
        self.waker: Waker | None = None
        self.authorizer: Authorizer | None = None
        self.access: AppAccess | None = None
        """Tickets and access cookies for private apps in browsers (set by the platform, which holds
        the secret key); without it private apps answer only to tokens."""

    def set(self, route: Route) -> None:
        old = self._by_id.get(route.space_id.lower())
        if old is not None:
            route.last_activity = max(route.last_activity, old.last_activity)
            if old.subdomain != route.subdomain and self._by_subdomain.get(old.subdomain) is old:
                del self._by_subdomain[old.subdomain]
        holder = self._by_subdomain.get(route.subdomain)
        if holder is not None and holder.space_id.lower() != route.space_id.lower():
            # Never let one Space take over another's address (labels are unique in the database).
            raise ValueError(f"subdomain {route.subdomain} belongs to {holder.space_id}, not {route.space_id}")
        self._by_id[route.space_id.lower()] = route
        self._by_subdomain[route.subdomain] = route

    def remove(self, space_id: str) -> None:
        route = self._by_id.pop(space_id.lower(), None)
        if route is not None and self._by_subdomain.get(route.subdomain) is route:
            del self._by_subdomain[route.subdomain]

    def by_subdomain(self, label: str) -> Route | None:
        return self._by_subdomain.get(label.lower())

    def by_id(self, space_id: str) -> Route | None:
        return self._by_id.get(space_id.lower())

    def all(self) -> list[Route]:
        return list(self._by_id.values())
