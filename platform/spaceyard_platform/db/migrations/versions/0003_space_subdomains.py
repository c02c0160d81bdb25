"""spaces.subdomain: each Space's app label, stored once and unique

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 10:00:00

Existing Spaces keep the label they were served on (the Hub's derivation of their id). Where two
existing Spaces shared one label (``team-ml/demo`` and ``team/ml-demo``, or ``admin/Caps`` and
``admin/caps``), the one created first keeps it and the later one gets ``<label>-<8 hex digits>``; the
derivation is frozen here (``spaceyard_platform.names`` holds the live one).
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _digest(owner: str, name: str) -> str:
    return hashlib.sha256(f"{owner.lower()}/{name.lower()}".encode()).hexdigest()[:8]


def _labels(owner: str, name: str) -> list[str]:
    label = f"{owner}/{name}".lower().replace("/", "-").replace("_", "-").replace(".", "-")
    digest = _digest(owner, name)
    hashed = f"{label[:54].rstrip('-')}-{digest}"
    return [label, hashed] if len(label) <= 63 else [hashed]


def upgrade() -> None:
    with op.batch_alter_table("spaces", schema=None) as batch_op:
        batch_op.add_column(sa.Column("subdomain", sa.String(length=63), nullable=True))
    conn = op.get_bind()
    rows = conn.execute(sa.text("SELECT id, owner, name FROM spaces ORDER BY created_at, id")).fetchall()
    taken: set[str] = set()
    for pk, owner, name in rows:
        label = next((c for c in _labels(owner, name) if c not in taken), f"space-{pk}")
        taken.add(label)
        conn.execute(sa.text("UPDATE spaces SET subdomain = :label WHERE id = :pk"), {"label": label, "pk": pk})
    with op.batch_alter_table("spaces", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_spaces_subdomain"), ["subdomain"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("spaces", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_spaces_subdomain"))
        batch_op.drop_column("subdomain")
