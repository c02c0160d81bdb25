"""Schemathesis against the platform's own OpenAPI spec (``/api/openapi.json``), on a real server: no
generated request, valid or not, gets a 5xx. Bounded: :data:`EXAMPLES` per operation (34 operations),
half of them aimed at a real Space (``admin/target``, with a commit) so the handlers run past the lookup."""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from tests.conftest import free_port
from tests.support import Server, start_server

EXAMPLES = 12
TARGET = {"owner": "admin", "name": "target", "repo": "target.git"}
STREAMING = ("/logs/",)  # SSE: aimed at a real Space they would follow the live log


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory, shared_env_dir: Path) -> Iterator[Server]:
    server = start_server(tmp_path_factory.mktemp("openapi-fuzz"), free_port(), shared_env_dir)
    server.create_space("admin/target", sdk="static")
    lines = '{"key":"header","value":{"summary":"x"}}\n{"key":"file","value":{"path":"index.html","content":"aGk="}}'
    r = server.api(
        "POST", "/api/spaces/admin/target/commit/main", content=lines, headers={"content-type": "application/x-ndjson"}
    )
    assert r.status_code == 200, r.text
    yield server
    server.stop()


@pytest.fixture(scope="module")
def api_schema(fuzz_server: Server) -> Any:
    return schemathesis.openapi.from_url(f"{fuzz_server.url}/api/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_no_input_makes_a_5xx(case: Any, fuzz_server: Server) -> None:
    params = case.path_parameters or {}
    aimed = zlib.crc32(repr(sorted(params.items())).encode()) % 2 == 0
    if aimed and not any(s in case.path for s in STREAMING):
        for key, value in TARGET.items():
            if key in params:
                params[key] = value
    case.call_and_validate(
        base_url=fuzz_server.url,
        headers={"Authorization": f"Bearer {fuzz_server.token}"},
        checks=[not_a_server_error],
        timeout=30,
    )
