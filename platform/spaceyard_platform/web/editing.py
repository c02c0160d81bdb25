"""Edit a file or upload files in the browser; each save is one commit through the Hub commit API.

``/spaces/OWNER/NAME/edit/REV/PATH`` (a text file in a textarea) and ``/spaces/OWNER/NAME/upload/REV``
(files into a folder) are pages for the Space's writers. The page's script sends the commit to
``POST /api/spaces/OWNER/NAME/commit/main`` as ``huggingface_hub`` does (NDJSON, base64 contents, the
shown commit as ``parentCommit`` so an edit never silently overwrites a newer one), with the session's
CSRF header; path checks, size limits and the build after it are that endpoint's.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from ..auth import can_write
from ..deps import ServicesDep, SessionDep
from .render import MAX_TEXT_VIEW, WebUserDep, breadcrumbs, not_found, principal_of, render
from .spacepages import get_readable, space_context

router = APIRouter(include_in_schema=False)


def _writer_page(
    request: Request, svc: ServicesDep, session: SessionDep, user: WebUserDep, owner: str, name: str
) -> tuple[dict[str, Any] | None, Response | None]:
    space = get_readable(session, principal_of(user), owner, name)
    if space is None:
        return None, not_found(request, user, f"{owner}/{name}")
    if user is None:
        return None, RedirectResponse(f"/login?next={request.url.path}", status_code=303)
    if not can_write(session, principal_of(user), space):
        ctx = space_context(request, svc, session, user, space)
        return None, render(request, "forbidden.html", user, status=403, tab="files", **ctx)
    return space_context(request, svc, session, user, space), None


@router.get("/spaces/{owner}/{name}/edit/{rev}/{path:path}")
def edit_page(
    owner: str, name: str, rev: str, path: str, request: Request, svc: ServicesDep, session: SessionDep,
    user: WebUserDep,
) -> Response:  # fmt: skip
    ctx, refused = _writer_page(request, svc, session, user, owner, name)
    if refused is not None:
        return refused
    assert ctx is not None
    sha = svc.repos.resolve(owner, name, rev)
    data = svc.repos.read_file(owner, name, sha, path) if sha else None
    if data is None:
        return not_found(request, user, f"{owner}/{name}: {path} at {rev}")
    try:
        text = data.decode("utf-8") if len(data) <= MAX_TEXT_VIEW and b"\0" not in data else None
    except UnicodeDecodeError:
        text = None
    if text is None:
        return not_found(request, user, f"{owner}/{name}: {path} is not a text file that can be edited here")
    return render(
        request, "edit.html", user, tab="files", rev=rev, sha=sha, path=path, text=text, crumbs=breadcrumbs(path),
        **ctx,
    )  # fmt: skip


@router.get("/spaces/{owner}/{name}/upload/{rev}")
def upload_page(
    owner: str, name: str, rev: str, request: Request, svc: ServicesDep, session: SessionDep, user: WebUserDep,
    folder: str = "",
) -> Response:  # fmt: skip
    ctx, refused = _writer_page(request, svc, session, user, owner, name)
    if refused is not None:
        return refused
    assert ctx is not None
    sha = svc.repos.resolve(owner, name, rev) if ctx["space"].head_sha else None
    return render(request, "upload.html", user, tab="files", rev=rev, sha=sha or "", folder=folder.strip("/"), **ctx)
