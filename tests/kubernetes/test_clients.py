"""Idempotent verbs (on the real API server) and retries with jittered backoff.

The retry tests keep the fake API server: only it can be told to answer 503, 429, 409 or 403 on the
next N requests.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from kubernetes.client.exceptions import ApiException

from spaceyard_runtime.kubernetes import objects
from spaceyard_runtime.kubernetes.clients import KubeApi, retry
from spaceyard_runtime.kubernetes.desired import ClusterConfig, DesiredSpace, Stage
from spaceyard_runtime.kubernetes.reconcile import reconcile_space
from tests.kubernetes.cluster import Cluster
from tests.kubernetes.conftest import NAMESPACE
from tests.kubernetes.fakeapi import FakeKubeAPI


def test_full_jitter_exponential_backoff() -> None:
    calls: list[int] = []
    sleeps: list[float] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 5:
            raise ApiException(status=503, reason="Service Unavailable")
        return "ok"

    assert retry(flaky, base=0.1, cap=0.5, sleep=sleeps.append, rand=lambda: 1.0) == "ok"
    assert sleeps == [0.1, 0.2, 0.4, 0.5]  # doubling, capped; rand() scales each into [0, delay)
    jittered: list[float] = []
    calls.clear()
    retry(flaky, base=0.1, cap=0.5, sleep=jittered.append, rand=lambda: 0.25)
    assert jittered == [0.025, 0.05, 0.1, 0.125]


def test_non_retryable_errors_raise_at_once_and_attempts_are_bounded() -> None:
    sleeps: list[float] = []

    def invalid() -> None:
        raise ApiException(status=422, reason="Invalid")

    with pytest.raises(ApiException) as err:
        retry(invalid, sleep=sleeps.append)
    assert err.value.status == 422 and sleeps == []

    def down() -> None:
        raise ConnectionError("refused")

    with pytest.raises(ConnectionError):
        retry(down, attempts=3, sleep=sleeps.append)
    assert len(sleeps) == 2


def test_reconcile_rides_out_transient_errors(
    fake: FakeKubeAPI, api: KubeApi, cfg: ClusterConfig, space: Callable[..., DesiredSpace]
) -> None:
    fake.fail("POST", "deployments", 503, times=2)
    fake.fail("GET", "services", 429)
    fake.fail("POST", "secrets", 500)
    assert reconcile_space(api, space(), cfg).stage is Stage.RUNNING
    assert fake.failures == []
    # a replace that loses a race (409 Conflict) is retried from a fresh read (the owner records the new image;
    # the new revision is a Deployment of its own, next to the old one)
    fake.fail("PUT", "configmaps", 409)
    assert reconcile_space(api, space(image="registry.local/x:2"), cfg).stage is Stage.RUNNING
    assert fake.failures == []
    assert [o["data"]["image"] for o in fake.list("ConfigMap", NAMESPACE)] == ["registry.local/x:2"]
    deployments = fake.list("Deployment", NAMESPACE)
    images = [c["image"] for d in deployments for c in d["spec"]["template"]["spec"]["containers"]]
    assert "registry.local/x:2" in images  # (the old one may already be retired: the new one serves at once here)


def test_forbidden_is_not_retried(
    fake: FakeKubeAPI, api: KubeApi, cfg: ClusterConfig, space: Callable[..., DesiredSpace]
) -> None:
    fake.fail("POST", "networkpolicies", 403, times=10)
    with pytest.raises(ApiException) as err:
        reconcile_space(api, space(), cfg)
    assert err.value.status == 403 and len(fake.failures) == 9


@pytest.mark.cluster
def test_ensure_reports_what_it_did(
    kube: Cluster, kube_api: KubeApi, cfg: ClusterConfig, space: Callable[..., DesiredSpace]
) -> None:
    """Against the real API server: its defaulting must not look like drift, and clusterIP is immutable."""
    api = kube_api
    owner = objects.make_owner(space(), cfg)
    assert api.ensure(owner)[0] == "created"
    assert api.ensure(objects.make_owner(space(), cfg))[0] == "unchanged"
    assert api.ensure(objects.make_owner(space(revision="2" * 40), cfg))[0] == "updated"
    service = objects.make_service(space(), cfg)
    assert api.ensure(service)[0] == "created"
    other_port = ClusterConfig(namespace=NAMESPACE, service_port=8080)
    assert api.ensure(objects.make_service(space(), other_port))[0] == "updated", "clusterIP carried over"
    assert api.ensure(objects.make_deployment(space(), cfg))[0] == "created"
    assert api.ensure(objects.make_deployment(space(awake=False), cfg))[0] == "scaled"
    assert api.delete("Service", service["metadata"]["name"]) is True
    assert api.delete("Service", service["metadata"]["name"]) is False
