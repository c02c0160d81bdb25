"""Builds on Redis with the default-short visibility timeout: a build running far longer than the timeout
is kept alive by its worker (delivered once, even with another worker idle), and a killed worker's build
is delivered again within about the timeout, not after half an hour."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from spaceyard_builder.api import BuildRequest, BuildResult
from spaceyard_builder.worker import BUILD_TASK, make_celery

from .slowengine import read_markers
from .test_worker_redis import VISIBILITY, _settings, _wait_for, _worker, env  # noqa: F401

pytestmark = pytest.mark.redis


def _stop(*procs: subprocess.Popen[bytes] | None) -> None:
    for proc in procs:
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_a_build_longer_than_the_visibility_timeout_runs_once(
    env: dict[str, str],  # noqa: F811
    space_repo: tuple[str, str],
    tmp_path: Path,
) -> None:
    repo, sha = space_repo
    env["SPACEYARD_TEST_BUILD_SECONDS"] = str(VISIBILITY * 3)
    celery = make_celery(_settings(env))
    build_id = f"k-{uuid.uuid4().hex[:12]}"
    request = BuildRequest(
        build_id=build_id, space_id="test/long", revision=sha, repo=repo, log_key=f"build/{build_id}"
    )
    log = tmp_path / "worker.log"
    first, second = _worker(env, log), _worker(env, log)
    try:
        celery.send_task(BUILD_TASK, args=[request.model_dump()], task_id=build_id)
        built = BuildResult.model_validate(celery.AsyncResult(build_id).get(timeout=120))
        assert built.ok, built.reason
        markers = read_markers(env)
        assert [m[0] for m in markers] == ["start", "finish"], markers
        received = [line for line in log.read_text().splitlines() if build_id in line and "received" in line]
        assert len(received) == 1, received  # delivered once: never handed to the idle worker
    finally:
        _stop(first, second)


def test_a_killed_workers_build_is_delivered_again_within_the_timeout(
    env: dict[str, str],  # noqa: F811
    space_repo: tuple[str, str],
    tmp_path: Path,
) -> None:
    repo, sha = space_repo
    env["SPACEYARD_TEST_BUILD_SECONDS"] = "2"
    env.pop("SPACEYARD_CELERY_VISIBILITY_TIMEOUT")  # the default
    settings = _settings(env).model_copy(update={"celery_visibility_timeout": 30.0})
    celery = make_celery(settings)
    build_id = f"r-{uuid.uuid4().hex[:12]}"
    request = BuildRequest(build_id=build_id, space_id="test/re", revision=sha, repo=repo, log_key=f"build/{build_id}")
    log = tmp_path / "worker.log"
    first = _worker(env, log)
    second: subprocess.Popen[bytes] | None = None
    try:
        env["SPACEYARD_TEST_BUILD_SECONDS"] = "600"
        celery.send_task(BUILD_TASK, args=[request.model_dump()], task_id=build_id)
        _wait_for(lambda: read_markers(env), 60, "the first worker to start")
        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)
        killed = time.monotonic()
        env["SPACEYARD_TEST_BUILD_SECONDS"] = "2"
        second = _worker(env, log)
        built = BuildResult.model_validate(celery.AsyncResult(build_id).get(timeout=180))
        assert built.ok, built.reason
        waited = time.monotonic() - killed
        assert waited < 120, f"re-delivered after {waited:.0f}s"  # bound, not timing: the old default was 31 min
        assert [m[0] for m in read_markers(env)] == ["start", "start", "finish"]
    finally:
        _stop(first, second)
