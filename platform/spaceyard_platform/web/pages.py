"""HTML pages people use in a browser: explore, a Space (app, files, logs, settings), new Space, sign in.

Server-rendered Jinja2 templates; ``static/spaceyard.js`` adds live updates (stage badge, logs, the
iframe appearing once the app runs) and sends the settings forms to the JSON API with the session's
CSRF token. Everything a page needs is served from ``/static``: no asset comes from the internet.
"""

from __future__ import annotations

import math
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy import select
from sqlalchemy.orm import Session

from spaceyard_builder.lfs import parse_pointer

from .. import history, lfsinfo, revisions, spacelinks
from ..auth import (
    Principal,
    can_read,
    can_write,
    can_write_namespace,
    resolve_token,
    token_from_headers,
)
from ..db.models import Membership, Space, User
from ..deps import ServicesDep, SessionDep, get_session
from ..errors import Forbidden, PlatformError, RevisionNotFound
from ..services import space_settings
from ..services.spaces import SDKS, create_space
from . import starters
from .sessions import (
    SignedIn,
    clear_session_cookie,
    create_session,
    csrf_ok,
    end_session,
    login_csrf_cookie,
    resolve_session,
    secure_cookies,
    session_cookie_name,
    set_session_cookie,
)

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
STATIC_DIR = Path(__file__).parent / "static"
PAGE_SIZE = 24
HISTORY_PAGE = 50
MAX_TEXT_VIEW = 512 * 1024

SERVING = ("RUNNING", "RUNNING_BUILDING", "RUNNING_APP_STARTING", "SLEEPING")
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

router = APIRouter(include_in_schema=False)

EXPLORE_SORTS: dict[str, tuple[Any, ...]] = {
    "recent": (Space.updated_at.desc(), Space.id),
    "name": (Space.name, Space.owner, Space.id),
    "created": (Space.created_at.desc(), Space.id),
}
"""Explore's orders (``?sort=``): recently updated (default), by name, newest."""


# ---------------------------------------------------------------------------------------------- helpers
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
TEMPLATES.env.globals["linked_repos"] = spacelinks.linked_repos
TEMPLATES.env.filters["urlquote"] = lambda s: quote(str(s), safe="/")


def render(request: Request, template: str, user: SignedIn | None, status: int = 200, **context: Any) -> Response:
    context.setdefault("principal", principal_of(user))
    context.setdefault("csrf", user.csrf_token if user else "")
    return TEMPLATES.TemplateResponse(request, template, context, status_code=status)


def get_readable(session: Session, principal: Principal | None, owner: str, name: str) -> Space | None:
    """The Space, or None when it does not exist or is private to others (both answer 404)."""
    space = session.scalar(select(Space).where(Space.owner == owner, Space.name == name))
    if space is None or not can_read(session, principal, space):
        return None
    return space


def not_found(request: Request, user: SignedIn | None, what: str) -> Response:
    return render(request, "not_found.html", user, status=404, what=what)


def writable_namespaces(session: Session, principal: Principal) -> list[str]:
    names = [principal.name]
    orgs = session.execute(
        select(User.name, Membership.role)
        .join(Membership, Membership.org_id == User.id)
        .where(Membership.user_id == principal.user_id)
    ).all()
    names += [n for n, role in orgs if can_write_namespace(session, principal, n)]
    return names


def space_context(
    request: Request, svc: ServicesDep, session: Session, user: SignedIn | None, space: Space
) -> dict[str, Any]:
    principal = principal_of(user)
    card = dict(space.card_data or {})
    app_url = svc.settings.app_url(space.space_id, "subdomain", label=space.app_label)
    query = request.url.query
    if space.sdk == "streamlit" and "embed=" not in query:
        query = f"{query}&embed=true" if query else "embed=true"  # Streamlit drops its padding and footer
    return {
        "space": space,
        "card": card,
        "title": card.get("title") or space.name,
        "is_owner": can_write(session, principal, space),
        "app_url": app_url,
        "frame_src": f"{app_url}/" + (f"?{query}" if query else ""),
        "app_path_url": svc.settings.app_url(space.space_id, "path") + "/",
        "subdomain": space.app_label,
        "git_url": f"{svc.settings.resolved_public_url}/spaces/{space.space_id}",
        "public_url": svc.settings.resolved_public_url,
        "serving": space.stage in SERVING or (space.serving_build_id is not None and space.stage not in ("PAUSED",)),
        "disable_embedding": bool(card.get("disable_embedding", False)),
        "full_width": card.get("fullWidth", True) is not False,
        "mini_header": str(card.get("header") or "") == "mini",
    }


# ---------------------------------------------------------------------------------------------- sign in
@router.get("/login", response_class=HTMLResponse)
def login_page(
    request: Request,
    svc: ServicesDep,
    user: WebUserDep,
    next: str = "/",  # noqa: A002
    error: str = "",
) -> Response:
    csrf_name, csrf_path = login_csrf_cookie(svc.settings)
    token = request.cookies.get(csrf_name) or secrets.token_urlsafe(24)
    response = render(request, "login.html", user, next=safe_next(next), login_csrf=token, error=error)
    response.set_cookie(
        csrf_name,
        token,
        httponly=True,
        samesite="lax",
        path=csrf_path,
        max_age=3600,
        secure=secure_cookies(svc.settings),
    )
    return response


def safe_next(target: str) -> str:
    return target if target.startswith("/") and not target.startswith("//") else "/"


@router.post("/login")
def login(
    request: Request,
    svc: ServicesDep,
    session: SessionDep,
    token: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",  # noqa: A002
) -> Response:
    csrf_name, csrf_path = login_csrf_cookie(svc.settings)
    expected = request.cookies.get(csrf_name) or ""
    if not expected or not csrf_token or expected != csrf_token:
        raise Forbidden("The sign-in form expired: reload the page and try again")
    principal = resolve_token(session, token.strip())
    if principal is None:
        query = urlencode({"next": safe_next(next), "error": "That access token is not valid."})
        return RedirectResponse(f"/login?{query}", status_code=303)
    raw = create_session(session, principal)
    session.commit()
    response = RedirectResponse(safe_next(next), status_code=303)
    set_session_cookie(response, svc.settings, raw)
    response.delete_cookie(csrf_name, path=csrf_path, secure=secure_cookies(svc.settings))
    return response


@router.post("/logout")
def logout(
    request: Request,
    svc: ServicesDep,
    session: SessionDep,
    user: WebUserDep,
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    if not csrf_ok(user, csrf_token):
        raise Forbidden("Invalid or missing CSRF token")
    end_session(session, request.cookies.get(session_cookie_name(svc.settings)))
    session.commit()
    response = RedirectResponse("/", status_code=303)
    clear_session_cookie(response, svc.settings)
    return response


# ---------------------------------------------------------------------------------------------- explore
@router.get("/", response_class=HTMLResponse)
@router.get("/spaces", response_class=HTMLResponse)
def explore(
    request: Request,
    svc: ServicesDep,
    session: SessionDep,
    user: WebUserDep,
    q: str = "",
    owner: str = "",
    sdk: str = "",
    page: int = 1,
    sort: str = "recent",
) -> Response:
    principal = principal_of(user)
    sort = sort if sort in EXPLORE_SORTS else "recent"
    query = select(Space).order_by(*EXPLORE_SORTS[sort])
    if owner:
        query = query.where(Space.owner == owner)
    if sdk:
        query = query.where(Space.sdk == sdk)
    visible = [sp for sp in session.scalars(query) if can_read(session, principal, sp)]
    if q:
        needle = q.lower()
        visible = [
            sp
            for sp in visible
            if needle in sp.space_id.lower()
            or needle in str((sp.card_data or {}).get("title") or "").lower()
            or needle in str((sp.card_data or {}).get("short_description") or "").lower()
        ]
    owners = sorted({sp.owner for sp in session.scalars(select(Space)) if can_read(session, principal, sp)})
    pages = max(1, math.ceil(len(visible) / PAGE_SIZE))
    page = min(max(1, page), pages)
    shown = visible[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]

    def page_url(n: int) -> str:
        params = {k: v for k, v in (("q", q), ("owner", owner), ("sdk", sdk)) if v}
        if sort != "recent":
            params["sort"] = sort
        if n > 1:
            params["page"] = str(n)
        return "/spaces" + (f"?{urlencode(params)}" if params else "")

    return render(
        request,
        "explore.html",
        user,
        spaces=shown,
        total=len(visible),
        q=q,
        owner=owner,
        sdk=sdk,
        sdks=SDKS,
        owners=owners,
        sort=sort,
        page=page,
        pages=pages,
        prev_url=page_url(page - 1) if page > 1 else "",
        next_url=page_url(page + 1) if page < pages else "",
    )


# ---------------------------------------------------------------------------------------------- new Space
@router.get("/new-space", response_class=HTMLResponse)
def new_space_page(request: Request, svc: ServicesDep, session: SessionDep, user: WebUserDep) -> Response:
    if user is None:
        return RedirectResponse("/login?next=/new-space", status_code=303)
    return render(
        request,
        "new_space.html",
        user,
        owners=writable_namespaces(session, user.principal),
        sdks=SDKS,
        flavors=svc.flavors,
        form={},
        error="",
    )


@router.post("/new-space")
def new_space(
    request: Request,
    svc: ServicesDep,
    session: SessionDep,
    user: WebUserDep,
    owner: Annotated[str, Form()] = "",
    name: Annotated[str, Form()] = "",
    sdk: Annotated[str, Form()] = "gradio",
    visibility: Annotated[str, Form()] = "public",
    hardware: Annotated[str, Form()] = "cpu-basic",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    if user is None:
        return RedirectResponse("/login?next=/new-space", status_code=303)
    if not csrf_ok(user, csrf_token):
        raise Forbidden("Invalid or missing CSRF token")
    try:
        space = create_space(
            svc,
            session,
            user.principal,
            owner,
            name.strip(),
            sdk=sdk,
            private=visibility == "private",
            hardware=hardware,
        )
        session.commit()
    except PlatformError as exc:
        session.rollback()
        return render(
            request,
            "new_space.html",
            user,
            status=exc.status,
            owners=writable_namespaces(session, user.principal),
            sdks=SDKS,
            flavors=svc.flavors,
            form={"owner": owner, "name": name, "sdk": sdk, "visibility": visibility, "hardware": hardware},
            error=str(exc),
        )
    svc.deployer.register(space)
    return RedirectResponse(f"/spaces/{space.owner}/{space.name}", status_code=303)


# ---------------------------------------------------------------------------------------------- a Space
@router.get("/spaces/{owner}/{name}", response_class=HTMLResponse)
def space_page(
    owner: str, name: str, request: Request, svc: ServicesDep, session: SessionDep, user: WebUserDep
) -> Response:
    space = get_readable(session, principal_of(user), owner, name)
    if space is None:
        return not_found(request, user, f"{owner}/{name}")
    ctx = space_context(request, svc, session, user, space)
    ctx["starter"] = starters.for_sdk(space.sdk, ctx["title"]) if not space.head_sha else None
    return render(request, "space.html", user, tab="app", **ctx)


@router.get("/spaces/{owner}/{name}/tree/{rev}", response_class=HTMLResponse)
@router.get("/spaces/{owner}/{name}/tree/{rev}/{path:path}", response_class=HTMLResponse)
def files_page(
    owner: str,
    name: str,
    rev: str,
    request: Request,
    svc: ServicesDep,
    session: SessionDep,
    user: WebUserDep,
    path: str = "",
) -> Response:
    space = get_readable(session, principal_of(user), owner, name)
    if space is None:
        return not_found(request, user, f"{owner}/{name}")
    ctx = space_context(request, svc, session, user, space)
    sha = page_revision(svc, space, rev) if space.head_sha else None
    if sha is None and space.head_sha:
        return not_found(request, user, f"{owner}/{name}: revision {rev[:100]}")
    entries = svc.repos.list_tree(owner, name, sha, path.strip("/"), recursive=False) if sha else []
    entries.sort(key=lambda e: (e.type != "directory", e.path.lower()))
    commit = svc.repos.commit_info(owner, name, sha) if sha else None
    crumbs = breadcrumbs(path)
    lfs = lfsinfo.pointers(svc.repos, space, [(e.oid, e.size) for e in entries if e.type == "file"])
    return render(
        request, "files.html", user, tab="files", rev=rev, sha=sha, path=path.strip("/"), entries=entries,
        commit=commit, crumbs=crumbs, lfs=lfs, **ctx,
    )  # fmt: skip


@router.get("/spaces/{owner}/{name}/blob/{rev}/{path:path}", response_class=HTMLResponse)
def file_page(
    owner: str,
    name: str,
    rev: str,
    path: str,
    request: Request,
    svc: ServicesDep,
    session: SessionDep,
    user: WebUserDep,
) -> Response:
    space = get_readable(session, principal_of(user), owner, name)
    if space is None:
        return not_found(request, user, f"{owner}/{name}")
    ctx = space_context(request, svc, session, user, space)
    sha = page_revision(svc, space, rev) if space.head_sha else None
    data = svc.repos.read_file(owner, name, sha, path) if sha else None
    if data is None:
        return not_found(request, user, f"{owner}/{name}: {path} at {rev}")
    pointer = parse_pointer(data)
    if pointer is not None:
        return render(
            request, "blob.html", user, tab="files", rev=rev, sha=sha, path=path, text=None, size=pointer.size,
            lines=0, crumbs=breadcrumbs(path), lfs=pointer, **ctx,
        )  # fmt: skip
    text: str | None = None
    if len(data) <= MAX_TEXT_VIEW and b"\0" not in data[:8192]:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = None
    return render(
        request, "blob.html", user, tab="files", rev=rev, sha=sha, path=path, text=text, size=len(data),
        lines=(text.count("\n") + (0 if text.endswith("\n") else 1)) if text else 0, crumbs=breadcrumbs(path), **ctx,
    )  # fmt: skip


@router.get("/spaces/{owner}/{name}/commits/{rev:path}", response_class=HTMLResponse)
def commits_page(
    owner: str,
    name: str,
    rev: str,
    request: Request,
    svc: ServicesDep,
    session: SessionDep,
    user: WebUserDep,
    page: int = 1,
) -> Response:
    space = get_readable(session, principal_of(user), owner, name)
    if space is None:
        return not_found(request, user, f"{owner}/{name}")
    ctx = space_context(request, svc, session, user, space)
    sha = page_revision(svc, space, rev)
    if sha is None and space.head_sha:
        return not_found(request, user, f"{owner}/{name}: revision {rev}")
    total = history.count(svc.repos, space, sha) if sha else 0
    pages = max(1, math.ceil(total / HISTORY_PAGE))
    page = min(max(1, page), pages)
    commits = history.commits(svc.repos, space, sha, skip=(page - 1) * HISTORY_PAGE, limit=HISTORY_PAGE) if sha else []
    base = f"/spaces/{owner}/{name}/commits/{quote(rev, safe='/')}"
    return render(
        request, "commits.html", user, tab="files", rev=rev, commits=commits, total=total, page=page, pages=pages,
        prev_url=(base + (f"?page={page - 1}" if page > 2 else "")) if page > 1 else "",
        next_url=f"{base}?page={page + 1}" if page < pages else "", **ctx,
    )  # fmt: skip


DIFF_STATUS = {"A": "added", "M": "modified", "D": "deleted", "R": "renamed", "C": "copied", "T": "type changed"}


@router.get("/spaces/{owner}/{name}/commit/{rev}", response_class=HTMLResponse)
def commit_page(
    owner: str, name: str, rev: str, request: Request, svc: ServicesDep, session: SessionDep, user: WebUserDep
) -> Response:
    """One commit and its diff: where the commit links printed by huggingface_hub and hf lead."""
    space = get_readable(session, principal_of(user), owner, name)
    if space is None:
        return not_found(request, user, f"{owner}/{name}")
    ctx = space_context(request, svc, session, user, space)
    sha = page_revision(svc, space, rev)
    commit = history.commit(svc.repos, space, sha) if sha else None
    if commit is None:
        return not_found(request, user, f"{owner}/{name}: commit {rev[:40]}")
    files = history.diff(svc.repos, space, commit)
    return render(
        request, "commit.html", user, tab="files", rev=rev, commit=commit, files=files, statuses=DIFF_STATUS,
        added=sum(f.added for f in files), removed=sum(f.removed for f in files), **ctx,
    )  # fmt: skip


def page_revision(svc: ServicesDep, space: Space, rev: str) -> str | None:
    """The commit a page's revision names, or None (no commits yet, or no such revision)."""
    try:
        return revisions.resolve(svc.repos, space, rev)
    except RevisionNotFound:
        return None


def breadcrumbs(path: str) -> list[tuple[str, str]]:
    parts = [p for p in path.strip("/").split("/") if p]
    return [(p, "/".join(parts[: i + 1])) for i, p in enumerate(parts)]


@router.get("/spaces/{owner}/{name}/logs", response_class=HTMLResponse)
def logs_page(
    owner: str, name: str, request: Request, svc: ServicesDep, session: SessionDep, user: WebUserDep
) -> Response:
    space = get_readable(session, principal_of(user), owner, name)
    if space is None:
        return not_found(request, user, f"{owner}/{name}")
    ctx = space_context(request, svc, session, user, space)
    return render(request, "logs.html", user, tab="logs", **ctx)


@router.get("/spaces/{owner}/{name}/settings", response_class=HTMLResponse)
def settings_page(
    owner: str, name: str, request: Request, svc: ServicesDep, session: SessionDep, user: WebUserDep
) -> Response:
    principal = principal_of(user)
    space = get_readable(session, principal, owner, name)
    if space is None:
        return not_found(request, user, f"{owner}/{name}")
    ctx = space_context(request, svc, session, user, space)
    if not ctx["is_owner"]:
        if user is None:
            return RedirectResponse(f"/login?next=/spaces/{owner}/{name}/settings", status_code=303)
        return render(request, "forbidden.html", user, status=403, tab="settings", **ctx)
    secrets = list(space_settings.list_secrets(session, principal, owner, name).values())
    variables = list(space_settings.variables_of(session, space).values())
    gc = space.sleep_time if space.sleep_time is not None else svc.settings.default_sleep_time
    return render(
        request,
        "settings.html",
        user,
        tab="settings",
        secrets=secrets,
        variables=variables,
        flavors=svc.flavors,
        sleep_time=gc,
        owners=writable_namespaces(session, principal) if principal else [],
        flash_done=request.query_params.get("done", "")[:300],
        flash_error=request.query_params.get("error", "")[:500],
        **ctx,
    )
