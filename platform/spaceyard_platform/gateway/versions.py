"""Version stickiness across a swap: which version of a Space a request goes to.

A visitor stamped (cookie ``spaceyard_version``) with the version the last swap replaced keeps reaching
it while the deployer keeps it routed (``RouteSpec.previous``); so does a cookie-less follow-up naming
Gradio state that version holds (:mod:`.gradiostate`). Every use is recorded in the Space's
:class:`~.activity.SpaceActivity` (the deployer retires the version once unused for a while).
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
        if route.previous is not None and stamped == route.previous_version:
            activity.use_version(route.previous_version)
            return route.previous, None
        if stamped == route.version:
            return endpoint, None
    attributes = f"Path={prefix}; HttpOnly; SameSite=Lax" if prefix else cookie_attributes
    cookie = f"{VERSION_COOKIE}={route.version}; {attributes}"
    return endpoint, (b"set-cookie", cookie.encode("latin-1"))


def follow_state(scope: Scope, route: RouteSpec, activity: SpaceActivity, endpoint: Endpoint, path: str) -> Endpoint:
    """A cookie-less follow-up naming Gradio state the replaced version holds goes there."""
    if route.previous is None or endpoint == route.previous:
        return endpoint
    key = gs.state_key(scope["method"], path)
    if key is not None and activity.gradio_state.version_of(key) == route.previous_version:
        activity.use_version(route.previous_version)
        return route.previous
    return endpoint


def learn(route: RouteSpec, activity: SpaceActivity, endpoint: Endpoint, answer: bytes) -> None:
    """Remember which version holds the event ids and upload paths a Gradio answer names."""
    version = route.previous_version if endpoint == route.previous else route.version
    for key in gs.keys_in(answer):
        activity.gradio_state.remember(key, version)
