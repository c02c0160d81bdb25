"""repos: model and dataset repositories

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 13:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "repos",
        sa.Column("id", sa.String(length=24), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("owner", sa.String(length=96), nullable=False),
        sa.Column("name", sa.String(length=96), nullable=False),
        sa.Column("private", sa.Boolean(), nullable=False),
        sa.Column("head_sha", sa.String(length=40), nullable=True),
        sa.Column("card_data", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("kind", "owner", "name"),
    )
    op.create_index(op.f("ix_repos_kind"), "repos", ["kind"])
    op.create_index(op.f("ix_repos_owner"), "repos", ["owner"])


def downgrade() -> None:
    op.drop_index(op.f("ix_repos_owner"), table_name="repos")
    op.drop_index(op.f("ix_repos_kind"), table_name="repos")
    op.drop_table("repos")
