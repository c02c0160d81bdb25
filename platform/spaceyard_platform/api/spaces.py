"""Space endpoints: info, listing, runtime and lifecycle actions."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import or_, select

from ..auth import can_read
from ..db.models import Space
from ..deps import PrincipalDep, ServicesDep, SessionDep
from .common import readable_space, runtime_json, space_json, writable_space

router = APIRouter(prefix="/api/spaces")


@router.get("")
def list_spaces(
    request: Request,
    svc: ServicesDep,
    session: SessionDep,
    principal: PrincipalDep,
    author: str | None = None,
    search: str | None = None,
    sdk: str | None = None,
    limit: int | None = None,
    cursor: int = 0,
    full: bool = False,
) -> Any:
    query = select(Space).order_by(Space.updated_at.desc(), Space.id)
    if author:
        query = query.where(Space.owner == author)
    if search:
        like = f"%{search.lower()}%"
        query = query.where(or_(Space.name.ilike(like), Space.owner.ilike(like)))
    if sdk:
        query = query.where(Space.sdk == sdk)
    visible = [sp for sp in session.scalars(query) if can_read(session, principal, sp)]
    page_size = min(limit, 1000) if limit else 1000
    page = visible[cursor : cursor + page_size]
    body = [space_json(svc, sp, siblings=full) for sp in page]
    headers = {}
    if cursor + page_size < len(visible):  # like the Hub: pages of `limit`, the client stops when it has enough
        params = dict(request.query_params)
        params["cursor"] = str(cursor + page_size)
        url = request.url.include_query_params(**params)
        headers["Link"] = f'<{url}>; rel="next"'
    return JSONResponse(body, headers=headers)


@router.get("/{owner}/{name}")
def space_info(
    owner: str, name: str, svc: ServicesDep, session: SessionDep, principal: PrincipalDep, blobs: bool = False
) -> Any:
    return space_json(svc, readable_space(session, principal, owner, name), blobs=blobs)


@router.get("/{owner}/{name}/auth-check")
def auth_check(owner: str, name: str, session: SessionDep, principal: PrincipalDep) -> Any:
    """``auth_check``: 200 when the caller may read the Space (404 otherwise, as for everything private)."""
    readable_space(session, principal, owner, name)
    return {}


@router.get("/{owner}/{name}/auth-check/write")
def auth_check_write(owner: str, name: str, session: SessionDep, principal: PrincipalDep) -> Any:
    """``auth_check(write=True)``: 200 when the caller may write to the Space (401/403/404 otherwise)."""
    writable_space(session, principal, owner, name)
    return {}


@router.get("/{owner}/{name}/runtime")
def space_runtime(owner: str, name: str, svc: ServicesDep, session: SessionDep, principal: PrincipalDep) -> Any:
    return runtime_json(svc, readable_space(session, principal, owner, name))
