"""Bytecode compilation that says how far it is: run by the environment's own interpreter, as a script.

``python compile_progress.py DIR [LIST]`` compiles every ``.py`` file under DIR, or only those of DIR that
the file LIST names (one a line), like ``compileall -q -j 0`` (optimization level 0, errors in vendored test
files ignored as compileall's exit code would not be),
that has no up-to-date bytecode (files shared with the SDK layer have theirs) and prints one line about
every 10% — ``Compiling bytecode: 2400/11873 files (20%)`` — so the build log
of a first build is never silent for the half minute this takes. It imports nothing from Spaceyard:
the engine runs it with the environment's interpreter so the bytecode matches that interpreter.
"""

from __future__ import annotations

import compileall
import importlib.util
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

CHUNK = 200


def command(python: str, folder: Path, only: Path | None = None) -> list[str]:
    """The argv that compiles ``folder`` with ``python``, printing progress; with ``only`` (a file, one path
    a line), just those files instead of a walk of ``folder``. ``-I -S``: no ``site``, so no ``.pth`` file
    of an installed package runs (compiling executes nothing of the environment)."""
    return [python, "-I", "-S", str(Path(__file__).resolve()), str(folder), *([str(only)] if only else [])]


def _stale(path: str) -> bool:
    """Whether ``path`` lacks bytecode that matches it (the check ``compileall`` makes before compiling):
    files a new environment shares with its SDK layer already have theirs."""
    try:
        with open(importlib.util.cache_from_source(path), "rb") as f:
            header = f.read(16)
        st = os.stat(path)
    except OSError:
        return True
    mtime = int(st.st_mtime) & 0xFFFFFFFF
    size = st.st_size & 0xFFFFFFFF
    expected = importlib.util.MAGIC_NUMBER + bytes(4) + mtime.to_bytes(4, "little") + size.to_bytes(4, "little")
    return header != expected


def _compile(paths: list[str]) -> int:
    failed = 0
    for path in paths:
        if not compileall.compile_file(path, quiet=2):
            failed += 1
    return failed


def main(folder: str, only: str | None = None) -> int:
    started = time.monotonic()
    if only is None:
        sources = [str(p) for p in Path(folder).rglob("*.py")]
    else:  # the files the engine named (the distributions it added), inside ``folder`` only
        root = os.path.abspath(folder) + os.sep
        with open(only, encoding="utf-8") as f:
            sources = [p for p in f.read().splitlines() if os.path.abspath(p).startswith(root)]
    files = [p for p in sources if _stale(p)]
    total = len(files)
    fresh = len(sources) - total
    shared = f" ({fresh} already compiled)" if fresh else ""
    print(f"Compiling bytecode: {total} files{shared}", flush=True)
    chunks = [files[i : i + CHUNK] for i in range(0, total, CHUNK)]
    done = failed = 0
    next_report = 10
    with ProcessPoolExecutor(max_workers=min(os.cpu_count() or 1, max(len(chunks), 1))) as pool:
        for chunk, bad in zip(chunks, pool.map(_compile, chunks), strict=True):
            done += len(chunk)
            failed += bad
            percent = done * 100 // max(total, 1)
            if percent >= next_report and done < total:
                print(f"Compiling bytecode: {done}/{total} files ({percent}%)", flush=True)
                next_report = percent // 10 * 10 + 10
    note = f", {failed} could not be compiled (kept as source)" if failed else ""
    print(f"Compiled bytecode of {total} files in {time.monotonic() - started:.1f}s{note}{shared}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None))
