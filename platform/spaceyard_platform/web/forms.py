"""The Settings tab's forms, posted by the browser (they work without JavaScript).

Each handler checks the session's CSRF token, calls the shared domain function in
:mod:`spaceyard_platform.services.space_settings` (the Hub API's handlers call the same ones), and redirects back
to the Settings tab with a message (``?done=`` or ``?error=``). Pause, restart and sleep time are sent
by ``spaceyard.js`` to the JSON API instead, with the CSRF token in ``X-CSRF-Token``.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form
from fastapi.responses import RedirectResponse, Response

from ..deps import ServicesDep, SessionDep
from ..errors import Forbidden, PlatformError, Unauthorized
from ..services import space_settings as service
from ..sessions import SignedIn, csrf_ok
from .render import WebUserDep

router = APIRouter(prefix="/spaces/{owner}/{name}/settings", include_in_schema=False)

FormStr = Annotated[str, Form()]


def checked(user: SignedIn | None, csrf_token: str) -> SignedIn:
    if user is None:
        raise Unauthorized("Sign in to change a Space's settings")
    if not csrf_ok(user, csrf_token):
        raise Forbidden("Invalid or missing CSRF token: reload the page and try again")
    return user


def back(owner: str, name: str, *, done: str = "", error: str = "", anchor: str = "") -> Response:
    query = urlencode({"done": done} if done else {"error": error})
    return RedirectResponse(f"/spaces/{owner}/{name}/settings?{query}{'#' + anchor if anchor else ''}", 303)


@router.post("/secrets")
async def save_secret(
    owner: str,
    name: str,
    svc: ServicesDep,
    session: SessionDep,
    user: WebUserDep,
    key: FormStr,
    value: FormStr = "",
    description: FormStr = "",
    csrf_token: FormStr = "",
) -> Response:
    principal = checked(user, csrf_token).principal
    try:
        await service.set_secret(svc, session, principal, owner, name, key.strip(), value, description or None)
    except PlatformError as exc:
        return back(owner, name, error=str(exc), anchor="s-secrets")
    return back(owner, name, done=f"Secret {key.strip()} saved: the Space restarts with it", anchor="s-secrets")


@router.post("/secrets/delete")
async def remove_secret(
    owner: str,
    name: str,
    svc: ServicesDep,
    session: SessionDep,
    user: WebUserDep,
    key: FormStr,
    csrf_token: FormStr = "",
) -> Response:
    principal = checked(user, csrf_token).principal
    await service.delete_secret(svc, session, principal, owner, name, key)
    return back(owner, name, done=f"Secret {key} deleted", anchor="s-secrets")


@router.post("/variables")
async def save_variable(
    owner: str,
    name: str,
    svc: ServicesDep,
    session: SessionDep,
    user: WebUserDep,
    key: FormStr,
    value: FormStr = "",
    description: FormStr = "",
    csrf_token: FormStr = "",
) -> Response:
    principal = checked(user, csrf_token).principal
    try:
        await service.set_variable(svc, session, principal, owner, name, key.strip(), value, description or None)
    except PlatformError as exc:
        return back(owner, name, error=str(exc), anchor="s-vars")
    return back(owner, name, done=f"Variable {key.strip()} saved", anchor="s-vars")


@router.post("/variables/delete")
async def remove_variable(
    owner: str,
    name: str,
    svc: ServicesDep,
    session: SessionDep,
    user: WebUserDep,
    key: FormStr,
    csrf_token: FormStr = "",
) -> Response:
    principal = checked(user, csrf_token).principal
    await service.delete_variable(svc, session, principal, owner, name, key)
    return back(owner, name, done=f"Variable {key} deleted", anchor="s-vars")


@router.post("/hardware")
async def change_hardware(
    owner: str,
    name: str,
    svc: ServicesDep,
    session: SessionDep,
    user: WebUserDep,
    flavor: FormStr,
    csrf_token: FormStr = "",
) -> Response:
    principal = checked(user, csrf_token).principal
    try:
        await service.set_hardware(svc, session, principal, owner, name, flavor)
    except PlatformError as exc:
        return back(owner, name, error=str(exc), anchor="s-hw")
    return back(owner, name, done=f"Hardware set to {flavor}", anchor="s-hw")


@router.post("/visibility")
def change_visibility(
    owner: str,
    name: str,
    svc: ServicesDep,
    session: SessionDep,
    user: WebUserDep,
    visibility: FormStr,
    csrf_token: FormStr = "",
) -> Response:
    principal = checked(user, csrf_token).principal
    space = service.set_visibility(svc, session, principal, owner, name, visibility == "private")
    return back(owner, name, done=f"This Space is now {'private' if space.private else 'public'}", anchor="s-vis")


@router.post("/duplicate")
async def duplicate(
    owner: str,
    name: str,
    svc: ServicesDep,
    session: SessionDep,
    user: WebUserDep,
    repository: FormStr,
    visibility: FormStr = "public",
    hardware: FormStr = "",
    csrf_token: FormStr = "",
) -> Response:
    principal = checked(user, csrf_token).principal
    target = repository.strip()
    if "/" not in target:
        target = f"{principal.name}/{target}"
    try:
        space = await service.duplicate(
            svc,
            session,
            principal,
            owner,
            name,
            target,
            private=visibility == "private",
            hardware=hardware or None,
        )
    except PlatformError as exc:
        session.rollback()
        return back(owner, name, error=str(exc), anchor="s-dup")
    return RedirectResponse(f"/spaces/{space.space_id}", 303)
