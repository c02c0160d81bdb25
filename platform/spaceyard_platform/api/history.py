"""History and refs through the Hub API: ``list_repo_commits``, ``list_repo_refs``, branches and tags.

* ``GET /api/spaces/{id}/commits/{rev}?p=N`` — pages of commits, newest first, ``Link: rel="next"`` and
  ``X-Total-Count`` as on the Hub (``huggingface_hub`` follows the links).
* ``GET /api/spaces/{id}/refs`` — ``branches``, ``tags``, ``converts`` (always empty), ``pullRequests``.
* ``POST|DELETE /api/spaces/{id}/branch/{branch}`` (``{"startingPoint": rev}``), 409 when it exists;
  ``main`` cannot be deleted.
* ``POST /api/spaces/{id}/tag/{rev}`` (``{"tag", "message"}``), ``DELETE /api/spaces/{id}/tag/{tag}``.

Only ``main`` is built and served; other branches and tags are history to read, download and commit to.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from .. import history, revisions
from ..deps import PrincipalDep, ServicesDep, SessionDep
from ..errors import BadRequest, NotFound, RevisionNotFound
from ..repos import BRANCH
from .common import each_kind, readable_row, writable_row
from .files import hub_date, json_body, raw_tail, split_rev

router = APIRouter()
COMMITS_PAGE = 50
COMMITS_PAGE_MAX = 1000


def commit_json(c: history.Commit) -> dict[str, Any]:
    return {
        "id": c.id,
        "title": c.title,
        "message": c.message,
        "authors": [{"user": c.author, "avatar": None}],
        "date": hub_date(c.authored),
        "parents": c.parents,
    }


@each_kind(router, "/api/<api>/{owner}/{name}/commits/{rest:path}", ["GET"])
def list_commits(
    owner: str,
    name: str,
    request: Request,
    svc: ServicesDep,
    session: SessionDep,
    principal: PrincipalDep,
    p: int = 0,
    limit: int = COMMITS_PAGE,
) -> Any:
    space = readable_row(session, principal, request, owner, name)
    rev, _ = split_rev(raw_tail(request, owner, name, "commits"))
    sha = revisions.resolve(svc.store(space.kind), space, rev)
    if sha is None:
        return JSONResponse([], headers={"X-Total-Count": "0"})
    size = max(1, min(limit, COMMITS_PAGE_MAX))
    page = max(0, p)
    total = history.count(svc.store(space.kind), space, sha)
    items = history.commits(svc.store(space.kind), space, sha, skip=page * size, limit=size)
    headers = {"X-Total-Count": str(total)}
    if (page + 1) * size < total:
        headers["Link"] = f'<{request.url.include_query_params(p=str(page + 1))}>; rel="next"'
    return JSONResponse([commit_json(c) for c in items], headers=headers)


def _ref_json(r: history.Ref) -> dict[str, str]:
    return {"name": r.name, "ref": r.ref, "targetCommit": r.target}


@each_kind(router, "/api/<api>/{owner}/{name}/refs", ["GET"])
def list_refs(
    owner: str,
    name: str,
    request: Request,
    svc: ServicesDep,
    session: SessionDep,
    principal: PrincipalDep,
    include_prs: bool = False,
) -> Any:
    space = readable_row(session, principal, request, owner, name)
    data: dict[str, Any] = {
        "branches": [_ref_json(r) for r in history.refs(svc.store(space.kind), space, "heads")],
        "converts": [],
        "tags": [_ref_json(r) for r in history.refs(svc.store(space.kind), space, "tags")],
    }
    data["pullRequests"] = []
    return data


def _one_name(request: Request, owner: str, name: str, marker: str) -> str:
    parts = raw_tail(request, owner, name, marker)
    value = "/".join(parts)
    if not value:
        raise BadRequest(f"A {marker} name is required")
    return value


@each_kind(router, "/api/<api>/{owner}/{name}/branch/{rest:path}", ["POST"])
async def create_branch(
    owner: str, name: str, request: Request, svc: ServicesDep, session: SessionDep, principal: PrincipalDep
) -> Any:
    space = writable_row(session, principal, request, owner, name)
    branch = _one_name(request, owner, name, "branch")
    ref = revisions.new_ref_name("heads", branch)
    body = await json_body(request)
    start = str(body.get("startingPoint") or BRANCH)
    sha = revisions.resolve(svc.store(space.kind), space, start)
    if sha is None:
        raise RevisionNotFound(f"Cannot create a branch from {start}: the Space has no commit yet")
    await asyncio.to_thread(history.create_ref, svc.store(space.kind), space, ref, sha)
    return {"name": branch, "ref": ref, "targetCommit": sha}


@each_kind(router, "/api/<api>/{owner}/{name}/branch/{rest:path}", ["DELETE"])
async def delete_branch(
    owner: str, name: str, request: Request, svc: ServicesDep, session: SessionDep, principal: PrincipalDep
) -> Response:
    space = writable_row(session, principal, request, owner, name)
    branch = _one_name(request, owner, name, "branch").removeprefix("refs/heads/")
    if branch == BRANCH:
        raise BadRequest(f"The {BRANCH} branch cannot be deleted: it is what the Space builds and serves")
    ref = revisions.new_ref_name("heads", branch)
    if not await asyncio.to_thread(history.delete_ref, svc.store(space.kind), space, ref):
        raise NotFound(f"Branch not found: {branch}", code="RevisionNotFound")
    return Response(status_code=200)


@each_kind(router, "/api/<api>/{owner}/{name}/tag/{rest:path}", ["POST"])
async def create_tag(
    owner: str, name: str, request: Request, svc: ServicesDep, session: SessionDep, principal: PrincipalDep
) -> Any:
    space = writable_row(session, principal, request, owner, name)
    rev, _ = split_rev(raw_tail(request, owner, name, "tag"))
    body = await json_body(request)
    tag = str(body.get("tag") or "")
    if not tag:
        raise BadRequest("A tag name is required (`tag` in the body)")
    ref = revisions.new_ref_name("tags", tag)
    sha = revisions.resolve(svc.store(space.kind), space, rev)
    if sha is None:
        raise RevisionNotFound(f"Cannot tag {rev}: the Space has no commit yet")
    message = body.get("message")
    await asyncio.to_thread(
        history.create_ref, svc.store(space.kind), space, ref, sha, str(message) if message else None
    )
    return {"name": tag, "ref": ref, "targetCommit": sha}


@each_kind(router, "/api/<api>/{owner}/{name}/tag/{rest:path}", ["DELETE"])
async def delete_tag(
    owner: str, name: str, request: Request, svc: ServicesDep, session: SessionDep, principal: PrincipalDep
) -> Response:
    space = writable_row(session, principal, request, owner, name)
    tag = _one_name(request, owner, name, "tag").removeprefix("refs/tags/")
    ref = revisions.new_ref_name("tags", tag)
    if not await asyncio.to_thread(history.delete_ref, svc.store(space.kind), space, ref):
        raise NotFound(f"Tag not found: {tag}", code="RevisionNotFound")
    return Response(status_code=200)
