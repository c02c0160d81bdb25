"""File views of every kind of repository: the tree, one file, the history and one commit (with its
diff), at ``/spaces/OWNER/NAME/...``, ``/OWNER/NAME/...`` (models) and ``/datasets/OWNER/NAME/...``."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from spaceyard_builder.lfs import parse_pointer

from .. import history, lfsinfo, repokinds, revisions
from ..db.models import RepoRow
from ..deps import Services, ServicesDep, SessionDep
from ..errors import RevisionNotFound
from ..repos import RepoStore
from ..sessions import SignedIn
from .render import MAX_TEXT_VIEW, WebUserDep, breadcrumbs, not_found, principal_of, render
from .repopages import get_readable_repo, repo_context
from .spacepages import get_readable, space_context

router = APIRouter(include_in_schema=False)
HISTORY_PAGE = 50
DIFF_STATUS = {"A": "added", "M": "modified", "D": "deleted", "R": "renamed", "C": "copied", "T": "type changed"}


def page_revision(repos: RepoStore, row: RepoRow, rev: str) -> str | None:
    """The commit a page's revision names, or None (no commits yet, or no such revision)."""
    try:
        return revisions.resolve(repos, row, rev)
    except RevisionNotFound:
        return None


def open_repo(
    request: Request, svc: Services, session: Session, user: SignedIn | None, owner: str, name: str
) -> tuple[RepoRow, dict[str, Any]] | None:
    """The repository this page's path names and its header context, or None (missing or private)."""
    kind = repokinds.of_path(request.url.path)
    if kind is repokinds.SPACE:
        space = get_readable(session, principal_of(user), owner, name)
        return (space, space_context(request, svc, session, user, space)) if space else None
    row = get_readable_repo(session, principal_of(user), kind.name, owner, name)
    return (row, repo_context(svc, session, user, row)) if row else None


def each_kind(pattern: str) -> Callable[[Callable[..., Response]], Callable[..., Response]]:
    def register(handler: Callable[..., Response]) -> Callable[..., Response]:
        for path in repokinds.paths(pattern, (repokinds.SPACE, repokinds.DATASET, repokinds.MODEL)):
            router.add_api_route(path, handler, methods=["GET"], response_class=HTMLResponse)
        return handler

    return register


@each_kind("/<prefix>{owner}/{name}/tree/{rev}/{path:path}")
@each_kind("/<prefix>{owner}/{name}/tree/{rev}")
def files_page(
    owner: str,
    name: str,
    rev: str,
    request: Request,
    svc: ServicesDep,
    session: SessionDep,
    user: WebUserDep,
    path: str = "",
) -> Response:
    opened = open_repo(request, svc, session, user, owner, name)
    if opened is None:
        return not_found(request, user, f"{owner}/{name}")
    row, ctx = opened
    repos = svc.store(row.kind)
    sha = page_revision(repos, row, rev) if row.head_sha else None
    if sha is None and row.head_sha:
        return not_found(request, user, f"{owner}/{name}: revision {rev[:100]}")
    entries = repos.list_tree(owner, name, sha, path.strip("/"), recursive=False) if sha else []
    entries.sort(key=lambda e: (e.type != "directory", e.path.lower()))
    commit = repos.commit_info(owner, name, sha) if sha else None
    crumbs = breadcrumbs(path)
    lfs = lfsinfo.pointers(repos, row, [(e.oid, e.size) for e in entries if e.type == "file"])
    return render(
        request, "files.html", user, tab="files", rev=rev, sha=sha, path=path.strip("/"), entries=entries,
        commit=commit, crumbs=crumbs, lfs=lfs, **ctx,
    )  # fmt: skip


@each_kind("/<prefix>{owner}/{name}/blob/{rev}/{path:path}")
def file_page(
    owner: str,
    name: str,
    rev: str,
    path: str,
    request: Request,
    svc: ServicesDep,
    session: SessionDep,
    user: WebUserDep,
) -> Response:
    opened = open_repo(request, svc, session, user, owner, name)
    if opened is None:
        return not_found(request, user, f"{owner}/{name}")
    row, ctx = opened
    repos = svc.store(row.kind)
    sha = page_revision(repos, row, rev) if row.head_sha else None
    data = repos.read_file(owner, name, sha, path) if sha else None
    if data is None:
        return not_found(request, user, f"{owner}/{name}: {path} at {rev}")
    pointer = parse_pointer(data)
    if pointer is not None:
        return render(
            request, "blob.html", user, tab="files", rev=rev, sha=sha, path=path, text=None, size=pointer.size,
            lines=0, crumbs=breadcrumbs(path), lfs=pointer, **ctx,
        )  # fmt: skip
    text: str | None = None
    if len(data) <= MAX_TEXT_VIEW and b"\0" not in data[:8192]:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = None
    return render(
        request, "blob.html", user, tab="files", rev=rev, sha=sha, path=path, text=text, size=len(data),
        lines=(text.count("\n") + (0 if text.endswith("\n") else 1)) if text else 0, crumbs=breadcrumbs(path), **ctx,
    )  # fmt: skip


@each_kind("/<prefix>{owner}/{name}/commits/{rev:path}")
def commits_page(
    owner: str,
    name: str,
    rev: str,
    request: Request,
    svc: ServicesDep,
    session: SessionDep,
    user: WebUserDep,
    page: int = 1,
) -> Response:
    opened = open_repo(request, svc, session, user, owner, name)
    if opened is None:
        return not_found(request, user, f"{owner}/{name}")
    row, ctx = opened
    repos = svc.store(row.kind)
    sha = page_revision(repos, row, rev)
    if sha is None and row.head_sha:
        return not_found(request, user, f"{owner}/{name}: revision {rev}")
    total = history.count(repos, row, sha) if sha else 0
    pages = max(1, math.ceil(total / HISTORY_PAGE))
    page = min(max(1, page), pages)
    commits = history.commits(repos, row, sha, skip=(page - 1) * HISTORY_PAGE, limit=HISTORY_PAGE) if sha else []
    base = f"{ctx['repo_base']}/commits/{quote(rev, safe='/')}"
    return render(
        request, "commits.html", user, tab="files", rev=rev, commits=commits, total=total, page=page, pages=pages,
        prev_url=(base + (f"?page={page - 1}" if page > 2 else "")) if page > 1 else "",
        next_url=f"{base}?page={page + 1}" if page < pages else "", **ctx,
    )  # fmt: skip


@each_kind("/<prefix>{owner}/{name}/commit/{rev}")
def commit_page(
    owner: str, name: str, rev: str, request: Request, svc: ServicesDep, session: SessionDep, user: WebUserDep
) -> Response:
    """One commit and its diff: where the commit links printed by huggingface_hub and hf lead."""
    opened = open_repo(request, svc, session, user, owner, name)
    if opened is None:
        return not_found(request, user, f"{owner}/{name}")
    row, ctx = opened
    repos = svc.store(row.kind)
    sha = page_revision(repos, row, rev)
    commit = history.commit(repos, row, sha) if sha else None
    if commit is None:
        return not_found(request, user, f"{owner}/{name}: commit {rev[:40]}")
    files = history.diff(repos, row, commit)
    return render(
        request, "commit.html", user, tab="files", rev=rev, commit=commit, files=files, statuses=DIFF_STATUS,
        added=sum(f.added for f in files), removed=sum(f.removed for f in files), **ctx,
    )  # fmt: skip
