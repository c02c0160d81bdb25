"""Browser sessions: sign in with an access token, get a ``spaceyard_session`` cookie.

The cookie holds a random session id; the ``sessions`` table holds only its SHA-256, the user, the
role of the token used to sign in, and a per-session CSRF token. The cookie is host-only (no
``Domain``): it stays on the platform's host and never reaches the apps' origins, which sign visitors
in to private apps through a hop of their own (``gateway/access.py``, ``web/appauth.py``). Every POST
made with the cookie must carry that CSRF token (form field ``csrf_token`` or header
``X-CSRF-Token``): apps may run on subdomains of the same site, so SameSite=Lax alone would not stop
one of them from posting to the platform.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session
from starlette.responses import Response

from .auth import Principal
from .crypto import hash_token
from .db.models import User, WebSession
from .settings import Settings

SESSION_COOKIE = "spaceyard_session"
"""The session cookie's name (``__Host-`` in front of it when the platform is served over HTTPS)."""
SESSION_LIFETIME = timedelta(days=30)
LOGIN_CSRF_COOKIE = "spaceyard_login_csrf"
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
    return resolve_session_ref(session, hash_token(raw)) if raw else None


def session_ref(raw: str) -> str:
    """What an app access cookie names a web session by: the stored hash of its id, never the id."""
    return hash_token(raw)


def resolve_session_ref(session: Session, ref: str) -> SignedIn | None:
    """The valid web session whose stored id hash is ``ref``."""
    row = session.execute(
        select(WebSession, User).join(User, WebSession.user_id == User.id).where(WebSession.id_hash == ref)
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


HOST_PREFIX = "__Host-"


def secure_cookies(settings: Settings) -> bool:
    return settings.resolved_public_url.startswith("https://")


def session_cookie_name(settings: Settings) -> str:
    """``__Host-spaceyard_session`` over https: browsers refuse such a cookie from any other host or
    with a ``Domain``, so no app, even on a sibling subdomain, can plant a session (fixation)."""
    return HOST_PREFIX + SESSION_COOKIE if secure_cookies(settings) else SESSION_COOKIE


def login_csrf_cookie(settings: Settings) -> tuple[str, str]:
    """Name and path of the sign-in form's CSRF cookie (``__Host-`` over https, for the same reason)."""
    return (HOST_PREFIX + LOGIN_CSRF_COOKIE, "/") if secure_cookies(settings) else (LOGIN_CSRF_COOKIE, "/login")


def set_session_cookie(response: Response, settings: Settings, raw: str) -> None:
    response.set_cookie(
        session_cookie_name(settings),
        raw,
        max_age=int(SESSION_LIFETIME.total_seconds()),
        path="/",
        secure=secure_cookies(settings),
        httponly=True,
        samesite="lax",
    )


def clear_session_cookie(response: Response, settings: Settings) -> None:
    response.delete_cookie(
        session_cookie_name(settings), path="/", secure=secure_cookies(settings), httponly=True, samesite="lax"
    )
