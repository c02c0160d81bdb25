"""spaces.storage_tier, spaces.volumes: the Space's persistent storage (/data) and the volumes it was set with

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 13:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("spaces") as batch:
        batch.add_column(sa.Column("storage_tier", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("volumes", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("spaces") as batch:
        batch.drop_column("volumes")
        batch.drop_column("storage_tier")
