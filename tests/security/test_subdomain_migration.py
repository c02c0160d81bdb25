"""Migration 0003 on a database whose Spaces collided before addresses were stored: the older Space
keeps its address, the newer gets a distinct one, and every address is unique afterwards."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from spaceyard_platform.db.session import MIGRATIONS, Database


def _upgrade(db: Database, target: str) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, target)


def test_colliding_spaces_get_distinct_addresses_oldest_first(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'old.db'}")
    _upgrade(db, "0002")
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [
        ("a" * 24, "team-ml", "demo", t0),  # the victim, created first
        ("b" * 24, "team", "ml-demo", t0 + timedelta(days=1)),  # took over its address
        ("c" * 24, "admin", "caps", t0),
        ("d" * 24, "admin", "Caps", t0 + timedelta(days=2)),
        ("e" * 24, "solo", "space", t0),
    ]
    with db.engine.begin() as conn:
        for pk, owner, name, created in rows:
            conn.execute(
                sa.text(
                    "INSERT INTO spaces (id, owner, name, sdk, private, hardware, paused, card_data, stage,"
                    " created_at, updated_at) VALUES (:id, :owner, :name, 'static', 0, 'cpu-basic', 0, '{}',"
                    " 'RUNNING', :created, :created)"
                ),
                {"id": pk, "owner": owner, "name": name, "created": created},
            )
    _upgrade(db, "head")
    with db.engine.connect() as conn:
        labels: dict[str, str] = dict(conn.execute(sa.text("SELECT id, subdomain FROM spaces")).fetchall())
    assert labels["a" * 24] == "team-ml-demo"
    assert labels["c" * 24] == "admin-caps"
    assert labels["e" * 24] == "solo-space"
    assert labels["b" * 24].startswith("team-ml-demo-") and len(labels["b" * 24]) == len("team-ml-demo-") + 8
    assert labels["d" * 24].startswith("admin-caps-")
    assert len(set(labels.values())) == len(labels)
    db.engine.dispose()
