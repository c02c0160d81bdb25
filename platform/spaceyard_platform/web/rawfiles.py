"""A Space file as it is, for the browser: ``/spaces/OWNER/NAME/raw/REV/PATH`` (``?download=true``).

Text files are shown as ``text/plain`` (UTF-8), anything else is ``application/octet-stream``; with
``download=true`` the browser saves the file under its name. The content is a Space owner's, on the
platform's own origin, so it is never interpreted: ``X-Content-Type-Options: nosniff`` and a
``sandbox`` Content-Security-Policy keep an uploaded ``.html`` or ``.svg`` from running script here.
Private Spaces answer 404 to those who cannot read them, like every page.
"""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ..deps import ServicesDep, SessionDep
from .render import MAX_TEXT_VIEW, WebUserDep, not_found, principal_of
from .spacepages import get_readable

router = APIRouter(include_in_schema=False)


def is_text(data: bytes) -> bool:
    if b"\0" in data[:8192]:
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@router.api_route("/spaces/{owner}/{name}/raw/{rev}/{path:path}", methods=["GET", "HEAD"])
def raw_file(
    owner: str,
    name: str,
    rev: str,
    path: str,
    request: Request,
    svc: ServicesDep,
    session: SessionDep,
    user: WebUserDep,
    download: bool = False,
) -> Response:
    space = get_readable(session, principal_of(user), owner, name)
    if space is None:
        return not_found(request, user, f"{owner}/{name}")
    sha = svc.repos.resolve(owner, name, rev) if space.head_sha else None
    data = svc.repos.read_file(owner, name, sha, path) if sha else None
    if data is None:
        return not_found(request, user, f"{owner}/{name}: {path} at {rev}")
    filename = path.rsplit("/", 1)[-1]
    disposition = "attachment" if download else "inline"
    headers = {
        "Content-Disposition": f"{disposition}; filename*=UTF-8''{quote(filename)}",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "sandbox; default-src 'none'",
        "X-Repo-Commit": sha or "",
        "Cache-Control": "private, max-age=0, must-revalidate",
    }
    text = len(data) <= 8 * MAX_TEXT_VIEW and is_text(data)
    media = "text/plain; charset=utf-8" if text else "application/octet-stream"
    body = b"" if request.method == "HEAD" else data
    return Response(body, media_type=media, headers=headers)
