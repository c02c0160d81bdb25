"""Repository CRUD: ``POST /api/repos/create``, ``DELETE /api/repos/delete``, ``POST /api/repos/move``."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .. import names
from ..auth import Principal, can_write_namespace
from ..db.models import Space, SpaceSecret, SpaceVariable
from ..deps import PrincipalDep, Services, ServicesDep, SessionDep
from ..errors import BadRequest, Conflict, Forbidden, RepoNotFound, Unauthorized
from .common import find_space, public_base, writable_space

router = APIRouter(prefix="/api/repos")

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
    names.check_repo_name(name)


def validate_key(key: str) -> None:
    names.check_env_key(key)


def validate_keys(keys: list[str]) -> None:
    """Keys given together (a new Space's secrets and variables): valid, and distinct ignoring case."""
    seen: dict[str, str] = {}
    for key in keys:
        validate_key(key)
        other = seen.setdefault(key.lower(), key)
        if other != key or keys.count(key) > 1:
            raise BadRequest(f"Duplicate key {key!r}: secret and variable keys are unique, ignoring case")


def same_name(session: Session, owner: str, name: str) -> Space | None:
    """The Space whose id equals ``owner/name`` ignoring case, if any."""
    return session.scalar(
        select(Space).where(func.lower(Space.owner) == names.fold(owner), func.lower(Space.name) == names.fold(name))
    )


def claim_label(session: Session, owner: str, name: str, *, current: Space | None = None) -> str:
    """The subdomain ``owner/name`` gets; Conflict if the id exists in another case, BadRequest if another
    Space already serves on its address (``names`` module docstring)."""
    names.check_owner(owner)
    names.check_repo_name(name)
    clash = same_name(session, owner, name)
    if clash is not None and clash is not current:
        raise Conflict(f"You already created this space repo: {clash.space_id} (names ignore case)")
    label = names.hub_label(owner, name)
    if current is not None and names.fold(current.space_id) == names.fold(f"{owner}/{name}"):
        return current.app_label
    holder = session.scalar(select(Space).where(Space.subdomain == label))
    if holder is not None and holder is not current:
        raise BadRequest(names.subdomain_conflict_message(f"{owner}/{name}", label, holder.space_id))
    return label


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
    names.check_owner(owner)
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
    label = claim_label(session, owner, name)
    validate_keys([kv.key for kv in (secrets or []) + (variables or [])])
    now = datetime.now(UTC)
    space = Space(
        owner=owner,
        name=name,
        sdk=sdk,
        private=private,
        hardware=hardware,
        sleep_time=sleep_time,
        card_data={},
        subdomain=label,
        created_at=now,
        updated_at=now,
    )
    session.add(space)
    try:
        session.flush()
    except IntegrityError as exc:  # created concurrently: same id or same address
        raise Conflict(f"Cannot create {owner}/{name}: another conflicting operation is in progress") from exc
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
