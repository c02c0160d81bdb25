"""A Space's own pages: the app (iframe, build status), logs and settings; ``space_context`` is what every
Space page (and the Space's file views) shows in its header."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from ..auth import Principal, can_write
from ..db.models import Space
from ..deps import ServicesDep, SessionDep
from ..lifecycle import stages
from ..lifecycle.stages import Stage
from ..services import space_settings
from ..services.lookup import find_space
from ..sessions import SignedIn
from . import starters
from .render import WebUserDep, not_found, principal_of, render, writable_namespaces

router = APIRouter(include_in_schema=False)

SERVING = stages.SERVING | {Stage.SLEEPING}
"""A version exists to show (serving, or asleep)."""


def get_readable(session: Session, principal: Principal | None, owner: str, name: str) -> Space | None:
    """The Space, or None when it does not exist or is private to others (both answer 404)."""
    from ..auth import can_read

    space = find_space(session, owner, name)
    if space is None or not can_read(session, principal, space):
        return None
    return space


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
        "repo_base": f"/spaces/{space.space_id}",
        "base_template": "_space_base.html",
        "kind": "space",
        "can_edit": can_write(session, principal, space),
        "kind_label": "Space",
        "download_hint": f"hf download {space.space_id} --repo-type space",
        "public_url": svc.settings.resolved_public_url,
        "serving": space.stage in SERVING or (space.serving_build_id is not None and space.stage != Stage.PAUSED),
        "disable_embedding": bool(card.get("disable_embedding", False)),
        "full_width": card.get("fullWidth", True) is not False,
        "mini_header": str(card.get("header") or "") == "mini",
        "sleep_depth": svc.deployer.sleep_depth(space.id),
    }


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
        deep_sleep_after=(
            space.deep_sleep_after if space.deep_sleep_after is not None else svc.settings.deep_sleep_after
        ),
        owners=writable_namespaces(session, principal) if principal else [],
        flash_done=request.query_params.get("done", "")[:300],
        flash_error=request.query_params.get("error", "")[:500],
        **ctx,
    )
