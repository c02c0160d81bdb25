"""Environment identity from the resolved dependency set (real uv against the package index)."""

from __future__ import annotations

from pathlib import Path

import pytest

from spaceyard_builder.api import BuildRequest
from spaceyard_builder.engines.local import LocalEngine
from spaceyard_builder.engines.resolution import normalize
from spaceyard_builder.errors import BuildFailed
from spaceyard_builder.settings import BuilderSettings
from spaceyard_builder.spaceconfig import SpaceConfig
from tests.conftest import GRADIO_VERSION

CONFIG = SpaceConfig(sdk="gradio", sdk_version=GRADIO_VERSION)
PY = "3.11.7"


@pytest.fixture
def engine(tmp_path: Path) -> LocalEngine:
    return LocalEngine(BuilderSettings(data_dir=tmp_path, env_dir=tmp_path / "envs"))


def env_id(engine: LocalEngine, tmp_path: Path, requirements: str, log: list[str] | None = None) -> str:
    source = tmp_path / f"src{abs(hash(requirements))}"
    source.mkdir(exist_ok=True)
    (source / "requirements.txt").write_text(requirements)
    return engine.resolution(CONFIG, source, PY, (log if log is not None else []).append).env_id


def test_normalize_strips_comments_whitespace_case_and_order() -> None:
    assert normalize("NumPy  # c\n\n  pandas >= 2\nnumpy\n# only a comment\n") == ["numpy", "pandas>=2"]


def test_spellings_of_one_set_share_an_id(engine: LocalEngine, tmp_path: Path) -> None:
    ids = {env_id(engine, tmp_path, text) for text in ("numpy", "numpy\n", "NumPy  # c")}
    assert len(ids) == 1


def test_requirements_the_sdk_already_implies_equal_no_requirements(engine: LocalEngine, tmp_path: Path) -> None:
    base = env_id(engine, tmp_path, "")
    assert env_id(engine, tmp_path, "numpy\ntqdm\n") == base
    assert env_id(engine, tmp_path, "gradio\n") == base


def test_different_versions_get_different_ids(engine: LocalEngine, tmp_path: Path) -> None:
    assert env_id(engine, tmp_path, "numpy==1.26.4") != env_id(engine, tmp_path, "numpy==2.2.6")
    assert env_id(engine, tmp_path, "numpy==1.26.4") != env_id(engine, tmp_path, "")


def test_resolution_is_stored_and_reused_without_uv(engine: LocalEngine, tmp_path: Path) -> None:
    first = env_id(engine, tmp_path, "numpy==1.26.4")
    stored = list((tmp_path / "envs" / ".resolutions").glob("*.lock"))
    assert len(stored) == 1 and "numpy==1.26.4" in stored[0].read_text()
    engine.settings.uv_cache_dir = tmp_path / "unused-uv-cache"  # a uv call would create it
    assert env_id(engine, tmp_path, "# pinned\nnumpy == 1.26.4\n") == first
    assert not (tmp_path / "unused-uv-cache").exists()


def test_local_paths_and_unresolvable_sets_fall_back_to_the_raw_text(engine: LocalEngine, tmp_path: Path) -> None:
    log: list[str] = []
    a = env_id(engine, tmp_path, "-e ./pkg\n", log)
    b = env_id(engine, tmp_path, "-e ./pkg\n\n", log)
    assert a != b  # raw text: no normalization claimed for local files
    assert any("local paths or pip options" in line for line in log)
    log.clear()
    env_id(engine, tmp_path, "gradio==4.0.0\n", log)  # conflicts with the sdk_version pin
    assert any("Could not resolve" in line for line in log)


def test_two_spaces_with_equivalent_requirements_share_one_environment(
    gradio_env: Path, shared_env_dir: Path, tmp_path: Path
) -> None:
    engine = LocalEngine(BuilderSettings(data_dir=tmp_path, env_dir=shared_env_dir))
    artifacts = []
    for i, requirements in enumerate(("numpy\n", "NumPy  # arrays\ntqdm\n")):
        source = tmp_path / f"space{i}"
        source.mkdir()
        (source / "app.py").write_text("import numpy\n")
        (source / "requirements.txt").write_text(requirements)
        request = BuildRequest(build_id=f"b{i}", space_id=f"u/s{i}", revision="0" * 40, repo="", log_key="x")
        log: list[str] = []
        artifacts.append(engine.build(request, source, CONFIG, log.append))
        assert any("Reusing environment" in line for line in log)
    assert {a.id for a in artifacts} == {str(gradio_env)}
    assert all(a.cache_hit for a in artifacts)


def test_pip_options_and_urls_in_requirements_are_never_passed_to_the_resolver(
    engine: LocalEngine, tmp_path: Path
) -> None:
    for hostile in (
        "--index-url http://127.0.0.1:9/simple\nnumpy\n",
        "numpy @ file:///etc/passwd\n",
        "-r /etc/passwd\n",
    ):
        log: list[str] = []
        env_id(engine, tmp_path, hostile, log)
        assert any("local paths or pip options" in line for line in log), hostile
    assert not (tmp_path / "envs" / ".resolutions").exists()  # nothing resolved, nothing stored


def test_an_unresolvable_set_still_fails_the_build_naming_the_file(engine: LocalEngine, tmp_path: Path) -> None:
    source = tmp_path / "broken"
    source.mkdir()
    (source / "requirements.txt").write_text("spaceyard-no-such-package-4242==1.0\n")
    request = BuildRequest(build_id="b", space_id="u/s", revision="0" * 40, repo="", log_key="x")
    log: list[str] = []
    with pytest.raises(BuildFailed, match="requirements.txt"):
        engine.build(request, source, CONFIG, log.append)
    assert any("Could not resolve" in line for line in log)
