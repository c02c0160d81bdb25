"""Fixtures of the Kubernetes tests: a fake API server over real HTTP and the real client pointed at it.

* ``dev_cluster`` (session): the real cluster of ``helm/dev-cluster.sh`` (started if it is not up, test images
  built and pushed to its registry), as a :class:`~tests.kubernetes.cluster.Cluster`;
* ``kube``: that cluster with an empty Spaces namespace (Pod Security *restricted* enforced), reset after;
* ``kube_client``: a recording official client on it;
* ``fake``: a started :class:`~tests.kubernetes.fakeapi.FakeKubeAPI` (no GPU capacity), stopped after - only
  for what a real server cannot be made to do (injected 5xx/429, a server that stops mid-test);
* ``api_client``: the official ``kubernetes.client.ApiClient`` with ``Configuration(host=fake URL)``;
* ``api``: :class:`KubeApi` on that client in the Spaces namespace;
* ``flavors`` / ``cfg``: the built-in flavors file and the default :class:`ClusterConfig`;
* ``space``: a factory of :class:`DesiredSpace` (``space(flavor="t4-small", image=...)``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from spaceyard_runtime.api import Flavor
from spaceyard_runtime.flavors import load_flavors
from spaceyard_runtime.kubernetes.clients import KubeApi
from spaceyard_runtime.kubernetes.desired import ClusterConfig, DesiredSpace
from tests.kubernetes.cluster import Cluster, build_test_images, start_dev_cluster
from tests.kubernetes.fakeapi import FakeKubeAPI

NAMESPACE = os.environ.get("SPACEYARD_TEST_SPACES_NAMESPACE", "spaceyard-spaces")
"""The Spaces namespace the tests reset and use (another one lets two checkouts share the dev cluster)."""


@pytest.fixture(scope="session")
def dev_cluster() -> Cluster:
    env = start_dev_cluster()
    registry = env["SPACEYARD_DEV_REGISTRY"]
    return Cluster(Path(env["KUBECONFIG"]), registry, build_test_images(registry))


@pytest.fixture
def kube(dev_cluster: Cluster) -> Iterator[Cluster]:
    dev_cluster.ensure_namespace(NAMESPACE)
    dev_cluster.reset(NAMESPACE)
    yield dev_cluster
    dev_cluster.reset(NAMESPACE)


@pytest.fixture
def kube_client(kube: Cluster) -> Iterator[Any]:
    api_client = kube.client()
    yield api_client
    api_client.close()


@pytest.fixture
def kube_api(kube_client: Any) -> KubeApi:
    return KubeApi(kube_client, NAMESPACE)


@pytest.fixture
def fake() -> Iterator[FakeKubeAPI]:
    server = FakeKubeAPI()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def api_client(fake: FakeKubeAPI) -> Iterator[Any]:
    configuration = client.Configuration(host=fake.url)
    api_client: Any = client.ApiClient(configuration)
    yield api_client
    api_client.close()


@pytest.fixture
def api(api_client: Any) -> KubeApi:
    return KubeApi(api_client, NAMESPACE)


@pytest.fixture(scope="session")
def flavors() -> dict[str, Flavor]:
    return load_flavors()


@pytest.fixture
def cfg() -> ClusterConfig:
    return ClusterConfig(namespace=NAMESPACE)


@pytest.fixture
def space(flavors: dict[str, Flavor]) -> Callable[..., DesiredSpace]:
    def make(space_id: str = "alice/demo", flavor: str = "cpu-basic", **kwargs: Any) -> DesiredSpace:
        kwargs.setdefault("image", "registry.local/spaces/alice--demo:1")
        kwargs.setdefault("revision", "1" * 40)
        return DesiredSpace(space_id=space_id, flavor=flavors[flavor], **kwargs)

    return make
