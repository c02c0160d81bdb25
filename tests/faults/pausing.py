"""A build engine for fault tests: the real local engine, after a slow step run as a real child process.

Selected in the server's worker with ``SPACEYARD_ENGINE_FACTORY=tests.faults.pausing:PausingEngine``.
Before building (which then reuses the shared Gradio environment), it runs ``python -c ...`` through
the engine's own subprocess runner, for ``SPACEYARD_TEST_BUILD_SECONDS`` seconds, printing a line
every 0.2 s; the child appends its pid to ``SPACEYARD_TEST_MARKERS``. Faults are injected while that
child runs: it is what ``uv`` and ``compileall`` are in a real build (a child of the worker, in its
process group), without installing 300 MB per test.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from spaceyard_builder.api import Artifact, BuildLog, BuildRequest
from spaceyard_builder.engines.local import LocalEngine
from spaceyard_builder.spaceconfig import SpaceConfig

CHILD = (
    "import os, sys, time\n"
    "open(sys.argv[1], 'a').write(f'{os.getpid()}\\n')\n"
    "for i in range(int(float(sys.argv[2]) * 5)):\n"
    "    print(f'step {i}', flush=True)\n"
    "    time.sleep(0.2)\n"
)


class PausingEngine(LocalEngine):
    name = "local"

    def build(self, request: BuildRequest, source: Path, config: SpaceConfig, log: BuildLog) -> Artifact:
        seconds = os.environ.get("SPACEYARD_TEST_BUILD_SECONDS", "5")
        markers = os.environ["SPACEYARD_TEST_MARKERS"]
        self._deadline = None
        self._run([sys.executable, "-c", CHILD, markers, seconds], log, "Preparing")
        return super().build(request, source, config, log)


def child_pids(markers: Path) -> list[int]:
    return [int(x) for x in markers.read_text().split()] if markers.exists() else []
