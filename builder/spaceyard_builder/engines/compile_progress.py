"""Bytecode compilation that says how far it is: run by the environment's own interpreter, as a script.

``python compile_progress.py DIR`` compiles every ``.py`` file under DIR (like ``compileall -q -j 0``,
optimization level 0, errors in vendored test files ignored as compileall's exit code would not be)
and prints one line about every 10% — ``Compiling bytecode: 2400/11873 files (20%)`` — so the build log
of a first build is never silent for the half minute this takes. It imports nothing from Spaceyard:
the engine runs it with the environment's interpreter so the bytecode matches that interpreter.
"""

from __future__ import annotations

import compileall
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

CHUNK = 200


def command(python: str, folder: Path) -> list[str]:
    """The argv that compiles ``folder`` with ``python``, printing progress."""
    return [python, str(Path(__file__).resolve()), str(folder)]


def _compile(paths: list[str]) -> int:
    failed = 0
    for path in paths:
        if not compileall.compile_file(path, quiet=2):
            failed += 1
    return failed


def main(folder: str) -> int:
    started = time.monotonic()
    files = [str(p) for p in Path(folder).rglob("*.py")]
    total = len(files)
    print(f"Compiling bytecode: {total} files", flush=True)
    chunks = [files[i : i + CHUNK] for i in range(0, total, CHUNK)]
    done = failed = 0
    next_report = 10
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        for chunk, bad in zip(chunks, pool.map(_compile, chunks), strict=True):
            done += len(chunk)
            failed += bad
            percent = done * 100 // max(total, 1)
            if percent >= next_report and done < total:
                print(f"Compiling bytecode: {done}/{total} files ({percent}%)", flush=True)
                next_report = percent // 10 * 10 + 10
    note = f", {failed} could not be compiled (kept as source)" if failed else ""
    print(f"Compiled bytecode of {total} files in {time.monotonic() - started:.1f}s{note}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
