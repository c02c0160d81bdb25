"""Model and dataset repositories: create, list, delete, move, and what a new head means.

They share the Spaces' rules (names, private repos readable by their namespace, writes by its writers)
and storage (:meth:`~spaceyard_platform.deps.Services.store`), and are never built or run: a push only
records the new head and the README's front matter (the card the listings show).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .. import names, repokinds
from ..auth import Principal, can_read_namespace, can_write_namespace
from ..db.models import HubRepo, RepoRow
from ..errors import BadRequest, Conflict, Forbidden, RepoNotFound, Unauthorized
from ..repos import RepoStore
from .lookup import find_repo, same_repo_name, writable_repo

if TYPE_CHECKING:
    from ..deps import Services


def check_owner(kind: str, owner: str) -> None:
    names.check_owner(owner)
    if kind != "space" and owner.lower() in repokinds.RESERVED:
        raise BadRequest(f"{owner!r} cannot own a {kind}: it is a reserved path on this server")


def _check_free(session: Session, kind: str, owner: str, name: str, current: HubRepo | None = None) -> None:
    clash = same_repo_name(session, kind, owner, name)
    if clash is not None and clash is not current:
        raise Conflict(f"You already created this {kind} repo: {clash.repo_id} (names ignore case)")


def create(
    svc: Services, session: Session, principal: Principal | None, kind: str, owner: str, name: str, *, private: bool
) -> HubRepo:
    """A new model or dataset row and its empty bare repository; the caller commits."""
    if principal is None:
        raise Unauthorized(f"Authentication required to create a {kind}")
    check_owner(kind, owner)
    names.check_repo_name(name)
    if not can_write_namespace(session, principal, owner):
        raise Forbidden(f"You don't have the rights to create a {kind} in {owner!r}")
    _check_free(session, kind, owner, name)
    now = datetime.now(UTC)
    row = HubRepo(kind=kind, owner=owner, name=name, private=private, card_data={}, created_at=now, updated_at=now)
    session.add(row)
    try:
        session.flush()
    except IntegrityError as exc:
        raise Conflict(f"Cannot create {owner}/{name}: another conflicting operation is in progress") from exc
    svc.store(kind).init(owner, name)
    return row


def delete(svc: Services, session: Session, principal: Principal | None, kind: str, owner: str, name: str) -> None:
    row = writable_repo(session, principal, kind, owner, name)
    session.delete(row)
    session.commit()
    svc.store(kind).delete(owner, name)


def move(svc: Services, session: Session, principal: Principal | None, kind: str, source: str, target: str) -> HubRepo:
    owner, _, name = source.partition("/")
    new_owner, _, new_name = target.partition("/")
    row = writable_repo(session, principal, kind, owner, name)
    assert isinstance(row, HubRepo)
    check_owner(kind, new_owner)
    names.check_repo_name(new_name)
    if not can_write_namespace(session, principal, new_owner):
        raise Forbidden(f"You don't have the rights to create a {kind} in {new_owner!r}")
    if find_repo(session, kind, new_owner, new_name) is not None:
        raise Conflict(f"{target} already exists")
    _check_free(session, kind, new_owner, new_name, current=row)
    store = svc.store(kind)
    if not store.exists(owner, name):
        raise RepoNotFound("Repository not found")
    store.move(owner, name, new_owner, new_name)
    row.owner, row.name, row.updated_at = new_owner, new_name, datetime.now(UTC)
    session.commit()
    return row


def visible(
    session: Session,
    principal: Principal | None,
    kind: str,
    *,
    author: str | None = None,
    search: str | None = None,
) -> list[HubRepo]:
    """The models or datasets the caller may see, newest first; ``author`` exact, ``search`` a
    case-insensitive substring of the id (the Hub's list filters)."""
    query = select(HubRepo).where(HubRepo.kind == kind)
    if author:
        query = query.where(HubRepo.owner == author)
    if search:
        needle = search.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(func.lower(HubRepo.owner + "/" + HubRepo.name).like(f"%{needle}%", escape="\\"))
    rows = session.scalars(query.order_by(HubRepo.updated_at.desc(), HubRepo.id)).all()
    readable: dict[str, bool] = {}
    out = []
    for row in rows:
        if row.private:
            if row.owner not in readable:
                readable[row.owner] = can_read_namespace(session, principal, row.owner)
            if not readable[row.owner]:
                continue
        out.append(row)
    return out


def readme_card(store: RepoStore, row: RepoRow, sha: str) -> dict[str, Any]:
    """The YAML front matter of README.md at ``sha`` ({} when there is none or it is invalid; bounded by
    :mod:`spaceyard_builder.safeyaml`)."""
    from spaceyard_builder.errors import ConfigError
    from spaceyard_builder.spaceconfig import README_PREFIX, front_matter

    raw = store.read_file(row.owner, row.name, sha, "README.md", limit=README_PREFIX) or b""
    try:
        return front_matter(raw.decode(errors="replace"))
    except ConfigError:
        return {}


def record_head(svc: Services, pk: str, sha: str) -> None:
    """A model or dataset's ``main`` moved to ``sha``: store the head and its card."""
    with svc.db.session() as session:
        row = session.get(HubRepo, pk)
        if row is None:
            return
        row.head_sha = sha
        row.card_data = readme_card(svc.store(row.kind), row, sha)
        row.updated_at = datetime.now(UTC)


async def after_push(svc: Services, row: RepoRow, sha: str, pusher: str | None) -> None:
    """``main`` of ``row`` moved (git push or API commit): a Space is built, a model or dataset recorded."""
    if row.kind == "space":
        await svc.deployer.on_push(row.id, sha, pusher=pusher)
    else:
        await asyncio.to_thread(record_head, svc, row.id, sha)


def license_of(card: dict[str, Any]) -> str | None:
    """The card's license (``license:``; for ``other``, ``license_name`` when given)."""
    value = card.get("license")
    if isinstance(value, list):
        value = ", ".join(str(v) for v in value)
    if value == "other" and card.get("license_name"):
        return f"other ({card['license_name']})"
    return str(value) if value else None
