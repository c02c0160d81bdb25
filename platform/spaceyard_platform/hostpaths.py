"""Host paths out of what visitors read: logs, stage reasons, error pages.

A Space's own output and the build log mention where things live on this machine (``DATA_DIR``,
the environments folder, the platform's interpreter). Visitors see the paths a Hub Space shows
instead: the app's files at ``/home/user/app``, its Python environment at ``/home/user/.venv``,
the interpreter's standard library under ``/usr/local``; any other path below ``DATA_DIR`` or the
environments folder becomes ``$DATA_DIR/…`` / ``$ENV_DIR/…``. Applied where text leaves the
platform (log streams, runtime JSON, pages), so every log store and runtime is covered alike.
"""

from __future__ import annotations

import re
import sys
from functools import lru_cache
from pathlib import Path

from .settings import Settings


class HostPaths:
    def __init__(self, data_dir: Path, env_dir: Path, interpreter_prefix: str = sys.base_prefix) -> None:
        data = str(data_dir.resolve())
        envs = str(env_dir.resolve())
        rules: list[tuple[str, str]] = [
            (re.escape(data) + r"/sources/[^/\s\"']+/[0-9a-f]{7,64}", "/home/user/app"),
            (re.escape(envs) + r"/[0-9a-f]{32}(?![0-9a-f])", "/home/user/.venv"),
            (re.escape(envs), "$ENV_DIR"),
            (re.escape(data), "$DATA_DIR"),
        ]
        if interpreter_prefix and interpreter_prefix != "/":
            rules.append((re.escape(interpreter_prefix.rstrip("/")) + r"(?=/)", "/usr/local"))
        self._pattern = re.compile("|".join(f"({rx})" for rx, _ in rules))
        self._replacements = [rep for _, rep in rules]

    def clean(self, text: str) -> str:
        if not text:
            return text
        return self._pattern.sub(lambda m: self._replacements[(m.lastindex or 1) - 1], text)


@lru_cache(maxsize=8)
def _cached(data_dir: str, env_dir: str) -> HostPaths:
    return HostPaths(Path(data_dir), Path(env_dir))


def for_settings(settings: Settings) -> HostPaths:
    return _cached(str(settings.data_dir), str(settings.builder().envs_root))
