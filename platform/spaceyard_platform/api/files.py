"""Reading a Space's files like the Hub: info at a revision, tree, paths-info, resolve (download).

``GET /api/spaces/{id}/revision/{rev}``, ``GET /api/spaces/{id}/tree/{rev}[/{path}]``,
``POST /api/spaces/{id}/paths-info/{rev}`` (form-encoded ``paths=..&expand=..``) and
``HEAD|GET /spaces/{id}/resolve/{rev}/{path}`` (with ``X-Repo-Commit``, ``ETag`` = the git blob id,
``Content-Length``). The client URL-quotes the revision and path (``refs%2Fpr%2F1``), so both are
split from the raw request path, not from the decoded one.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from sqlalchemy.orm import Session

from spaceyard_builder import lfs
from spaceyard_builder.lfs import Pointer

from .. import lfsinfo, repokinds, revisions
from ..auth import Principal
from ..db.models import RepoRow
from ..deps import PrincipalDep, Services, ServicesDep, SessionDep
from ..errors import BadRequest, EntryNotFound, RevisionNotFound
from ..ranges import object_response, parse_range, range_headers, skip_chunks
from ..repos import RepoStore
from ..timestamps import iso
from ..xet import content as xet_content
from .common import each_kind, public_base, readable_row, readable_space, space_json

router = APIRouter()
TREE_PAGE = 1000
TREE_PAGE_EXPANDED = 100
STREAM_ABOVE = 1 << 20
"""Files larger than this are streamed from git rather than read into memory."""


def raw_tail(request: Request, owner: str, name: str, marker: str) -> list[str]:
    """The unquoted path segments after ``/OWNER/NAME/<marker>/`` in the raw (still percent-encoded) path."""
    raw = (request.scope.get("raw_path") or request.url.path.encode()).decode("latin-1").split("?")[0]
    _, sep, tail = raw.partition(f"/{owner}/{name}/{marker}/")
    if not sep:
        return []
    return [unquote(part) for part in tail.split("/")]


def split_rev(parts: list[str]) -> tuple[str, str]:
    """``[rev, *path]`` -> (rev, path); an unquoted ``refs/heads/x`` / ``refs/pr/N`` spans 3 segments."""
    if not parts or not parts[0]:
        raise RevisionNotFound("Invalid revision")
    n = 3 if parts[0] == "refs" and len(parts) >= 3 else 1
    return "/".join(parts[:n]), "/".join(p for p in parts[n:] if p)


def resolve_rev(repos: RepoStore, space: RepoRow, rev: str) -> str | None:
    """The commit ``rev`` names, None for ``main`` of an empty repository; RevisionNotFound otherwise."""
    return revisions.resolve(repos, space, rev)


def entry_json(
    repos: RepoStore,
    space: RepoRow,
    sha: str,
    kind: str,
    oid: str,
    size: int,
    path: str,
    expand: bool,
    pointer: Pointer | None = None,
) -> dict[str, Any]:
    item: dict[str, Any] = {"type": kind, "oid": oid, "path": path}
    if kind == "file":
        item["size"] = pointer.size if pointer else size
        if pointer:
            item["lfs"] = lfsinfo.lfs_json(pointer)
    if expand:
        info = repos.commit_info(space.owner, space.name, sha) if not path else _last_commit(repos, space, sha, path)
        if info:
            item["lastCommit"] = {"id": info["id"], "title": info["title"], "date": hub_date(info["date"])}
    return item


def hub_date(git_iso: str) -> str | None:
    """git's ``2026-01-02T03:04:05+01:00`` as the Hub writes dates: ``2026-01-02T02:04:05.000Z``."""
    return iso(datetime.fromisoformat(git_iso).astimezone(UTC))


def _last_commit(repos: RepoStore, space: RepoRow, sha: str, path: str) -> dict[str, str] | None:
    return repos.last_commit(space.owner, space.name, sha, path)


def ls_paths(repos: RepoStore, space: RepoRow, sha: str, paths: list[str]) -> list[tuple[str, str, int, str]]:
    """(kind, oid, size, path) for each existing path (files and directories, not recursive)."""
    return [(i.kind, i.oid, i.size, i.path) for i in lfsinfo.ls_paths(repos, space, sha, paths)]


def json_object(raw: bytes) -> dict[str, Any]:
    """A JSON request body that must be an object; anything else is a 400 saying so."""
    import json

    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise BadRequest(f"The request body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise BadRequest("The request body must be a JSON object")
    return data


async def json_body(request: Request) -> dict[str, Any]:
    """The request's body as :func:`json_object`; an empty (or blank) body is ``{}``."""
    return json_object((await request.body()).strip() or b"{}")


def content_disposition(filename: str, disposition: str = "inline") -> str:
    """RFC 6266 / RFC 5987: an ASCII ``filename`` fallback and the exact UTF-8 name in ``filename*``."""
    fallback = "".join(c if " " <= c <= "~" and c not in '"\\%' else "_" for c in filename) or "file"
    encoded = quote(filename.encode("utf-8", errors="replace"), safe="")
    return f"{disposition}; filename=\"{fallback}\"; filename*=UTF-8''{encoded}"


# ------------------------------------------------------------------------------ info at a revision
@router.get("/api/spaces/{owner}/{name}/revision/{rev:path}")
def space_info_at(
    owner: str, name: str, request: Request, svc: ServicesDep, session: SessionDep, principal: PrincipalDep
) -> Any:
    space = readable_space(session, principal, owner, name)
    rev, _ = split_rev(raw_tail(request, owner, name, "revision"))
    sha = resolve_rev(svc.repos, space, rev)
    data = space_json(svc, space, siblings=False)
    data["sha"] = sha
    blobs = request.query_params.get("blobs", "").lower() in ("1", "true")
    data["siblings"] = lfsinfo.siblings(svc.repos, space, sha, blobs)
    return data


# ------------------------------------------------------------------------------------------- tree
@each_kind(router, "/api/<api>/{owner}/{name}/tree/{rest:path}", ["GET"])
def tree(
    owner: str,
    name: str,
    request: Request,
    svc: ServicesDep,
    session: SessionDep,
    principal: PrincipalDep,
    recursive: bool = False,
    expand: bool = False,
    cursor: int = 0,
    limit: int | None = None,
) -> Any:
    space = readable_row(session, principal, request, owner, name)
    repos = svc.store(space.kind)
    rev, path = split_rev(raw_tail(request, owner, name, "tree"))
    sha = resolve_rev(repos, space, rev)
    if sha is None:
        if path:
            raise EntryNotFound(f"{path} does not exist on {rev}")
        return []
    if path and not any(k == "directory" for k, *_ in ls_paths(repos, space, sha, [path])):
        raise EntryNotFound(f"{path} is not a directory on {rev}")
    entries = [
        e for e in repos.list_tree(space.owner, space.name, sha, path, recursive=recursive) if e.type != "submodule"
    ]
    entries.sort(key=lambda e: e.path)
    page_size = min(limit or TREE_PAGE, TREE_PAGE_EXPANDED if expand else TREE_PAGE)
    page = entries[cursor : cursor + page_size]
    lfs = lfsinfo.pointers(repos, space, [(e.oid, e.size) for e in page if e.type == "file"])
    body = [entry_json(repos, space, sha, e.type, e.oid, e.size, e.path, expand, lfs.get(e.oid)) for e in page]
    headers = {}
    if cursor + page_size < len(entries):
        url = request.url.include_query_params(cursor=str(cursor + page_size))
        headers["Link"] = f'<{url}>; rel="next"'
    return JSONResponse(body, headers=headers)


# ------------------------------------------------------------------------------------- paths-info
@each_kind(router, "/api/<api>/{owner}/{name}/paths-info/{rest:path}", ["POST"])
async def paths_info(
    owner: str, name: str, request: Request, svc: ServicesDep, session: SessionDep, principal: PrincipalDep
) -> Any:
    raw = await request.body()
    if request.headers.get("content-type", "").startswith("application/json"):
        form = json_object(raw or b"{}")
        paths = form.get("paths") or []
        if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
            raise BadRequest("paths must be a list of strings")
        expand = bool(form.get("expand"))
    else:
        form_qs = parse_qs(raw.decode(errors="replace"), keep_blank_values=True)
        paths = form_qs.get("paths", [])
        expand = (form_qs.get("expand") or ["false"])[0].lower() in ("1", "true")
    space = readable_row(session, principal, request, owner, name)
    repos = svc.store(space.kind)
    rev, _ = split_rev(raw_tail(request, owner, name, "paths-info"))
    sha = resolve_rev(repos, space, rev)
    if sha is None:
        return []
    found = [f for f in await asyncio.to_thread(ls_paths, repos, space, sha, paths) if f[0] != "submodule"]
    lfs = lfsinfo.pointers(repos, space, [(oid, size) for k, oid, size, _ in found if k == "file"])
    return [entry_json(repos, space, sha, k, oid, size, p, expand, lfs.get(oid)) for k, oid, size, p in found]


# ------------------------------------------------------------------------------------------ resolve
def _resolve_file(
    svc: Services, session: Session, principal: Principal | None, request: Request, owner: str, name: str
) -> tuple[RepoRow, str, str, str, int]:
    space = readable_row(session, principal, request, owner, name)
    repos = svc.store(space.kind)
    rev, path = split_rev(raw_tail(request, owner, name, "resolve"))
    if not path:
        raise BadRequest("A file path is required")
    sha = resolve_rev(repos, space, rev)
    found = ls_paths(repos, space, sha, [path]) if sha else []
    if found and found[0][0] == "submodule":
        raise BadRequest(
            f"{path} is a git submodule (commit {found[0][1][:12]}), not a file: Spaceyard does not fetch "
            "submodules; add the files to the repository itself",
            code="EntryNotFound",
        )
    if sha is None or not found or found[0][0] != "file":
        raise EntryNotFound(f"{path} does not exist on {rev} of {repokinds.named(space.kind).prefix}{space.repo_id}")
    _, oid, size, _ = found[0]
    return space, sha, path, oid, size


@each_kind(router, "/<prefix>{owner}/{name}/resolve/{rest:path}", ["GET", "HEAD"])
def resolve(
    owner: str, name: str, request: Request, svc: ServicesDep, session: SessionDep, principal: PrincipalDep
) -> Response:
    space, sha, path, oid, size = _resolve_file(svc, session, principal, request, owner, name)
    repos = svc.store(space.kind)
    etag = f'"{oid}"'
    headers = {
        "X-Repo-Commit": sha,
        "ETag": etag,
        "Accept-Ranges": "bytes",
        "Content-Disposition": content_disposition(path.rsplit("/", 1)[-1]),
        "Cache-Control": "private, max-age=0, must-revalidate",
    }
    obj, size, etag = _lfs_object(svc, space, oid, size, headers)
    base = public_base(request, svc)
    headers.update(xet_content.download_headers(svc, base, space, sha, xet_content.blob_sha256(svc, oid)))
    if request.method == "HEAD":
        headers["Content-Length"] = str(size)
        return Response(status_code=200, headers=headers, media_type="application/octet-stream")
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    if obj is not None:
        return object_response(obj, size, request.headers.get("range"), headers)
    span = parse_range(request.headers.get("range"), size)
    start, length, status = (span[0], span[1] - span[0] + 1, 206) if span else (0, size, 200)
    if span:
        headers.update(range_headers(span, size))
    if size <= STREAM_ABOVE:
        content = repos.read_file(space.owner, space.name, sha, path) or b""
        return Response(content[start : start + length], status, headers, media_type="application/octet-stream")
    headers["Content-Length"] = str(length)
    chunks = blob_chunks(str(repos.path(space.owner, space.name)), oid)
    if span:
        chunks = skip_chunks(chunks, start, length)
    return StreamingResponse(chunks, status, headers, media_type="application/octet-stream")


def _lfs_object(
    svc: Services, space: RepoRow, oid: str, size: int, headers: dict[str, str]
) -> tuple[Path | None, int, str]:
    """For an LFS pointer whose object this Space holds: the object, its size and ETag (the sha256), and
    the Hub's ``X-Linked-Size`` / ``X-Linked-Etag`` headers. Other files: (None, size, blob ETag)."""
    repos = svc.store(space.kind)
    pointer = lfsinfo.pointers(repos, space, [(oid, size)]).get(oid)
    obj = lfs.available(svc.settings.data_dir, repos.path(space.owner, space.name), pointer) if pointer else None
    if pointer is None or obj is None:
        return None, size, headers["ETag"]
    etag = f'"{pointer.oid}"'
    headers.update({"ETag": etag, "X-Linked-Etag": etag, "X-Linked-Size": str(pointer.size)})
    return obj, pointer.size, etag


async def blob_chunks(git_dir: str, oid: str) -> AsyncIterator[bytes]:
    """A blob's content straight from ``git cat-file``, without holding it in memory."""
    proc = await asyncio.create_subprocess_exec(
        "git", "--git-dir", git_dir, "cat-file", "blob", oid, stdout=asyncio.subprocess.PIPE
    )
    assert proc.stdout is not None
    try:
        while chunk := await proc.stdout.read(1 << 16):
            yield chunk
    finally:
        if proc.returncode is None:
            with suppress(ProcessLookupError):
                proc.kill()
        await proc.wait()
