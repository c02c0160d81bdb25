"""Finding repositories with their access rules: 404 for what the caller may not see, 401/403 for writes."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .. import names, repokinds
from ..auth import Principal, can_read, can_write
from ..db.models import HubRepo, RepoRow, Space
from ..errors import Forbidden, RepoNotFound, Unauthorized


def find_space(session: Session, owner: str, name: str) -> Space | None:
    return session.scalar(select(Space).where(Space.owner == owner, Space.name == name))


def find_repo(session: Session, kind: str, owner: str, name: str) -> RepoRow | None:
    """The repository ``kind``/``owner``/``name`` (exact case), of any kind."""
    if kind == "space":
        return find_space(session, owner, name)
    return session.scalar(select(HubRepo).where(HubRepo.kind == kind, HubRepo.owner == owner, HubRepo.name == name))


def same_repo_name(session: Session, kind: str, owner: str, name: str) -> HubRepo | None:
    """The model or dataset whose id equals ``owner/name`` ignoring case, if any."""
    return session.scalar(
        select(HubRepo).where(
            HubRepo.kind == kind,
            func.lower(HubRepo.owner) == names.fold(owner),
            func.lower(HubRepo.name) == names.fold(name),
        )
    )


def not_found(kind: str, owner: str, name: str) -> RepoNotFound:
    api = repokinds.named(kind).api
    return RepoNotFound(f"Repository Not Found for url: /api/{api}/{owner}/{name}.")


def readable_repo(session: Session, principal: Principal | None, kind: str, owner: str, name: str) -> RepoRow:
    """The repository, or RepoNotFound — also when it is private and the caller may not see it."""
    row = find_repo(session, kind, owner, name)
    if row is None or not can_read(session, principal, row):
        raise not_found(kind, owner, name)
    return row


def writable_repo(session: Session, principal: Principal | None, kind: str, owner: str, name: str) -> RepoRow:
    row = readable_repo(session, principal, kind, owner, name)
    if principal is None:
        raise Unauthorized("Authentication required")
    if not can_write(session, principal, row):
        raise Forbidden(f"You don't have the rights to manage {repokinds.named(kind).api}/{owner}/{name}")
    return row


def readable_space(session: Session, principal: Principal | None, owner: str, name: str) -> Space:
    space = readable_repo(session, principal, "space", owner, name)
    assert isinstance(space, Space)
    return space


def writable_space(session: Session, principal: Principal | None, owner: str, name: str) -> Space:
    space = writable_repo(session, principal, "space", owner, name)
    assert isinstance(space, Space)
    return space
