"""Space settings over the Hub API: hardware, secrets, variables, visibility, duplication.

The domain logic lives in :mod:`spaceyard_platform.services.space_settings` (the web Settings tab uses it too);
these handlers only translate the Hub's request and response shapes.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from spaceyard_runtime.flavors import hardware_info

from ..deps import PrincipalDep, ServicesDep, SessionDep
from ..errors import BadRequest, Conflict, header_value
from ..services import space_settings as service
from ..services.spaces import KeyValue
from .common import public_base, runtime_json

router = APIRouter(prefix="/api/spaces")


@router.get("/hardware")
def list_hardware(svc: ServicesDep) -> Any:
    """Every flavor of the flavors file, in the Hub's ``GET /api/spaces/hardware`` shape."""
    out = []
    for flavor in svc.flavors.values():
        info = hardware_info(flavor)
        if info.get("accelerator"):
            info["accelerator"].setdefault("type", "gpu")
        info.setdefault("ephemeralStorage", "N/A")
        out.append(info)
    return out


class HardwareRequest(BaseModel):
    flavor: str
    sleepTimeSeconds: int | None = None


@router.post("/{owner}/{name}/hardware")
async def request_hardware(
    owner: str, name: str, body: HardwareRequest, svc: ServicesDep, session: SessionDep, principal: PrincipalDep
) -> Any:
    space = await service.set_hardware(
        svc, session, principal, owner, name, body.flavor, sleep_time=body.sleepTimeSeconds
    )
    return runtime_json(svc, space)


class SecretBody(BaseModel):
    key: str
    value: str = ""
    description: str | None = None


class KeyBody(BaseModel):
    key: str


@router.get("/{owner}/{name}/secrets")
def get_secrets(owner: str, name: str, session: SessionDep, principal: PrincipalDep) -> Any:
    return service.list_secrets(session, principal, owner, name)


@router.post("/{owner}/{name}/secrets")
async def add_secret(
    owner: str, name: str, body: SecretBody, svc: ServicesDep, session: SessionDep, principal: PrincipalDep
) -> Any:
    await service.set_secret(svc, session, principal, owner, name, body.key, body.value, body.description)
    return {}


@router.delete("/{owner}/{name}/secrets")
async def delete_secret(
    owner: str, name: str, body: KeyBody, svc: ServicesDep, session: SessionDep, principal: PrincipalDep
) -> Any:
    await service.delete_secret(svc, session, principal, owner, name, body.key)
    return {}


@router.get("/{owner}/{name}/variables")
def get_variables(owner: str, name: str, session: SessionDep, principal: PrincipalDep) -> Any:
    return service.list_variables(session, principal, owner, name)


@router.post("/{owner}/{name}/variables")
async def add_variable(
    owner: str, name: str, body: SecretBody, svc: ServicesDep, session: SessionDep, principal: PrincipalDep
) -> Any:
    return await service.set_variable(svc, session, principal, owner, name, body.key, body.value, body.description)


@router.delete("/{owner}/{name}/variables")
async def delete_variable(
    owner: str, name: str, body: KeyBody, svc: ServicesDep, session: SessionDep, principal: PrincipalDep
) -> Any:
    return await service.delete_variable(svc, session, principal, owner, name, body.key)


class SettingsBody(BaseModel):
    private: bool | None = None
    visibility: str | None = None
    gated: Any = None


def resolve_private(private: bool | None, visibility: str | None) -> bool | None:
    if private is not None:
        return private
    if visibility is None:
        return None
    if visibility not in ("public", "private", "protected"):
        raise BadRequest(f"Invalid visibility {visibility!r}: public, private or protected")
    return visibility != "public"


@router.put("/{owner}/{name}/settings")
def update_settings(
    owner: str, name: str, body: SettingsBody, svc: ServicesDep, session: SessionDep, principal: PrincipalDep
) -> Any:
    if body.gated not in (None, False, "false"):
        raise BadRequest("Gated Spaces are not supported")
    private = resolve_private(body.private, body.visibility)
    if private is None:
        raise BadRequest("Nothing to update: set private or visibility")
    space = service.set_visibility(svc, session, principal, owner, name, private)
    return {"private": space.private, "visibility": "private" if space.private else "public"}


class DuplicateBody(BaseModel):
    repository: str
    private: bool | None = None
    visibility: str | None = None
    hardware: str | None = None
    sleepTimeSeconds: int | None = None
    secrets: list[KeyValue] = Field(default_factory=list)
    variables: list[KeyValue] = Field(default_factory=list)


@router.post("/{owner}/{name}/duplicate")
async def duplicate(
    owner: str,
    name: str,
    request: Request,
    body: DuplicateBody,
    svc: ServicesDep,
    session: SessionDep,
    principal: PrincipalDep,
) -> Any:
    url = f"{public_base(request, svc)}/spaces/{body.repository}"
    if "/" not in body.repository:
        raise BadRequest("repository must be NAMESPACE/NAME")
    try:
        space = await service.duplicate(
            svc,
            session,
            principal,
            owner,
            name,
            body.repository,
            private=resolve_private(body.private, body.visibility),
            hardware=body.hardware,
            sleep_time=body.sleepTimeSeconds,
            secrets=body.secrets,
            variables=body.variables,
        )
    except Conflict as exc:
        return JSONResponse(
            {"error": str(exc), "url": url}, status_code=409, headers={"X-Error-Message": header_value(str(exc))}
        )
    return {"url": f"{public_base(request, svc)}/spaces/{space.space_id}", "filesCopyPending": False}
