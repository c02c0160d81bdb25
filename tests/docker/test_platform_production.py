"""The production settings, one environment variable each, through a real `spaceyard up`:
PostgreSQL (SPACEYARD_DATABASE_URL), Celery + Redis Streams (SPACEYARD_REDIS_URL), and Docker images and
containers (SPACEYARD_BUILD_ENGINE / SPACEYARD_RUNTIME). Every SDK sample builds, runs and answers
through the gateway; the variables and secrets of a Docker Space reach it, and sleep/wake reuses the
container."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis
from gradio_client import Client

from tests.conftest import free_port
from tests.support import Server, git, push, read_sse, start_server, working_copy

pytestmark = [pytest.mark.docker, pytest.mark.redis, pytest.mark.slow]
PG_ADMIN = os.environ.get("SPACEYARD_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("SPACEYARD_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture(scope="module")
def prod(base_image: str, shared_env_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    dbname = f"spaceyard_test_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{dbname}"')
    prefix = f"spaceyard-test-{uuid.uuid4().hex[:8]}:"
    extra = {
        "SPACEYARD_DATABASE_URL": PG_ADMIN.rsplit("/", 1)[0] + f"/{dbname}",
        "SPACEYARD_REDIS_URL": REDIS_URL,
        "SPACEYARD_REDIS_LOG_PREFIX": prefix + "log:",
        "SPACEYARD_CELERY_QUEUE": prefix + "builds",
        "SPACEYARD_BUILD_ENGINE": "docker",
        "SPACEYARD_RUNTIME": "docker",
        "SPACEYARD_DOCKER_BASE_IMAGE": base_image,
    }
    server = start_server(tmp_path_factory.mktemp("prod-data"), free_port(), shared_env_dir, extra)
    server.env["TEST_LOG_PREFIX"] = prefix
    server.env["TEST_DB"] = dbname
    yield server
    server.stop()
    r = redis.Redis.from_url(REDIS_URL)
    for key in r.scan_iter(match=prefix + "*"):
        r.delete(key)
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


def deploy(server: Server, tmp: Path, sample: str, space_id: str, sdk: str, **extra: object) -> str:
    server.create_space(space_id, sdk=sdk, **extra)
    wc = working_copy(tmp, sample)
    push(server, wc, space_id)
    sha = git(wc, "rev-parse", "HEAD").stdout.strip()
    server.wait_stage(space_id, {"RUNNING"}, sha=sha, timeout=420)
    return sha


def test_static_space(prod: Server, tmp_path: Path) -> None:
    deploy(prod, tmp_path, "hello-static", "admin/static", "static")
    page = prod.app_get("admin/static", "/")
    assert page.status_code == 200 and "Hello from a static Space" in page.text
    css = prod.app_get("admin/static", "/style.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert prod.runtime("admin/static")["hardware"] == {"current": None, "requested": None}


def test_docker_space_with_variables_and_secrets(prod: Server, tmp_path: Path) -> None:
    deploy(
        prod,
        tmp_path,
        "hello-docker",
        "admin/docker",
        "docker",
        variables=[{"key": "GREETING", "value": "Bonjour"}],
        secrets=[{"key": "BUILD_TOKEN", "value": "s3cr3t-value-xyz"}],
    )
    info = prod.app_get("admin/docker", "/api/info").json()
    assert info == {"greeting": "Bonjour", "uid": 1000, "space": "admin/docker"}
    # Images are content-addressed and secret values are not part of the key (a cache hit is likely on a
    # machine that built this sample before): a factory rebuild runs every step, with the secret mounted.
    before = prod.api("GET", "/api/spaces/admin/docker").json()["runtime"]
    assert prod.api("POST", "/api/spaces/admin/docker/restart", params={"factory": "true"}).status_code == 200
    prod.wait_stage("admin/docker", {"RUNNING"}, timeout=300)
    build_log = "\n".join(read_sse(f"{prod.url}/api/spaces/admin/docker/logs/build"))
    assert "build secret BUILD_TOKEN present" in build_log and "s3cr3t-value-xyz" not in build_log
    assert prod.app_get("admin/docker", "/api/info").json()["greeting"] == "Bonjour"
    assert before["stage"] == "RUNNING"


def test_streamlit_space(prod: Server, tmp_path: Path) -> None:
    deploy(prod, tmp_path, "hello-streamlit", "admin/streamlit", "streamlit")
    health = prod.app_get("admin/streamlit", "/_stcore/health")
    assert health.status_code == 200 and health.text == "ok"
    assert "streamlit" in prod.app_get("admin/streamlit", "/").text.lower()


def test_gradio_space_and_sleep_wake_reuses_the_container(prod: Server, tmp_path: Path) -> None:
    deploy(prod, tmp_path, "hello-gradio", "admin/gradio", "gradio")
    client = Client(f"{prod.url}/apps/admin/gradio/", verbose=False)
    assert client.predict("Docker", api_name="/greet") == "Hello Docker! (v1)"
    assert prod.api("POST", "/api/spaces/admin/gradio/sleeptime", json={"seconds": 1}).status_code == 200
    prod.wait_stage("admin/gradio", {"SLEEPING"}, timeout=60)
    assert prod.api("POST", "/api/spaces/admin/gradio/sleeptime", json={"seconds": 3600}).status_code == 200
    assert prod.app_get("admin/gradio", "/config").status_code == 200  # the visit wakes it
    assert prod.runtime("admin/gradio")["stage"] == "RUNNING"


def test_state_lives_in_postgres_and_logs_in_redis(prod: Server) -> None:
    with psycopg.connect(PG_ADMIN.rsplit("/", 1)[0] + f"/{prod.env['TEST_DB']}") as conn:
        names = {row[0] for row in conn.execute("SELECT owner || '/' || name FROM spaces")}
    assert {"admin/static", "admin/docker", "admin/streamlit", "admin/gradio"} <= names
    r = redis.Redis.from_url(REDIS_URL)
    assert any(True for _ in r.scan_iter(match=prod.env["TEST_LOG_PREFIX"] + "*"))
