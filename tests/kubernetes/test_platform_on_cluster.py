"""A Space served from a pod: a real ``spaceyard up`` with ``SPACEYARD_RUNTIME=kubernetes`` on the dev cluster.

The push is built by the Docker engine from the debootstrap base image and pushed to the cluster's
registry (``SPACEYARD_REGISTRY``); ``KubernetesRuntime`` deploys it; containerd pulls it; the app
answers ``gradio_client`` through the platform's gateway (which reaches the pod through the Service's
ClusterIP, routed by kube-proxy). Then a light sleep (the pod stays with its warm parent, its app stopped) and
a wake by a visit through the gateway (the app forked again in the same pod).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from gradio_client import Client

from spaceyard_runtime.kubernetes.agentpod import agent_config_name
from tests.conftest import free_port
from tests.kubernetes.cluster import Cluster, eventually
from tests.support import Server, git, push, start_server, working_copy

# a cold Docker build of the Gradio image (pip install gradio) plus a 600 MB push: minutes on 2 busy cores
pytestmark = [pytest.mark.cluster, pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(1500)]
NAMESPACE = "spaceyard-platform-test"
NAME = "space-admin--hello"


@pytest.fixture(scope="module")
def platform(dev_cluster: Cluster, shared_env_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    dev_cluster.ensure_namespace(NAMESPACE)
    dev_cluster.reset(NAMESPACE)
    extra = {
        "SPACEYARD_BUILD_ENGINE": "docker",
        "SPACEYARD_DOCKER_BASE_IMAGE": dev_cluster.base_image,
        "SPACEYARD_REGISTRY": dev_cluster.registry,
        "SPACEYARD_RUNTIME": "kubernetes",
        "SPACEYARD_KUBERNETES_KUBECONFIG": str(dev_cluster.kubeconfig),
        "SPACEYARD_KUBERNETES_NAMESPACE": NAMESPACE,
        "SPACEYARD_KUBERNETES_ENDPOINT": "cluster-ip",
    }
    # start_server allows 60 s to answer; on a loaded 2-core machine the first start can take longer
    for attempt in range(3):
        try:
            server = start_server(tmp_path_factory.mktemp("k8s-platform"), free_port(), shared_env_dir, extra)
            break
        except RuntimeError:
            if attempt == 2:
                raise
    yield server
    server.stop()
    dev_cluster.reset(NAMESPACE)


def test_a_gradio_space_is_served_from_a_pod_sleeps_and_wakes(
    platform: Server, dev_cluster: Cluster, tmp_path: Path
) -> None:
    platform.create_space("admin/hello", sdk="gradio")
    wc = working_copy(tmp_path, "hello-gradio")
    push(platform, wc, "admin/hello")
    sha = git(wc, "rev-parse", "HEAD").stdout.strip()
    platform.wait_stage("admin/hello", {"RUNNING"}, sha=sha, timeout=600)

    (pod,) = dev_cluster.list("Pod", NAMESPACE)
    image = pod["spec"]["containers"][0]["image"]
    assert image.startswith(f"{dev_cluster.registry}/"), "the image came from the cluster's registry"
    assert pod["spec"]["nodeName"] == "cpu-0" and pod["status"]["phase"] == "Running"
    client = Client(f"{platform.url}/apps/admin/hello/", verbose=False)
    assert client.predict("Kubernetes", api_name="/greet") == "Hello Kubernetes! (v1)"
    assert platform.app_get("admin/hello", "/config").status_code == 200

    # light sleep: the pod stays (its agent keeps the warm parent, the app is stopped), with small requests;
    # not ready, so its Service routes nothing to it; the Service and the NetworkPolicy stay
    assert platform.api("POST", "/api/spaces/admin/hello/sleeptime", json={"seconds": 1}).status_code == 200
    platform.wait_stage("admin/hello", {"SLEEPING"}, timeout=120)
    (deployment,) = dev_cluster.list("Deployment", NAMESPACE)  # the one revision's
    assert deployment["spec"]["replicas"] == 1
    (asleep,) = dev_cluster.list("Pod", NAMESPACE)
    assert asleep["metadata"]["uid"] == pod["metadata"]["uid"]
    assert asleep["spec"]["containers"][0]["resources"]["requests"]["cpu"] == "10m"
    eventually(
        lambda: not [
            c for c in (dev_cluster.get("Pod", NAMESPACE, asleep["metadata"]["name"]) or {})["status"]["conditions"]
            if c["type"] == "Ready" and c["status"] == "True"
        ],
        "the sleeping pod is not ready",
    )  # fmt: skip
    assert dev_cluster.get("NetworkPolicy", NAMESPACE, NAME) is not None

    # wake: a visit through the gateway is held while the app is forked again in the same pod
    assert platform.api("POST", "/api/spaces/admin/hello/sleeptime", json={"seconds": 3600}).status_code == 200
    assert platform.app_get("admin/hello", "/config").status_code == 200
    assert platform.runtime("admin/hello")["stage"] == "RUNNING"
    assert client.predict("again", api_name="/greet") == "Hello again! (v1)"
    (awake,) = dev_cluster.list("Pod", NAMESPACE)
    assert awake["metadata"]["uid"] == pod["metadata"]["uid"]
    assert awake["status"]["containerStatuses"][0]["restartCount"] == 0

    # delete: every object of the Space goes
    r = platform.api("DELETE", "/api/repos/delete", json={"type": "space", "organization": "admin", "name": "hello"})
    assert r.status_code == 200, r.text
    # (the agent's files stay: one ConfigMap per agent version, shared by the namespace's Spaces)
    eventually(
        lambda: (
            not [
                o
                for k in ("ConfigMap", "Secret", "Deployment", "Service", "Pod")
                for o in dev_cluster.list(k, NAMESPACE)
                if o["metadata"]["name"].startswith(NAME)
            ]
        ),
        "nothing of the Space is left",
        timeout=120,
    )
    assert [c["metadata"]["name"] for c in dev_cluster.list("ConfigMap", NAMESPACE)] == [agent_config_name()]
