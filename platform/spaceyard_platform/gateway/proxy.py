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

Per request, in order: route lookup (two dict lookups), access check for private Spaces (404 as for
an unknown Space otherwise), wake when the app is asleep (held up to ``wake_timeout``; concurrent
visitors share one wake), then either static files or a streamed proxy to the app. Plain HTTP goes
through :mod:`.upstream` (pooled keep-alive HTTP/1.1 on llhttp; ~2x the throughput of aiohttp's
client here, see ``docs/benchmarks.md``), with no buffering: each chunk is forwarded as it arrives
and each send is awaited, so a slow visitor slows the app down instead of filling memory; a visitor
leaving mid-stream closes the app's connection. Websockets are relayed by :mod:`.websocket`
(aiohttp client).

Forwarded headers: hop-by-hop headers removed both ways; ``X-Forwarded-For/Proto/Host`` set; for the
path form ``X-Forwarded-Prefix`` and ``X-Gradio-Server`` (the app's public root as a full URL, which
Gradio uses to build its URLs). Gradio 6.31 prefers ``X-Forwarded-Host`` over ``X-Gradio-Server``
and drops the prefix when it sees it (``gradio/route_utils.py:get_request_origin``), so the path form
sends no ``X-Forwarded-Host``; the ``Host`` header is the visitor's in both forms.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, quote, urlencode

import aiohttp
from prometheus_client import Counter
from yarl import URL

from spaceyard_runtime import netns
from spaceyard_runtime.api import Endpoint

from ..settings import Settings
from . import access as acc
from . import gradiostate as gs
from . import headers as hdr
from . import offline, pages, websocket
from .asgi import ASGIApp, Message, Receive, Scope, Send
from .routes import Route, RouteTable, WakeRefused, subdomain_for
from .static import StaticSites
from .upstream import UpstreamConnection, UpstreamError, UpstreamPool, UpstreamTimeout

VERSION_COOKIE = "spaceyard_version"
NAVIGATION_PATIENCE = 1.0
"""Seconds a browser navigation to a waking Space waits before it gets the self-reloading page."""
log = logging.getLogger("spaceyard.gateway")
_LABEL = re.compile(r"[a-z0-9][a-z0-9-]{0,200}")

GRANT_TTL = 5.0
"""Seconds a 'yes' from the authorizer is reused for the same Space and credentials, so the many
requests of one page load of a private Space cost one authorizer (database) call, not dozens."""

PLATFORM_FRAMING: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", b"frame-ancestors 'self'"),
    (b"x-frame-options", b"SAMEORIGIN"),
)
"""Added to every response of the platform itself: no app (nor any other site) may frame its pages."""

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


class _Match:
    __slots__ = ("host", "label", "path", "prefix", "raw_path", "route")

    def __init__(
        self, route: Route | None, host: str, prefix: str, path: str, raw_path: bytes, label: str = ""
    ) -> None:
        self.route = route
        self.host = host
        self.prefix = prefix
        """``/apps/OWNER/NAME`` on the path form, ``""`` on the app's own origin."""
        self.path = path
        self.raw_path = raw_path
        self.label = label
        """The subdomain label (``owner-name``) of the subdomain form."""


class Gateway:
    """ASGI middleware serving Spaces in front of ``app``; see the module docstring."""

    def __init__(self, app: ASGIApp, routes: RouteTable, settings: Settings) -> None:
        self.app = app
        self.routes = routes
        self.settings = settings
        domain = settings.resolved_apps_domain.lower().strip(".")
        self._suffix = ("." + domain).encode("latin-1")
        bare = domain.rsplit(":", 1)[0] if ":" in domain and not domain.endswith("]") else domain
        self._suffix_bare = ("." + bare).encode("latin-1")
        self._public_url = settings.resolved_public_url
        self._session_cookie = ("__Host-" if self._public_url.startswith("https://") else "") + hdr.SESSION_COOKIE
        self._cookie_attributes = acc.cookie_attributes(
            acc.secure_origin(self._public_url, settings.resolved_apps_domain)
        )
        self._session: aiohttp.ClientSession | None = None
        self._pool: UpstreamPool | None = None
        self._static = StaticSites()
        self._wakes: dict[str, asyncio.Future[Endpoint]] = {}
        self._counters: dict[str, Any] = {}
        self._grants: dict[tuple[str, str | None, str | None], float] = {}

    # -- ASGI entry point -------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http" or kind == "websocket":
            match = self._match(scope)
            if match is None:
                await self.app(scope, receive, _platform_send(send) if kind == "http" else send)
            elif kind == "http":
                await self._http(scope, receive, send, match)
            else:
                await self._websocket(scope, receive, send, match)
        elif kind == "lifespan":
            await self._lifespan(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_wrapper(message: Message) -> None:
            if message["type"] in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
                await self.aclose()
            await send(message)

        await self.app(scope, receive, send_wrapper)

    async def aclose(self) -> None:
        """Close the upstream connection pool (called on lifespan shutdown)."""
        session, self._session = self._session, None
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()
        if session is not None:
            await session.close()

    # -- routing ----------------------------------------------------------------------------------

    def _match(self, scope: Scope) -> _Match | None:
        host = b""
        for name, value in scope["headers"]:
            if name == b"host":
                host = value
                break
        if host:
            lower = host.lower()
            label = b""
            if lower.endswith(self._suffix):
                label = lower[: -len(self._suffix)]
            else:
                bare = lower.rsplit(b":", 1)[0] if b":" in lower and not lower.endswith(b"]") else lower
                if bare.endswith(self._suffix_bare):
                    label = bare[: -len(self._suffix_bare)]
            if label and b"." not in label:
                text = label.decode("latin-1")
                route = self.routes.by_subdomain(text)
                return _Match(route, host.decode("latin-1"), "", scope["path"], scope.get("raw_path") or b"", text)
        path: str = scope["path"]
        if path.startswith("/apps/"):
            parts = path.split("/", 4)
            if len(parts) < 4 or not parts[2] or not parts[3]:
                return None
            owner, name = parts[2], parts[3]
            route = self.routes.by_id(f"{owner}/{name}")
            prefix = f"/apps/{owner}/{name}"
            raw = scope.get("raw_path")
            if raw:
                raw_parts = raw.split(b"?", 1)[0].split(b"/", 4)
                raw_rest = b"/" + raw_parts[4] if len(raw_parts) == 5 else b""
            else:
                raw_rest = b""
            rest = "/" + parts[4] if len(parts) == 5 else ""
            own = route.subdomain if route is not None else subdomain_for(f"{owner}/{name}")
            return _Match(route, host.decode("latin-1"), prefix, rest, raw_rest, own)
        return None

    def _pin_version(
        self, scope: Scope, route: Route, endpoint: Endpoint, prefix: str
    ) -> tuple[Endpoint, tuple[bytes, bytes] | None]:
        """Version stickiness across a swap: a visitor stamped with the version just replaced keeps
        reaching it while it is kept (``route.previous``); anyone else gets the serving version, and a
        ``Set-Cookie`` stamping it when the visitor's stamp is missing or stale."""
        stamped: str | None = None
        for name, value in scope["headers"]:
            if name == b"cookie":
                stamped = hdr.cookie_value(value, VERSION_COOKIE)
                break
        if stamped is not None:
            if route.previous is not None and stamped == route.previous_version:
                route.previous_used = time.monotonic()
                return route.previous, None
            if stamped == route.version:
                return endpoint, None
        attributes = f"Path={prefix}; HttpOnly; SameSite=Lax" if prefix else self._cookie_attributes
        cookie = f"{VERSION_COOKIE}={route.version}; {attributes}"
        return endpoint, (b"set-cookie", cookie.encode("latin-1"))

    @staticmethod
    def _learn(route: Route, endpoint: Endpoint, answer: bytearray | None) -> None:
        if answer:
            version = route.previous_version if endpoint == route.previous else route.version
            for key in gs.keys_in(bytes(answer)):
                route.gradio_state.remember(key, version)

    @staticmethod
    def _follow_state(scope: Scope, route: Route, endpoint: Endpoint, path: str, body: bytes | None) -> Endpoint:
        """A cookie-less follow-up naming Gradio state the replaced version holds goes there; a session a
        ``queue/join`` names is remembered with the version it is sent to."""
        if route.previous is not None and endpoint != route.previous:
            key = gs.state_key(scope["method"], path, scope.get("query_string") or b"", body)
            if key is not None and route.gradio_state.version_of(key) == route.previous_version:
                route.previous_used = time.monotonic()
                endpoint = route.previous
        version = route.previous_version if endpoint == route.previous else route.version
        for key in gs.asked_keys(scope["method"], path, body):
            route.gradio_state.remember(key, version)
        return endpoint

    def _allowed(self, scope: Scope, route: Route, match: _Match) -> bool:
        """Public, or a private Space the visitor may read: by token (``Authorization`` or
        ``x-hf-authorization``), platform session cookie, or, on the app's own origin, the app access
        cookie of the sign-in hop (only for requests from that origin or navigations)."""
        if not route.private:
            return True
        authorizer = self.routes.authorizer
        if authorizer is None:
            return False
        token: str | None = None
        session: str | None = None
        app_cookie: str | None = None
        for name, value in scope["headers"]:
            if name == b"authorization" or (name == b"x-hf-authorization" and token is None):
                token = hdr.bearer(value) or token
            elif name == b"cookie":
                session = session or hdr.cookie_value(value, self._session_cookie)
                if not match.prefix:
                    app_cookie = app_cookie or hdr.cookie_value(value, acc.ACCESS_COOKIE)
        if token is not None or session is not None:
            return self._cached(
                route.space_id, token, session, lambda: authorizer.can_read(route.space_id, token, session)
            )
        access = self.routes.access
        if app_cookie is None or access is None:
            return False
        grant = access.read_cookie(app_cookie, route.space_id)
        if grant is None or not self._from_the_app(scope, match):
            return False
        ref = grant.session_ref
        return self._cached(
            route.space_id, None, "grant:" + ref, lambda: authorizer.can_read_grant(route.space_id, ref)
        )

    def _cached(self, space_id: str, token: str | None, session: str | None, ask: Callable[[], bool]) -> bool:
        key = (space_id, token, session)
        now = time.monotonic()
        granted = self._grants.get(key)
        if granted is not None and granted > now:
            return True
        try:
            allowed = bool(ask())
        except Exception:
            log.exception("authorizer failed for %s", space_id)
            return False
        if allowed:
            if len(self._grants) > 10000:
                self._grants.clear()
            self._grants[key] = now + GRANT_TTL
        return allowed

    @staticmethod
    def _from_the_app(scope: Scope, match: _Match) -> bool:
        """A request the app access cookie may authorise: from the app's own origin or a navigation
        (``SameSite=Lax`` semantics, enforced here too), and never a websocket of another origin."""
        method = "GET" if scope["type"] == "websocket" else scope["method"]
        if not acc.same_origin_or_navigation(
            method, _header(scope, b"sec-fetch-site"), _header(scope, b"sec-fetch-mode")
        ):
            return False
        origin = _header(scope, b"origin")
        if origin is None:
            return True
        scheme = scope.get("scheme", "http")
        proto = "https" if scheme in ("https", "wss") else "http"
        return origin.decode("latin-1").lower() == f"{proto}://{match.host}".lower()

    def _count(self, space_id: str) -> None:
        counter = self._counters.get(space_id)
        if counter is None:
            counter = self._counters[space_id] = requests_counter().labels(space_id)
        counter.inc()

    # -- waking -----------------------------------------------------------------------------------

    async def _endpoint(self, route: Route, patience: float | None = None) -> Endpoint:
        """The route's upstream, waking the app first when needed (raises WakeRefused, TimeoutError).

        ``patience`` shortens the wait (the wake itself goes on): a browser navigation gets the
        self-reloading "waking up" page after it instead of a blank wait."""
        upstream = route.upstream
        if upstream is not None:
            return upstream
        waker = self.routes.waker
        if waker is None:
            raise WakeRefused(route.reason or "This Space is not running.", 503, route.stage)
        key = route.space_id.lower()
        pending = self._wakes.get(key)
        if pending is None:
            pending = asyncio.ensure_future(waker.wake(route))
            self._wakes[key] = pending
            pending.add_done_callback(functools.partial(self._wake_done, key))
        try:
            timeout = self.settings.wake_timeout if patience is None else min(patience, self.settings.wake_timeout)
            return await asyncio.wait_for(asyncio.shield(pending), timeout)
        except (WakeRefused, TimeoutError):
            raise
        except Exception as exc:  # a bug in the waker: a clear 503, not a bare 500
            log.error("waking %s failed: %r", route.space_id, exc)
            raise WakeRefused("The Space could not be started.", 503, route.stage) from exc

    def _wake_done(self, key: str, fut: asyncio.Future[Endpoint]) -> None:
        if self._wakes.get(key) is fut:
            del self._wakes[key]
        if not fut.cancelled():
            fut.exception()  # retrieved: a refusal nobody waits for any more is not an error

    # -- HTTP -------------------------------------------------------------------------------------

    def _pool_get(self) -> UpstreamPool:
        pool = self._pool
        if pool is None:
            pool = self._pool = UpstreamPool(self.settings.upstream_connect_timeout, self.settings.stream_idle_timeout)
        return pool

    def _session_get(self) -> aiohttp.ClientSession:
        session = self._session
        if session is None or session.closed:
            connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, keepalive_timeout=30, ttl_dns_cache=10)
            session = self._session = self._new_session(connector)
        return session

    def _netns_session(self, token: str) -> aiohttp.ClientSession:
        """A one-off session whose sockets are made inside an app's own network namespace (local sandbox);
        never pooled, so a connection can never be reused for another app with the same address."""
        connector = aiohttp.TCPConnector(
            force_close=True, socket_factory=lambda info: netns.socket_in(token, info[0], info[1])
        )
        return self._new_session(connector)

    def _new_session(self, connector: aiohttp.TCPConnector) -> aiohttp.ClientSession:
        s = self.settings
        return aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(
                total=None, connect=None, sock_connect=s.upstream_connect_timeout, sock_read=s.stream_idle_timeout
            ),
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
            max_line_size=65536,
            max_field_size=65536,
            read_bufsize=2**16,
        )

    def _forward_headers(
        self, scope: Scope, match: _Match, route: Route, *, websocket_: bool = False
    ) -> list[tuple[str, str]]:
        out = hdr.upstream_request_headers(scope["headers"], websocket=websocket_)
        host = match.host
        scheme = scope.get("scheme", "http")
        proto = "https" if scheme in ("https", "wss") else "http"
        if host:
            out.append(("Host", host))
        client = scope.get("client")
        if client:
            out.append(("X-Forwarded-For", client[0]))
        out.append(("X-Forwarded-Proto", proto))
        if match.prefix:
            out.append(("X-Forwarded-Prefix", match.prefix))
            if host:
                out.append(("X-Gradio-Server", f"{proto}://{host}{match.prefix}"))
        elif host:
            out.append(("X-Forwarded-Host", host))
        return out

    async def _http(self, scope: Scope, receive: Receive, send: Send, match: _Match) -> None:
        route = match.route
        head = scope["method"] == "HEAD"
        proxied_send = send  # the proxy sets the path form's headers itself (hdr.response_headers)
        if match.prefix:
            if _header(scope, b"sec-fetch-mode") == b"navigate" and scope["method"] in ("GET", "HEAD"):
                await self._to_own_origin(scope, send, match)  # whether the Space exists or not
                return
            send = _with_headers(send, [hdr.SANDBOX], drop=hdr.PATH_FORM_DROP, additive=True)
        elif match.path == acc.AUTH_PATH:
            await self._sign_in(scope, send, match)
            return
        if match.path == offline.EMBED_PATH and scope["method"] in ("GET", "HEAD"):
            await offline.send_embed_script(send, head=scope["method"] == "HEAD")
            return
        if route is None or not self._allowed(scope, route, match):
            if not match.prefix and self.routes.access is not None and _is_navigation(scope):
                await self._hop(scope, send, match)  # unknown Spaces too: the hop tells nothing
            else:
                await pages.not_found(send, _header(scope, b"accept"), head)
            return
        if match.prefix and not match.path:
            await _redirect_to_slash(scope, send)
            return
        route.touch()
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
                _with_headers(send, extra),
                route.static_root,
                route.static_index,
                match.path,
                match.prefix,
            )
            return
        navigation = route.upstream is None and _is_navigation(scope)
        body, receive = await gs.held_body(scope["method"], match.path, scope["headers"], receive)
        try:
            endpoint = await self._endpoint(route, NAVIGATION_PATIENCE if navigation else None)
            if route.version:
                endpoint, stamp = self._pin_version(scope, route, endpoint, match.prefix)
                if stamp is not None:
                    extra = [*extra, stamp]
                endpoint = self._follow_state(scope, route, endpoint, match.path, body)
        except WakeRefused as exc:
            await pages.send_page(
                send,
                exc.status,
                f"{route.space_id} is not running",
                str(exc) or "This Space cannot be started right now.",
                accept=_header(scope, b"accept"),
                stage=exc.stage or route.stage,
                head=head,
            )
            return
        except TimeoutError:
            # a browser gets a page that reloads itself while the wake goes on; API clients retry later
            title, message, retry, refresh = (
                ("is waking up", "This Space was asleep and is starting; this page reloads by itself.", b"1", 1)
                if navigation
                else ("is starting", "The Space is taking long to start; try again in a few seconds.", b"5", None)
            )
            await pages.send_page(
                send,
                503,
                f"{route.space_id} {title}",
                message,
                accept=_header(scope, b"accept"),
                stage=route.stage,
                extra_headers=[(b"retry-after", retry)],
                head=head,
                refresh=refresh,
            )
            return
        if not match.prefix and _is_navigation(scope):  # a page load: no call to the Hub from it
            proxied_send = offline.without_space_id(proxied_send, route.space_id)
        with route.busy():  # an open request keeps its Space awake (Deployer idle check)
            await self._proxy(scope, receive, proxied_send, match, route, endpoint, extra)

    # -- origins and the sign-in hop -------------------------------------------------------------

    async def _to_own_origin(self, scope: Scope, send: Send, match: _Match) -> None:
        """A browser navigating to ``/apps/OWNER/NAME/x?q``: to ``OWNER-NAME.<apps domain>/x?q``."""
        if not _LABEL.fullmatch(match.label):  # not a name any Space can have (and nothing to inject)
            await pages.not_found(send, _header(scope, b"accept"), scope["method"] == "HEAD")
            return
        scheme = self._public_url.split("://", 1)[0]
        rest = match.raw_path or match.path.encode("utf-8") or b"/"
        query: bytes = scope.get("query_string") or b""
        target = f"{scheme}://{match.label}.{self.settings.resolved_apps_domain}".encode("latin-1") + rest
        await _redirect(send, 302, target + (b"?" + query if query else b""))

    async def _hop(self, scope: Scope, send: Send, match: _Match) -> None:
        """A browser without access to a private app: to the platform, which checks its web session and
        sends it back with a ticket (``/auth/apps``)."""
        rest = match.raw_path or match.path.encode("utf-8") or b"/"
        query: bytes = scope.get("query_string") or b""
        next_ = (rest + (b"?" + query if query else b"")).decode("latin-1")
        location = f"{self._public_url}/auth/apps?" + urlencode({"space": match.label, "next": next_})
        await _redirect(send, 302, location.encode("latin-1"))

    async def _sign_in(self, scope: Scope, send: Send, match: _Match) -> None:
        """``/__spaceyard/auth`` on an app's origin: redeem a ticket into the access cookie, then check
        that the browser kept it before going on to ``next`` (no redirect loop when it did not)."""
        params = parse_qs((scope.get("query_string") or b"").decode("latin-1"))
        next_ = _safe_next(params.get("next", ["/"])[0])
        access, route = self.routes.access, match.route
        accept = _header(scope, b"accept")
        if "ticket" in params:
            grant = access.redeem_ticket(params["ticket"][0], route.space_id) if access and route else None
            if grant is None or access is None:
                await pages.send_page(
                    send,
                    403,
                    "Sign-in link refused",
                    "This sign-in link is invalid, expired, already used, or for another Space.",
                    accept=accept,
                    extra_headers=[(b"referrer-policy", b"no-referrer")],
                )
                return
            check = f"{acc.AUTH_PATH}?{urlencode({'next': next_})}".encode("latin-1")
            await _redirect(
                send, 303, check, [(b"set-cookie", access.set_cookie(grant)), (b"referrer-policy", b"no-referrer")]
            )
            return
        cookie = next((hdr.cookie_value(v, acc.ACCESS_COOKIE) for n, v in scope["headers"] if n == b"cookie"), None)
        if access and route and cookie and access.read_cookie(cookie, route.space_id):
            await _redirect(send, 303, next_.encode("latin-1"))
            return
        own = f"{self._public_url.split('://', 1)[0]}://{match.host}{next_}"
        await pages.send_page(
            send,
            403,
            "Open this app in its own tab",
            "Your browser did not keep this app's sign-in cookie (it may block cookies in frames). "
            "Open the app in a tab of its own: " + own,
            accept=accept,
        )

    def _request_head(self, scope: Scope, match: _Match, route: Route) -> tuple[bytes, int]:
        """The request line and headers for the app, and the body framing: 0 none, 1 length, 2 chunked."""
        raw_path = match.raw_path or match.path.encode("utf-8") or b"/"
        query: bytes = scope.get("query_string") or b""
        parts = [scope["method"].encode("latin-1"), b" ", raw_path]
        if query:
            parts += [b"?", query]
        parts.append(b" HTTP/1.1\r\n")
        framing = 0
        for name, value in hdr.filter_request_headers(scope["headers"]):
            if name == b"content-length" and framing == 0 and value.strip() != b"0":
                framing = 1
            parts += [name, b": ", value, b"\r\n"]
        for name, _ in scope["headers"]:
            if name == b"transfer-encoding":
                framing = 2
                parts.append(b"transfer-encoding: chunked\r\n")
                break
        host = match.host
        scheme = scope.get("scheme", "http")
        proto = b"https" if scheme in ("https", "wss") else b"http"
        if host:
            host_b = host.encode("latin-1")
            parts += [b"host: ", host_b, b"\r\n"]
        client = scope.get("client")
        if client:
            parts += [b"x-forwarded-for: ", client[0].encode("latin-1"), b"\r\n"]
        parts += [b"x-forwarded-proto: ", proto, b"\r\n"]
        if match.prefix:
            prefix = match.prefix.encode("utf-8")
            parts += [b"x-forwarded-prefix: ", prefix, b"\r\n"]
            if host:
                parts += [b"x-gradio-server: ", proto, b"://", host_b, prefix, b"\r\n"]
        elif host:
            parts += [b"x-forwarded-host: ", host_b, b"\r\n"]
        parts.append(b"\r\n")
        return b"".join(parts), framing

    async def _proxy(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        match: _Match,
        route: Route,
        endpoint: Endpoint,
        extra: list[tuple[bytes, bytes]],
    ) -> None:
        head_bytes, framing = self._request_head(scope, match, route)
        pool = self._pool_get()
        conn: UpstreamConnection | None = None
        try:
            conn = await pool.acquire(endpoint.host, endpoint.port, netns=endpoint.netns)
            if framing == 0:
                conn.write(head_bytes)
                try:
                    status, raw_headers = await conn.response_head()
                except UpstreamTimeout:
                    raise
                except UpstreamError:
                    if not conn.reused or conn._got_data:
                        raise
                    # the app closed this idle keep-alive connection meanwhile: once more on a new one
                    conn.abort()
                    conn = await pool.acquire(endpoint.host, endpoint.port, fresh=True, netns=endpoint.netns)
                    conn.write(head_bytes)
                    status, raw_headers = await conn.response_head()
            else:
                conn.write(head_bytes)
                try:
                    sent = await _send_body(receive, conn, chunked=framing == 2)
                except UpstreamError:
                    if not conn.answered:
                        raise
                    sent = True  # the app answered early (413...) and stopped reading: pass its answer on
                if not sent:
                    conn.abort()
                    return  # the visitor left during the upload
                status, raw_headers = await conn.response_head()
        except UpstreamError as exc:
            if conn is not None:
                conn.abort()
            await self._upstream_error(scope, send, route, exc)
            return

        watcher: asyncio.Future[None] | None = None
        try:
            out_headers = hdr.response_headers(
                raw_headers, extra, disable_embedding=route.disable_embedding, path_form=bool(match.prefix)
            )
            if match.prefix:
                out_headers = _rewrite_location(out_headers, match.prefix, endpoint)
            await send({"type": "http.response.start", "status": status, "headers": out_headers})
            if scope["method"] == "HEAD":
                conn.abort()  # llhttp cannot be told the response to HEAD has no body: no reuse
                await send({"type": "http.response.body", "body": b""})
                return
            if not conn.complete:  # a stream: notice a visitor who leaves, even while the app is quiet
                watcher = asyncio.ensure_future(_close_on_disconnect(receive, conn))
            complete = False
            # a Gradio call or upload: remember which version holds the event id / paths it answers
            learning = status == 200 and gs.learns(scope["method"], match.path)
            learned: bytearray | None = bytearray() if learning else None
            try:
                while True:
                    chunk = await conn.read()
                    if learned is not None and len(learned) < gs.MAX_ANSWER:
                        learned += chunk
                    if not chunk:
                        complete = True
                        break
                    if conn.at_eof:
                        await send({"type": "http.response.body", "body": chunk})
                        self._learn(route, endpoint, learned)
                        return
                    route.touch()
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            except UpstreamError:
                # The app died or went silent mid-stream (or the visitor left and the watcher closed it):
                # returning without completing makes the server drop the connection without the chunked
                # terminator (or short of Content-Length), so the visitor sees a broken response, never a
                # truncated body that looks whole.
                complete = False
            if complete:
                await send({"type": "http.response.body", "body": b""})
                self._learn(route, endpoint, learned)
        finally:
            if watcher is not None:
                watcher.cancel()
            pool.release(conn)

    async def _upstream_error(self, scope: Scope, send: Send, route: Route, exc: BaseException) -> None:
        accept = _header(scope, b"accept")
        head = scope["method"] == "HEAD"
        if isinstance(exc, UpstreamTimeout):
            await pages.send_page(
                send,
                504,
                f"{route.space_id} did not answer",
                "The app did not answer in time.",
                accept=accept,
                head=head,
            )
        else:
            log.info("upstream of %s unreachable: %r", route.space_id, exc)
            await pages.send_page(
                send,
                502,
                f"{route.space_id} is not reachable",
                "The app is not answering (it may have crashed or be restarting).",
                accept=accept,
                stage=route.stage,
                head=head,
            )

    # -- websockets -------------------------------------------------------------------------------

    async def _websocket(self, scope: Scope, receive: Receive, send: Send, match: _Match) -> None:
        route = match.route
        if route is None or not self._allowed(scope, route, match) or route.static_root is not None:
            await websocket.deny(scope, send, 404, b"There is no Space at this address.")
            return
        route.touch()
        self._count(route.space_id)
        try:
            endpoint = await self._endpoint(route)
        except WakeRefused as exc:
            await websocket.deny(scope, send, exc.status, str(exc).encode())
            return
        except TimeoutError:
            await websocket.deny(scope, send, 503, b"The Space is still starting.")
            return
        raw_path = match.raw_path or match.path.encode("utf-8") or b"/"
        query: bytes = scope.get("query_string") or b""
        target = (raw_path + b"?" + query) if query else raw_path
        url = URL(f"http://{endpoint.host}:{endpoint.port}{target.decode('latin-1')}", encoded=True)
        forward = self._forward_headers(scope, match, route, websocket_=True)
        with route.busy():  # an open websocket keeps its Space awake, quiet or not
            if endpoint.netns is None:
                await websocket.relay(
                    self._session_get(), scope, receive, send, url, forward, route, self.settings.stream_idle_timeout
                )
                return
            session = self._netns_session(endpoint.netns)
            try:
                await websocket.relay(
                    session, scope, receive, send, url, forward, route, self.settings.stream_idle_timeout
                )
            finally:
                await session.close()


async def _send_body(receive: Receive, conn: UpstreamConnection, *, chunked: bool) -> bool:
    """Stream the visitor's request body to the app as it arrives; False if the visitor left."""
    while True:
        if conn.answered:  # the app answered before taking the whole body (413...): stop sending
            conn.no_reuse()
            return True
        message = await receive()
        if message["type"] == "http.disconnect":
            return False
        chunk: bytes = message.get("body", b"")
        more: bool = message.get("more_body", False)
        if chunk:
            if chunked:
                conn.write(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
            else:
                conn.write(chunk)
            await conn.drain()
        if not more:
            if chunked:
                conn.write(b"0\r\n\r\n")
            return True


async def _close_on_disconnect(receive: Receive, conn: UpstreamConnection) -> None:
    """Drop the app's connection as soon as the visitor goes away mid-response."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            conn.abort()
            conn._fail(UpstreamError("the visitor went away"))
            return


def _is_navigation(scope: Scope) -> bool:
    """A browser loading a page (or a frame): GET, wants HTML, and says it navigates when it can."""
    if scope["method"] != "GET":
        return False
    accept = _header(scope, b"accept") or b""
    mode = _header(scope, b"sec-fetch-mode")
    return b"text/html" in accept and (mode is None or mode == b"navigate")


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


async def _redirect_to_slash(scope: Scope, send: Send) -> None:
    location = scope["path"] + "/"
    query = scope.get("query_string") or b""
    await _redirect(send, 308, location.encode("utf-8") + (b"?" + query if query else b""))


async def _redirect(send: Send, status: int, location: bytes, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    headers = [(b"location", location), (b"content-length", b"0"), (b"cache-control", b"no-store"), *(extra or [])]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b""})


def _safe_next(target: str) -> str:
    """A path on the same origin (no scheme, host, or backslash tricks), not the sign-in path itself."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target or target.startswith(acc.AUTH_PATH):
        return "/"
    if any(ord(c) < 0x21 or ord(c) > 0x7E for c in target):
        return quote(target, safe="/?&=%:;@!$'()*+,-._~")
    return target


def _platform_send(send: Send) -> Send:
    """The platform's own responses: :data:`PLATFORM_FRAMING` unless they set their own policy."""

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", []))
            names = {n.lower() for n, _ in headers}
            headers += [(n, v) for n, v in PLATFORM_FRAMING if n not in names]
            message = {**message, "headers": headers}
        await send(message)

    return wrapped


def _rewrite_location(headers: list[tuple[bytes, bytes]], prefix: str, endpoint: Endpoint) -> list[tuple[bytes, bytes]]:
    """Path form: an app redirecting to ``/x`` (or to its own URL) means ``PREFIX/x``."""
    for i, (name, value) in enumerate(headers):
        if name == b"location":
            upstream = endpoint.url.encode("latin-1")
            if value.startswith(upstream):
                value = value[len(upstream) :] or b"/"
            if value.startswith(b"/") and not value.startswith(b"//") and not value.startswith(prefix.encode() + b"/"):
                headers[i] = (name, prefix.encode("utf-8") + value)
    return headers


def _with_headers(
    send: Send, extra: list[tuple[bytes, bytes]], *, drop: frozenset[bytes] = frozenset(), additive: bool = False
) -> Send:
    """``send`` adding ``extra`` (replacing headers of the same name unless ``additive``) and removing
    ``drop`` from responses the gateway did not build header by header (static files, pages)."""
    if not extra and not drop:
        return send
    names = drop | ({n for n, _ in extra} if not additive else set())

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = dict(message)
            kept = [(n, v) for n, v in message.get("headers", []) if n.lower() not in names]
            message["headers"] = kept + list(extra)
        await send(message)

    return wrapped


__all__ = ["Gateway"]
