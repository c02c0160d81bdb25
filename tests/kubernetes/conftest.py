"""Fixtures of the Kubernetes tests: a fake API server over real HTTP and the real client pointed at it.

* ``fake``: a started :class:`~tests.kubernetes.fakeapi.FakeKubeAPI` (no GPU capacity), stopped after;
* ``api_client``: the official ``kubernetes.client.ApiClient`` with ``Configuration(host=fake URL)``;
* ``api``: :class:`KubeApi` on that client in the Spaces namespace;
* ``flavors`` / ``cfg``: the built-in flavors file and the default :class:`ClusterConfig`;
* ``space``: a factory of :class:`DesiredSpace` (``space(flavor="t4-small", image=...)``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client

from spaceyard_runtime.api import Flavor
from spaceyard_runtime.flavors import load_flavors
from spaceyard_runtime.kubernetes.clients import KubeApi
from spaceyard_runtime.kubernetes.desired import ClusterConfig, DesiredSpace
from tests.kubernetes.fakeapi import FakeKubeAPI

NAMESPACE = "spaceyard-spaces"


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
