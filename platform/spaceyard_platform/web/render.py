"""What every page shares: the templates and their helpers, who is signed in, rendering and the 404 page.

Server-rendered Jinja2 templates; ``static/spaceyard.js`` adds live updates (stage badge, logs, the
iframe appearing once the app runs) and sends the settings forms to the JSON API with the session's
CSRF token. Everything a page needs is served from ``/static``: no asset comes from the internet.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi.responses import Response
from fastapi.templating import Jinja2Templates
from sqlalchemy import select
from sqlalchemy.orm import Session

from ..auth import Principal, can_write_namespace, resolve_token, token_from_headers
from ..db.models import Membership, User
from ..deps import ServicesDep, get_session
from ..sessions import SignedIn, resolve_session, session_cookie_name

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
STATIC_DIR = Path(__file__).parent / "static"
MAX_TEXT_VIEW = 512 * 1024

ERRORS = ("CONFIG_ERROR", "NO_APP_FILE", "BUILD_ERROR", "RUNTIME_ERROR")

COLORS = {
    "red": "#b91c1c",
    "orange": "#c2410c",
    "yellow": "#a16207",
    "green": "#15803d",
    "blue": "#1d4ed8",
    "indigo": "#4338ca",
    "purple": "#7e22ce",
    "pink": "#be185d",
    "gray": "#374151",
}


def web_user(request: Request, svc: ServicesDep, session: Annotated[Session, Depends(get_session)]) -> SignedIn | None:
    """The signed-in browser (session cookie), or a Bearer token for scripted use of the pages."""
    signed_in = resolve_session(session, request.cookies.get(session_cookie_name(svc.settings)))
    if signed_in is None:
        principal = resolve_token(session, token_from_headers(request.headers.get("authorization")))
        if principal is not None:
            return SignedIn(principal, "")
    return signed_in


WebUserDep = Annotated[SignedIn | None, Depends(web_user)]


def principal_of(user: SignedIn | None) -> Principal | None:
    return user.principal if user else None


def gradient(card: dict[str, Any]) -> str:
    start = COLORS.get(str(card.get("colorFrom") or "").lower(), COLORS["indigo"])
    end = COLORS.get(str(card.get("colorTo") or "").lower(), COLORS["purple"])
    return f"linear-gradient(135deg, {start}, {end})"


def ago(dt: datetime | str | None) -> str:
    if not dt:
        return ""
    if isinstance(dt, str):
        dt = datetime.fromisoformat(dt.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    seconds = max(0, int((datetime.now(UTC) - dt).total_seconds()))
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''} ago"
    return "just now"


def iso(dt: datetime | None) -> str:
    if dt is None:
        return ""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.isoformat(timespec="seconds")


def stage_class(stage: str) -> str:
    if stage == "RUNNING":
        return "ok"
    if stage in ERRORS:
        return "error"
    if stage in ("SLEEPING", "PAUSED", "STOPPED"):
        return "idle"
    return "busy"


def human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


TEMPLATES.env.globals.update(gradient=gradient, ago=ago, iso=iso, stage_class=stage_class, human_size=human_size)
TEMPLATES.env.filters["urlquote"] = lambda s: quote(str(s), safe="/")


def render(request: Request, template: str, user: SignedIn | None, status: int = 200, **context: Any) -> Response:
    context.setdefault("principal", principal_of(user))
    context.setdefault("csrf", user.csrf_token if user else "")
    return TEMPLATES.TemplateResponse(request, template, context, status_code=status)


def not_found(request: Request, user: SignedIn | None, what: str) -> Response:
    return render(request, "not_found.html", user, status=404, what=what)


def safe_next(target: str) -> str:
    return target if target.startswith("/") and not target.startswith("//") else "/"


def writable_namespaces(session: Session, principal: Principal) -> list[str]:
    names = [principal.name]
    orgs = session.execute(
        select(User.name, Membership.role)
        .join(Membership, Membership.org_id == User.id)
        .where(Membership.user_id == principal.user_id)
    ).all()
    names += [n for n, role in orgs if can_write_namespace(session, principal, n)]
    return names


def breadcrumbs(path: str) -> list[tuple[str, str]]:
    parts = [p for p in path.strip("/").split("/") if p]
    return [(p, "/".join(parts[: i + 1])) for i, p in enumerate(parts)]
