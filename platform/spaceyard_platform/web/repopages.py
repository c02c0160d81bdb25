"""A model's or dataset's page: its card (the README without its front matter, rendered from Markdown
with raw HTML off) with the license shown at the top, and how to clone or download it.

``/OWNER/NAME`` is a model, ``/datasets/OWNER/NAME`` a dataset, as on the Hub; their file views are
:mod:`.filepages`. Private repositories answer 404 to whoever may not read them, like the API.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from markdown_it import MarkdownIt
from sqlalchemy.orm import Session

from .. import repokinds
from ..auth import Principal, can_read, can_write
from ..db.models import HubRepo
from ..deps import Services, ServicesDep, SessionDep
from ..services import hubrepos
from ..services.lookup import find_repo
from ..sessions import SignedIn
from .render import MAX_TEXT_VIEW, WebUserDep, not_found, principal_of, render

router = APIRouter(include_in_schema=False)
MARKDOWN = MarkdownIt("commonmark", {"html": False}).enable("table")


def get_readable_repo(
    session: Session, principal: Principal | None, kind: str, owner: str, name: str
) -> HubRepo | None:
    """The model or dataset, or None when it does not exist or is private to others (both answer 404)."""
    row = find_repo(session, kind, owner, name)
    if not isinstance(row, HubRepo) or not can_read(session, principal, row):
        return None
    return row


def card_body(readme: str) -> str:
    """The README without its YAML front matter."""
    from spaceyard_builder.spaceconfig import _FRONT_MATTER

    match = _FRONT_MATTER.match(readme)
    return readme[match.end() :] if match else readme.lstrip("\ufeff")


def repo_context(svc: Services, session: Session, user: SignedIn | None, row: HubRepo) -> dict[str, Any]:
    kind = repokinds.named(row.kind)
    card = dict(row.card_data or {})
    public = svc.settings.resolved_public_url
    return {
        "space": row,  # the shared file templates name the repository "space"
        "repo": row,
        "kind": row.kind,
        "kind_label": kind.label[:-1],
        "card": card,
        "license": hubrepos.license_of(card),
        "title": row.name,
        "is_owner": can_write(session, principal_of(user), row),
        "can_edit": False,
        "repo_base": f"/{kind.prefix}{row.repo_id}",
        "base_template": "_repo_base.html",
        "git_url": f"{public}/{kind.prefix}{row.repo_id}",
        "public_url": public,
        "download_hint": f"hf download {row.repo_id}" + ("" if row.kind == "model" else f" --repo-type {row.kind}"),
    }


def repo_page(
    owner: str, name: str, request: Request, svc: ServicesDep, session: SessionDep, user: WebUserDep
) -> Response:
    kind = repokinds.of_path(request.url.path)
    row = get_readable_repo(session, principal_of(user), kind.name, owner, name)
    if row is None:
        return not_found(request, user, f"{kind.prefix}{owner}/{name}")
    ctx = repo_context(svc, session, user, row)
    store = svc.store(row.kind)
    readme = store.read_file(owner, name, row.head_sha, "README.md", limit=MAX_TEXT_VIEW) if row.head_sha else None
    body = card_body(readme.decode(errors="replace")) if readme else ""
    return render(
        request, "repo.html", user, tab="card", card_html=MARKDOWN.render(body) if body.strip() else "", **ctx
    )


router.add_api_route("/datasets/{owner}/{name}", repo_page, methods=["GET"], response_class=HTMLResponse)
router.add_api_route("/{owner}/{name}", repo_page, methods=["GET"], response_class=HTMLResponse)
