"""``GET /auth/apps``: the platform's half of the sign-in hop to a private app (see ``gateway/access.py``).

The gateway sends a browser that may not open a private app here, with ``space`` (the app's subdomain
label) and ``next`` (the path it wanted). A visitor who is not signed in is sent to the sign-in page
first; one who may read the Space is sent back to the app's origin with a ticket that is signed, bound
to that Space and to this web session, single-use and valid for a minute; anyone else gets the same
404 as for a Space that does not exist. The ticket only ever goes to the app's own origin, built here
from the Space, never from a parameter.
"""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select

from ..auth import can_read
from ..db.models import Space
from ..deps import ServicesDep, SessionDep
from ..gateway.access import AUTH_PATH
from ..sessions import resolve_session, session_cookie_name, session_ref
from .render import not_found, safe_next

router = APIRouter(include_in_schema=False)


@router.get("/auth/apps")
def app_sign_in(
    request: Request,
    svc: ServicesDep,
    session: SessionDep,
    space: str = "",
    next: str = "/",  # noqa: A002
) -> Response:
    raw = request.cookies.get(session_cookie_name(svc.settings))
    signed_in = resolve_session(session, raw)
    if signed_in is None or raw is None:
        here = "/auth/apps?" + urlencode({"space": space, "next": next})
        return RedirectResponse("/login?" + urlencode({"next": here}), status_code=303)
    route = svc.routes.by_subdomain(space) if space else None
    access = svc.access
    row = None
    if route is not None:
        owner, _, name = route.space_id.partition("/")
        row = session.scalar(select(Space).where(Space.owner == owner, Space.name == name))
    if route is None or access is None or row is None or not can_read(session, signed_in.principal, row):
        return not_found(request, signed_in, space or "this app")
    ticket = access.issue_ticket(route.space_id, session_ref(raw))
    # the origin the gateway routes by this label: the ticket can only go to the Space it names
    scheme = svc.settings.resolved_public_url.split("://", 1)[0]
    target = f"{scheme}://{route.subdomain}.{svc.settings.resolved_apps_domain}{AUTH_PATH}"
    response = RedirectResponse(f"{target}?{urlencode({'ticket': ticket, 'next': safe_next(next)})}", 303)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response
