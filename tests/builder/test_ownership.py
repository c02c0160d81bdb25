"""A root worker's exports belong to the data volume's owner, so the platform (uid 1000) can collect them.

Real git repository and pipeline (an engine double builds nothing); the test runs as root, as the
chart's worker does.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from spaceyard_builder import pipeline
from spaceyard_builder.api import Artifact, BuildEngine, BuildLog, BuildRequest
from spaceyard_builder.logs import FileLogStore
from spaceyard_builder.settings import BuilderSettings
from spaceyard_builder.spaceconfig import SpaceConfig

PLATFORM_UID = 1000


@pytest.fixture(autouse=True)
def as_root() -> None:
    """The worker's case: it runs as root, and so do the tests (``.ci/test``)."""
    if os.geteuid() != 0:
        pytest.fail("a root worker's exports: run the tests as root, as .ci/test does")


class WritesIntoTheExport(BuildEngine):
    """Writes a directory and a file into the export (as preload and LFS do), then fails or succeeds."""

    name = "writes"

    def __init__(self, settings: BuilderSettings, fail: bool) -> None:
        super().__init__(settings)
        self.fail = fail

    def build(self, request: BuildRequest, source: Path, config: SpaceConfig, log: BuildLog) -> Artifact:
        (source / "cache" / "deep").mkdir(parents=True, mode=0o700)
        (source / "cache" / "deep" / "weights.bin").write_bytes(b"x")
        os.symlink("/etc/shadow", source / "cache" / "link")  # changed itself, never followed
        if self.fail:
            from spaceyard_builder.errors import BuildFailed

            raise BuildFailed("failed on purpose")
        return Artifact(id="static:x")


@pytest.mark.parametrize("fail", [False, True])
def test_what_a_root_build_writes_to_the_volume_is_the_volume_owners(
    space_repo: tuple[str, str], tmp_path: Path, fail: bool
) -> None:
    repo, sha = space_repo
    data = tmp_path / "data"
    data.mkdir()
    os.chown(data, PLATFORM_UID, PLATFORM_UID)
    shadow = os.stat("/etc/shadow")
    settings = BuilderSettings(data_dir=data)
    request = BuildRequest(build_id="b1", space_id="t/own", revision=sha, repo=repo, log_key="build/b1")
    result = pipeline.run_build(request, settings, FileLogStore(tmp_path / "logs"), WritesIntoTheExport(settings, fail))
    assert result.ok is not fail, result.reason
    sources = data / "sources"
    paths = [sources, *sources.rglob("*")]
    assert any(p.name == "weights.bin" for p in paths) and len(paths) > 5
    wrong = [(str(p), os.lstat(p).st_uid) for p in paths if (os.lstat(p).st_uid, os.lstat(p).st_gid) != (1000, 1000)]
    assert wrong == []
    assert (os.stat("/etc/shadow").st_uid, os.stat("/etc/shadow").st_gid) == (shadow.st_uid, shadow.st_gid)
    # and the platform's uid can remove all of it, as its disk collector does
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.chdir(data)  # (pytest's temporary directories above it are root's 0700)
        os.setgroups([])
        os.setgid(PLATFORM_UID)
        os.setuid(PLATFORM_UID)
        try:
            shutil.rmtree("sources")
            os._exit(0)
        except OSError:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0 and not sources.exists()


def test_a_volume_owned_by_root_is_left_as_it_is(space_repo: tuple[str, str], tmp_path: Path) -> None:
    repo, sha = space_repo
    settings = BuilderSettings(data_dir=tmp_path / "data")
    request = BuildRequest(build_id="b2", space_id="t/own", revision=sha, repo=repo, log_key="build/b2")
    pipeline.run_build(request, settings, FileLogStore(tmp_path / "logs"), WritesIntoTheExport(settings, False))
    assert {os.lstat(p).st_uid for p in (tmp_path / "data" / "sources").rglob("*")} == {0}


def test_a_volume_of_root_with_an_fsgroup_gives_the_group_the_owners_rights(
    space_repo: tuple[str, str], tmp_path: Path
) -> None:
    repo, sha = space_repo
    data = tmp_path / "data"
    data.mkdir()
    os.chown(data, 0, PLATFORM_UID)  # what a volume with fsGroup 1000 looks like
    data.chmod(0o2775)
    settings = BuilderSettings(data_dir=data)
    request = BuildRequest(build_id="b3", space_id="t/own", revision=sha, repo=repo, log_key="build/b3")
    pipeline.run_build(request, settings, FileLogStore(tmp_path / "logs"), WritesIntoTheExport(settings, False))
    for p in [data / "sources", *(data / "sources").rglob("*")]:
        info = os.lstat(p)
        assert info.st_gid == PLATFORM_UID, p
        if not p.is_symlink():
            assert (info.st_mode & 0o070) >> 3 == (info.st_mode & 0o700) >> 6, (p, oct(info.st_mode))
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child: another uid in the volume's group, as the platform pod is
        os.chdir(data)
        os.setgroups([PLATFORM_UID])
        os.setgid(4242)
        os.setuid(4242)
        try:
            shutil.rmtree("sources")
            os._exit(0)
        except OSError:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0 and not (data / "sources").exists()
