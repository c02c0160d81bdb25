"""Lifecycle actions on a Space: sleep time, pause, restart (owners only). Each answers the runtime JSON."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from ..deps import PrincipalDep, ServicesDep, SessionDep
from ..errors import BadRequest
from ..services.spaces import check_deep_sleep_after, check_sleep_time
from .common import runtime_json, writable_space

router = APIRouter(prefix="/api/spaces")


class SleepTime(BaseModel):
    seconds: int


@router.post("/{owner}/{name}/sleeptime")
def set_sleep_time(
    owner: str, name: str, body: SleepTime, svc: ServicesDep, session: SessionDep, principal: PrincipalDep
) -> Any:
    space = writable_space(session, principal, owner, name)
    check_sleep_time(body.seconds)
    space.sleep_time = body.seconds
    session.commit()
    return runtime_json(svc, space)


class DeepSleepAfter(BaseModel):
    seconds: int | None
    """``None``: the platform's ``deep_sleep_after``."""


@router.post("/{owner}/{name}/deepsleeptime")
def set_deep_sleep_after(
    owner: str, name: str, body: DeepSleepAfter, svc: ServicesDep, session: SessionDep, principal: PrincipalDep
) -> Any:
    """Spaceyard extension (the Hub has no such setting): seconds a sleeping Space keeps its fast wake
    (light sleep) before deep sleep; -1 never, 0 at once. Applies from the Space's next idle check."""
    space = writable_space(session, principal, owner, name)
    if body.seconds is not None:
        check_deep_sleep_after(body.seconds)
    space.deep_sleep_after = body.seconds
    session.commit()
    return runtime_json(svc, space)


@router.post("/{owner}/{name}/pause")
async def pause(owner: str, name: str, svc: ServicesDep, session: SessionDep, principal: PrincipalDep) -> Any:
    space = writable_space(session, principal, owner, name)
    if space.sdk == "static":
        raise BadRequest("Static Spaces are always running and cannot be paused")
    pk = space.id
    session.commit()
    await svc.deployer.pause(pk)
    session.refresh(space)
    return runtime_json(svc, space)


@router.post("/{owner}/{name}/restart")
async def restart(
    owner: str, name: str, svc: ServicesDep, session: SessionDep, principal: PrincipalDep, factory: bool = False
) -> Any:
    space = writable_space(session, principal, owner, name)
    if space.sdk == "static" and not factory:
        raise BadRequest("Static Spaces are always running and cannot be restarted")
    pk = space.id
    session.commit()
    await svc.deployer.restart(pk, factory=factory)
    session.refresh(space)
    return runtime_json(svc, space)
