"""The gateway: an ASGI middleware in front of the platform app that serves the Spaces.

``Gateway(app, routes, settings)`` wraps the platform's FastAPI app. A request for a Space is
answered here; everything else goes to ``app`` untouched. A Space is addressed by

* subdomain: ``Host: OWNER-NAME.<apps_domain>`` (the port may be left out), the app at ``/``;
* path: ``/apps/OWNER/NAME/...``, the prefix stripped before the app sees the path
  (``/apps/OWNER/NAME`` redirects to the slash form).

Origins. App code never runs on the platform's origin: a browser navigation to the path form is
redirected to the subdomain form (path and query kept), and every response served on the path form
(to API clients: ``gradio_client``, curl) carries ``Content-Security-Policy: sandbox`` and none of
the app's ``Set-Cookie``. On its own origin an app's cookies are made host-only. The platform's own
responses refuse to be framed by anything but the platform (``frame-ancestors 'self'``).

Credentials. ``Authorization``, ``x-hf-authorization`` and the platform's cookies are used for the
access decision and stripped for every Space (:func:`.headers.filter_request_headers`). A browser
opening a private app without access is sent through the platform's sign-in hop (:mod:`.access`).

Per request, in order, each step a module of its own: route lookup (:mod:`.matching`, two dict
lookups), access check for private Spaces (:mod:`.gatekeeper`; 404 as for an unknown Space
otherwise), wake when the app is asleep (:mod:`.waking`: held up to ``wake_timeout``; concurrent
visitors share one wake), the version a visitor sticks to across a swap (:mod:`.versions`), then
either static files (:mod:`.static`) or the relay to the app (:mod:`.relay`: pooled keep-alive
HTTP/1.1 on llhttp, ~2x the throughput of aiohttp's client here, see ``docs/benchmarks.md``;
websockets through aiohttp). What the gateway learns while serving (activity, open requests, which
version was used) is kept in its own :mod:`.activity` table; routes are values it only reads.

Collaborators are given at construction: the route table, the activity table, the :class:`~.routes.Waker`
(the deployer), the :class:`~.routes.Authorizer` and the app access tickets (:class:`~.access.AppAccess`).
"""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter

from ..settings import Settings
from . import access as acc
from . import gradiostate as gs
from . import headers as hdr
from . import offline, pages, versions, websocket
from .activity import ActivityTable
from .asgi import ASGIApp, Message, Receive, Scope, Send
from .gatekeeper import Gatekeeper
from .matching import Match, Matcher
from .relay import Relay
from .responses import header, is_navigation, platform_send, redirect_to_slash, with_headers
from .routes import Authorizer, RouteTable, Waker, WakeRefused
from .static import StaticSites
from .waking import Wakes

NAVIGATION_PATIENCE = 1.0
"""Seconds a browser navigation to a waking Space waits before it gets the self-reloading page."""

_REQUESTS: Counter | None = None


def requests_counter() -> Counter:
    """``spaceyard_gateway_requests_total{space}``, in the platform's registry (served at ``/metrics``)."""
    global _REQUESTS
    if _REQUESTS is None:
        try:
            from ..metrics import REGISTRY as registry
        except ImportError:  # pragma: no cover - the platform's metrics module is optional here
            from prometheus_client import REGISTRY as registry
        try:
            _REQUESTS = Counter(
                "spaceyard_gateway_requests", "Requests for Spaces the gateway answered.", ["space"], registry=registry
            )
        except ValueError:  # already registered (module reloaded): count without exporting
            _REQUESTS = Counter("spaceyard_gateway_requests", "", ["space"], registry=None)
    return _REQUESTS


class Gateway:
    """ASGI middleware serving Spaces in front of ``app``; see the module docstring."""

    def __init__(
        self,
        app: ASGIApp,
        routes: RouteTable,
        settings: Settings,
        *,
        activity: ActivityTable | None = None,
        waker: Waker | None = None,
        authorizer: Authorizer | None = None,
        access: acc.AppAccess | None = None,
    ) -> None:
        self.app = app
        self.routes = routes
        self.settings = settings
        self.activity = activity if activity is not None else ActivityTable()
        self.match = Matcher(routes, settings.resolved_apps_domain)
        self._public_url = settings.resolved_public_url
        self.gatekeeper = Gatekeeper(
            authorizer, access, public_url=self._public_url, apps_domain=settings.resolved_apps_domain
        )
        self._cookie_attributes = acc.cookie_attributes(
            acc.secure_origin(self._public_url, settings.resolved_apps_domain)
        )
        self.wakes = Wakes(waker, settings.wake_timeout)
        self.relay = Relay(settings)
        self._static = StaticSites()
        self._counters: dict[str, Any] = {}

    # -- ASGI entry point -------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http" or kind == "websocket":
            await self.dispatch(scope, receive, send, self.match(scope))
        elif kind == "lifespan":
            await self._lifespan(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def dispatch(self, scope: Scope, receive: Receive, send: Send, match: Match | None) -> None:
        """An HTTP or websocket request already matched (``self.match(scope)``; ``None``: the platform's),
        so a wrapper that needs the match (:class:`~.timing.GatewayMetrics`) does not match twice."""
        if match is None:
            await self.app(scope, receive, platform_send(send) if scope["type"] == "http" else send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send, match)
        else:
            await self._websocket(scope, receive, send, match)

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_wrapper(message: Message) -> None:
            if message["type"] in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
                await self.aclose()
            await send(message)

        await self.app(scope, receive, send_wrapper)

    async def aclose(self) -> None:
        """Close the upstream connections (called on lifespan shutdown)."""
        await self.relay.aclose()

    def _count(self, space_id: str) -> None:
        counter = self._counters.get(space_id)
        if counter is None:
            counter = self._counters[space_id] = requests_counter().labels(space_id)
        counter.inc()

    # -- HTTP -------------------------------------------------------------------------------------

    async def _http(self, scope: Scope, receive: Receive, send: Send, match: Match) -> None:
        route = match.route
        head = scope["method"] == "HEAD"
        proxied_send = send  # the relay sets the path form's headers itself (hdr.response_headers)
        if match.prefix:
            if header(scope, b"sec-fetch-mode") == b"navigate" and scope["method"] in ("GET", "HEAD"):
                await self.gatekeeper.to_own_origin(scope, send, match)  # whether the Space exists or not
                return
            send = with_headers(send, [hdr.SANDBOX], drop=hdr.PATH_FORM_DROP, additive=True)
        elif match.path == acc.AUTH_PATH:
            await self.gatekeeper.sign_in(scope, send, match)
            return
        if match.path == offline.EMBED_PATH and scope["method"] in ("GET", "HEAD"):
            await offline.send_embed_script(send, head=scope["method"] == "HEAD")
            return
        if route is None or not self.gatekeeper.allowed(scope, route, match):
            if not match.prefix and self.gatekeeper.access is not None and is_navigation(scope):
                await self.gatekeeper.hop(scope, send, match)  # unknown Spaces too: the hop tells nothing
            else:
                await pages.not_found(send, header(scope, b"accept"), head)
            return
        if match.prefix and not match.path:
            await redirect_to_slash(scope, send)
            return
        activity = self.activity.of(route.space_id)
        activity.touch()
        self._count(route.space_id)
        extra = (
            hdr.route_headers(route.custom_headers, route.disable_embedding, self._public_url)
            if route.custom_headers or route.disable_embedding
            else []
        )
        if route.static_root is not None:
            await self._static.serve(
                scope,
                receive,
                with_headers(send, extra),
                route.static_root,
                route.static_index,
                match.path,
                match.prefix,
            )
            return
        body: bytes | None = None
        if scope["method"] == "POST":
            body, receive = await gs.held_body("POST", match.path, scope["headers"], receive)  # a session's join
        try:
            endpoint = route.upstream  # awake: no wait (and no coroutine) on the hot path
            if endpoint is None:
                patience = NAVIGATION_PATIENCE if is_navigation(scope) else None
                endpoint = await self.wakes.endpoint(route, patience)
                # woken: the deployer published the route it serves now
                route = self.routes.by_id(route.space_id) or route
            if route.version:
                endpoint, stamp = versions.pin_version(
                    scope, route, activity, endpoint, match.prefix, self._cookie_attributes
                )
                if stamp is not None:
                    extra = [*extra, stamp]
                endpoint = versions.follow_state(scope, route, activity, endpoint, match.path, body)
        except WakeRefused as exc:
            await pages.send_page(
                send,
                exc.status,
                f"{route.space_id} is not running",
                str(exc) or "This Space cannot be started right now.",
                accept=header(scope, b"accept"),
                stage=exc.stage or route.stage,
                head=head,
            )
            return
        except TimeoutError:
            # a browser gets a page that reloads itself while the wake goes on; API clients retry later
            title, message, retry, refresh = (
                ("is waking up", "This Space was asleep and is starting; this page reloads by itself.", b"1", 1)
                if is_navigation(scope)
                else ("is starting", "The Space is taking long to start; try again in a few seconds.", b"5", None)
            )
            await pages.send_page(
                send,
                503,
                f"{route.space_id} {title}",
                message,
                accept=header(scope, b"accept"),
                stage=route.stage,
                extra_headers=[(b"retry-after", retry)],
                head=head,
                refresh=refresh,
            )
            return
        if not match.prefix and is_navigation(scope):  # a page load: no call to the Hub from it
            proxied_send = offline.without_space_id(proxied_send, route.space_id)
        on_answer = None
        if gs.learns(scope["method"], match.path):
            spec, answered_by = route, endpoint

            def on_answer(answer: bytes) -> None:
                versions.learn(spec, activity, answered_by, answer)

        with activity.busy():  # an open request keeps its Space awake (the deployer's idle check)
            await self.relay.http(
                scope,
                receive,
                proxied_send,
                match,
                route.space_id,
                route.stage,
                route.disable_embedding,
                activity,
                endpoint,
                extra,
                on_answer,
            )

    # -- websockets -------------------------------------------------------------------------------

    async def _websocket(self, scope: Scope, receive: Receive, send: Send, match: Match) -> None:
        route = match.route
        if route is None or not self.gatekeeper.allowed(scope, route, match) or route.static_root is not None:
            await websocket.deny(scope, send, 404, b"There is no Space at this address.")
            return
        activity = self.activity.of(route.space_id)
        activity.touch()
        self._count(route.space_id)
        try:
            endpoint = await self.wakes.endpoint(route)
        except WakeRefused as exc:
            await websocket.deny(scope, send, exc.status, str(exc).encode())
            return
        except TimeoutError:
            await websocket.deny(scope, send, 503, b"The Space is still starting.")
            return
        with activity.busy():  # an open websocket keeps its Space awake, quiet or not
            await self.relay.websocket(scope, receive, send, match, endpoint, activity)


__all__ = ["Gateway", "requests_counter"]
