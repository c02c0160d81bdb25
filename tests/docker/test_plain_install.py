"""Dependencies are complete: Spaceyard installed with a plain `pip install .` (no test extras) into a fresh
virtual environment runs the production settings end to end: PostgreSQL, Redis (Celery queue, Redis
Streams logs, the embedded worker on Redis), Docker images and containers. A missing declaration (kombu's
Redis transport importing `packaging`, for one) fails here, where the test extras cannot hide it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis

from tests.conftest import ROOT, free_port
from tests.support import Server, push, start_server, working_copy

pytestmark = [pytest.mark.docker, pytest.mark.redis, pytest.mark.slow]
PG_ADMIN = os.environ.get("SPACEYARD_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("SPACEYARD_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture(scope="module")
def plain_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    venv = tmp_path_factory.mktemp("plain") / "venv"
    uv = shutil.which("uv") or str(Path(sys.executable).parent / "uv")
    subprocess.run([uv, "venv", "-q", "-p", "3.11", str(venv)], check=True)
    # exactly `pip install .` from the repository root (uv's pip, for its cache, compiling bytecode as pip
    # does): runtime dependencies only
    python = str(venv / "bin" / "python")
    subprocess.run([uv, "pip", "install", "-q", "--compile-bytecode", "-p", python, str(ROOT)], check=True)
    listed = subprocess.run([uv, "pip", "list", "-p", str(venv / "bin" / "python")], capture_output=True, text=True)
    assert "pytest" not in listed.stdout and "huggingface-hub" not in listed.stdout  # no test extras
    return venv


@pytest.fixture
def production(plain_venv: Path, base_image: str, tmp_path: Path) -> Iterator[Server]:
    dbname = f"spaceyard_plain_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{dbname}"')
    prefix = f"spaceyard-plain-{uuid.uuid4().hex[:8]}:"
    extra = {
        "SPACEYARD_DATABASE_URL": PG_ADMIN.rsplit("/", 1)[0] + f"/{dbname}",
        "SPACEYARD_REDIS_URL": REDIS_URL,
        "SPACEYARD_REDIS_LOG_PREFIX": prefix + "log:",
        "SPACEYARD_CELERY_QUEUE": prefix + "builds",
        "SPACEYARD_BUILD_ENGINE": "docker",
        "SPACEYARD_RUNTIME": "docker",
        "SPACEYARD_DOCKER_BASE_IMAGE": base_image,
    }
    server = start_server(tmp_path / "data", free_port(), tmp_path / "envs", extra, venv=plain_venv)
    try:
        yield server
    finally:
        server.stop()
        r = redis.Redis.from_url(REDIS_URL)
        for key in r.scan_iter(match=prefix + "*"):
            r.delete(key)
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


def test_plain_install_runs_postgres_redis_and_docker_end_to_end(production: Server, tmp_path: Path) -> None:
    production.create_space("admin/plain", sdk="docker", variables=[{"key": "GREETING", "value": "Hej"}])
    wc = working_copy(tmp_path, "hello-docker")
    push(production, wc, "admin/plain")
    sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=wc, capture_output=True, text=True).stdout.strip()
    production.wait_stage("admin/plain", {"RUNNING"}, sha=sha, timeout=420)
    info = production.app_get("admin/plain", "/api/info").json()
    assert info["greeting"] == "Hej" and info["space"] == "admin/plain"
    assert "Traceback" not in (production.data_dir / "worker.log").read_text()
