"""An instrumented build engine for queue tests: slow, and it records every execution in a file.

Selected in a worker process with ``SPACEYARD_ENGINE_FACTORY=tests.builder.slowengine:SlowEngine``;
``SPACEYARD_TEST_MARKERS`` names the file that gets one ``start <build id> <pid>`` line when a build
starts and one ``finish <build id> <pid>`` line when it ends; ``SPACEYARD_TEST_BUILD_SECONDS`` is how
long a build takes.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from spaceyard_builder.api import Artifact, BuildEngine, BuildLog, BuildRequest
from spaceyard_builder.spaceconfig import SpaceConfig


def _mark(event: str, build_id: str) -> None:
    path = Path(os.environ["SPACEYARD_TEST_MARKERS"])
    with path.open("a") as f:
        f.write(f"{event} {build_id} {os.getpid()}\n")
        f.flush()
        os.fsync(f.fileno())


def read_markers(env: dict[str, str]) -> list[list[str]]:
    """The marker file's lines, split: ``[["start", build_id, pid], ...]``."""
    path = Path(env["SPACEYARD_TEST_MARKERS"])
    return [line.split() for line in path.read_text().splitlines()] if path.exists() else []


class SlowEngine(BuildEngine):
    name = "slow"

    def build(self, request: BuildRequest, source: Path, config: SpaceConfig, log: BuildLog) -> Artifact:
        _mark("start", request.build_id)
        seconds = float(os.environ.get("SPACEYARD_TEST_BUILD_SECONDS", "6"))
        deadline = time.monotonic() + seconds
        step = 0
        while time.monotonic() < deadline:
            log(f"working {step}")
            step += 1
            time.sleep(0.25)
        _mark("finish", request.build_id)
        return Artifact(id=f"slow:{request.revision}", cache_hit=False)
