"""Map ``BuilderSettings.log_store`` to a LogStore implementation."""

from __future__ import annotations

import importlib

from .logs import LogStore
from .settings import BuilderSettings

LOG_STORES: dict[str, str] = {
    "file": "spaceyard_builder.logs:FileLogStore",
    "redis": "spaceyard_builder.redislogs:RedisLogStore",
}


def create_log_store(settings: BuilderSettings) -> LogStore:
    module_name, _, attr = LOG_STORES[settings.log_store].partition(":")
    cls = getattr(importlib.import_module(module_name), attr)
    store: LogStore = cls.from_settings(settings) if hasattr(cls, "from_settings") else cls(settings.data_dir / "logs")
    return store
