"""Who is asking, and what they may do.

Credentials arrive as ``Authorization: Bearer <token>`` (API, ``huggingface_hub``), HTTP Basic with the
token as password (git), ``x-hf-authorization`` (``gradio_client`` to apps), or the web session cookie.
Rules: anyone reads public Spaces; private Spaces are readable by their owner, members of the owning
organization, and admins, and are 404 to everybody else; writing needs a ``write`` token of the owner,
of a ``write``/``admin`` member of the owning organization, or of an admin.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .crypto import hash_token, new_token
from .db.models import Membership, RepoRow, Token, User
from .errors import Conflict


@dataclass(frozen=True)
class Principal:
    user_id: str
    name: str
    role: str  # token role: read | write
    is_admin: bool
    token_id: str | None = None
    token_name: str = ""

    @property
    def can_write_tokens(self) -> bool:
        return self.role == "write"


def token_from_headers(authorization: str | None, hf_authorization: str | None = None) -> str | None:
    for value in (authorization, hf_authorization):
        if not value:
            continue
        scheme, _, rest = value.partition(" ")
        scheme = scheme.lower()
        if scheme == "bearer" and rest.strip():
            return rest.strip()
        if scheme == "basic" and rest.strip():
            try:
                _, _, password = base64.b64decode(rest.strip()).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return None
            return password or None
    return None


def resolve_token(session: Session, token: str | None) -> Principal | None:
    if not token:
        return None
    row = session.execute(
        select(Token, User).join(User, Token.user_id == User.id).where(Token.token_hash == hash_token(token))
    ).first()
    if row is None:
        return None
    tok, user = row
    return Principal(
        user_id=user.id, name=user.name, role=tok.role, is_admin=user.is_admin, token_id=tok.id, token_name=tok.name
    )


def create_token(session: Session, user: User, name: str = "", role: str = "write", value: str | None = None) -> str:
    value = value or new_token()
    session.add(Token(user_id=user.id, name=name, role=role, token_hash=hash_token(value)))
    return value


def ensure_user(session: Session, name: str, *, is_admin: bool = False, kind: str = "user") -> User:
    user = session.scalar(select(User).where(User.name == name))
    if user is None:
        from .names import check_owner, fold

        check_owner(name)
        other = session.scalar(select(User).where(func.lower(User.name) == fold(name)))
        if other is not None:
            raise Conflict(f"The namespace {other.name!r} already exists (names ignore case)")
        user = User(name=name, is_admin=is_admin, kind=kind, created_at=datetime.now(UTC))
        session.add(user)
        session.flush()
    return user


def org_role(session: Session, principal: Principal, namespace: str) -> str | None:
    row = session.execute(
        select(Membership.role)
        .join(User, Membership.org_id == User.id)
        .where(User.name == namespace, Membership.user_id == principal.user_id)
    ).first()
    return row[0] if row else None


def can_read_namespace(session: Session, principal: Principal | None, namespace: str) -> bool:
    if principal is None:
        return False
    if principal.is_admin or principal.name == namespace:
        return True
    return org_role(session, principal, namespace) is not None


def can_write_namespace(session: Session, principal: Principal | None, namespace: str) -> bool:
    if principal is None or principal.role != "write":
        return False
    if principal.is_admin or principal.name == namespace:
        return True
    return org_role(session, principal, namespace) in ("write", "admin")


def can_read(session: Session, principal: Principal | None, space: RepoRow) -> bool:
    return (not space.private) or can_read_namespace(session, principal, space.owner)


def can_write(session: Session, principal: Principal | None, space: RepoRow) -> bool:
    return can_write_namespace(session, principal, space.owner)
