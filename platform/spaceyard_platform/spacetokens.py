"""The Hub token a Space's app and build get (``HF_TOKEN``): read-only, minted by the platform per Space.

Contract:

* :func:`mint` returns the Space's token, creating its row on first use. The value is derived from the
  platform's secret key and the Space's database id and creation time (HMAC), so every deploy of the
  same Space gets the same value without storing it; only its SHA-256 is stored, as for every token,
  as a ``tokens`` row of the Space's *owner* (user or organization) with role :data:`SPACE_ROLE` and the
  name ``space:<space id>``.
* :func:`check` is what :func:`spaceyard_platform.auth.resolve_token` asks about such a row: the token
  is valid only while its Space exists under the same owner (deleting the Space revokes it, and a new
  Space of the same name gets a different one).

What the token may do follows from its role: :data:`SPACE_ROLE` is not ``write``, so every write check
refuses it (``can_write_namespace``), it never carries the owner's admin rights (``is_admin`` is false
for it, in API requests and in a web session signed in with it), and reading is what the owner may read:
public repositories, the owner's private ones, and those of the owner's organizations.
"""

from __future__ import annotations

import hashlib
import hmac

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from .crypto import hash_token, load_or_create_key
from .db.models import Space, Token, User
from .db.session import Database
from .settings import Settings

SPACE_ROLE = "space"
"""Token role of a Space's own token: reads what the owner may read, writes nothing."""
NAME_PREFIX = "space:"
VALUE_PREFIX = "hf_sy_space_"


def token_name(space: Space) -> str:
    return NAME_PREFIX + space.id


def _value(key: bytes, space: Space) -> str:
    created = space.created_at.replace(tzinfo=None).isoformat() if space.created_at else ""
    mac = hmac.new(key, f"spaceyard-space-token\0{space.id}\0{created}".encode(), hashlib.sha256)
    return VALUE_PREFIX + mac.hexdigest()[:40]


def mint(session: Session, key: bytes, space: Space) -> str | None:
    """The Space's read-only token (its row created if needed); ``None`` if the owner has no account row."""
    owner = session.scalar(select(User).where(User.name == space.owner))
    if owner is None:
        return None
    value = _value(key, space)
    digest = hash_token(value)
    row = session.scalar(select(Token).where(Token.token_hash == digest))
    if row is not None and row.user_id == owner.id and row.role == SPACE_ROLE:
        return value
    name = token_name(space)
    session.execute(delete(Token).where(Token.name == name, Token.role == SPACE_ROLE))
    if row is not None:  # same value under another owner (the Space moved): re-issued for the new owner
        session.delete(row)
        session.flush()
    session.add(Token(user_id=owner.id, name=name, role=SPACE_ROLE, token_hash=digest))
    session.flush()
    return value


def for_space(db: Database, settings: Settings, space_pk: str) -> str | None:
    """:func:`mint` in its own transaction, with the platform's secret key (what the deployer calls)."""
    key = load_or_create_key(settings.secret_key, settings.data_dir)
    with db.session() as s:
        space = s.get(Space, space_pk)
        return mint(s, key, space) if space is not None else None


def check(session: Session, token: Token, owner: User) -> bool:
    """Whether a :data:`SPACE_ROLE` token is still valid: its Space exists and ``owner`` owns it."""
    if not token.name.startswith(NAME_PREFIX):
        return False
    space = session.get(Space, token.name.removeprefix(NAME_PREFIX))
    return space is not None and space.owner == owner.name


def is_valid(db: Database, value: str) -> bool:
    """Whether ``value`` is a live Space token (what the shared Hub relay accepts, and nothing else)."""
    if not value.startswith(VALUE_PREFIX):
        return False
    with db.session() as s:
        row = s.execute(
            select(Token, User).join(User, Token.user_id == User.id).where(Token.token_hash == hash_token(value))
        ).first()
        return row is not None and row[0].role == SPACE_ROLE and check(s, row[0], row[1])


def revoke(session: Session, space: Space) -> None:
    session.execute(delete(Token).where(Token.name == token_name(space), Token.role == SPACE_ROLE))


__all__ = ["SPACE_ROLE", "check", "for_space", "is_valid", "mint", "revoke", "token_name"]
