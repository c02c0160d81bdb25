"""Light sleep on the dev cluster: a Gradio Space's pod runs the in-container agent, sleeps with its warm parent
and wakes by fork in the same pod; deep sleep removes the pod; the agent refuses any other token; the cluster's
light sleepers are kept within the memory budget, least recently suspended deepened first.

The image is ``sample_spaces/hello-gradio`` built by the oci engine into the cluster's registry (content
addressed: a second run reuses it), run by :class:`KubernetesRuntime` with the platform's view of the cluster
network (the Service's ClusterIP, the pods' addresses), as ``spaceyard up`` on this machine has it.
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from spaceyard_builder.api import BuildRequest
from spaceyard_builder.baseimage import DEFAULT_TAG
from spaceyard_builder.logs import FileLogStore
from spaceyard_builder.pipeline import run_build
from spaceyard_builder.settings import BuilderSettings
from spaceyard_runtime.agent_client import AgentClient, AgentError
from spaceyard_runtime.api import AppHandle, AppSpec, AppState
from spaceyard_runtime.kubernetes import lightsleep, objects, slugs
from spaceyard_runtime.kubernetes.reconcile import agent_token
from spaceyard_runtime.kubernetes.runtime import KubernetesRuntime
from spaceyard_runtime.readiness import probe_http
from spaceyard_runtime.settings import RuntimeSettings
from tests.kubernetes.cluster import Cluster, eventually, push_base_image
from tests.kubernetes.test_oci_engine_on_cluster import REPOSITORY  # the same build: whichever runs first makes it

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(900)]
NAMESPACE = "spaceyard-light-sleep"
SAMPLE = Path(__file__).resolve().parents[2] / "sample_spaces" / "hello-gradio"
READY = 300.0


@pytest.fixture(scope="module")
def gradio_image(dev_cluster: Cluster, test_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """``hello-gradio`` as an image in the cluster's registry, built by the oci engine (no Docker)."""
    base = push_base_image(dev_cluster.registry, DEFAULT_TAG)
    work = tmp_path_factory.mktemp("light-sleep") / "hello-gradio"
    shutil.copytree(SAMPLE, work)

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=work, check=True, capture_output=True, text=True)
        return done.stdout.strip()

    git("init", "-q", "-b", "main")
    git("add", "-A")
    git("-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-q", "-m", "hello")
    settings = BuilderSettings(
        data_dir=work.parent / "data",
        build_engine="oci",
        registry=dev_cluster.registry,
        docker_base_image=base,
        docker_image_repository=REPOSITORY,
        oci_cache_dir=test_cache / "oci",
    )
    request = BuildRequest(build_id="light-1", space_id="h18k8s/light", revision=git("rev-parse", "HEAD"),
                           repo=str(work / ".git"), log_key="build/light-1")  # fmt: skip
    store = FileLogStore(settings.data_dir / "logs")
    result = run_build(request, settings, store)
    assert result.ok, "\n".join(e.data for e in store.read(request.log_key))
    return result.artifact


@pytest.fixture
async def light(dev_cluster: Cluster) -> AsyncIterator[tuple[Cluster, list[KubernetesRuntime]]]:
    dev_cluster.ensure_namespace(NAMESPACE)
    dev_cluster.reset(NAMESPACE)
    runtimes: list[KubernetesRuntime] = []
    yield dev_cluster, runtimes
    for runtime in runtimes:
        await runtime.aclose()
    dev_cluster.reset(NAMESPACE)


def _runtime(cluster: Cluster, runtimes: list[KubernetesRuntime], **settings: Any) -> KubernetesRuntime:
    runtime = KubernetesRuntime(
        RuntimeSettings(
            runtime="kubernetes", kubernetes_namespace=NAMESPACE, kubernetes_endpoint="cluster-ip", **settings
        ),  # fmt: skip
        api_client=cluster.client(),
    )
    runtimes.append(runtime)
    return runtime


def _spec(image: str, name: str) -> AppSpec:
    return AppSpec(space_id=f"h18k8s/{name}-{uuid.uuid4().hex[:6]}", revision=uuid.uuid4().hex + "0" * 8,
                   sdk="gradio", artifact=image)  # fmt: skip


def _pods(cluster: Cluster, handle: AppHandle) -> list[dict[str, Any]]:
    return cluster.list("Pod", NAMESPACE, objects.space_selector(handle.spec.space_id))


def _requests(pod: dict[str, Any]) -> dict[str, str]:
    return dict(pod["spec"]["containers"][0]["resources"]["requests"])


def _ready_endpoints(rt: KubernetesRuntime, handle: AppHandle) -> list[Any]:
    service = slugs.revision_name(handle.spec.space_id, handle.extra["template"])  # the revision's Service
    slices = rt.api.list("EndpointSlice", f"kubernetes.io/service-name={service}")
    return [e for s in slices for e in s.get("endpoints") or [] if (e.get("conditions") or {}).get("ready")]


async def _serves(handle: AppHandle) -> bool:
    return await probe_http(handle.endpoint.host, handle.endpoint.port) == 200


async def test_light_sleep_keeps_the_pod_with_small_requests_and_wakes_by_fork_in_it(
    light: tuple[Cluster, list[KubernetesRuntime]], gradio_image: str
) -> None:
    cluster, runtimes = light
    rt = _runtime(cluster, runtimes)
    assert rt.capabilities.light_sleep and not rt.capabilities.restarts_crashed_apps
    handle = await rt.start(_spec(gradio_image, "fork"), lambda line: None)
    await rt.wait_ready(handle, READY)
    assert await _serves(handle)
    [pod] = _pods(cluster, handle)
    assert _requests(pod) == {"cpu": "500m", "memory": "2Gi"}  # cpu-basic's

    await rt.suspend(handle)
    assert (await rt.poll(handle)).state is AppState.EXITED
    cost = await rt.sleep_cost(handle)
    assert cost is not None and 20 << 20 < cost < 1 << 30  # the agent and a warm parent with Gradio imported
    [asleep] = _pods(cluster, handle)
    assert asleep["metadata"]["uid"] == pod["metadata"]["uid"]
    assert _requests(asleep) == lightsleep.asleep_requests(rt.desired(handle.spec), cost)
    assert _requests(asleep)["cpu"] == "10m"
    # applied in place by the kubelet (no restart), and nothing routes to the warm-only pod
    eventually(lambda: (cluster.get("Pod", NAMESPACE, pod["metadata"]["name"]) or {}).get("status", {})
               .get("containerStatuses", [{}])[0].get("resources", {}).get("requests") == _requests(asleep),
               "the kubelet applies the smaller requests")  # fmt: skip
    eventually(lambda: not _ready_endpoints(rt, handle), "the Service lists no ready endpoint", timeout=30)
    assert not await _serves(handle)

    lines: list[str] = []
    woken = await rt.resume(handle, lines.append)
    assert woken.start_mode == "fork" and woken.backend_id == handle.backend_id
    await rt.wait_ready(woken, READY)
    assert await _serves(woken)
    assert (await rt.poll(woken)).state is AppState.RUNNING
    [awake] = _pods(cluster, handle)
    assert awake["metadata"]["uid"] == pod["metadata"]["uid"] and _requests(awake) == _requests(pod)
    assert awake["status"]["containerStatuses"][0]["restartCount"] == 0
    assert set(woken.extra["cold_start"]["phases"]) == {"fork", "app_ready"}
    eventually(lambda: any("Running on local URL" in line for line in lines), "the woken app's log")
    assert sum("Running on local URL" in line for line in lines) == 1  # its own run only, not the earlier one
    eventually(lambda: _ready_endpoints(rt, handle), "the pod is ready for its Service again", timeout=30)
    await rt.stop(woken, grace=1.0)


async def test_budget_deepens_the_least_recently_suspended_deep_sleep_is_cold_and_tokens_are_per_space(
    light: tuple[Cluster, list[KubernetesRuntime]], gradio_image: str
) -> None:
    cluster, runtimes = light
    rt = _runtime(cluster, runtimes, light_sleep_memory_mib=200)  # one sleeper fits, two do not
    first = await rt.start(_spec(gradio_image, "old"), lambda line: None)
    second = await rt.start(_spec(gradio_image, "new"), lambda line: None)
    for handle in (first, second):
        await rt.wait_ready(handle, READY)

    # the agent's control port answers its own Space's token only
    [pod_first], [pod_second] = _pods(cluster, first), _pods(cluster, second)
    token_first = agent_token(rt.api, first.spec.space_id)
    assert token_first and token_first != agent_token(rt.api, second.spec.space_id)
    for token in (token_first, "wrong", ""):
        with pytest.raises(AgentError) as refused:
            await AgentClient(pod_second["status"]["podIP"], token).stop(1.0)
        assert refused.value.status == 401
    assert await _serves(second)  # nothing was stopped
    assert (await AgentClient(pod_first["status"]["podIP"], token_first).status())["app"]["running"]
    secret = cluster.get("Secret", NAMESPACE, first.backend_id) or {}
    assert not [k for k in secret.get("data") or {} if k.startswith("SPACEYARD_AGENT")]  # not in the app's env

    await rt.suspend(first)
    await rt.suspend(second)  # over the budget: the older sleeper goes deep
    eventually(lambda: not _pods(cluster, first), "the least recently suspended pod is gone", timeout=60)
    assert await rt.sleep_cost(first) == 0
    assert [p["metadata"]["uid"] for p in _pods(cluster, second)] == [pod_second["metadata"]["uid"]]
    assert (await rt.sleep_cost(second) or 0) > 0

    woken = await rt.resume(first, lambda line: None)  # deep: a new pod, a cold start
    assert woken.start_mode == "cold"
    await rt.wait_ready(woken, READY)
    assert await _serves(woken)
    [new_pod] = _pods(cluster, first)
    assert new_pod["metadata"]["uid"] != pod_first["metadata"]["uid"]

    await rt.deep_sleep(second)  # as the lifecycle does after deep_sleep_after
    eventually(lambda: not _pods(cluster, second), "deep sleep removes the pod", timeout=60)
    assert await rt.sleep_cost(second) == 0
    for handle in (woken, second):
        await rt.stop(handle, grace=1.0)
