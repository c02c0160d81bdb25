"""Repository CRUD: ``POST /api/repos/create``, ``DELETE /api/repos/delete``, ``POST /api/repos/move``."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from ..auth import Principal, can_write_namespace
from ..db.models import Space, SpaceSecret, SpaceVariable
from ..deps import PrincipalDep, Services, ServicesDep, SessionDep
from ..errors import BadRequest, Conflict, Forbidden, RepoNotFound, Unauthorized
from .common import find_space, public_base, writable_space

router = APIRouter(prefix="/api/repos")

NAME_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?$")
KEY_RE = re.compile(r"^[a-zA-Z][_a-zA-Z0-9]*$")
SDKS = ("gradio", "streamlit", "docker", "static")


class KeyValue(BaseModel):
    key: str
    value: str = ""
    description: str | None = None


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


def validate_name(name: str) -> None:
    if not NAME_RE.match(name) or "--" in name or ".." in name or name.endswith(".git"):
        raise BadRequest(
            "Invalid repo name: use letters, digits, '-', '_' and '.', start and end with a letter or digit, "
            "at most 96 characters, no '--' or '..'"
        )


def validate_key(key: str) -> None:
    if not KEY_RE.match(key):
        raise BadRequest(f"Invalid key {key!r}: must match ^[a-zA-Z][_a-zA-Z0-9]*$")


def check_sleep_time(seconds: int) -> None:
    if seconds != -1 and seconds < 1:
        raise BadRequest("Sleep time must be a whole number of seconds >= 1, or -1 to never sleep")


def create_space(
    svc: Services,
    session: Session,
    principal: Principal | None,
    owner: str,
    name: str,
    *,
    sdk: str,
    private: bool = False,
    hardware: str | None = None,
    sleep_time: int | None = None,
    secrets: list[KeyValue] | None = None,
    variables: list[KeyValue] | None = None,
    init_repo: bool = True,
) -> Space:
    """Create a Space row and (unless ``init_repo`` is false) its bare repository; the caller commits."""
    if principal is None:
        raise Unauthorized("Authentication required to create a Space")
    if not can_write_namespace(session, principal, owner):
        raise Forbidden(f"You don't have the rights to create a Space in {owner!r}")
    validate_name(name)
    if sdk not in SDKS:
        raise BadRequest(f"Invalid sdk {sdk!r}: must be one of {', '.join(SDKS)}")
    hardware = hardware or "cpu-basic"
    if hardware not in svc.flavors:
        raise BadRequest(f"Invalid hardware flavor {hardware!r}. Valid flavors: {', '.join(svc.flavors)}")
    if sleep_time is not None:
        check_sleep_time(sleep_time)
    if find_space(session, owner, name) is not None:
        raise Conflict("You already created this space repo")
    for kv in (secrets or []) + (variables or []):
        validate_key(kv.key)
    now = datetime.now(UTC)
    space = Space(
        owner=owner,
        name=name,
        sdk=sdk,
        private=private,
        hardware=hardware,
        sleep_time=sleep_time,
        stage="NO_APP_FILE",
        error_message=None,
        card_data={},
        created_at=now,
        updated_at=now,
    )
    session.add(space)
    session.flush()
    for kv in secrets or []:
        session.add(
            SpaceSecret(
                space_pk=space.id,
                key=kv.key,
                value_encrypted=svc.secretbox.encrypt(kv.value),
                description=kv.description,
                updated_at=now,
            )
        )
    for kv in variables or []:
        session.add(
            SpaceVariable(space_pk=space.id, key=kv.key, value=kv.value, description=kv.description, updated_at=now)
        )
    if init_repo:
        svc.repos.init(owner, name)
    return space


@router.post("/create")
async def create_repo(request: Request, body: CreateRepo, svc: ServicesDep, principal: PrincipalDep) -> Any:
    if body.type != "space":
        raise BadRequest("Spaceyard hosts Spaces only: create the repository with type 'space' (repo_type='space')")
    if not body.sdk:
        raise BadRequest("sdk is required for a Space: one of gradio, streamlit, docker, static")
    owner = body.organization or (principal.name if principal else "")
    private = body.private if body.private is not None else body.visibility == "private"
    url = f"{public_base(request, svc)}/spaces/{owner}/{body.name}"

    def create() -> Space:
        with svc.db.session() as session:
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
        space = await asyncio.to_thread(create)
    except Conflict as exc:
        return JSONResponse({"error": str(exc), "url": url}, status_code=409)
    svc.deployer.register(space)
    return {"url": url, "name": space.space_id, "id": space.id}


class DeleteRepo(BaseModel):
    name: str
    organization: str | None = None
    type: str = "model"


@router.delete("/delete")
async def delete_repo(body: DeleteRepo, svc: ServicesDep, session: SessionDep, principal: PrincipalDep) -> Any:
    owner = body.organization or (principal.name if principal else "")
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
    owner, _, name = body.fromRepo.partition("/")
    new_owner, _, new_name = body.toRepo.partition("/")
    space = writable_space(session, principal, owner, name)
    validate_name(new_name)
    if not can_write_namespace(session, principal, new_owner):
        raise Forbidden(f"You don't have the rights to create a Space in {new_owner!r}")
    if find_space(session, new_owner, new_name) is not None:
        raise Conflict(f"{body.toRepo} already exists")
    if not svc.repos.exists(owner, name):
        raise RepoNotFound("Repository not found")
    await svc.deployer.delete(space.id)
    svc.repos.move(owner, name, new_owner, new_name)
    space.owner, space.name = new_owner, new_name
    session.commit()
    svc.deployer.register(space)
    if space.head_sha:
        await svc.deployer.request_build(space.id, space.head_sha)
    return {"url": f"{public_base(request, svc)}/spaces/{body.toRepo}"}
