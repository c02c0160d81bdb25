"""Docker fixtures: a running Docker engine, the local base image, and each sample built once.

* ``docker_client``: a client of a running dockerd. If none answers, one is started the way this
  machine needs it (``dockerd --iptables=false --ip6tables=false --bridge=none``) and left running
  for later runs; its output goes to ``<test cache>/dockerd.log``.
* ``base_image``: ``spaceyard/python:3.11-bookworm-r2`` (or ``SPACEYARD_TEST_BASE_IMAGE``), built with
  :func:`spaceyard_builder.baseimage.ensure_base_image` only if it is missing (about a minute; the
  root filesystem tarball is cached in ``~/.cache/spaceyard/baseimage``).
* ``build_sample``: builds a sample Space through the real pipeline (git commit -> export ->
  DockerEngine) once per session and returns its :class:`BuildResult`.
* ``runtime``: one :class:`DockerRuntime` for the session; every container a test starts is
  removed at the end.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import docker
import pytest

from spaceyard_builder.api import BuildRequest, BuildResult
from spaceyard_builder.baseimage import DEFAULT_TAG, ensure_base_image
from spaceyard_builder.engines.docker import DockerEngine
from spaceyard_builder.logs import FileLogStore
from spaceyard_builder.pipeline import run_build
from spaceyard_builder.settings import BuilderSettings
from spaceyard_runtime.api import AppHandle, AppSpec, Flavor
from spaceyard_runtime.docker import DockerRuntime
from spaceyard_runtime.settings import RuntimeSettings

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "sample_spaces"
BASE_IMAGE = os.environ.get("SPACEYARD_TEST_BASE_IMAGE", DEFAULT_TAG)
DOCKERD_ARGS = ["dockerd", "--iptables=false", "--ip6tables=false", "--bridge=none"]


def _ping() -> bool:
    try:
        client = docker.from_env(timeout=5)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


@pytest.fixture(scope="session")
def docker_client(test_cache: Path) -> Iterator[docker.DockerClient]:
    if not _ping():
        if shutil.which("dockerd") is None:
            pytest.fail("no Docker engine answers and dockerd is not installed (apt-get install docker.io)")
        log = (test_cache / "dockerd.log").open("ab")
        subprocess.Popen(DOCKERD_ARGS, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while not _ping():
            if time.monotonic() > deadline:
                pytest.fail(f"dockerd did not come up; see {test_cache / 'dockerd.log'}")
            time.sleep(0.2)
    client = docker.from_env(timeout=120)
    yield client
    client.close()


@pytest.fixture(scope="session")
def base_image(docker_client: docker.DockerClient) -> str:
    ensure_base_image(BASE_IMAGE)
    return BASE_IMAGE


@pytest.fixture(scope="session")
def builder_settings(base_image: str, tmp_path_factory: pytest.TempPathFactory) -> BuilderSettings:
    return BuilderSettings(
        data_dir=tmp_path_factory.mktemp("docker-builder"), build_engine="docker", docker_base_image=base_image
    )


@pytest.fixture(scope="session")
def engine(builder_settings: BuilderSettings) -> DockerEngine:
    return DockerEngine(builder_settings)


def git_commit(work: Path, bare: Path | None = None, message: str = "commit") -> tuple[str, str]:
    """Commit everything in ``work`` and push it to a bare repository; returns (bare path, sha)."""

    def git(*args: str, cwd: Path) -> str:
        return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()

    if not (work / ".git").exists():
        git("init", "-q", "-b", "main", cwd=work)
    git("add", "-A", ".", cwd=work)
    git("-c", "user.email=t@example.com", "-c", "user.name=test", "commit", "-q", "--allow-empty", "-m", message,
        cwd=work)  # fmt: skip
    bare = bare or work.parent / f"{work.name}.git"
    if not bare.exists():
        git("init", "-q", "--bare", str(bare), cwd=work.parent)
    git("push", "-q", "--force", str(bare), "HEAD:refs/heads/main", cwd=work)
    return str(bare), git("rev-parse", "HEAD", cwd=work)


BuildFn = Callable[..., tuple[BuildResult, list[str]]]


@pytest.fixture(scope="session")
def build(builder_settings: BuilderSettings, engine: DockerEngine) -> BuildFn:
    """``build(repo, sha, space_id, variables=..., secrets=...)`` -> (BuildResult, build log lines)."""
    store = FileLogStore(builder_settings.data_dir / "logs")
    counter = iter(range(1_000_000))

    def run(repo: str, sha: str, space_id: str, **kw: object) -> tuple[BuildResult, list[str]]:
        build_id = f"test-{next(counter)}-{sha[:7]}"
        request = BuildRequest(
            build_id=build_id, space_id=space_id, revision=sha, repo=repo, log_key=f"build/{build_id}", **kw
        )  # type: ignore[arg-type]
        result = run_build(request, builder_settings, store, engine=engine)
        return result, [e.data for e in store.read(request.log_key)]

    return run


@pytest.fixture(scope="session")
def sample_repo(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], tuple[str, str, Path]]:
    """A git repository holding a copy of a sample Space: (bare repo, sha, working copy)."""
    made: dict[str, tuple[str, str, Path]] = {}

    def make(name: str) -> tuple[str, str, Path]:
        if name not in made:
            work = tmp_path_factory.mktemp("repos") / name
            shutil.copytree(SAMPLES / name, work)
            repo, sha = git_commit(work)
            made[name] = (repo, sha, work)
        return made[name]

    return make


def _built(build: BuildFn, sample_repo: Callable[[str], tuple[str, str, Path]], name: str, **kw: object) -> BuildResult:
    repo, sha, _ = sample_repo(name)
    result, log = build(repo, sha, f"samples/{name}", **kw)
    assert result.ok, f"{name} failed to build: {result.stage} {result.reason}\n" + "\n".join(log[-30:])
    return result


@pytest.fixture(scope="session")
def gradio_build(build: BuildFn, sample_repo: Callable[[str], tuple[str, str, Path]]) -> BuildResult:
    return _built(build, sample_repo, "hello-gradio")


@pytest.fixture(scope="session")
def streamlit_build(build: BuildFn, sample_repo: Callable[[str], tuple[str, str, Path]]) -> BuildResult:
    return _built(build, sample_repo, "hello-streamlit")


@pytest.fixture(scope="session")
def docker_build(build: BuildFn, sample_repo: Callable[[str], tuple[str, str, Path]]) -> BuildResult:
    return _built(build, sample_repo, "hello-docker", variables={"GREETING": "Howdy"})


@pytest.fixture(scope="session")
def static_build(build: BuildFn, sample_repo: Callable[[str], tuple[str, str, Path]]) -> BuildResult:
    return _built(build, sample_repo, "hello-static")


@pytest.fixture(scope="session")
def runtime_settings(tmp_path_factory: pytest.TempPathFactory) -> RuntimeSettings:
    return RuntimeSettings(runtime="docker", data_dir=tmp_path_factory.mktemp("docker-runtime"), stop_grace=2.0)


@pytest.fixture(scope="session")
async def runtime(
    runtime_settings: RuntimeSettings, docker_client: docker.DockerClient
) -> AsyncIterator[DockerRuntime]:
    rt = DockerRuntime(runtime_settings)
    rt.started = []  # type: ignore[attr-defined]
    yield rt
    for handle in rt.started:  # type: ignore[attr-defined]
        await rt.remove(handle)
    await rt.aclose()


def spec_for(result: BuildResult, space_id: str | None = None, **kw: object) -> AppSpec:
    fields: dict[str, object] = {
        "space_id": space_id or result.space_id,
        "revision": result.revision,
        "sdk": result.sdk,
        "artifact": result.artifact,
        "app_file": result.app_file,
        "app_port": result.app_port,
        "flavor": Flavor(name="cpu-basic", cpu=1.0, memory_mib=1024),
    }
    fields.update(kw)
    return AppSpec(**fields)  # type: ignore[arg-type]


async def start_app(runtime: DockerRuntime, spec: AppSpec, lines: list[str] | None = None) -> AppHandle:
    handle = await runtime.start(spec, (lines if lines is not None else []).append)
    runtime.started.append(handle)  # type: ignore[attr-defined]
    return handle


def routes(client: docker.DockerClient, container_id: str) -> list[str]:
    """The routes inside a running container's network namespace (``ip route``, from the host)."""
    pid = client.api.inspect_container(container_id)["State"]["Pid"]
    out = subprocess.run(["nsenter", "-t", str(pid), "-n", "ip", "route"], capture_output=True, text=True, check=True)
    return out.stdout.splitlines()


async def eventually_no_default_route(client: docker.DockerClient, container_id: str) -> bool:
    """Whether the container's default route is gone within about 5 s."""
    for _ in range(100):
        if not any(r.startswith("default") for r in routes(client, container_id)):
            return True
        await asyncio.sleep(0.05)
    return False
