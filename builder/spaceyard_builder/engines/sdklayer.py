"""A new environment started as a hard-link copy of its SDK layer, so only the difference is installed.

The SDK layer of a Space is the plain SDK environment (same interpreter, SDK, version and extras, no
requirements of its own): content-addressed like every environment, built once per machine with its
bytecode. :func:`link_copy` makes ``dest`` a copy of it in which every file of ``lib/`` (sources and their
``__pycache__``) is a hard link, and the few files that record the environment's own path (``bin/``
scripts, ``pyvenv.cfg``) are new files with that path rewritten. The engine then runs ``uv pip sync`` with
the Space's lock (uv adds and removes only the difference) and compiles the sources of the distributions
uv added (:func:`added_sources`, from their ``RECORD``), not a walk of every file.

Why sharing inodes is safe: environments are read-only to apps (the sandbox binds them read-only), the
engine never writes into a copied file (path rewrites and markers are new files renamed into place), uv
removes or replaces files rather than rewriting them, and ``py_compile`` writes bytecode to a temporary
file and renames it. ``tests/builder/test_sdk_layer.py`` checks that upgrading and uninstalling in one
environment leaves the layer's files as they were.
"""

from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path

SKIP = frozenset({".spaceyard-env.json", "spaceyard-lock.txt"})
"""Top-level files of the layer that describe the layer itself: the new environment writes its own."""


def replace_text(path: Path, old: str, new: str) -> bool:
    """If ``path`` is a text file naming ``old``, replace it by a new file (never rewritten in place: it
    may be a hard link shared with other environments) naming ``new``. Returns whether it did."""
    try:
        with open(path, "rb") as f:
            if b"\0" in f.read(1024):
                return False  # a binary (bin/ffmpeg): no path inside to rewrite
        text = path.read_text()
    except (UnicodeDecodeError, OSError):
        return False
    if old not in text:
        return False
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text.replace(old, new))
    shutil.copymode(path, tmp)
    os.replace(tmp, path)
    return True


def link_copy(base: Path, dest: Path) -> int:
    """Fill the (existing, empty) directory ``dest`` with a copy of the environment ``base``: directories
    new, files hard links, symlinks as they are; then every text file of ``bin/`` and ``pyvenv.cfg`` that
    names ``base`` is replaced by one naming ``dest``. Returns how many files are shared."""
    linked = 0
    for root, dirs, files in os.walk(base):
        rel = os.path.relpath(root, base)
        out = dest if rel == "." else dest / rel
        for name in dirs:
            src = os.path.join(root, name)
            if os.path.islink(src):
                os.symlink(os.readlink(src), out / name)
            else:
                (out / name).mkdir(mode=0o755)
        dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(root, d))]
        for name in files:
            if rel == "." and name in SKIP:
                continue
            src = os.path.join(root, name)
            if os.path.islink(src):
                os.symlink(os.readlink(src), out / name)
            else:
                os.link(src, out / name)
                linked += 1
    for path in [dest / "pyvenv.cfg", *sorted((dest / "bin").iterdir())]:
        if path.is_file() and not path.is_symlink():
            replace_text(path, str(base), str(dest))
    return linked


def added_sources(base: Path, env: Path) -> list[str] | None:
    """The ``.py`` files, under ``env/lib``, of the distributions installed in ``env`` that its layer ``base``
    does not have (a ``*.dist-info`` name holds the version: an upgrade is a new one), from their
    ``RECORD``. None when it cannot tell (a distribution without ``RECORD``): compile by walking instead."""
    lib = os.path.normpath(env / "lib")
    out: list[str] = []
    for site in sorted((env / "lib").glob("python*/site-packages")):
        before = base / site.relative_to(env)
        had = {p.name for p in before.glob("*.dist-info")} if before.is_dir() else set()
        for info in sorted(site.glob("*.dist-info")):
            if info.name in had:
                continue
            try:
                rows = list(csv.reader((info / "RECORD").read_text(encoding="utf-8").splitlines()))
            except (OSError, UnicodeDecodeError, csv.Error):
                return None
            for row in rows:
                if row and row[0].endswith(".py"):
                    path = os.path.normpath(site / row[0])
                    if path.startswith(lib + os.sep) and os.path.isfile(path):
                        out.append(path)
    return sorted(set(out))
