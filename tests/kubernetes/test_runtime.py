"""KubernetesRuntime: the Runtime contract against the fake API server (official client over HTTP)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from spaceyard_runtime.api import AppSpec, AppState, Flavor
from spaceyard_runtime.errors import AppCrashed, AppStartError, CapacityPending
from spaceyard_runtime.factory import runtime_class
from spaceyard_runtime.kubernetes.runtime import KubernetesRuntime
from spaceyard_runtime.settings import RuntimeSettings
from tests.kubernetes.conftest import NAMESPACE
from tests.kubernetes.fakeapi import FakeKubeAPI

NAME = "space-alice--demo"


def spec(image: str = "registry.local/spaces/alice--demo:1", flavor: str = "cpu-basic", **kwargs: Any) -> AppSpec:
    kwargs.setdefault("revision", "1" * 40)
    return AppSpec(
        space_id="alice/demo", sdk="gradio", artifact=image, flavor=Flavor(name=flavor), env={"TOKEN": "x"}, **kwargs
    )


@pytest.fixture
async def runtime(api_client: Any) -> AsyncIterator[KubernetesRuntime]:
    rt = KubernetesRuntime(RuntimeSettings(runtime="kubernetes", kubernetes_namespace=NAMESPACE), api_client=api_client)
    yield rt
    await rt.aclose()


async def wait_for(predicate: Any, what: str) -> None:
    for _ in range(400):
        if predicate():
            return
        await asyncio.sleep(0.025)
    raise AssertionError(f"never happened: {what}")


def test_factory_maps_kubernetes_to_this_class() -> None:
    assert runtime_class("kubernetes") is KubernetesRuntime


async def test_start_wait_ready_poll_and_logs(runtime: KubernetesRuntime, fake: FakeKubeAPI) -> None:
    lines: list[str] = []
    handle = await runtime.start(spec(), lines.append)
    assert handle.endpoint.host == "space-alice--demo.spaceyard-spaces.svc.cluster.local"
    assert handle.endpoint.port == 80 and handle.backend_id == NAME
    await runtime.wait_ready(handle, timeout=30)
    assert (await runtime.poll(handle)).state is AppState.RUNNING
    await wait_for(lambda: "* Running on local URL:  http://0.0.0.0:7860" in lines, "first log line")
    pod = fake.list("Pod", NAMESPACE)[0]["metadata"]["name"]
    fake.append_log(pod, "request served")
    await wait_for(lambda: "request served" in lines, "streamed log line")
    secret = fake.get("Secret", NAMESPACE, NAME)
    assert secret is not None and secret["data"] == {"TOKEN": "eA=="}
    # the runtime resolved the plain Flavor through the flavors file: requests below limits
    resources = fake.get("Deployment", NAMESPACE, NAME)["spec"]["template"]["spec"]["containers"][0]["resources"]  # type: ignore[index]
    assert resources["requests"]["cpu"] == "500m" and resources["limits"]["cpu"] == "2000m"


async def test_wait_ready_follows_readiness_through_the_watch(runtime: KubernetesRuntime, fake: FakeKubeAPI) -> None:
    fake.set_image("registry.local/slow:1", "slow")
    handle = await runtime.start(spec("registry.local/slow:1"), lambda line: None)
    waiter = asyncio.create_task(runtime.wait_ready(handle, timeout=30))
    await wait_for(lambda: fake.list("Pod", NAMESPACE), "pod created")
    assert (await runtime.poll(handle)).state is AppState.STARTING
    fake.make_ready(fake.list("Pod", NAMESPACE)[0]["metadata"]["name"])
    await asyncio.wait_for(waiter, 30)
    assert (await runtime.poll(handle)).state is AppState.RUNNING


async def test_suspend_and_resume(runtime: KubernetesRuntime, fake: FakeKubeAPI) -> None:
    handle = await runtime.start(spec(), lambda line: None)
    await runtime.wait_ready(handle, timeout=30)
    await runtime.suspend(handle)
    assert fake.list("Pod", NAMESPACE) == []
    assert fake.get("Deployment", NAMESPACE, NAME)["spec"]["replicas"] == 0  # type: ignore[index]
    assert (await runtime.poll(handle)).state is AppState.EXITED
    woken = await runtime.resume(handle, lambda line: None)
    await runtime.wait_ready(woken, timeout=30)
    assert (await runtime.poll(woken)).state is AppState.RUNNING
    assert woken.endpoint == handle.endpoint


async def test_gpu_without_capacity_is_pending_not_failed(runtime: KubernetesRuntime, fake: FakeKubeAPI) -> None:
    handle = await runtime.start(spec(flavor="t4-small"), lambda line: None)
    status = await runtime.poll(handle)
    assert status.state is AppState.PENDING
    assert "Insufficient nvidia.com/gpu" in status.message
    with pytest.raises(CapacityPending, match="Insufficient nvidia.com/gpu"):
        await runtime.wait_ready(handle, timeout=0.5)
    assert len(fake.list("Pod", NAMESPACE)) == 1, "the pending pod is kept for the autoscaler"
    fake.add_gpus(1)
    await runtime.wait_ready(handle, timeout=30)
    assert (await runtime.poll(handle)).state is AppState.RUNNING
    cold_start = handle.extra["cold_start"]
    assert 0 <= cold_start["capacity_wait_seconds"] <= cold_start["seconds"]


async def test_crash_loop_raises_app_crashed_with_log_tail(runtime: KubernetesRuntime, fake: FakeKubeAPI) -> None:
    fake.set_image("registry.local/broken:1", "crash", ["booting", "KeyError: 'OPENAI_API_KEY'"], exit_code=1)
    handle = await runtime.start(spec("registry.local/broken:1"), lambda line: None)
    with pytest.raises(AppCrashed) as err:
        await runtime.wait_ready(handle, timeout=30)
    assert err.value.exit_code == 1
    assert err.value.log_tail.endswith("KeyError: 'OPENAI_API_KEY'")
    status = await runtime.poll(handle)
    assert status.state is AppState.EXITED and "OPENAI_API_KEY" in status.message


async def test_new_revision_then_stopping_the_old_handle_keeps_the_new(
    runtime: KubernetesRuntime, fake: FakeKubeAPI
) -> None:
    old = await runtime.start(spec(), lambda line: None)
    await runtime.wait_ready(old, timeout=30)
    new = await runtime.start(spec("registry.local/spaces/alice--demo:2", revision="2" * 40), lambda line: None)
    await runtime.wait_ready(new, timeout=30)
    await runtime.stop(old)
    assert fake.get("Deployment", NAMESPACE, NAME) is not None, "the old handle no longer owns the objects"
    await runtime.remove(new)
    for kind in ("ConfigMap", "Secret", "Service", "Deployment", "NetworkPolicy", "Pod"):
        assert fake.list(kind, NAMESPACE) == [], kind
    await runtime.stop(new)  # idempotent


async def test_state_survives_a_platform_restart(api_client: Any, fake: FakeKubeAPI) -> None:
    settings = RuntimeSettings(runtime="kubernetes", kubernetes_namespace=NAMESPACE)
    first = KubernetesRuntime(settings, api_client=api_client)
    handle = await first.start(spec(), lambda line: None)
    await first.wait_ready(handle, timeout=30)
    state = first.get_state(handle)
    await first.aclose()
    second = KubernetesRuntime(settings, api_client=api_client)
    again = await second.load_state(spec(), state, lambda line: None)
    assert again is not None and again.endpoint == handle.endpoint
    assert (await second.poll(again)).state is AppState.RUNNING
    assert await second.load_state(spec(revision="9" * 40), state, lambda line: None) is None
    await second.aclose()


async def test_an_env_name_kubernetes_cannot_pass_is_a_start_error(runtime: KubernetesRuntime) -> None:
    bad = AppSpec(space_id="alice/demo", revision="1", sdk="gradio", artifact="i:1", env={"MY-VAR": "x"})
    with pytest.raises(AppStartError, match="MY-VAR"):
        await runtime.start(bad, lambda line: None)
