"""Builds as Celery tasks on real Redis: a worker killed mid-build, a duplicate submit, exactly once.

A real ``celery -A spaceyard_builder.worker worker --pool=solo -c 1`` process runs against the Redis
at ``SPACEYARD_TEST_REDIS_URL`` (default db 15) on a queue of its own, with the instrumented
:mod:`tests.builder.slowengine` engine, which writes a line to a marker file when a build starts and
when it finishes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from spaceyard_builder.api import BuildRequest, BuildResult
from spaceyard_builder.settings import BuilderSettings
from spaceyard_builder.worker import BUILD_TASK, make_celery

from .slowengine import read_markers

pytestmark = pytest.mark.redis

ROOT = Path(__file__).resolve().parents[2]
REDIS_URL = os.environ.get("SPACEYARD_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
VISIBILITY = 4.0
BUILD_SECONDS = 6.0


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, str]]:
    queue = f"spaceyard-test-{uuid.uuid4().hex[:12]}"
    e = {k: v for k, v in os.environ.items() if not k.startswith("SPACEYARD_")}
    e.update(
        {
            "SPACEYARD_REDIS_URL": REDIS_URL,
            "SPACEYARD_DATA_DIR": str(tmp_path / "data"),
            "SPACEYARD_CELERY_QUEUE": queue,
            "SPACEYARD_CELERY_VISIBILITY_TIMEOUT": str(VISIBILITY),
            "SPACEYARD_ENGINE_FACTORY": "tests.builder.slowengine:SlowEngine",
            "SPACEYARD_REDIS_LOG_PREFIX": f"spaceyard-test:{queue}:",
            "SPACEYARD_TEST_MARKERS": str(tmp_path / "markers.txt"),
            "SPACEYARD_TEST_BUILD_SECONDS": str(BUILD_SECONDS),
            "PYTHONPATH": str(ROOT),
        }
    )
    yield e
    client = redis.Redis.from_url(REDIS_URL)
    for pattern in (f"spaceyard-test:{queue}:*", f"{queue}*", "_kombu.binding." + queue + "*"):
        keys = list(client.scan_iter(match=pattern))
        if keys:
            client.delete(*keys)


def _settings(env: dict[str, str]) -> BuilderSettings:
    return BuilderSettings(
        data_dir=Path(env["SPACEYARD_DATA_DIR"]),
        redis_url=REDIS_URL,
        celery_queue=env["SPACEYARD_CELERY_QUEUE"],
        celery_visibility_timeout=VISIBILITY,
        redis_log_prefix=env["SPACEYARD_REDIS_LOG_PREFIX"],
    )


def _worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    out = log.open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "spaceyard_builder.worker", "worker", "--pool=solo", "-c", "1",
         "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "INFO"],
        env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
    )  # fmt: skip


def _wait_for(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_killed_worker_build_finishes_exactly_once(
    env: dict[str, str], space_repo: tuple[str, str], tmp_path: Path
) -> None:
    repo, sha = space_repo
    settings = _settings(env)
    celery = make_celery(settings)
    build_id = f"b-{uuid.uuid4().hex[:12]}"
    request = BuildRequest(
        build_id=build_id, space_id="test/slow", revision=sha, repo=repo, log_key=f"build/{build_id}"
    )
    worker_log = tmp_path / "worker.log"
    first = _worker(env, worker_log)
    second: subprocess.Popen[bytes] | None = None
    try:
        celery.send_task(BUILD_TASK, args=[request.model_dump()], task_id=build_id)
        _wait_for(lambda: any(m[0] == "start" for m in read_markers(env)), 60, "the first worker to start the build")
        os.kill(first.pid, signal.SIGKILL)  # mid-build: the task is neither finished nor acknowledged
        first.wait(10)
        assert not any(m[0] == "finish" for m in read_markers(env))

        second = _worker(env, worker_log)
        result = celery.AsyncResult(build_id).get(timeout=120)
        built = BuildResult.model_validate(result)
        assert built.ok, built.reason
        assert built.artifact == f"slow:{sha}"

        markers = read_markers(env)
        starts = [m for m in markers if m[0] == "start"]
        finishes = [m for m in markers if m[0] == "finish"]
        assert len(finishes) == 1, markers  # finished exactly once...
        assert len(starts) == 2 and starts[0][2] == str(first.pid) and finishes[0][2] == str(second.pid)

        # ... and a duplicate submit of the finished build id returns the stored result, building nothing.
        celery.send_task(BUILD_TASK, args=[request.model_dump()], task_id=build_id)
        again = celery.AsyncResult(build_id).get(timeout=60)
        assert BuildResult.model_validate(again) == built
        time.sleep(1.0)
        assert len(read_markers(env)) == 3

        # The build log says it restarted, and is complete and closed.
        from spaceyard_builder.redislogs import RedisLogStore

        logs = RedisLogStore.from_settings(settings)
        lines = [e.data for e in logs.read(request.log_key)]
        assert any("Build restarted (attempt 2)" in line for line in lines)
        assert logs.is_closed(request.log_key)
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
