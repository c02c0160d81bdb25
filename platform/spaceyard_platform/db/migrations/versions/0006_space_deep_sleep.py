"""spaces.deep_sleep_after: seconds a Space sleeps lightly before deep sleep (a Spaceyard extension)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 16:55:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("spaces") as batch:
        batch.add_column(sa.Column("deep_sleep_after", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("spaces") as batch:
        batch.drop_column("deep_sleep_after")
