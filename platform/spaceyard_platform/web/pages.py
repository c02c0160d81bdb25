"""HTML pages: home and the Space page (header, stage, the app in an iframe, the live build log)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from sqlalchemy import select

from ..auth import can_read
from ..db.models import Space
from ..deps import PrincipalDep, ServicesDep, SessionDep
from ..errors import RepoNotFound
from ..gateway.routes import subdomain_for

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
STATIC_DIR = Path(__file__).parent / "static"

router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
def home(request: Request, svc: ServicesDep, session: SessionDep, principal: PrincipalDep) -> Any:
    spaces = [
        s for s in session.scalars(select(Space).order_by(Space.updated_at.desc())) if can_read(session, principal, s)
    ]
    return TEMPLATES.TemplateResponse(request, "home.html", {"spaces": spaces, "principal": principal})


@router.get("/spaces/{owner}/{name}", response_class=HTMLResponse)
def space_page(
    owner: str, name: str, request: Request, svc: ServicesDep, session: SessionDep, principal: PrincipalDep
) -> Any:
    space = session.scalar(select(Space).where(Space.owner == owner, Space.name == name))
    if space is None or not can_read(session, principal, space):
        raise RepoNotFound(f"Space {owner}/{name} not found")
    card = space.card_data or {}
    context = {
        "space": space,
        "card": card,
        "principal": principal,
        "app_url": svc.settings.app_url(space.space_id, "subdomain"),
        "app_path_url": svc.settings.app_url(space.space_id, "path") + "/",
        "subdomain": subdomain_for(space.space_id),
        "git_url": f"{svc.settings.resolved_public_url}/spaces/{space.space_id}",
    }
    return TEMPLATES.TemplateResponse(request, "space.html", context)
