"""The platform's tables. The database holds what users configured and what happened;
running apps and routes live in the deployer's memory and are rebuilt from here at start."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from ..lifecycle.stages import INITIAL


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    """24 hex characters, like the Hub's object ids."""
    return secrets.token_hex(12)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, datetime: DateTime(timezone=True)}


class User(Base):
    """A user or an organization (``kind``); both are namespaces that own Spaces."""

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(24), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(96), unique=True, index=True)
    kind: Mapped[str] = mapped_column(String(8), default="user")
    fullname: Mapped[str] = mapped_column(String(200), default="")
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    tokens: Mapped[list[Token]] = relationship(back_populates="user", cascade="all, delete-orphan")


class Membership(Base):
    """A user's role in an organization: ``read``, ``write`` or ``admin``."""

    __tablename__ = "memberships"
    __table_args__ = (UniqueConstraint("org_id", "user_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(8), default="write")


class Token(Base):
    """An access token. Only its SHA-256 is stored; ``role`` is ``read`` or ``write``."""

    __tablename__ = "tokens"

    id: Mapped[str] = mapped_column(String(24), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100), default="")
    role: Mapped[str] = mapped_column(String(8), default="write")
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)

    user: Mapped[User] = relationship(back_populates="tokens")


class Space(Base):
    __tablename__ = "spaces"
    __table_args__ = (UniqueConstraint("owner", "name"),)
    kind: ClassVar[str] = "space"

    id: Mapped[str] = mapped_column(String(24), primary_key=True, default=new_id)
    owner: Mapped[str] = mapped_column(String(96), index=True)
    name: Mapped[str] = mapped_column(String(96))
    sdk: Mapped[str] = mapped_column(String(16), default="gradio")
    private: Mapped[bool] = mapped_column(Boolean, default=False)
    hardware: Mapped[str] = mapped_column(String(32), default="cpu-basic")
    sleep_time: Mapped[int | None] = mapped_column(Integer, default=None)
    deep_sleep_after: Mapped[int | None] = mapped_column(Integer, default=None)
    """Spaceyard extension (the Hub has none): seconds asleep before deep sleep (``-1`` never, ``0`` at
    once); ``None``: the platform's ``deep_sleep_after``."""
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    head_sha: Mapped[str | None] = mapped_column(String(40), default=None)
    card_data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    stage: Mapped[str] = mapped_column(String(32), default=INITIAL.value)
    """Written only by the deployer (:mod:`spaceyard_platform.lifecycle`); a new row starts at ``INITIAL``."""
    error_message: Mapped[str | None] = mapped_column(Text, default=None)
    serving_build_id: Mapped[str | None] = mapped_column(String(32), default=None)
    latest_build_id: Mapped[str | None] = mapped_column(String(32), default=None)
    run_log_key: Mapped[str | None] = mapped_column(String(200), default=None)
    duplicated_from: Mapped[str | None] = mapped_column(String(200), default=None)
    storage_tier: Mapped[str | None] = mapped_column(String(16), default=None)
    """Persistent storage at ``/data`` (``small``, ``medium``, ``large``; ``storage.py``), or none."""
    volumes: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, default=None)
    """The Hub's volumes list this storage was set with (``set_space_volumes``), as given; or none."""
    subdomain: Mapped[str | None] = mapped_column(String(63), unique=True, index=True, default=None)
    """The app's host label, chosen once when the Space is created or renamed (``names``); unique."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    @property
    def space_id(self) -> str:
        return f"{self.owner}/{self.name}"

    @property
    def repo_id(self) -> str:
        return self.space_id

    @property
    def app_label(self) -> str:
        """The stored subdomain (the Hub's derivation for a row written before labels were stored)."""
        from ..names import hub_label

        return self.subdomain or hub_label(self.owner, self.name)


class HubRepo(Base):
    """A model or dataset repository (``kind``): files and a card, never built or run. Its id is unique
    per kind ignoring case (checked on create and move); a model and a Space may share a name."""

    __tablename__ = "repos"
    __table_args__ = (UniqueConstraint("kind", "owner", "name"),)

    id: Mapped[str] = mapped_column(String(24), primary_key=True, default=new_id)
    kind: Mapped[str] = mapped_column(String(8), index=True)  # model | dataset
    owner: Mapped[str] = mapped_column(String(96), index=True)
    name: Mapped[str] = mapped_column(String(96))
    private: Mapped[bool] = mapped_column(Boolean, default=False)
    head_sha: Mapped[str | None] = mapped_column(String(40), default=None)
    card_data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """The README's front matter at ``head_sha`` (written on every push and commit, for listings)."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    @property
    def repo_id(self) -> str:
        return f"{self.owner}/{self.name}"

    @property
    def space_id(self) -> str:
        """The id (``OWNER/NAME``), under the name the shared file code uses for every repository."""
        return self.repo_id


RepoRow = Space | HubRepo
"""Any repository row: what the git, LFS, Xet and file endpoints work on (``kind`` says which)."""


class Build(Base):
    __tablename__ = "builds"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    space_pk: Mapped[str] = mapped_column(ForeignKey("spaces.id", ondelete="CASCADE"), index=True)
    revision: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(16), default="queued")  # queued, succeeded, failed
    stage: Mapped[str] = mapped_column(String(32), default="")
    reason: Mapped[str] = mapped_column(Text, default="")
    artifact: Mapped[str] = mapped_column(Text, default="")
    app_dir: Mapped[str | None] = mapped_column(Text, default=None)
    app_file: Mapped[str] = mapped_column(String(300), default="")
    app_port: Mapped[int] = mapped_column(Integer, default=7860)
    sdk: Mapped[str] = mapped_column(String(16), default="")
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    no_cache: Mapped[bool] = mapped_column(Boolean, default=False)
    cache_hit: Mapped[bool] = mapped_column(Boolean, default=False)
    duration: Mapped[float] = mapped_column(Float, default=0.0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)

    @property
    def log_key(self) -> str:
        from ..names import build_log_key

        return build_log_key(self.id)


class SpaceSecret(Base):
    """A secret: the value is encrypted at rest and never returned by any API, page or log."""

    __tablename__ = "space_secrets"
    __table_args__ = (UniqueConstraint("space_pk", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    space_pk: Mapped[str] = mapped_column(ForeignKey("spaces.id", ondelete="CASCADE"), index=True)
    key: Mapped[str] = mapped_column(String(200))
    value_encrypted: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text, default=None)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class SpaceVariable(Base):
    __tablename__ = "space_variables"
    __table_args__ = (UniqueConstraint("space_pk", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    space_pk: Mapped[str] = mapped_column(ForeignKey("spaces.id", ondelete="CASCADE"), index=True)
    key: Mapped[str] = mapped_column(String(200))
    value: Mapped[str] = mapped_column(Text, default="")
    description: Mapped[str | None] = mapped_column(Text, default=None)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebSession(Base):
    """A signed-in browser (the ``spaceyard_session`` cookie). Only the SHA-256 of the random session id
    is stored; ``role`` is the role of the token used to sign in; ``csrf_token`` guards every POST."""

    __tablename__ = "sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_id: Mapped[str | None] = mapped_column(ForeignKey("tokens.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(8), default="read")
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(default=utcnow)
