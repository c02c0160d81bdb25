"""Browser sessions: sign in with an access token, get a ``spaceyard_session`` cookie.

The cookie holds a random session id; the ``sessions`` table holds only its SHA-256, the user, the
role of the token used to sign in, and a per-session CSRF token. Every POST made with the cookie must
carry that CSRF token (form field ``csrf_token`` or header ``X-CSRF-Token``): apps run on subdomains
of the same site, so SameSite=Lax alone would not stop one of them from posting to the platform.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session
from starlette.responses import Response

from ..auth import SESSION_COOKIE, Principal
from ..crypto import hash_token
from ..db.models import User, WebSession
from ..settings import Settings

SESSION_LIFETIME = timedelta(days=30)
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class SignedIn:
    principal: Principal
    csrf_token: str


def create_session(session: Session, principal: Principal) -> str:
    """Store a new session for ``principal``; return the raw session id (the cookie's value)."""
    raw = secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    session.add(
        WebSession(
            id_hash=hash_token(raw),
            user_id=principal.user_id,
            token_id=principal.token_id,
            role=principal.role,
            csrf_token=secrets.token_urlsafe(32),
            created_at=now,
            expires_at=now + SESSION_LIFETIME,
        )
    )
    # forget this user's expired sessions while we are here
    session.execute(delete(WebSession).where(WebSession.user_id == principal.user_id, WebSession.expires_at < now))
    return raw


def resolve_session(session: Session, raw: str | None) -> SignedIn | None:
    if not raw:
        return None
    row = session.execute(
        select(WebSession, User).join(User, WebSession.user_id == User.id).where(WebSession.id_hash == hash_token(raw))
    ).first()
    if row is None:
        return None
    web, user = row
    expires = web.expires_at if web.expires_at.tzinfo else web.expires_at.replace(tzinfo=UTC)
    if expires < datetime.now(UTC):
        return None
    principal = Principal(
        user_id=user.id,
        name=user.name,
        role=web.role,
        is_admin=user.is_admin,
        token_id=web.token_id,
        token_name="web session",
    )
    return SignedIn(principal, web.csrf_token)


def end_session(session: Session, raw: str | None) -> None:
    if raw:
        session.execute(delete(WebSession).where(WebSession.id_hash == hash_token(raw)))


def csrf_ok(signed_in: SignedIn | None, presented: str | None) -> bool:
    if signed_in is None or not presented:
        return False
    return hmac.compare_digest(signed_in.csrf_token.encode(), presented.encode())


def cookie_domain(settings: Settings) -> str | None:
    """Share the cookie with the apps' subdomains when they live under the platform's host.

    The gateway reads the cookie to let signed-in owners into their private apps (and never forwards
    it to an app). Browsers keep a ``localhost`` cookie to ``localhost`` itself, so in the default
    local set-up the cookie is host-only.
    """
    public_host = settings.resolved_public_url.split("://", 1)[-1].split("/", 1)[0].rsplit(":", 1)[0].lower()
    apps_host = settings.resolved_apps_domain.rsplit(":", 1)[0].lower().strip(".")
    if not public_host or public_host == "localhost" or "." not in public_host:
        return None
    try:
        ipaddress.ip_address(public_host.strip("[]"))
        return None
    except ValueError:
        pass
    if apps_host == public_host or apps_host.endswith("." + public_host):
        return public_host
    # siblings (hub.example.com, spaces.example.com): their common parent, if it has two labels or more
    common: list[str] = []
    for a, b in zip(reversed(public_host.split(".")), reversed(apps_host.split(".")), strict=False):
        if a != b:
            break
        common.insert(0, a)
    return ".".join(common) if len(common) >= 2 else None


def set_session_cookie(response: Response, settings: Settings, raw: str) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        raw,
        max_age=int(SESSION_LIFETIME.total_seconds()),
        path="/",
        domain=cookie_domain(settings),
        secure=settings.resolved_public_url.startswith("https://"),
        httponly=True,
        samesite="lax",
    )


def clear_session_cookie(response: Response, settings: Settings) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/", domain=cookie_domain(settings), httponly=True, samesite="lax")
