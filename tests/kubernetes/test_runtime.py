"""KubernetesRuntime: the Runtime contract on the real cluster of ``helm/dev-cluster.sh``.

The app is a real container (a test app built from the debootstrap base image, pulled from the
cluster's registry by containerd), readiness is the kubelet's probe, logs are the kubelet's, and the
app is reached through its Service (kube-proxy) like the gateway reaches it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from spaceyard_runtime.api import AppHandle, AppSpec, AppState, Flavor
from spaceyard_runtime.errors import AppCrashed, AppStartError, CapacityPending
from spaceyard_runtime.factory import runtime_class
from spaceyard_runtime.kubernetes import objects, slugs
from spaceyard_runtime.kubernetes.runtime import KubernetesRuntime
from spaceyard_runtime.settings import RuntimeSettings
from tests.kubernetes.cluster import Cluster
from tests.kubernetes.conftest import NAMESPACE

pytestmark = pytest.mark.cluster
NAME = "space-alice--demo"
# the test images run their own command (not the builder's `python app.py`): no in-container agent, no light sleep
SETTINGS = RuntimeSettings(runtime="kubernetes", kubernetes_namespace=NAMESPACE, light_sleep_memory_mib=0)


def spec(image: str, flavor: str = "cpu-basic", space_id: str = "alice/demo", **kwargs: Any) -> AppSpec:
    kwargs.setdefault("revision", "1" * 40)
    kwargs.setdefault("env", {"TOKEN": "x"})
    return AppSpec(space_id=space_id, sdk="gradio", artifact=image, flavor=Flavor(name=flavor), **kwargs)


@pytest.fixture
async def runtime(kube: Cluster) -> AsyncIterator[KubernetesRuntime]:
    rt = KubernetesRuntime(SETTINGS, api_client=kube.client())
    yield rt
    await rt.aclose()


async def wait_for(predicate: Any, what: str, timeout: float = 60) -> None:
    for _ in range(int(timeout / 0.1)):
        if predicate():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"never happened: {what}")


def revision(handle: AppHandle) -> str:
    """The name of the handle's revision: its Deployment and its Service."""
    return slugs.revision_name(handle.spec.space_id, handle.extra["template"])


def service_get(kube: Cluster, handle: AppHandle, path: str = "/") -> httpx.Response:
    """GET through the Service of the handle's revision (its ClusterIP, routed to the pod by kube-proxy).

    A pod that just became ready reaches kube-proxy's rules a moment later (EndpointSlice, then an
    iptables sync): until then the ClusterIP refuses connections, so refusals are retried for 15 s.
    """
    service = kube.get("Service", NAMESPACE, revision(handle))
    assert service is not None
    deadline = time.monotonic() + 15
    while True:
        try:
            return httpx.get(f"http://{service['spec']['clusterIP']}:80{path}", timeout=10)
        except httpx.ConnectError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_factory_maps_kubernetes_to_this_class() -> None:
    assert runtime_class("kubernetes") is KubernetesRuntime


async def test_start_wait_ready_poll_and_logs(runtime: KubernetesRuntime, kube: Cluster) -> None:
    lines: list[str] = []
    handle = await runtime.start(spec(kube.images["ok"]), lines.append)
    assert handle.endpoint.host == f"{revision(handle)}.{NAMESPACE}.svc.cluster.local"
    assert handle.endpoint.port == 80 and handle.backend_id == NAME
    await runtime.wait_ready(handle, timeout=120)
    assert (await runtime.poll(handle)).state is AppState.RUNNING
    await wait_for(lambda: "* Running on local URL:  http://0.0.0.0:7860" in lines, "first log line")
    response = await asyncio.to_thread(service_get, kube, handle, "/hello")
    assert response.status_code == 200 and response.text == "ok hello x\n", "the Secret reached the app's env"
    await wait_for(lambda: "request served /hello" in lines, "streamed log line of the request")
    assert kube.secret_data(NAMESPACE, NAME) == {"TOKEN": "x"}
    # the runtime resolved the plain Flavor through the flavors file: requests below limits
    deployment = kube.get("Deployment", NAMESPACE, revision(handle))
    assert deployment is not None
    resources = deployment["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert resources["requests"]["cpu"] == "500m" and resources["limits"]["cpu"] == "2"
    (pod,) = kube.list("Pod", NAMESPACE)
    assert pod["spec"]["nodeName"] == "cpu-0"
    assert pod["spec"]["securityContext"]["runAsUser"] == 1000, "admitted by the restricted Pod Security level"


async def test_wait_ready_follows_readiness_through_the_watch(runtime: KubernetesRuntime, kube: Cluster) -> None:
    handle = await runtime.start(spec(kube.images["slow"]), lambda line: None)  # listens ~12 s after start
    waiter = asyncio.create_task(runtime.wait_ready(handle, timeout=120))
    await wait_for(lambda: kube.list("Pod", NAMESPACE), "pod created")
    assert (await runtime.poll(handle)).state is AppState.STARTING
    await asyncio.wait_for(waiter, 120)
    assert (await runtime.poll(handle)).state is AppState.RUNNING


async def test_suspend_and_resume(runtime: KubernetesRuntime, kube: Cluster) -> None:
    handle = await runtime.start(spec(kube.images["ok"]), lambda line: None)
    await runtime.wait_ready(handle, timeout=120)
    await runtime.suspend(handle)
    assert kube.get("Deployment", NAMESPACE, revision(handle))["spec"]["replicas"] == 0  # type: ignore[index]
    await wait_for(lambda: kube.list("Pod", NAMESPACE) == [], "no pod while asleep")
    assert (await runtime.poll(handle)).state is AppState.EXITED
    woken = await runtime.resume(handle, lambda line: None)
    await runtime.wait_ready(woken, timeout=120)
    assert (await runtime.poll(woken)).state is AppState.RUNNING
    assert woken.endpoint == handle.endpoint
    cold = woken.extra["cold_start"]
    assert cold["seconds"] > 0 and cold["capacity_wait_seconds"] == 0
    assert (await asyncio.to_thread(service_get, kube, woken)).status_code == 200


async def test_gpu_flavor_lands_on_the_gpu_pool(runtime: KubernetesRuntime, kube: Cluster) -> None:
    handle = await runtime.start(spec(kube.images["ok"], flavor="t4-small"), lambda line: None)
    await runtime.wait_ready(handle, timeout=120)  # kwok reports the pod ready; it does not run
    (pod,) = kube.list("Pod", NAMESPACE)
    assert pod["spec"]["nodeName"] == "gpu-0"
    assert pod["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"


async def test_gpu_without_capacity_is_pending_with_the_schedulers_message(
    runtime: KubernetesRuntime, kube: Cluster
) -> None:
    hog = await runtime.start(spec(kube.images["ok"], flavor="t4-small", space_id="bob/gpu-hog"), lambda line: None)
    await runtime.wait_ready(hog, timeout=120)
    handle = await runtime.start(spec(kube.images["ok"], flavor="t4-small"), lambda line: None)
    with pytest.raises(CapacityPending, match="Insufficient nvidia.com/gpu"):
        await runtime.wait_ready(handle, timeout=8)
    status = await runtime.poll(handle)
    assert status.state is AppState.PENDING
    assert status.message.startswith("0/2 nodes are available") and "Insufficient nvidia.com/gpu" in status.message
    selector = objects.space_selector("alice/demo")
    assert len(kube.list("Pod", NAMESPACE, selector)) == 1, "the pending pod is kept for the autoscaler"
    kube.add_gpu_node("gpu-1")
    await runtime.wait_ready(handle, timeout=120)
    assert (await runtime.poll(handle)).state is AppState.RUNNING
    cold_start = handle.extra["cold_start"]
    assert 0 <= cold_start["capacity_wait_seconds"] <= cold_start["seconds"]


async def test_crash_loop_raises_app_crashed_with_log_tail(runtime: KubernetesRuntime, kube: Cluster) -> None:
    handle = await runtime.start(spec(kube.images["crash"]), lambda line: None)
    with pytest.raises(AppCrashed) as err:
        await runtime.wait_ready(handle, timeout=120)
    assert err.value.exit_code == 3
    assert err.value.log_tail.endswith("ModuleNotFoundError: torch")
    status = await runtime.poll(handle)
    assert status.state is AppState.EXITED and "ModuleNotFoundError: torch" in status.message


def revisions(kube: Cluster) -> dict[str, set[str]]:
    """The revision names of the Space's Deployments and Services."""
    return {kind: {o["metadata"]["name"] for o in kube.list(kind, NAMESPACE)} for kind in ("Deployment", "Service")}


async def test_a_new_revision_comes_up_next_to_the_old_one_which_keeps_its_own_endpoint_until_stopped(
    runtime: KubernetesRuntime, kube: Cluster
) -> None:
    old = await runtime.start(spec(kube.images["ok"]), lambda line: None)
    await runtime.wait_ready(old, timeout=120)
    new = await runtime.start(spec(kube.images["slow"], revision="2" * 40), lambda line: None)
    assert new.endpoint != old.endpoint, "a revision of its own: a Deployment and a Service"
    assert revisions(kube) == {"Deployment": {revision(old), revision(new)}, "Service": {revision(old), revision(new)}}
    owner = kube.get("ConfigMap", NAMESPACE, NAME)
    assert owner is not None and owner["data"]["template"] == new.extra["template"]
    assert owner["data"]["retiring"] == f'["{old.extra["template"]}"]', "kept for its pinned sessions"
    assert (await asyncio.to_thread(service_get, kube, old)).text.startswith("ok "), "serves while the new starts"
    await runtime.wait_ready(new, timeout=120)
    assert (await asyncio.to_thread(service_get, kube, new)).text.startswith("slow ")
    assert (await asyncio.to_thread(service_get, kube, old)).text.startswith("ok "), "still, until it is retired"

    await runtime.stop(old)  # the lifecycle retires it: its own objects go, nothing else
    assert revisions(kube) == {"Deployment": {revision(new)}, "Service": {revision(new)}}
    owner = kube.get("ConfigMap", NAMESPACE, NAME)
    assert owner is not None and "retiring" not in owner["data"]
    await wait_for(lambda: len(kube.list("Pod", NAMESPACE)) == 1, "the old revision's pod is gone", 30)
    (pod,) = kube.list("Pod", NAMESPACE)
    assert pod["metadata"]["labels"][objects.LABEL_TEMPLATE] == new.extra["template"]
    assert (await runtime.poll(new)).state is AppState.RUNNING
    assert (await asyncio.to_thread(service_get, kube, new)).text.startswith("slow ")
    await runtime.remove(new)
    for kind in ("ConfigMap", "Secret", "Service", "Deployment", "NetworkPolicy"):
        assert kube.list(kind, NAMESPACE) == [], kind
    await wait_for(lambda: kube.list("Pod", NAMESPACE) == [], "pods removed")
    await runtime.stop(new)  # idempotent


async def test_a_failed_new_revision_gives_the_space_back_to_the_one_still_serving(
    runtime: KubernetesRuntime, kube: Cluster
) -> None:
    old = await runtime.start(spec(kube.images["ok"]), lambda line: None)
    await runtime.wait_ready(old, timeout=120)
    new = await runtime.start(spec(kube.images["crash"], revision="2" * 40), lambda line: None)
    with pytest.raises(AppCrashed):
        await runtime.wait_ready(new, timeout=120)
    await runtime.stop(new)  # what the lifecycle does with a failed start; the old version keeps serving
    assert revisions(kube) == {"Deployment": {revision(old)}, "Service": {revision(old)}}
    owner = kube.get("ConfigMap", NAMESPACE, NAME)
    assert owner is not None and owner["data"]["template"] == old.extra["template"]
    assert owner["data"]["revision"] == "1" * 40
    assert (await runtime.poll(old)).state is AppState.RUNNING
    assert (await asyncio.to_thread(service_get, kube, old)).text.startswith("ok ")


async def test_state_survives_a_platform_restart(kube: Cluster) -> None:
    first = KubernetesRuntime(SETTINGS, api_client=kube.client())
    replaced = await first.start(spec(kube.images["ok"], revision="0" * 40), lambda line: None)
    handle = await first.start(spec(kube.images["ok"]), lambda line: None)
    await first.wait_ready(handle, timeout=120)
    state = first.get_state(handle)
    await first.aclose()  # it stopped mid-swap: the replaced revision was never retired
    pod = kube.list("Pod", NAMESPACE, objects.revision_selector("alice/demo", handle.extra["template"]))[0]
    second = KubernetesRuntime(SETTINGS, api_client=kube.client())
    again = await second.load_state(spec(kube.images["ok"]), state, lambda line: None)
    assert again is not None and again.endpoint == handle.endpoint
    assert (await second.poll(again)).state is AppState.RUNNING
    # no pin outlives the platform: what was kept for them goes; the serving pod is the same one
    assert revisions(kube) == {"Deployment": {revision(handle)}, "Service": {revision(handle)}}
    assert "retiring" not in kube.get("ConfigMap", NAMESPACE, NAME)["data"]  # type: ignore[index]
    uids = [
        p["metadata"]["uid"]
        for p in kube.list("Pod", NAMESPACE, objects.revision_selector("alice/demo", handle.extra["template"]))
    ]
    assert pod["metadata"]["uid"] in uids and replaced.endpoint != again.endpoint
    assert await second.load_state(spec(kube.images["ok"], revision="9" * 40), state, lambda line: None) is None
    await second.aclose()


async def test_forget_removes_a_space_no_handle_of_this_process_holds(kube: Cluster) -> None:
    """A platform restarted after a crash holds no handle of a pod that outlived it: deleting the Space
    (``forget``) still removes every object of it."""
    first = KubernetesRuntime(SETTINGS, api_client=kube.client())
    handle = await first.start(spec(kube.images["ok"]), lambda line: None)
    await first.wait_ready(handle, timeout=120)
    await first.aclose()  # the pod outlives the platform process
    second = KubernetesRuntime(SETTINGS, api_client=kube.client())
    await second.forget(handle.spec.space_id)
    for kind in ("ConfigMap", "Secret", "Service", "Deployment", "NetworkPolicy"):
        assert kube.list(kind, NAMESPACE) == [], kind
    await wait_for(lambda: kube.list("Pod", NAMESPACE) == [], "pods removed")
    await second.forget(handle.spec.space_id)  # idempotent
    await second.aclose()


async def test_an_env_name_kubernetes_cannot_pass_is_a_start_error(runtime: KubernetesRuntime) -> None:
    bad = AppSpec(space_id="alice/demo", revision="1", sdk="gradio", artifact="i:1", env={"MY-VAR": "x"})
    with pytest.raises(AppStartError, match="MY-VAR"):
        await runtime.start(bad, lambda line: None)


async def test_network_policy_is_accepted_by_the_api_server(runtime: KubernetesRuntime, kube: Cluster) -> None:
    await runtime.start(spec(kube.images["ok"]), lambda line: None)
    policy = kube.get("NetworkPolicy", NAMESPACE, NAME)
    assert policy is not None
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    ingress_from = policy["spec"]["ingress"][0]["from"][0]
    assert ingress_from["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "spaceyard"}
