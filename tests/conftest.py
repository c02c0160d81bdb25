"""Shared fixtures. Expensive things are built once per run and shared:

* ``test_cache``: ``.data/test-cache`` (or ``SPACEYARD_TEST_CACHE``), holding content-addressed
  environments every test and server process reuses (``SPACEYARD_ENV_DIR`` points there);
* ``gradio_env``: the Python environment of a plain Gradio Space, built by the real local engine.

Subfolders add their own fixtures in their own ``conftest.py``.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from spaceyard_builder.api import BuildRequest
from spaceyard_builder.engines.local import LocalEngine
from spaceyard_builder.settings import BuilderSettings
from spaceyard_builder.spaceconfig import SpaceConfig
from tests.support import Server, start_server

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_spaces"
GRADIO_VERSION = "6.31.0"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def test_cache() -> Path:
    path = Path(os.environ.get("SPACEYARD_TEST_CACHE", ROOT / ".data" / "test-cache")).resolve()
    (path / "envs").mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def shared_env_dir(test_cache: Path) -> Path:
    return test_cache / "envs"


@pytest.fixture(scope="session")
def gradio_env(shared_env_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A built environment with gradio installed (what every plain Gradio Space gets)."""
    settings = BuilderSettings(data_dir=tmp_path_factory.mktemp("builder"), env_dir=shared_env_dir)
    engine = LocalEngine(settings)
    source = tmp_path_factory.mktemp("gradio-source")
    config = SpaceConfig(sdk="gradio", sdk_version=GRADIO_VERSION)
    request = BuildRequest(build_id="fixture", space_id="test/gradio", revision="0" * 40, repo="", log_key="x")
    artifact = engine.build(request, source, config, lambda line: None)
    return Path(artifact.id)


@pytest.fixture(scope="session")
def server(test_cache: Path, shared_env_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One real ``spaceyard up`` process for the whole run (embedded worker, SQLite, local runtime)."""
    srv = start_server(tmp_path_factory.mktemp("server-data"), free_port(), shared_env_dir)
    yield srv
    srv.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
