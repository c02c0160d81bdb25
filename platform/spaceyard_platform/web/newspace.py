"""The New Space form: it calls the same service as ``create_repo(repo_type="space")``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ..deps import ServicesDep, SessionDep
from ..errors import Forbidden, PlatformError
from ..services.spaces import SDKS, create_space
from ..sessions import csrf_ok
from .render import WebUserDep, render, writable_namespaces

router = APIRouter(include_in_schema=False)


@router.get("/new-space", response_class=HTMLResponse)
def new_space_page(request: Request, svc: ServicesDep, session: SessionDep, user: WebUserDep) -> Response:
    if user is None:
        return RedirectResponse("/login?next=/new-space", status_code=303)
    return render(
        request,
        "new_space.html",
        user,
        owners=writable_namespaces(session, user.principal),
        sdks=SDKS,
        flavors=svc.flavors,
        form={},
        error="",
    )


@router.post("/new-space")
def new_space(
    request: Request,
    svc: ServicesDep,
    session: SessionDep,
    user: WebUserDep,
    owner: Annotated[str, Form()] = "",
    name: Annotated[str, Form()] = "",
    sdk: Annotated[str, Form()] = "gradio",
    visibility: Annotated[str, Form()] = "public",
    hardware: Annotated[str, Form()] = "cpu-basic",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    if user is None:
        return RedirectResponse("/login?next=/new-space", status_code=303)
    if not csrf_ok(user, csrf_token):
        raise Forbidden("Invalid or missing CSRF token")
    try:
        space = create_space(
            svc,
            session,
            user.principal,
            owner,
            name.strip(),
            sdk=sdk,
            private=visibility == "private",
            hardware=hardware,
        )
        session.commit()
    except PlatformError as exc:
        session.rollback()
        return render(
            request,
            "new_space.html",
            user,
            status=exc.status,
            owners=writable_namespaces(session, user.principal),
            sdks=SDKS,
            flavors=svc.flavors,
            form={"owner": owner, "name": name, "sdk": sdk, "visibility": visibility, "hardware": hardware},
            error=str(exc),
        )
    svc.deployer.register(space)
    return RedirectResponse(f"/spaces/{space.owner}/{space.name}", status_code=303)
