"""Persistent storage endpoints (``spaceyard_platform.storage``): the Hub's ``/storage`` and ``/volumes``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from ..deps import PrincipalDep, ServicesDep, SessionDep
from ..services import storage
from .common import runtime_json

router = APIRouter(prefix="/api/spaces")


class StorageTier(BaseModel):
    tier: str


class Volumes(BaseModel):
    volumes: list[dict[str, Any]]


@router.post("/{owner}/{name}/storage")
async def request_storage(
    owner: str, name: str, body: StorageTier, svc: ServicesDep, session: SessionDep, principal: PrincipalDep
) -> Any:
    space = await storage.request_storage(svc, session, principal, owner, name, body.tier)
    return runtime_json(svc, space)


@router.delete("/{owner}/{name}/storage")
async def delete_storage(owner: str, name: str, svc: ServicesDep, session: SessionDep, principal: PrincipalDep) -> Any:
    space = await storage.delete_storage(svc, session, principal, owner, name)
    return runtime_json(svc, space)


@router.get("/{owner}/{name}/storage")
async def describe_storage(
    owner: str, name: str, svc: ServicesDep, session: SessionDep, principal: PrincipalDep
) -> Any:
    return await storage.describe(svc, session, principal, owner, name)


@router.put("/{owner}/{name}/volumes")
async def set_volumes(
    owner: str, name: str, body: Volumes, svc: ServicesDep, session: SessionDep, principal: PrincipalDep
) -> Any:
    space = await storage.set_volumes(svc, session, principal, owner, name, body.volumes)
    return runtime_json(svc, space)


@router.delete("/{owner}/{name}/volumes")
async def delete_volumes(owner: str, name: str, svc: ServicesDep, session: SessionDep, principal: PrincipalDep) -> Any:
    space = await storage.delete_volumes(svc, session, principal, owner, name)
    return runtime_json(svc, space)
