"""One harness per runtime for the Runtime contract suite (``test_contract.py``).

``harness`` is parametrised over every backend, each running the same stdlib-only app (``app/app.py``):

* ``local-walls``: :class:`LocalRuntime` inside its bubblewrap sandbox (needs root, as ``.ci/test`` runs);
* ``local-none``: :class:`LocalRuntime` without walls;
* ``docker`` (marker ``docker``): :class:`DockerRuntime` on this machine's engine, the app in an image
  built from the base image;
* ``kubernetes`` (marker ``cluster``): :class:`KubernetesRuntime` on the dev cluster of
  ``helm/dev-cluster.sh``, in the namespace :data:`NAMESPACE`, the same image
  pushed to the cluster's registry, reached at the Service's ClusterIP.

The local runtimes get a bare virtual environment as the Space's artifact (no Gradio: the app needs only
the standard library) and ``fast_wake`` off, so every start is a cold one. Space ids start with
``h13contract/`` and are unique per test. Whatever a test started is stopped afterwards (``stop`` is
idempotent; on Kubernetes it deletes the Space's objects), then the runtime is closed.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from spaceyard_builder.baseimage import DEFAULT_TAG, ensure_base_image
from spaceyard_runtime.api import AppHandle, AppSpec, LogSink, Runtime
from spaceyard_runtime.settings import RuntimeSettings

APP_DIR = Path(__file__).resolve().parent / "app"
NAMESPACE = "h13contract-spaces"
IMAGE_NAME = "spaceyard-test/contract"


@dataclass
class Harness:
    """A runtime under test, how to make specs for it and how to make its successor after a restart."""

    name: str
    runtime: Runtime
    make_runtime: Callable[[], Runtime]
    """A new instance on the same settings: the platform process after a restart."""
    artifact: str
    app_dir: Path | None
    missing_artifact: str
    """An artifact of the right kind that does not exist (an environment directory, an image tag)."""
    handles: list[AppHandle] = field(default_factory=list)
    runtimes: list[Runtime] = field(default_factory=list)

    def spec(self, mode: str = "ok", env: dict[str, str] | None = None) -> AppSpec:
        """A spec of a new Space (``h13contract/<mode>-<random>``) running the contract app in ``mode``."""
        space = f"h13contract/{mode}-{uuid.uuid4().hex[:6]}"
        return AppSpec(
            space_id=space,
            revision=uuid.uuid4().hex + "0" * 8,
            sdk="gradio",
            artifact=self.artifact,
            app_dir=self.app_dir,
            env={"CONTRACT_MODE": mode, **(env or {})},
        )

    async def start(self, spec: AppSpec, log: LogSink, runtime: Runtime | None = None) -> AppHandle:
        handle = await (runtime or self.runtime).start(spec, log)
        self.handles.append(handle)
        return handle

    def successor(self) -> Runtime:
        runtime = self.make_runtime()
        self.runtimes.append(runtime)
        return runtime


@pytest.fixture(scope="session")
def local_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bare virtual environment of this interpreter (what the local engine builds, minus Gradio)."""
    env = tmp_path_factory.mktemp("contract-env") / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    return env


@pytest.fixture(scope="session")
def contract_image() -> str:
    """The contract app as an image built from the base image, in this machine's Docker engine."""
    docker = shutil.which("docker")
    if docker is None:
        pytest.fail("the docker and kubernetes contract runs build their image with the Docker engine")
    ensure_base_image(DEFAULT_TAG)
    source = (APP_DIR / "app.py").read_text()
    ref = f"{IMAGE_NAME}:{hashlib.sha256((DEFAULT_TAG + source).encode()).hexdigest()[:12]}"
    dockerfile = (
        f"FROM {DEFAULT_TAG}\nWORKDIR /home/user/app\nCOPY app.py /home/user/app/app.py\n"
        'USER 1000\nCMD ["python3", "app.py"]\n'
    )
    subprocess.run([docker, "build", "-q", "-t", ref, "-f", "-", str(APP_DIR)], input=dockerfile, text=True,
                   check=True, capture_output=True)  # fmt: skip
    return ref


@pytest.fixture(scope="session")
def contract_cluster(contract_image: str) -> tuple[Any, str]:
    """The dev cluster (started if it is not up) and the contract image pushed to its registry."""
    from tests.kubernetes.cluster import Cluster, start_dev_cluster

    env = start_dev_cluster()
    registry = env["SPACEYARD_DEV_REGISTRY"]
    ref = f"{registry}/{contract_image}"
    for cmd in (["docker", "tag", contract_image, ref], ["docker", "push", "-q", ref]):
        subprocess.run(cmd, check=True, capture_output=True, timeout=600)
    cluster = Cluster(Path(env["KUBECONFIG"]), registry, {})
    cluster.ensure_namespace(NAMESPACE)
    return cluster, ref


def _local(request: pytest.FixtureRequest, tmp_path: Path, name: str, sandbox: str) -> Harness:
    from spaceyard_runtime.local import LocalRuntime

    settings = RuntimeSettings(runtime="local", local_sandbox=sandbox, data_dir=tmp_path / "data", fast_wake=False)
    artifact: Path = request.getfixturevalue("local_artifact")
    return Harness(
        name,
        LocalRuntime(settings),
        lambda: LocalRuntime(settings),
        str(artifact),
        APP_DIR,
        str(tmp_path / "no-such-env"),
    )


def _docker(request: pytest.FixtureRequest, tmp_path: Path) -> Harness:
    from spaceyard_runtime.docker import DockerRuntime

    image: str = request.getfixturevalue("contract_image")
    settings = RuntimeSettings(runtime="docker", data_dir=tmp_path / "data")
    missing = f"{IMAGE_NAME}:missing"
    return Harness("docker", DockerRuntime(settings), lambda: DockerRuntime(settings), image, None, missing)


def _kubernetes(request: pytest.FixtureRequest) -> Harness:
    from spaceyard_runtime.kubernetes.runtime import KubernetesRuntime

    cluster, image = request.getfixturevalue("contract_cluster")
    settings = RuntimeSettings(runtime="kubernetes", kubernetes_namespace=NAMESPACE, kubernetes_endpoint="cluster-ip")

    def make() -> Runtime:
        return KubernetesRuntime(settings, api_client=cluster.client())

    missing = f"{cluster.registry}/{IMAGE_NAME}:missing"
    return Harness("kubernetes", make(), make, image, None, missing)


@pytest.fixture(
    params=[
        "local-walls",
        "local-none",
        pytest.param("docker", marks=pytest.mark.docker),
        pytest.param("kubernetes", marks=pytest.mark.cluster),
    ]
)
async def harness(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Harness]:
    kind = str(request.param)
    if kind == "local-walls":
        h = _local(request, tmp_path, kind, "bwrap")
    elif kind == "local-none":
        h = _local(request, tmp_path, kind, "none")
    elif kind == "docker":
        h = _docker(request, tmp_path)
    else:
        h = _kubernetes(request)
    yield h
    for runtime in [*h.runtimes, h.runtime]:
        for handle in h.handles:
            await runtime.stop(handle, grace=1.0)
        await runtime.aclose()
