"""Model and dataset info and listings, as on the Hub: ``GET /api/models`` / ``/api/datasets`` (``author``,
``search``, ``limit``, ``full``/``cardData``; newest first, ``Link: rel="next"`` pages) and
``GET /api/{models,datasets}/OWNER/NAME[/revision/REV]`` (``cardData`` = the README's front matter,
``tags`` with ``license:X``, ``siblings``, ``sha``, ``private``). Private repositories are invisible (404,
left out of listings) to whoever may not read their namespace."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from .. import lfsinfo, repokinds
from ..db.models import HubRepo
from ..deps import PrincipalDep, Services, ServicesDep, SessionDep
from ..errors import NotFound, RepoNotFound
from ..services import hubrepos
from ..services.lookup import readable_repo
from .common import iso
from .files import raw_tail, resolve_rev, split_rev

router = APIRouter()
LIST_PAGE = 1000


def card_tags(kind: str, card: dict[str, Any]) -> list[str]:
    """The Hub's tags: the card's ``tags``, its library, task, license (``license:X``), datasets and languages."""
    tags = [str(t) for t in (card.get("tags") or []) if isinstance(t, (str, int, float))]
    for key, prefix in (("library_name", ""), ("pipeline_tag", ""), ("task_categories", "task_categories:")):
        value = card.get(key)
        for item in value if isinstance(value, list) else [value] if value else []:
            tags.append(f"{prefix}{item}")
    licenses = card.get("license")
    for item in licenses if isinstance(licenses, list) else [licenses] if licenses else []:
        tags.append(f"license:{item}")
    if kind == "model":
        for item in card.get("datasets") or [] if isinstance(card.get("datasets"), list) else []:
            tags.append(f"dataset:{item}")
    languages = card.get("language")
    for item in languages if isinstance(languages, list) else [languages] if languages else []:
        tags.append(str(item))
    return list(dict.fromkeys(tags))


def repo_json(svc: Services, row: HubRepo, *, sha: str | None, siblings: bool, blobs: bool = False) -> dict[str, Any]:
    store = svc.store(row.kind)
    card = hubrepos.readme_card(store, row, sha) if sha and siblings else dict(row.card_data or {})
    data: dict[str, Any] = {
        "_id": row.id,
        "id": row.repo_id,
        "author": row.owner,
        "sha": sha,
        "lastModified": iso(row.updated_at),
        "createdAt": iso(row.created_at),
        "private": row.private,
        "gated": False,
        "disabled": False,
        "downloads": 0,
        "likes": 0,
        "tags": card_tags(row.kind, card),
        "cardData": card,
    }
    if row.kind == "model":
        data["modelId"] = row.repo_id
        data["library_name"] = card.get("library_name")
        data["pipeline_tag"] = card.get("pipeline_tag")
        data["spaces"] = []
    if siblings:
        data["siblings"] = lfsinfo.siblings(store, row, sha, blobs)
    return data


def _listing(request: Request, svc: Services, kind: str, rows: list[HubRepo]) -> JSONResponse:
    params = request.query_params
    full = params.get("full", "").lower() in ("1", "true")
    try:
        cursor = max(0, int(params.get("cursor") or 0))
        limit = max(1, min(int(params.get("limit") or LIST_PAGE), LIST_PAGE))
    except ValueError:
        cursor, limit = 0, LIST_PAGE
    page = rows[cursor : cursor + limit]
    body = [repo_json(svc, r, sha=r.head_sha, siblings=full) for r in page]
    headers = {}
    if cursor + limit < len(rows) and "limit" not in params:
        headers["Link"] = f'<{request.url.include_query_params(cursor=str(cursor + limit))}>; rel="next"'
    return JSONResponse(body, headers=headers)


def list_repos(request: Request, svc: ServicesDep, session: SessionDep, principal: PrincipalDep) -> Any:
    kind = repokinds.of_path(request.url.path).name
    params = request.query_params
    rows = hubrepos.visible(session, principal, kind, author=params.get("author"), search=params.get("search"))
    return _listing(request, svc, kind, rows)


def repo_info(
    owner: str, name: str, request: Request, svc: ServicesDep, session: SessionDep, principal: PrincipalDep
) -> Any:
    kind = repokinds.of_path(request.url.path).name
    row = readable_repo(session, principal, kind, owner, name)
    assert isinstance(row, HubRepo)
    store = svc.store(kind)
    parts = raw_tail(request, owner, name, "revision")
    rev = split_rev(parts)[0] if parts else "main"
    sha = resolve_rev(store, row, rev)
    blobs = request.query_params.get("blobs", "").lower() in ("1", "true")
    return repo_json(svc, row, sha=sha, siblings=True, blobs=blobs)


for _kind in repokinds.HOSTED:
    router.add_api_route(f"/api/{_kind.api}", list_repos, methods=["GET"])
    router.add_api_route(f"/api/{_kind.api}/{{owner}}/{{name}}", repo_info, methods=["GET"])
    router.add_api_route(f"/api/{_kind.api}/{{owner}}/{{name}}/revision/{{rest:path}}", repo_info, methods=["GET"])


def no_namespace(name: str, request: Request) -> None:
    """``gpt2``-style ids (no owner) name the Hub's legacy repositories: none exist here."""
    kind = repokinds.of_path(request.url.path)
    if name in repokinds.RESERVED:
        raise NotFound(f"Spaceyard has no endpoint {request.method} {request.url.path[:200]}")
    raise RepoNotFound(
        f"Repository Not Found: {kind.prefix}{name[:100]} (repositories on Spaceyard are OWNER/NAME; "
        "this server does not mirror the Hub)"
    )


late_router = APIRouter(include_in_schema=False)
"""One-segment model and dataset ids; included after every other API router, before the unsupported ones."""
for _kind in repokinds.HOSTED:
    late_router.add_api_route(f"/api/{_kind.api}/{{name}}", no_namespace, methods=["GET"])
    late_router.add_api_route(f"/{_kind.prefix}{{name}}/resolve/{{rest:path}}", no_namespace, methods=["GET", "HEAD"])
