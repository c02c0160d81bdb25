"""Private apps in the browser: the sign-in hop from the platform to the apps origin.

Apps live on their own origin (``OWNER-NAME.<apps domain>``), which never sees the platform's session
cookie. A browser visiting a private app without access is sent, as JupyterHub does for its
single-user servers, through the platform::

    app  --302-->  PUBLIC_URL/auth/apps?space=LABEL&next=PATH       (the platform checks its web session)
         <--302--  https://LABEL.APPS/__spaceyard/auth?ticket=T&next=PATH
    gateway: verifies T (signature, expiry, bound to this Space, never seen before), sets the
             access cookie, then checks on ``/__spaceyard/auth?next=PATH`` that the browser kept it.

A ticket lives :data:`TICKET_TTL` seconds and is redeemed once per gateway process. The access cookie
(:data:`ACCESS_COOKIE`) is host-only, HttpOnly, signed with the platform's secret, names one Space and
the web session it came from, and expires; the gateway re-asks the authorizer (so signing out, losing
membership or deleting the Space ends it) and strips it, with every other platform cookie, before the
app sees the request.

On a secure apps origin (``https``, or ``*.localhost`` which browsers treat as secure) the cookie is
``SameSite=None; Secure; Partitioned`` (CHIPS): browsers that block third-party cookies (Chromium
does by default) would refuse a plain cookie set inside the Space page's frame, and partitioning keys
it to the top-level site it was set under (the app's own tab, or the platform's Space page), so no
other site that frames or calls the app gets it. The gateway adds ``SameSite=Lax`` semantics itself:
a request authorised only by this cookie must come from the app's own origin or be a top-level or
frame navigation (``Sec-Fetch-Site``). On a plain-http apps domain the cookie is ``SameSite=Lax``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass

ACCESS_COOKIE = "spaceyard_app_access"
AUTH_PATH = "/__spaceyard/auth"
"""Reserved on every app origin: the gateway answers it, the app never sees it."""
TICKET_TTL = 60
ACCESS_TTL = 12 * 3600


@dataclass(frozen=True)
class Grant:
    """What a valid ticket or access cookie says: this web session may open this Space."""

    space_id: str
    session_ref: str
    expires: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class AppAccess:
    """Signs and checks tickets and access cookies with a key derived from the platform's secret."""

    def __init__(self, secret: bytes, *, secure_origin: bool) -> None:
        self._key = hmac.new(secret, b"spaceyard app access v1", hashlib.sha256).digest()
        self.secure_origin = secure_origin
        self._redeemed: dict[str, float] = {}

    # -- signing ----------------------------------------------------------------------------------
    def _sign(self, payload: dict[str, object]) -> str:
        body = _b64(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode())
        mac = _b64(hmac.new(self._key, body.encode("ascii"), hashlib.sha256).digest())
        return f"{body}.{mac}"

    def _open(self, value: str, kind: str) -> dict[str, object] | None:
        body, sep, mac = value.strip().partition(".")
        if not sep or len(value) > 2048:
            return None
        expected = _b64(hmac.new(self._key, body.encode("ascii", "replace"), hashlib.sha256).digest())
        if not hmac.compare_digest(expected, mac):
            return None
        try:
            payload = json.loads(_unb64(body))
        except (ValueError, UnicodeDecodeError):
            return None
        if not isinstance(payload, dict) or payload.get("k") != kind:
            return None
        exp = payload.get("exp")
        if not isinstance(exp, int) or exp < time.time():
            return None
        return payload

    @staticmethod
    def _grant(payload: dict[str, object], space_id: str) -> Grant | None:
        space, ref, exp = payload.get("s"), payload.get("r"), payload.get("exp")
        if not isinstance(space, str) or not isinstance(ref, str) or not isinstance(exp, int):
            return None
        if space.lower() != space_id.lower():
            return None
        return Grant(space, ref, exp)

    # -- tickets ------------------------------------------------------------------------------------
    def issue_ticket(self, space_id: str, session_ref: str) -> str:
        """A single-use ticket for ``space_id`` (what the platform puts in the hop's redirect)."""
        exp = int(time.time()) + TICKET_TTL
        return self._sign({"k": "t", "s": space_id, "r": session_ref, "exp": exp, "n": secrets.token_urlsafe(12)})

    def redeem_ticket(self, ticket: str, space_id: str) -> Grant | None:
        """The grant of a valid ticket for this Space, once; ``None`` when forged, expired, for another
        Space, or already redeemed."""
        payload = self._open(ticket, "t")
        if payload is None:
            return None
        grant = self._grant(payload, space_id)
        nonce = payload.get("n")
        if grant is None or not isinstance(nonce, str):
            return None
        now = time.time()
        if len(self._redeemed) > 10000:
            self._redeemed = {n: exp for n, exp in self._redeemed.items() if exp >= now}
        if nonce in self._redeemed:
            return None
        self._redeemed[nonce] = float(grant.expires)
        return grant

    # -- the access cookie ----------------------------------------------------------------------------
    def cookie_value(self, grant: Grant) -> str:
        exp = int(time.time()) + ACCESS_TTL
        return self._sign({"k": "c", "s": grant.space_id, "r": grant.session_ref, "exp": exp})

    def read_cookie(self, value: str, space_id: str) -> Grant | None:
        payload = self._open(value, "c")
        return None if payload is None else self._grant(payload, space_id)

    def set_cookie(self, grant: Grant) -> bytes:
        value = self.cookie_value(grant)
        return f"{ACCESS_COOKIE}={value}; Max-Age={ACCESS_TTL}; {cookie_attributes(self.secure_origin)}".encode(
            "latin-1"
        )


def cookie_attributes(secure: bool) -> str:
    """Attributes of the cookies the gateway sets on an app's origin (host-only: never ``Domain``)."""
    if secure:
        return "Path=/; HttpOnly; Secure; SameSite=None; Partitioned"
    return "Path=/; HttpOnly; SameSite=Lax"


def secure_origin(public_url: str, apps_domain: str) -> bool:
    """Whether browsers treat the apps origin as secure: ``https``, or a ``*.localhost`` host."""
    host = apps_domain.lower().strip(".").rsplit(":", 1)[0]
    return public_url.startswith("https://") or host == "localhost" or host.endswith(".localhost")


def same_origin_or_navigation(method: str, site: bytes | None, mode: bytes | None) -> bool:
    """``SameSite=Lax`` semantics, enforced by the gateway for cookie-authorised requests: from the
    app's own origin, typed by the visitor, or a GET navigation (top level or the Space page's frame).
    Browsers that send no ``Sec-Fetch-Site`` rely on the cookie's own attributes."""
    if site is None or site in (b"same-origin", b"none"):
        return True
    return method in ("GET", "HEAD") and mode == b"navigate"
