"""Who may see a Space, and the walls between apps and the platform's origin.

* :meth:`Gatekeeper.allowed`: public, or a private Space the visitor may read: by token
  (``Authorization`` or ``x-hf-authorization``), platform session cookie, or, on the app's own origin,
  the app access cookie of the sign-in hop (only for requests from that origin or navigations). A "yes"
  from the :class:`~.routes.Authorizer` is reused for :data:`GRANT_TTL` seconds.
* :meth:`Gatekeeper.to_own_origin`: a browser navigating to the path form goes to the app's own origin.
* :meth:`Gatekeeper.hop` and :meth:`Gatekeeper.sign_in`: the sign-in hop to a private app
  (platform ``/auth/apps`` -> ticket -> access cookie on the app's origin, :mod:`.access`).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from urllib.parse import parse_qs, urlencode

from . import access as acc
from . import headers as hdr
from . import pages
from .asgi import Scope, Send
from .matching import Match
from .responses import header, redirect, safe_next
from .routes import Authorizer, RouteSpec

log = logging.getLogger("spaceyard.gateway")
_LABEL = re.compile(r"[a-z0-9][a-z0-9-]{0,200}")

GRANT_TTL = 5.0
"""Seconds a 'yes' from the authorizer is reused for the same Space and credentials, so the many
requests of one page load of a private Space cost one authorizer (database) call, not dozens."""


class Gatekeeper:
    def __init__(
        self,
        authorizer: Authorizer | None,
        access: acc.AppAccess | None,
        *,
        public_url: str,
        apps_domain: str,
    ) -> None:
        self.authorizer = authorizer
        self.access = access
        """Tickets and access cookies for private apps in browsers; without it private apps answer
        only to tokens."""
        self._public_url = public_url
        self._apps_domain = apps_domain
        self._session_cookie = ("__Host-" if public_url.startswith("https://") else "") + hdr.SESSION_COOKIE
        self._grants: dict[tuple[str, str | None, str | None], float] = {}

    def allowed(self, scope: Scope, route: RouteSpec, match: Match) -> bool:
        if not route.private:
            return True
        authorizer = self.authorizer
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
        access = self.access
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
    def _from_the_app(scope: Scope, match: Match) -> bool:
        """A request the app access cookie may authorise: from the app's own origin or a navigation
        (``SameSite=Lax`` semantics, enforced here too), and never a websocket of another origin."""
        method = "GET" if scope["type"] == "websocket" else scope["method"]
        if not acc.same_origin_or_navigation(
            method, header(scope, b"sec-fetch-site"), header(scope, b"sec-fetch-mode")
        ):
            return False
        origin = header(scope, b"origin")
        if origin is None:
            return True
        scheme = scope.get("scheme", "http")
        proto = "https" if scheme in ("https", "wss") else "http"
        return origin.decode("latin-1").lower() == f"{proto}://{match.host}".lower()

    # -- origins and the sign-in hop -------------------------------------------------------------

    async def to_own_origin(self, scope: Scope, send: Send, match: Match) -> None:
        """A browser navigating to ``/apps/OWNER/NAME/x?q``: to ``OWNER-NAME.<apps domain>/x?q``."""
        if not _LABEL.fullmatch(match.label):  # not a name any Space can have (and nothing to inject)
            await pages.not_found(send, header(scope, b"accept"), scope["method"] == "HEAD")
            return
        scheme = self._public_url.split("://", 1)[0]
        rest = match.raw_path or match.path.encode("utf-8") or b"/"
        query: bytes = scope.get("query_string") or b""
        target = f"{scheme}://{match.label}.{self._apps_domain}".encode("latin-1") + rest
        await redirect(send, 302, target + (b"?" + query if query else b""))

    async def hop(self, scope: Scope, send: Send, match: Match) -> None:
        """A browser without access to a private app: to the platform, which checks its web session and
        sends it back with a ticket (``/auth/apps``)."""
        rest = match.raw_path or match.path.encode("utf-8") or b"/"
        query: bytes = scope.get("query_string") or b""
        next_ = (rest + (b"?" + query if query else b"")).decode("latin-1")
        location = f"{self._public_url}/auth/apps?" + urlencode({"space": match.label, "next": next_})
        await redirect(send, 302, location.encode("latin-1"))

    async def sign_in(self, scope: Scope, send: Send, match: Match) -> None:
        """``/__spaceyard/auth`` on an app's origin: redeem a ticket into the access cookie, then check
        that the browser kept it before going on to ``next`` (no redirect loop when it did not)."""
        params = parse_qs((scope.get("query_string") or b"").decode("latin-1"))
        next_ = safe_next(params.get("next", ["/"])[0])
        access, route = self.access, match.route
        accept = header(scope, b"accept")
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
            await redirect(
                send, 303, check, [(b"set-cookie", access.set_cookie(grant)), (b"referrer-policy", b"no-referrer")]
            )
            return
        cookie = next((hdr.cookie_value(v, acc.ACCESS_COOKIE) for n, v in scope["headers"] if n == b"cookie"), None)
        if access and route and cookie and access.read_cookie(cookie, route.space_id):
            await redirect(send, 303, next_.encode("latin-1"))
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
