"""The builder's error tree is honoured: a transient error is retried (bounded, backing off), a
configuration error and bad input are not. Real git repository, engine doubles, no sleeping."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from spaceyard_builder import pipeline
from spaceyard_builder.api import Artifact, BuildEngine, BuildLog, BuildRequest
from spaceyard_builder.errors import BuilderError, EngineMisconfigured, TransientBuildError
from spaceyard_builder.logs import FileLogStore
from spaceyard_builder.settings import BuilderSettings
from spaceyard_builder.spaceconfig import SpaceConfig


class Flaky(BuildEngine):
    """Raises the given errors on successive builds, then succeeds."""

    name = "flaky"

    def __init__(self, settings: BuilderSettings, errors: list[BuilderError]) -> None:
        super().__init__(settings)
        self.errors = errors
        self.calls = 0

    def build(self, request: BuildRequest, source: Path, config: SpaceConfig, log: BuildLog) -> Artifact:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return Artifact(id="env-1")


@pytest.fixture
def delays(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    waited: list[float] = []
    monkeypatch.setattr(time, "sleep", waited.append)  # the backoff (pipeline.time.sleep), recorded, not slept
    return waited


def run(space_repo: tuple[str, str], tmp_path: Path, engine: Flaky, revision: str | None = None) -> tuple[bool, str]:
    repo, sha = space_repo
    settings = engine.settings
    request = BuildRequest(build_id="b1", space_id="t/flaky", revision=revision or sha, repo=repo, log_key="build/b1")
    store = FileLogStore(tmp_path / "logs")
    result = pipeline.run_build(request, settings, store, engine)
    log = "\n".join(e.data for e in store.tail("build/b1", 50))
    return result.ok, f"{result.stage}: {result.reason}\n{log}"


def test_a_transient_error_is_retried_with_backoff(
    space_repo: tuple[str, str], tmp_path: Path, delays: list[float]
) -> None:
    settings = BuilderSettings(data_dir=tmp_path / "data", transient_retries=2)
    engine = Flaky(settings, [TransientBuildError("engine unreachable"), TransientBuildError("engine unreachable")])
    ok, text = run(space_repo, tmp_path, engine)
    assert ok, text
    assert engine.calls == 3 and delays == [1.0, 2.0]
    assert "engine unreachable; retrying in 1s" in text


def test_retries_are_bounded(space_repo: tuple[str, str], tmp_path: Path, delays: list[float]) -> None:
    settings = BuilderSettings(data_dir=tmp_path / "data", transient_retries=1)
    engine = Flaky(settings, [TransientBuildError("engine unreachable")] * 5)
    ok, text = run(space_repo, tmp_path, engine)
    assert not ok and engine.calls == 2 and delays == [1.0]
    assert "BUILD_ERROR: engine unreachable (after 2 attempts)" in text


def test_a_configuration_error_is_not_retried(space_repo: tuple[str, str], tmp_path: Path, delays: list[float]) -> None:
    settings = BuilderSettings(data_dir=tmp_path / "data", transient_retries=3)
    engine = Flaky(settings, [EngineMisconfigured("no docker CLI able to run BuildKit builds")])
    ok, text = run(space_repo, tmp_path, engine)
    assert not ok and engine.calls == 1 and delays == []
    assert text.startswith("BUILD_ERROR: no docker CLI able to run BuildKit builds")


def test_a_bad_revision_is_not_retried(space_repo: tuple[str, str], tmp_path: Path, delays: list[float]) -> None:
    engine = Flaky(BuilderSettings(data_dir=tmp_path / "data", transient_retries=3), [])
    ok, text = run(space_repo, tmp_path, engine, revision="not-a-sha")
    assert not ok and engine.calls == 0 and delays == []
    assert text.startswith("BUILD_ERROR: not a commit id")
