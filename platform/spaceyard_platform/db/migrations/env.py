"""Alembic environment: runs on the connection handed over by :func:`spaceyard_platform.db.session.migrate`."""

from __future__ import annotations

from alembic import context

from spaceyard_platform.db.models import Base

config = context.config
connection = config.attributes.get("connection")
if connection is None:  # pragma: no cover - `alembic` CLI use with a URL
    from sqlalchemy import create_engine

    connection = create_engine(config.get_main_option("sqlalchemy.url") or "").connect()

context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
