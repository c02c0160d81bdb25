"""The embedded build queue (SQLite broker, no Redis): same task, same idempotency by build id."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

from spaceyard_builder.api import BuildRequest, BuildResult
from spaceyard_builder.settings import BuilderSettings
from spaceyard_builder.worker import BUILD_TASK, make_celery

from .slowengine import read_markers

ROOT = Path(__file__).resolve().parents[2]


def test_embedded_queue_builds_once_per_build_id(space_repo: tuple[str, str], tmp_path: Path) -> None:
    repo, sha = space_repo
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPACEYARD_")}
    env.update(
        {
            "SPACEYARD_DATA_DIR": str(data),
            "SPACEYARD_ENGINE_FACTORY": "tests.builder.slowengine:SlowEngine",
            "SPACEYARD_TEST_MARKERS": str(tmp_path / "markers.txt"),
            "SPACEYARD_TEST_BUILD_SECONDS": "0.5",
            "PYTHONPATH": str(ROOT),
        }
    )
    celery = make_celery(BuilderSettings(data_dir=data))
    build_id = f"e-{uuid.uuid4().hex[:12]}"
    request = BuildRequest(
        build_id=build_id, space_id="test/slow", revision=sha, repo=repo, log_key=f"build/{build_id}"
    )
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "spaceyard_builder.worker", "worker", "--pool=solo", "-c", "1",
         "--without-gossip", "--without-mingle", "--without-heartbeat"],
        env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        celery.send_task(BUILD_TASK, args=[request.model_dump()], task_id=build_id)
        first = BuildResult.model_validate(celery.AsyncResult(build_id).get(timeout=60))
        assert first.ok and first.artifact == f"slow:{sha}"
        celery.send_task(BUILD_TASK, args=[request.model_dump()], task_id=build_id)
        again = BuildResult.model_validate(celery.AsyncResult(build_id).get(timeout=60))
        assert again == first
        assert [m[0] for m in read_markers(env)] == ["start", "finish"]
    finally:
        worker.terminate()
        try:
            worker.wait(15)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
