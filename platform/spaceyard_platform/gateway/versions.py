"""Version stickiness across a swap: which version of a Space a request goes to.

A visitor stamped (cookie ``spaceyard_version``) with the version the last swap replaced keeps reaching
it while the deployer keeps it routed (``RouteSpec.previous``); so does a cookie-less follow-up naming
Gradio state that version holds (:mod:`.gradiostate`). When the deployer retires it, it first *drains*
(``RouteSpec.previous_draining``): new work goes to the serving version, follow-ups of state still go to
the previous one, so a call whose ``queue/join`` reached it gets its event stream from it too. Every use
is recorded in the Space's :class:`~.activity.SpaceActivity` (the deployer retires the version once
unused for a while).
"""

from __future__ import annotations

from spaceyard_runtime.api import Endpoint

from . import gradiostate as gs
from . import headers as hdr
from .activity import SpaceActivity
from .asgi import Scope
from .routes import RouteSpec

VERSION_COOKIE = "spaceyard_version"


def pin_version(
    scope: Scope, route: RouteSpec, activity: SpaceActivity, endpoint: Endpoint, prefix: str, cookie_attributes: str
) -> tuple[Endpoint, tuple[bytes, bytes] | None]:
    """The stamped visitor's version, or the serving one with a ``Set-Cookie`` stamping it when the
    visitor's stamp is missing or stale."""
    stamped: str | None = None
    for name, value in scope["headers"]:
        if name == b"cookie":
            stamped = hdr.cookie_value(value, VERSION_COOKIE)
            break
    if stamped is not None:
        if route.previous is not None and stamped == route.previous_version and not route.previous_draining:
            activity.use_version(route.previous_version)
            return route.previous, None
        if stamped == route.version:
            return endpoint, None
    attributes = f"Path={prefix}; HttpOnly; SameSite=Lax" if prefix else cookie_attributes
    cookie = f"{VERSION_COOKIE}={route.version}; {attributes}"
    return endpoint, (b"set-cookie", cookie.encode("latin-1"))


def follow_state(
    scope: Scope, route: RouteSpec, activity: SpaceActivity, endpoint: Endpoint, path: str, body: bytes | None = None
) -> Endpoint:
    """A cookie-less follow-up naming Gradio state the replaced version holds goes there; a queue session a
    ``queue/join`` names (``body``: its held-back JSON, :func:`gradiostate.held_body`) is remembered with the
    version it is sent to. While the previous version drains, a new ``queue/join`` is new work: it goes to the
    serving version, and the session with it."""
    draining_join = route.previous_draining and gs.is_join(scope["method"], path)
    if route.previous is not None and endpoint != route.previous and not draining_join:
        key = gs.state_key(scope["method"], path, scope.get("query_string") or b"", body)
        if key is not None and activity.gradio_state.version_of(key) == route.previous_version:
            activity.use_version(route.previous_version)
            endpoint = route.previous
    version = route.previous_version if endpoint == route.previous else route.version
    for key in gs.asked_keys(scope["method"], path, body):
        activity.gradio_state.remember(key, version)
    return endpoint


def learn(route: RouteSpec, activity: SpaceActivity, endpoint: Endpoint, answer: bytes) -> None:
    """Remember which version holds the event ids and upload paths a Gradio answer names."""
    version = route.previous_version if endpoint == route.previous else route.version
    for key in gs.keys_in(answer):
        activity.gradio_state.remember(key, version)
