"""The Kubernetes runtime's walls, probed from inside a real Space pod on the dev cluster.

One Space is started through the real :class:`KubernetesRuntime` on the cluster of ``helm/dev-cluster.sh``
(Pod Security *restricted* enforced on its namespace); its app is the cluster tests' image, whose
``GET /walls`` reports what the process sees. It is read through the Space's Service (ClusterIP, kube-proxy),
the path the other cluster tests use. Inside the pod the app must: run as a non-root uid, not write its root
filesystem (but write its ``/tmp``), have no service-account token, hold in its environment only what the
Space is given plus the runtime's fixed SDK variables (no ``SPACEYARD_*``, no platform credential), have no
way to gain privileges (``NoNewPrivs`` 1, no capabilities, seccomp filter on), see only its own processes
and its own loopback (the host's Redis/PostgreSQL are not there). The NetworkPolicy the runtime made for the
Space is on the server and selects the pod. What this does NOT show: that the policy is enforced. The dev
cluster's CNI is the plain ``bridge`` plugin, which ignores NetworkPolicy objects; enforcement needs Calico,
Cilium or similar (docs/kubernetes.md).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import docker
import pytest

from spaceyard_runtime.kubernetes import objects
from spaceyard_runtime.kubernetes.desired import ClusterConfig
from spaceyard_runtime.kubernetes.runtime import KubernetesRuntime
from tests.kubernetes.cluster import Cluster
from tests.kubernetes.conftest import NAMESPACE, dev_cluster, kube  # noqa: F401 (the cluster fixtures)
from tests.kubernetes.test_runtime import NAME, runtime, service_get, spec  # noqa: F401 (and its runtime)

pytestmark = pytest.mark.cluster

SPACE_ENV = {"GREETING": "hi", "MY_SECRET": "s3cret-value", "HF_TOKEN": "hf_space_own_token"}
# What the runtime adds for every SDK (objects.app_env), and what the kubelet adds for every container.
RUNTIME_ENV = {
    "HOME",
    "XDG_CACHE_HOME",
    "HF_HOME",
    "MPLCONFIGDIR",
    "PORT",
    "GRADIO_SERVER_NAME",
    "GRADIO_SERVER_PORT",
    "STREAMLIT_SERVER_ADDRESS",
    "STREAMLIT_SERVER_PORT",
}
KUBELET_ENV = {"HOSTNAME", "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT", "KUBERNETES_SERVICE_PORT_HTTPS"}
KUBELET_ENV |= {"KUBERNETES_PORT", "KUBERNETES_PORT_443_TCP", "KUBERNETES_PORT_443_TCP_ADDR"}
KUBELET_ENV |= {"KUBERNETES_PORT_443_TCP_PORT", "KUBERNETES_PORT_443_TCP_PROTO"}


def image_env(image: str) -> set[str]:
    """The variables the test image itself sets (``ENV`` of the debootstrap base image)."""
    client = docker.from_env()
    try:
        return {e.split("=", 1)[0] for e in client.images.get(image).attrs["Config"]["Env"] or []}
    finally:
        client.close()


async def test_a_space_pod_keeps_its_walls(runtime: KubernetesRuntime, kube: Cluster) -> None:  # noqa: F811
    handle = await runtime.start(spec(kube.images["ok"], env=SPACE_ENV), lambda line: None)
    await runtime.wait_ready(handle, timeout=120)
    response = await asyncio.to_thread(service_get, kube, handle, "/walls")
    assert response.status_code == 200
    seen: dict[str, Any] = json.loads(response.text)

    # Not root, whatever the image says: the pod's securityContext sets the uid.
    run_as = ClusterConfig().run_as_user
    assert seen["uid"] == seen["euid"] == run_as != 0 and seen["gid"] == run_as
    assert 0 not in seen["groups"]
    # Read-only root filesystem: writes fail with EROFS (not merely EACCES, which uid 1000 would get on a
    # writable root too) and / is mounted ro; /tmp (the pod's emptyDir) is the one writable place.
    assert seen["write_usr"] == seen["write_root"] == "EROFS", (seen["write_usr"], seen["write_root"])
    assert all("ro" in options for options in seen["root_mount"]) and seen["root_mount"], seen["root_mount"]
    assert seen["write_tmp"] is None
    # No service-account token: the app cannot talk to the API server as anyone.
    assert seen["service_account"] is False
    # No privilege escalation: no_new_privs set, no capability at all, seccomp in filter mode.
    status = seen["status"]
    assert status["NoNewPrivs"] == "1"
    assert int(status["CapEff"], 16) == int(status["CapPrm"], 16) == int(status["CapAmb"], 16) == 0, status
    assert int(status["CapBnd"], 16) == 0, status
    assert status["Seccomp"] == "2", "RuntimeDefault seccomp profile"
    # Its own PID namespace (the app is PID 1) and its own network namespace (the host's loopback services
    # - Redis 6379, PostgreSQL 5432 on this machine - are not on the pod's loopback).
    assert seen["pids"][0] == 1 and len(seen["pids"]) < 5, seen["pids"]
    assert all(code != 0 for code in seen["loopback"].values()), seen["loopback"]

    # The environment: exactly the Space's variables and secrets plus fixed, non-secret variables.
    env: dict[str, str] = seen["env"]
    assert not [k for k in env if k.startswith("SPACEYARD_")]
    assert {k: env[k] for k in SPACE_ENV} == SPACE_ENV
    extra = set(env) - set(SPACE_ENV) - RUNTIME_ENV - KUBELET_ENV - image_env(kube.base_image)
    assert extra == set(), f"variables the Space was not given: {sorted(extra)}"
    assert env["KUBERNETES_SERVICE_HOST"], "the API server's address is visible (not a credential: no token)"
    assert kube.secret_data(NAMESPACE, NAME) == SPACE_ENV, "the Space's Secret holds its variables, nothing else"

    # The NetworkPolicy the runtime made is stored on the API server and selects this pod. The dev
    # cluster's bridge CNI does not enforce it; that needs a policy-enforcing CNI (not tested here).
    policy = kube.get("NetworkPolicy", NAMESPACE, NAME)
    assert policy is not None
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    (pod,) = kube.list("Pod", NAMESPACE, objects.space_selector("alice/demo"))
    selector = policy["spec"]["podSelector"]["matchLabels"]
    assert selector.items() <= pod["metadata"]["labels"].items()
    (ingress,) = policy["spec"]["ingress"]
    assert ingress["from"][0]["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "spaceyard"}
    internet = policy["spec"]["egress"][-1]["to"][0]["ipBlock"]
    assert internet["cidr"] == "0.0.0.0/0" and internet["except"], "the blocked ranges are excluded from egress"
