"""Environment identity from the resolved dependency set, so equal sets share one environment.

``resolve`` turns (Python version, SDK + version + its extras, ``pre-requirements.txt``,
``requirements.txt``) into a lock: ``uv pip compile`` output, one ``name==version`` per line, sorted,
without header or annotations. The environment id is a hash of that lock, the Python version and the
engine version, so ``numpy``, ``numpy\\n``, ``NumPy  # c`` and a ``tqdm`` that the SDK already pulls in all
give the id of the plain SDK environment, and the engine installs exactly the lock.

Resolving costs a network round trip, so results are stored under ``<envs root>/.resolutions/`` by a cheap
first key: a hash of the normalized input text (comments, blank lines, whitespace, case and order stripped)
with the Python, SDK, engine and index settings. A no-change or app-only push reads that file and never
calls uv. A stored resolution is kept until ``--no-cache``: new upstream releases do not silently change an
environment that already works.

Resolution never builds anything: it runs with ``--no-build``, so a hostile source distribution's
``setup.py`` does not run outside the build sandbox just to learn its metadata. When the input cannot be
resolved this way (local paths, ``-e``/``-r``/``-c`` or other pip options, sdists without wheels, a
conflict with the SDK pin, no network), the id falls back to a hash of the raw text and the engine
installs the files as they are; the build log says so.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

RESOLVE_TIMEOUT = 120
"""Seconds ``uv pip compile`` may take; past it, the raw-text fallback."""
INDEX_VARS = ("UV_INDEX_URL", "UV_EXTRA_INDEX_URL", "UV_DEFAULT_INDEX", "UV_INDEX", "PIP_INDEX_URL")
"""Environment settings that change what a resolution returns; part of the first key."""
_LOCAL = re.compile(r"^[-./~]|[\\/@:]")
"""A line naming a path, URL or pip option (``-e ./pkg``, ``./x.whl``, ``-r other.txt``, ``pkg @ https://..``)."""


@dataclass(frozen=True)
class Resolution:
    env_id: str
    lock: str | None
    """The pinned set to install, or None: install the requirement files as they are (fallback)."""


def normalize(text: str) -> list[str]:
    """Requirement lines without comments and blank lines, whitespace removed, lower-cased, sorted, unique."""
    lines = {re.sub(r"\s+", "", line.split("#", 1)[0]).lower() for line in text.splitlines()}
    return sorted(line.replace("_", "-") for line in lines if line)


def _hash(obj: object) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:32]


def raw_id(engine: str, python: str, sdk: str, sdk_version: str, files: Mapping[str, str]) -> str:
    """The id of an unresolved environment: a hash of the requirement files' raw text."""
    key = {"engine": engine, "python": python, "sdk": sdk, "sdk_version": sdk_version, **files}
    return _hash(key)


def _stored_path(
    uv_env: Mapping[str, str], cache_dir: Path, engine: str, python: str, sdk_specs: list[str], lines: list[str]
) -> Path:
    """Where the resolution of ``lines`` (normalized requirement lines) with ``sdk_specs`` is stored."""
    index = {k: uv_env.get(k, "") for k in INDEX_VARS}
    first = _hash({"engine": engine, "python": python, "sdk": sdk_specs, "req": sorted(set(lines)), "index": index})
    return cache_dir / f"{first}.lock"


def stored(
    *,
    uv_env: Mapping[str, str],
    cache_dir: Path,
    engine: str,
    python: str,
    sdk_specs: list[str],
    files: Mapping[str, str],
) -> Resolution | None:
    """The resolution :func:`resolve` stored for these inputs, or None: never runs uv (no network)."""
    lines = [line for text in files.values() for line in normalize(text)]
    if any(_LOCAL.search(line) for line in lines):
        return None
    path = _stored_path(uv_env, cache_dir, engine, python, sdk_specs, lines)
    try:
        lock = path.read_text()
    except OSError:
        return None
    return Resolution(_hash({"engine": engine, "python": python, "lock": lock}), lock)


def resolve(
    *,
    uv: str,
    uv_env: Mapping[str, str],
    cache_dir: Path,
    engine: str,
    python: str,
    sdk: str,
    sdk_specs: list[str],
    sdk_version: str,
    files: Mapping[str, str],
    log: Callable[[str], None],
    refresh: bool = False,
) -> Resolution:
    """Resolve ``files`` (name -> text) plus ``sdk_specs`` for ``python``; see the module docstring."""
    lines = [line for text in files.values() for line in normalize(text)]
    if any(_LOCAL.search(line) for line in lines):
        log("--> Requirements name local paths or pip options: environment id from their text, installed as they are")
        return Resolution(raw_id(engine, python, sdk, sdk_version, files), None)
    stored = _stored_path(uv_env, cache_dir, engine, python, sdk_specs, lines)
    if not refresh and stored.exists():
        lock = stored.read_text()
    else:
        log("--> Resolving the requirements with the SDK (uv pip compile --no-build)")
        try:
            proc = subprocess.run(
                [
                    uv,
                    "pip",
                    "compile",
                    "-",
                    "--python-version",
                    python,
                    "--no-header",
                    "--no-annotate",
                    "--no-build",
                    "--quiet",
                ],
                input="\n".join([*sorted(set(lines)), *sdk_specs]) + "\n",
                capture_output=True,
                text=True,
                env=dict(uv_env),
                timeout=RESOLVE_TIMEOUT,
            )
        except subprocess.TimeoutExpired:
            log("--> Resolving the requirements timed out: environment id from their text, installed as they are")
            return Resolution(raw_id(engine, python, sdk, sdk_version, files), None)
        if proc.returncode != 0:
            reason = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            log(
                f"--> Could not resolve the requirements without building ({reason}): "
                "environment id from their text, installed as they are"
            )
            return Resolution(raw_id(engine, python, sdk, sdk_version, files), None)
        lock = "".join(sorted(f"{line.strip()}\n" for line in proc.stdout.splitlines() if line.strip()))
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = stored.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(lock)
        tmp.replace(stored)
    return Resolution(_hash({"engine": engine, "python": python, "lock": lock}), lock)
