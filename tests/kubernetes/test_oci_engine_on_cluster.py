"""Builds for the cluster with the oci engine: no Docker engine, no daemon, no privileges.

A real ``spaceyard up`` with ``SPACEYARD_BUILD_ENGINE=oci`` and ``SPACEYARD_RUNTIME=kubernetes`` on the dev
cluster: a push of ``sample_spaces/hello-gradio`` is assembled into an image (uv inside the base image's
filesystem, in the build walls; layers written and pushed over the OCI distribution API to the cluster's
registry), run as a pod by ``KubernetesRuntime`` and served through the platform's gateway. A no-change
rebuild sends nothing to the registry (its own access log says so); a failing requirement is a
``BUILD_ERROR`` with the installer's lines; a hostile ``setup.py`` finds nothing of the platform.

The base image (``spaceyard/python:3.11-bookworm-r2``) gets into the registry the way an operator's
would: ``docker push`` by the test harness (the engine itself never talks to Docker).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from gradio_client import Client

from spaceyard_builder.baseimage import DEFAULT_TAG
from tests.conftest import free_port
from tests.kubernetes.caller import Caller
from tests.kubernetes.cluster import Cluster, eventually, push_base_image
from tests.support import ADMIN_TOKEN, Server, git, push, read_sse, start_server, working_copy

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.timeout(1500)]
NAMESPACE = "h14build-spaces"
REPOSITORY = "h14build/space"
REGISTRY_LOG = Path("/var/lib/spaceyard-k8s/logs/registry.log")
HOSTILE = Path(__file__).resolve().parents[1] / "security" / "spaces" / "hostile-build"


@pytest.fixture(scope="module")
def base_in_registry(dev_cluster: Cluster) -> str:
    return push_base_image(dev_cluster.registry, DEFAULT_TAG)


@pytest.fixture(scope="module")
def platform(
    dev_cluster: Cluster,
    base_in_registry: str,
    shared_env_dir: Path,
    test_cache: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Server]:
    dev_cluster.ensure_namespace(NAMESPACE)
    dev_cluster.reset(NAMESPACE)
    extra = {
        "SPACEYARD_BUILD_ENGINE": "oci",
        "SPACEYARD_REGISTRY": dev_cluster.registry,
        "SPACEYARD_DOCKER_BASE_IMAGE": base_in_registry,
        "SPACEYARD_DOCKER_IMAGE_REPOSITORY": REPOSITORY,
        # the unpacked base image and the uv cache outlive the session (the layer index with them)
        "SPACEYARD_OCI_CACHE_DIR": str(test_cache / "oci"),
        "SPACEYARD_RUNTIME": "kubernetes",
        "SPACEYARD_KUBERNETES_KUBECONFIG": str(dev_cluster.kubeconfig),
        "SPACEYARD_KUBERNETES_NAMESPACE": NAMESPACE,
        "SPACEYARD_KUBERNETES_ENDPOINT": "cluster-ip",
        # every sleeper over the light-sleep budget: deep sleep at once, so the wake below is from zero
        "SPACEYARD_LIGHT_SLEEP_MEMORY_MIB": "1",
    }
    server = start_server(tmp_path_factory.mktemp("h14build-platform"), free_port(), shared_env_dir, extra)
    yield server
    server.stop()
    dev_cluster.reset(NAMESPACE)


def _build_log(server: Server, space_id: str) -> str:
    return "\n".join(read_sse(f"{server.url}/api/spaces/{space_id}/logs/build"))


def _registry_writes(since: int) -> list[str]:
    """Requests that would send something to our repository, from the registry's own access log."""
    text = REGISTRY_LOG.read_bytes()[since:].decode(errors="replace")
    return re.findall(rf'"(?:POST|PUT|PATCH) /v2/{REPOSITORY}/[^"]*"', text)


def test_a_gradio_space_built_without_docker_runs_in_a_pod_and_a_no_change_rebuild_uploads_nothing(
    platform: Server, dev_cluster: Cluster, tmp_path: Path
) -> None:
    space = "admin/h14build-hello"
    platform.create_space(space, sdk="gradio")
    wc = working_copy(tmp_path, "hello-gradio")
    push(platform, wc, space)
    sha = git(wc, "rev-parse", "HEAD").stdout.strip()
    platform.wait_stage(space, {"RUNNING"}, sha=sha, timeout=900)

    (pod,) = dev_cluster.list("Pod", NAMESPACE)
    image = pod["spec"]["containers"][0]["image"]
    assert image.startswith(f"{dev_cluster.registry}/{REPOSITORY}:"), image
    assert pod["spec"]["nodeName"] == "cpu-0" and pod["status"]["phase"] == "Running"
    log = _build_log(platform, space)
    assert f"Pushed {image}" in log or f"Reusing image {image}" in log, log[-2000:]
    client = Client(f"{platform.url}/apps/{space}/", verbose=False)
    assert client.predict("cluster", api_name="/greet") == "Hello cluster! (v1)"

    # the same files again (a new commit, same tree): the image exists, nothing is built or sent
    mark = REGISTRY_LOG.stat().st_size
    git(wc, "commit", "-q", "--allow-empty", "-m", "no change")
    push(platform, wc, space)
    again = git(wc, "rev-parse", "HEAD").stdout.strip()
    platform.wait_stage(space, {"RUNNING"}, sha=again, timeout=300)
    assert "nothing to build or upload" in _build_log(platform, space)
    assert _registry_writes(mark) == []
    # (a new commit is a new revision: its own pod, the replaced one retired after the grace period)
    (pod,) = eventually(lambda: len(pods := dev_cluster.list("Pod", NAMESPACE)) == 1 and pods, "one pod", timeout=60)
    assert pod["spec"]["containers"][0]["image"] == image

    # an app-only change, called without pause across the update: the environment layer is reused, only the
    # small app layer, config and manifest go
    caller = Caller(client)
    caller.start()
    mark = REGISTRY_LOG.stat().st_size
    app = wc / "app.py"
    # (a fresh line each run: the registry outlives test sessions, and this must be new to it)
    changed = app.read_text().replace('"HELLO_VERSION", "v1"', '"HELLO_VERSION", "v2"')
    app.write_text(f"{changed}\n# run {uuid.uuid4().hex}\n")
    git(wc, "commit", "-qam", "v2")
    push(platform, wc, space)
    platform.wait_stage(space, {"RUNNING"}, sha=git(wc, "rev-parse", "HEAD").stdout.strip(), timeout=300)
    log = _build_log(platform, space)
    reused = re.search(r"Reusing environment layer ([0-9a-f]{12}) \(\d+ MB\): .* not installed, not uploaded", log)
    assert reused, log[-2000:]
    sent = re.search(r"Pushed \S+: (\d) blobs uploaded \((\d+\.\d) MB\)", log)
    assert sent and 1 <= int(sent.group(1)) <= 2 and float(sent.group(2)) < 1.0, log[-2000:]  # config (+ app layer)
    puts = [w for w in _registry_writes(mark) if w.startswith('"PUT') and "/blobs/uploads/" in w]
    assert len(puts) == int(sent.group(1)) and not [w for w in puts if reused.group(1) in w], puts
    # the replaced revision keeps its own Deployment and Service while the caller's session is pinned to it; it
    # is retired (drained first) after 20 grace periods of continuous use, and the caller moves on to v2
    assert len(dev_cluster.list("Service", NAMESPACE)) == 2, "the old revision kept its own address"
    v1, v2 = "Hello rolling! (v1)", "Hello rolling! (v2)"
    eventually(lambda: caller.answers[-3:] == [v2] * 3, "the caller's session moves to v2", timeout=150)
    caller.finish()
    print(caller.report(v2))
    caller.check_rolled(v1, v2)
    eventually(lambda: len(dev_cluster.list("Deployment", NAMESPACE)) == 1, "the old revision is gone", timeout=30)
    assert client.predict("cluster", api_name="/greet") == "Hello cluster! (v2)"

    # a wake from zero: the request is held, and the cold start is split into phases in /metrics
    assert platform.api("POST", f"/api/spaces/{space}/sleeptime", json={"seconds": 1}).status_code == 200
    platform.wait_stage(space, {"SLEEPING"}, timeout=120)
    eventually(lambda: dev_cluster.list("Pod", NAMESPACE) == [], "no pod while asleep")
    assert platform.api("POST", f"/api/spaces/{space}/sleeptime", json={"seconds": 3600}).status_code == 200
    assert platform.app_get(space, "/config").status_code == 200
    metrics = httpx.get(f"{platform.url}/metrics", timeout=30).text
    for phase in ("scheduling", "image_pull", "container_start", "app_ready", "endpoints", "first_byte"):
        count = re.search(rf'spaceyard_wake_phase_seconds_count\{{mode="cold",phase="{phase}"\}} (\S+)', metrics)
        assert count and float(count.group(1)) >= 1, (phase, [m for m in metrics.splitlines() if "phase" in m])


def test_a_failing_requirement_is_a_build_error_with_the_installers_lines(platform: Server, tmp_path: Path) -> None:
    space = "admin/h14build-badreq"
    platform.create_space(space, sdk="gradio")
    wc = working_copy(tmp_path, "hello-gradio")
    (wc / "requirements.txt").write_text("spaceyard-h14build-no-such-package==9.9.9\n")
    git(wc, "commit", "-qam", "a requirement nobody publishes")
    push(platform, wc, space)
    rt = platform.wait_stage(space, {"BUILD_ERROR"}, timeout=300)
    message = rt["errorMessage"]
    assert "Installing requirements.txt failed" in message, message
    assert "spaceyard-h14build-no-such-package" in message, message  # uv's own words about it
    assert "spaceyard-h14build-no-such-package" in _build_log(platform, space)


def test_a_hostile_build_step_sees_nothing_of_the_platform(
    platform: Server, dev_cluster: Cluster, tmp_path: Path
) -> None:
    space = "admin/h14build-evil"
    platform.create_space(space, sdk="gradio")
    push(platform, working_copy(tmp_path, HOSTILE), space)
    rt = platform.wait_stage(space, {"BUILD_ERROR"}, timeout=300)
    message, log = rt["errorMessage"], _build_log(platform, space)
    key = (platform.data_dir / "secret.key").read_bytes().strip().decode(errors="replace")
    # the build-time code ran, in the commit inside the base image's filesystem ...
    assert "EVIL cwd=/home/user/app" in log and "EVIL done" in message, message
    for text in (message, log):
        # ... with nothing of the platform: no variable, no token, no key, no database, no host path
        assert "SPACEYARD_" not in text and ADMIN_TOKEN not in text and key not in text
        assert "EVIL read" not in text, [line for line in text.splitlines() if "EVIL read" in line]
        assert str(platform.data_dir) not in text and str(dev_cluster.kubeconfig) not in text
    env_keys = {line.split("=", 1)[0].removeprefix("EVIL env ") for line in log.splitlines() if "EVIL env " in line}
    assert env_keys and not any(k.startswith(("SPACEYARD", "KUBE", "HF_", "CELERY")) for k in env_keys), env_keys
    environs = [line for line in log.splitlines() if "EVIL environ" in line]
    assert environs and all(ADMIN_TOKEN not in line and "KUBECONFIG" not in line for line in environs)


HOSTILE_DOCKERFILE = Path(__file__).resolve().parents[1] / "security" / "spaces" / "hostile-dockerfile"


def test_a_docker_space_is_built_by_buildah_and_runs_in_a_pod_and_a_no_change_rebuild_builds_nothing(
    platform: Server, dev_cluster: Cluster, tmp_path: Path
) -> None:
    space = "admin/h14rest-docker"
    platform.create_space(space, sdk="docker")
    wc = working_copy(tmp_path, "hello-docker")
    push(platform, wc, space)
    platform.wait_stage(space, {"RUNNING"}, sha=git(wc, "rev-parse", "HEAD").stdout.strip(), timeout=900)
    log = _build_log(platform, space)
    assert "FROM ${BASE_IMAGE}: spaceyard/python:" in log, log[-3000:]
    selector = "spaceyard.dev/space=space-admin--h14rest-docker"
    (pod,) = eventually(lambda: dev_cluster.list("Pod", NAMESPACE, selector=selector), "the Space's pod")
    image = pod["spec"]["containers"][0]["image"]
    assert image.startswith(f"{dev_cluster.registry}/{REPOSITORY}:docker-"), image
    # built by buildah here, or (the registry outlives test sessions) by an earlier run of this very test
    if f"Reusing image {image}" not in log:
        assert "Building the Dockerfile with buildah" in log and "RUN useradd -m -u 1000 user" in log, log[-3000:]
        assert "no build secret" in log and f"Pushed {image}" in log, log[-3000:]
    info = eventually(lambda: platform.app_get(space, "/api/info"), "the app answers", timeout=120)
    assert info.status_code == 200 and info.json()["uid"] == 1000, info.text

    mark = REGISTRY_LOG.stat().st_size
    git(wc, "commit", "-q", "--allow-empty", "-m", "no change")
    push(platform, wc, space)
    platform.wait_stage(space, {"RUNNING"}, sha=git(wc, "rev-parse", "HEAD").stdout.strip(), timeout=300)
    assert f"Reusing image {image}: same Dockerfile" in _build_log(platform, space)
    assert _registry_writes(mark) == []


def test_a_dockerfile_from_an_image_the_cluster_lacks_is_a_build_error_naming_what_is_there(
    platform: Server, tmp_path: Path
) -> None:
    space = "admin/h14rest-nobase"
    platform.create_space(space, sdk="docker")
    wc = working_copy(tmp_path, "hello-docker")
    (wc / "Dockerfile").write_text("FROM ghcr.io/someone/elsewhere:1\nRUN true\n")
    git(wc, "commit", "-qam", "a base from another registry")
    push(platform, wc, space)
    message = platform.wait_stage(space, {"BUILD_ERROR"}, timeout=300)["errorMessage"]
    assert "FROM ghcr.io/someone/elsewhere:1" in message and "spaceyard/python:" in message, message
    assert "BASE_IMAGE" in message, message


def test_a_hostile_dockerfile_finds_nothing_of_the_worker(
    platform: Server, dev_cluster: Cluster, tmp_path: Path
) -> None:
    space = "admin/h14rest-evil-docker"
    platform.create_space(space, sdk="docker")
    push(platform, working_copy(tmp_path, HOSTILE_DOCKERFILE), space)
    rt = platform.wait_stage(space, {"BUILD_ERROR"}, timeout=600)
    message, log = rt["errorMessage"], _build_log(platform, space)
    key = (platform.data_dir / "secret.key").read_bytes().strip().decode(errors="replace")
    assert "EVIL done" in log and "EVIL id 0" in log, log[-3000:]  # it ran, as the image's root
    for text in (message, log):
        assert "SPACEYARD_" not in text and ADMIN_TOKEN not in text and key not in text
        assert "EVIL read" not in text, [line for line in text.splitlines() if "EVIL read" in line]
        assert str(platform.data_dir) not in text and str(dev_cluster.kubeconfig) not in text
        assert "EVIL chroot worked" not in text
    env_keys = {line.split("=", 1)[0].removeprefix("EVIL env ") for line in log.splitlines() if "EVIL env " in line}
    assert env_keys and not any(k.startswith(("SPACEYARD", "KUBE", "HF_", "CELERY")) for k in env_keys), env_keys
    environs = [line for line in log.splitlines() if "EVIL environ " in line]
    assert environs and not [line for line in environs if "SPACEYARD" in line or "KUBE" in line], environs
    # the API server answers, but to nobody: no token reaches the build (200 would be a leak)
    api = [line for line in log.splitlines() if "EVIL api " in line]
    assert api and not [line for line in api if " 200 " in line], api


def test_a_platform_restart_reattaches_the_running_pod_instead_of_a_cold_start(
    platform: Server, dev_cluster: Cluster, tmp_path: Path
) -> None:
    """Last in this module: it replaces the module's platform process by a new one on the same data."""
    space = "admin/h14rest-restart"
    platform.create_space(space, sdk="docker")
    wc = working_copy(tmp_path, "hello-docker")
    push(platform, wc, space)
    platform.wait_stage(space, {"RUNNING"}, sha=git(wc, "rev-parse", "HEAD").stdout.strip(), timeout=900)
    selector = "spaceyard.dev/space=space-admin--h14rest-restart"
    (before,) = eventually(lambda: dev_cluster.list("Pod", NAMESPACE, selector=selector), "the Space's pod")

    platform.stop()  # SIGINT: the platform shuts down cleanly, and leaves the Space's Deployment running
    (during,) = dev_cluster.list("Pod", NAMESPACE, selector=selector)
    assert during["metadata"]["uid"] == before["metadata"]["uid"]
    extra = {k: v for k, v in platform.env.items() if k.startswith("SPACEYARD_")}
    again = start_server(platform.data_dir, platform.port, Path(platform.env["SPACEYARD_ENV_DIR"]), extra)
    try:
        assert again.runtime(space)["stage"] == "RUNNING"  # re-attached at start, not SLEEPING
        assert again.app_get(space, "/api/info").json()["uid"] == 1000  # served by the same pod, no wake
        (after,) = dev_cluster.list("Pod", NAMESPACE, selector=selector)
        assert after["metadata"]["uid"] == before["metadata"]["uid"]
        restarts = [c["restartCount"] for c in after["status"]["containerStatuses"]]
        assert restarts == [c["restartCount"] for c in before["status"]["containerStatuses"]]
        body = {"type": "space", "organization": "admin", "name": "h14rest-restart"}
        assert again.api("DELETE", "/api/repos/delete", json=body).status_code == 200
        eventually(lambda: dev_cluster.list("Pod", NAMESPACE, selector=selector) == [], "the pod goes with the Space")
    finally:
        again.stop()
