"""The route table: which app answers for which Space, looked up in O(1) on every request.

Routes are published *by value*, as JupyterHub's ``Proxy.add_route(routespec, target, data)`` does: the
platform (:mod:`spaceyard_platform.lifecycle`, the deployer) is the only writer, and each
:meth:`RouteTable.add_route` replaces a Space's :class:`RouteSpec` — a frozen value — whole, whenever its
serving version, stage or settings change. The gateway only reads specs; it never changes one and the
deployer never reads a decision back from it. What the gateway learns by serving (last activity, open
requests, which version a visitor used) is the gateway's own: :mod:`.activity`.

A spec whose app is not awake has ``upstream=None``; the gateway then asks its :class:`Waker` (the
deployer), which returns the upstream once the app is ready (publishing the new spec first), or raises
:class:`WakeRefused` (paused, failed, building for the first time...).
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from spaceyard_runtime.api import Endpoint

from ..names import default_subdomain


def subdomain_for(space_id: str) -> str:
    """``Owner/My_Space`` -> ``owner-my-space`` (the Hub's ``*.hf.space`` rule). Not injective: a Space's
    address is its stored label (``Space.app_label``, ``RouteSpec.label``), this is only its first choice."""
    return default_subdomain(space_id)


class WakeRefused(Exception):
    """The Space will not be woken by a visit; ``status`` and ``str()`` are what the visitor gets."""

    def __init__(self, message: str, status: int = 503, stage: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.stage = stage


@dataclass(frozen=True)
class RouteSpec:
    """Where a Space's requests go, as the deployer decided it. Immutable: a change is a new spec."""

    space_id: str
    stage: str
    """The Space's stage when published (shown on the gateway's error pages)."""
    upstream: Endpoint | None = None
    static_root: Path | None = None
    """Static Spaces: files served by the gateway itself."""
    static_index: str = "index.html"
    private: bool = False
    disable_embedding: bool = False
    custom_headers: Mapping[str, str] = field(default_factory=dict)
    reason: str = ""
    version: str = ""
    """The serving version (build id). Visitors are stamped with it (cookie ``spaceyard_version``)."""
    previous: Endpoint | None = None
    """The version replaced by the last swap, kept for a grace period: a visitor whose cookie names
    ``previous_version`` still reaches it, so sessions started before the swap (Gradio event ids,
    session state) finish where their state lives."""
    previous_version: str = ""
    previous_draining: bool = False
    """The previous version is being retired: it takes no new work (a stamped visitor, a session's new
    ``queue/join`` go to the serving version), only follow-ups of state it holds (a session's event stream,
    an event id, a file), so that what was sent there just before finishes there."""
    label: str = ""
    """The Space's stored subdomain label (``Space.app_label``); empty means the Hub derivation."""

    @property
    def subdomain(self) -> str:
        return self.label or subdomain_for(self.space_id)


class Waker(Protocol):
    async def wake(self, space_id: str) -> Endpoint:
        """Make the Space's app ready, publish its new route, and return its upstream; raise
        :class:`WakeRefused` when it cannot. Called once per Space at a time (the gateway coalesces)."""
        ...


class Authorizer(Protocol):
    def can_read(self, space_id: str, token: str | None, session: str | None) -> bool:
        """Whether a visitor holding this bearer token or session cookie may see a private Space."""
        ...

    def can_read_grant(self, space_id: str, session_ref: str) -> bool:
        """Whether the web session ``session_ref`` (the stored hash of its id, as carried by an app
        access cookie, see :mod:`.access`) is still valid and may see the private Space."""
        ...


class RouteTable(abc.ABC):
    """Contract of a route table (one per platform process; the gateway reads, the deployer writes).

    * :meth:`add_route` publishes a Space's spec, replacing the previous one whole; it refuses
      (``ValueError``) a subdomain held by another Space. :meth:`remove_route` forgets a Space.
    * :meth:`by_subdomain` and :meth:`by_id` are O(1), case-insensitive, never block and never fail:
      they run on every request, on the event loop. A lookup returns the spec current at that moment;
      a request keeps the spec it found (a value), and looks again after waiting (a wake).
    * Specs are values: an implementation may copy them, and nobody mutates one.
    """

    @abc.abstractmethod
    def add_route(self, spec: RouteSpec) -> None: ...

    @abc.abstractmethod
    def remove_route(self, space_id: str) -> None: ...

    @abc.abstractmethod
    def by_subdomain(self, label: str) -> RouteSpec | None: ...

    @abc.abstractmethod
    def by_id(self, space_id: str) -> RouteSpec | None: ...

    @abc.abstractmethod
    def all(self) -> list[RouteSpec]: ...


class InMemoryRouteTable(RouteTable):
    """The route table of one platform process: two dicts."""

    def __init__(self) -> None:
        self._by_subdomain: dict[str, RouteSpec] = {}
        self._by_id: dict[str, RouteSpec] = {}

    def add_route(self, spec: RouteSpec) -> None:
        key = spec.space_id.lower()
        holder = self._by_subdomain.get(spec.subdomain)
        if holder is not None and holder.space_id.lower() != key:
            # Never let one Space take over another's address (labels are unique in the database).
            raise ValueError(f"subdomain {spec.subdomain} belongs to {holder.space_id}, not {spec.space_id}")
        old = self._by_id.get(key)
        if old is not None and old.subdomain != spec.subdomain and self._by_subdomain.get(old.subdomain) is old:
            del self._by_subdomain[old.subdomain]
        self._by_id[key] = spec
        self._by_subdomain[spec.subdomain] = spec

    def remove_route(self, space_id: str) -> None:
        spec = self._by_id.pop(space_id.lower(), None)
        if spec is not None and self._by_subdomain.get(spec.subdomain) is spec:
            del self._by_subdomain[spec.subdomain]

    def by_subdomain(self, label: str) -> RouteSpec | None:
        return self._by_subdomain.get(label.lower())

    def by_id(self, space_id: str) -> RouteSpec | None:
        return self._by_id.get(space_id.lower())

    def all(self) -> list[RouteSpec]:
        return list(self._by_id.values())
