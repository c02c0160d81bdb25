"""The explore page, one tab per kind: Spaces (``/`` and ``/spaces``: search, owner, SDK, sort, pages),
Models (``/models``) and Datasets (``/datasets``: search, owner, pages). Only what the visitor may read."""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select

from .. import repokinds
from ..auth import can_read
from ..db.models import HubRepo, Space
from ..deps import ServicesDep, SessionDep
from ..services import hubrepos
from ..services.spaces import SDKS
from .render import WebUserDep, principal_of, render

router = APIRouter(include_in_schema=False)
PAGE_SIZE = 24

EXPLORE_SORTS: dict[str, tuple[Any, ...]] = {
    "recent": (Space.updated_at.desc(), Space.id),
    "name": (Space.name, Space.owner, Space.id),
    "created": (Space.created_at.desc(), Space.id),
}
"""Explore's orders (``?sort=``): recently updated (default), by name, newest."""


def paging(total: int, page: int) -> tuple[int, int]:
    pages = max(1, math.ceil(total / PAGE_SIZE))
    return min(max(1, page), pages), pages


def page_link(base: str, params: dict[str, str], n: int) -> str:
    shown = {k: v for k, v in params.items() if v}
    if n > 1:
        shown["page"] = str(n)
    return base + (f"?{urlencode(shown)}" if shown else "")


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
    page, pages = paging(len(visible), page)
    shown = visible[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
    params = {"q": q, "owner": owner, "sdk": sdk, "sort": "" if sort == "recent" else sort}
    return render(
        request,
        "explore.html",
        user,
        explore_tab="space",
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
        prev_url=page_link("/spaces", params, page - 1) if page > 1 else "",
        next_url=page_link("/spaces", params, page + 1) if page < pages else "",
    )


def explore_repos(
    request: Request, session: SessionDep, user: WebUserDep, q: str = "", owner: str = "", page: int = 1
) -> Response:
    kind = repokinds.DATASET if request.url.path.startswith("/datasets") else repokinds.MODEL
    principal = principal_of(user)
    visible = hubrepos.visible(session, principal, kind.name, author=owner or None, search=q or None)
    owners = sorted({r.owner for r in hubrepos.visible(session, principal, kind.name)})
    page, pages = paging(len(visible), page)
    shown: list[HubRepo] = visible[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
    base = f"/{kind.api}"
    params = {"q": q, "owner": owner}
    return render(
        request,
        "explore_repos.html",
        user,
        explore_tab=kind.name,
        kind=kind,
        repos=[(r, hubrepos.license_of(r.card_data or {})) for r in shown],
        total=len(visible),
        q=q,
        owner=owner,
        owners=owners,
        page=page,
        pages=pages,
        prev_url=page_link(base, params, page - 1) if page > 1 else "",
        next_url=page_link(base, params, page + 1) if page < pages else "",
    )


for _kind in repokinds.HOSTED:
    router.add_api_route(f"/{_kind.api}", explore_repos, methods=["GET"], response_class=HTMLResponse)
