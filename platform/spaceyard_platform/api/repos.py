"""Repository CRUD for every kind: ``POST /api/repos/create``, ``DELETE /api/repos/delete``,
``POST /api/repos/move`` (``type``: ``model`` — the client's default —, ``dataset`` or ``space``).
The rules live in :mod:`spaceyard_platform.services` (``spaces`` and ``hubrepos``)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from .. import names, repokinds
from ..auth import can_write_namespace
from ..db.models import Space
from ..deps import PrincipalDep, ServicesDep, SessionDep
from ..errors import BadRequest, Conflict, Forbidden, RepoNotFound
from ..services import hubrepos
from ..services.spaces import KeyValue, claim_label, create_space, validate_name
from .common import find_space, public_base, writable_space

router = APIRouter(prefix="/api/repos")


class CreateRepo(BaseModel):
    name: str
    organization: str | None = None
    type: str = "model"
    sdk: str | None = None
    private: bool | None = None
    visibility: str | None = None
    hardware: str | None = None
    sleepTimeSeconds: int | None = None
    secrets: list[KeyValue] = Field(default_factory=list)
    variables: list[KeyValue] = Field(default_factory=list)


@router.post("/create")
async def create_repo(request: Request, body: CreateRepo, svc: ServicesDep, principal: PrincipalDep) -> Any:
    kind = repokinds.named(body.type)
    if kind is repokinds.SPACE and not body.sdk:
        raise BadRequest("sdk is required for a Space: one of gradio, streamlit, docker, static")
    owner = body.organization or (principal.name if principal else "")
    private = body.private if body.private is not None else body.visibility == "private"
    url = kind.repo_url(public_base(request, svc), f"{owner}/{body.name}")

    def create() -> Any:
        with svc.db.session() as session:
            if kind is not repokinds.SPACE:
                return hubrepos.create(svc, session, principal, kind.name, owner, body.name, private=private)
            return create_space(
                svc,
                session,
                principal,
                owner,
                body.name,
                sdk=body.sdk or "gradio",
                private=private,
                hardware=body.hardware,
                sleep_time=body.sleepTimeSeconds,
                secrets=body.secrets,
                variables=body.variables,
            )

    try:
        row = await asyncio.to_thread(create)
    except Conflict as exc:
        return JSONResponse({"error": str(exc), "url": url}, status_code=409)
    if isinstance(row, Space):
        svc.deployer.register(row)
    return {"url": url, "name": row.repo_id, "id": row.id}


class DeleteRepo(BaseModel):
    name: str
    organization: str | None = None
    type: str = "model"


@router.delete("/delete")
async def delete_repo(body: DeleteRepo, svc: ServicesDep, session: SessionDep, principal: PrincipalDep) -> Any:
    kind = repokinds.named(body.type)
    owner = body.organization or (principal.name if principal else "")
    if kind is not repokinds.SPACE:
        await asyncio.to_thread(hubrepos.delete, svc, session, principal, kind.name, owner, body.name)
        return JSONResponse("OK")
    space = writable_space(session, principal, owner, body.name)
    pk = space.id
    session.delete(space)
    session.commit()
    await svc.deployer.delete(pk)
    await asyncio.to_thread(svc.repos.delete, owner, body.name)
    return JSONResponse("OK")


class MoveRepo(BaseModel):
    fromRepo: str
    toRepo: str
    type: str = "model"


@router.post("/move")
async def move_repo(
    request: Request, body: MoveRepo, svc: ServicesDep, session: SessionDep, principal: PrincipalDep
) -> Any:
    kind = repokinds.named(body.type)
    if kind is not repokinds.SPACE:
        await asyncio.to_thread(hubrepos.move, svc, session, principal, kind.name, body.fromRepo, body.toRepo)
        return {"url": kind.repo_url(public_base(request, svc), body.toRepo)}
    owner, _, name = body.fromRepo.partition("/")
    new_owner, _, new_name = body.toRepo.partition("/")
    space = writable_space(session, principal, owner, name)
    names.check_owner(new_owner)
    validate_name(new_name)
    if not can_write_namespace(session, principal, new_owner):
        raise Forbidden(f"You don't have the rights to create a Space in {new_owner!r}")
    if find_space(session, new_owner, new_name) is not None:
        raise Conflict(f"{body.toRepo} already exists")
    label = claim_label(session, new_owner, new_name, current=space)
    if not svc.repos.exists(owner, name):
        raise RepoNotFound("Repository not found")
    await svc.deployer.delete(space.id)
    svc.repos.move(owner, name, new_owner, new_name)
    space.owner, space.name, space.subdomain = new_owner, new_name, label
    session.commit()
    svc.deployer.register(space)
    if space.head_sha:
        await svc.deployer.request_build(space.id, space.head_sha)
    return {"url": f"{public_base(request, svc)}/spaces/{body.toRepo}"}
