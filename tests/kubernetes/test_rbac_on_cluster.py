"""The chart's RBAC enforced by a real API server: the runtime and the controller run as the chart's
ServiceAccounts (tokens from the TokenRequest API), with only the chart's Roles, through a whole life of
a Space. Any request the Roles do not grant is a 403 from the server, and the test fails.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from spaceyard_runtime.api import AppSpec
from spaceyard_runtime.errors import AppCrashed
from spaceyard_runtime.kubernetes.clients import KubeApi
from spaceyard_runtime.kubernetes.controller import ClusterRecordSource, Controller
from spaceyard_runtime.kubernetes.desired import ClusterConfig, Stage
from spaceyard_runtime.kubernetes.runtime import KubernetesRuntime
from spaceyard_runtime.settings import RuntimeSettings
from tests.kubernetes.cluster import Cluster, eventually
from tests.kubernetes.conftest import NAMESPACE
from tests.kubernetes.test_helm import render

pytestmark = pytest.mark.cluster
RELEASE_NAMESPACE = "spaceyard"


def apply(kube: Cluster, doc: dict[str, Any]) -> None:
    rbac = client.RbacAuthorizationV1Api(kube.admin)
    namespace = doc["metadata"].get("namespace", RELEASE_NAMESPACE)
    creators: dict[str, Callable[..., object]] = {  # each takes (namespace, manifest): plain dicts are accepted
        "ServiceAccount": kube.core.create_namespaced_service_account,
        "Role": rbac.create_namespaced_role,
        "RoleBinding": rbac.create_namespaced_role_binding,
    }
    try:
        creators[doc["kind"]](namespace, doc)
    except ApiException as exc:
        if exc.status != 409:
            raise


def client_as(kube: Cluster, service_account: str) -> Any:
    """An official client that authenticates as ``service_account`` of the release namespace."""
    request = client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=3600))
    status = kube.core.create_namespaced_service_account_token(service_account, RELEASE_NAMESPACE, request).status
    assert status is not None
    token = status.token
    configuration = client.Configuration(host=kube.url, api_key={"authorization": f"Bearer {token}"})
    configuration.ssl_ca_cert = kube.configuration.ssl_ca_cert
    return client.ApiClient(configuration)


@pytest.fixture
def chart_rbac(kube: Cluster) -> Iterator[Cluster]:
    kube.ensure_namespace(RELEASE_NAMESPACE, pod_security="baseline")
    for doc in render({}):
        if doc["kind"] in ("ServiceAccount", "Role", "RoleBinding") and doc["metadata"].get(
            "namespace", RELEASE_NAMESPACE
        ) in (
            RELEASE_NAMESPACE,
            NAMESPACE,
        ):
            apply(kube, doc)
    yield kube


async def test_the_runtime_needs_nothing_the_chart_does_not_grant(chart_rbac: Cluster) -> None:
    kube = chart_rbac
    api_client = client_as(kube, "spaceyard-platform")
    runtime = KubernetesRuntime(
        RuntimeSettings(kubernetes_namespace=NAMESPACE, light_sleep_memory_mib=0), api_client=api_client
    )
    lines: list[str] = []
    try:
        spec = AppSpec(space_id="a/b", revision="1", sdk="gradio", artifact=kube.images["ok"], env={"A": "1"})
        handle = await runtime.start(spec, lines.append)
        await runtime.wait_ready(handle, 120)
        # the log pump swallows API errors: seeing the app's log proves pods/log is granted
        for _ in range(300):
            if any("Running on local URL" in line for line in lines):
                break
            await asyncio.sleep(0.1)
        assert any("Running on local URL" in line for line in lines), "no log: is pods/log granted?"
        await runtime.suspend(handle)
        handle = await runtime.resume(handle, lines.append)
        await runtime.wait_ready(handle, 120)
        crashing = AppSpec(space_id="a/c", revision="1", sdk="gradio", artifact=kube.images["crash"])
        crash_handle = await runtime.start(crashing, lambda line: None)
        with pytest.raises(AppCrashed) as err:
            await runtime.wait_ready(crash_handle, 120)
        assert err.value.log_tail.endswith("ModuleNotFoundError: torch"), "previous logs are readable"
        await runtime.stop(crash_handle)
        await runtime.stop(handle)
    finally:
        await runtime.aclose()
        api_client.close()
    for kind in ("ConfigMap", "Deployment", "Service", "Secret", "NetworkPolicy"):
        assert kube.list(kind, NAMESPACE) == [], kind


def test_the_controller_needs_nothing_the_chart_does_not_grant(chart_rbac: Cluster, flavors: Any) -> None:
    kube = chart_rbac
    # what the platform wrote (as the platform's account), replayed by the controller as its own account
    platform_client = client_as(kube, "spaceyard-platform")
    runtime_settings = RuntimeSettings(
        kubernetes_namespace=NAMESPACE, light_sleep_memory_mib=0
    )  # test images: own command

    async def start() -> None:
        runtime = KubernetesRuntime(runtime_settings, api_client=platform_client)
        spec = AppSpec(space_id="a/b", revision="1", sdk="gradio", artifact=kube.images["ok"])
        await runtime.start(spec, lambda line: None)
        await runtime.aclose()

    asyncio.run(start())
    api_client = client_as(kube, "spaceyard-controller")
    source = ClusterRecordSource(KubeApi(api_client, NAMESPACE), flavors)
    ctl = Controller(api_client, ClusterConfig(namespace=NAMESPACE), source, identity="rbac", lease_duration=3)
    kube.api(NAMESPACE).delete("Deployment", "space-a--b")  # drift the controller must repair
    stop = threading.Event()
    thread = threading.Thread(target=ctl.run, args=(stop,))
    thread.start()
    try:
        eventually(
            lambda: (s := ctl.statuses.get("space-a--b")) is not None and s.stage is Stage.RUNNING,
            "the controller repairs the Space with only its Role",
            timeout=120,
        )
    finally:
        stop.set()
        thread.join(30)
    lease = kube.get("Lease", NAMESPACE, "spaceyard-controller")
    assert lease is not None and lease["spec"]["holderIdentity"] == "", "created, renewed and released"
    platform_client.close()
    api_client.close()
