"""Signing in with an access token (a session cookie, CSRF-protected) and signing out."""

from __future__ import annotations

import secrets
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ..auth import resolve_token
from ..deps import ServicesDep, SessionDep
from ..errors import Forbidden
from ..sessions import (
    clear_session_cookie,
    create_session,
    csrf_ok,
    end_session,
    login_csrf_cookie,
    secure_cookies,
    session_cookie_name,
    set_session_cookie,
)
from .render import WebUserDep, render, safe_next

router = APIRouter(include_in_schema=False)


@router.get("/login", response_class=HTMLResponse)
def login_page(
    request: Request,
    svc: ServicesDep,
    user: WebUserDep,
    next: str = "/",  # noqa: A002
    error: str = "",
) -> Response:
    csrf_name, csrf_path = login_csrf_cookie(svc.settings)
    token = request.cookies.get(csrf_name) or secrets.token_urlsafe(24)
    response = render(request, "login.html", user, next=safe_next(next), login_csrf=token, error=error)
    response.set_cookie(
        csrf_name,
        token,
        httponly=True,
        samesite="lax",
        path=csrf_path,
        max_age=3600,
        secure=secure_cookies(svc.settings),
    )
    return response


@router.post("/login")
def login(
    request: Request,
    svc: ServicesDep,
    session: SessionDep,
    token: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",  # noqa: A002
) -> Response:
    csrf_name, csrf_path = login_csrf_cookie(svc.settings)
    expected = request.cookies.get(csrf_name) or ""
    if not expected or not csrf_token or expected != csrf_token:
        raise Forbidden("The sign-in form expired: reload the page and try again")
    principal = resolve_token(session, token.strip())
    if principal is None:
        query = urlencode({"next": safe_next(next), "error": "That access token is not valid."})
        return RedirectResponse(f"/login?{query}", status_code=303)
    raw = create_session(session, principal)
    session.commit()
    response = RedirectResponse(safe_next(next), status_code=303)
    set_session_cookie(response, svc.settings, raw)
    response.delete_cookie(csrf_name, path=csrf_path, secure=secure_cookies(svc.settings))
    return response


@router.post("/logout")
def logout(
    request: Request,
    svc: ServicesDep,
    session: SessionDep,
    user: WebUserDep,
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    if not csrf_ok(user, csrf_token):
        raise Forbidden("Invalid or missing CSRF token")
    end_session(session, request.cookies.get(session_cookie_name(svc.settings)))
    session.commit()
    response = RedirectResponse("/", status_code=303)
    clear_session_cookie(response, svc.settings)
    return response
