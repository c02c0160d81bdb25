"""The embedded build queue: kombu's SQLAlchemy transport on a SQLite file, polled every 100 ms.

kombu hands every transport option to ``create_engine``, including ``polling_interval``, which
SQLAlchemy rejects; this transport keeps the engine options to what SQLite takes.
"""

from __future__ import annotations

from typing import Any

from kombu.transport import TRANSPORT_ALIASES
from kombu.transport import sqlalchemy as kombu_sqla
from sqlalchemy import create_engine

POLLING_INTERVAL = 0.1


class Channel(kombu_sqla.Channel):  # type: ignore[misc]
    def _engine_from_config(self) -> Any:
        conninfo = self.connection.client
        return create_engine(conninfo.hostname, connect_args={"timeout": 30})


class Transport(kombu_sqla.Transport):  # type: ignore[misc]
    Channel = Channel
    polling_interval = POLLING_INTERVAL


SCHEME = "spaceyard-sqlite"
TRANSPORT_ALIASES[SCHEME] = f"{__name__}:Transport"


def broker_url(path: str) -> str:
    return f"{SCHEME}+sqlite:///{path}"
