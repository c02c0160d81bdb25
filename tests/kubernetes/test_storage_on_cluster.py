"""A Space's persistent ``/data`` on the real dev cluster: a PersistentVolumeClaim of its own that survives
a redeploy (a new revision, a new pod) and a sleep (scaled to zero), and is deleted with the Space; its used
bytes are read in the running pod, and a larger storage tier asks for a larger claim.

The dev cluster has no volume provisioner, so the test plays the operator's part, as documented in
docs/kubernetes.md: a StorageClass with no provisioner and a pre-created hostPath PersistentVolume bound
to the claim the runtime will make (the node is this machine). Namespace and ids are prefixed h15data.
Also: an ``OOMKilled`` container reads "out of memory (limit N GiB of flavor X)" (a pod status as the
kubelet reports it).
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException
from kubernetes.stream import stream

from spaceyard_runtime.api import AppSpec, Flavor, StorageSpec
from spaceyard_runtime.kubernetes import objects, reconcile
from spaceyard_runtime.kubernetes.desired import ClusterConfig
from spaceyard_runtime.kubernetes.runtime import KubernetesRuntime
from spaceyard_runtime.settings import RuntimeSettings
from tests.kubernetes.cluster import Cluster, eventually

NAMESPACE = "h15data-spaces"
CLASS = "h15data-static"
HOST_DIR = Path("/var/tmp/h15data-pv")
SETTINGS = RuntimeSettings(
    runtime="kubernetes", kubernetes_namespace=NAMESPACE, kubernetes_storage_class=CLASS, light_sleep_memory_mib=0
)  # the test image runs its own command: no in-container agent


def _ignore_missing(call: Any) -> None:
    try:
        call()
    except ApiException as exc:
        if exc.status != 404:
            raise


@pytest.fixture
def volume(dev_cluster: Cluster) -> Iterator[str]:
    dev_cluster.ensure_namespace(NAMESPACE)
    dev_cluster.reset(NAMESPACE)
    storage = k8s.StorageV1Api(dev_cluster.admin)
    with_class: Any = {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": CLASS},
        "provisioner": "kubernetes.io/no-provisioner",
        "reclaimPolicy": "Retain",
        "volumeBindingMode": "Immediate",
        "allowVolumeExpansion": True,  # the API server then accepts a larger claim (no resizer here grows it)
    }
    try:
        storage.create_storage_class(with_class)
    except ApiException as exc:
        if exc.status != 409:
            raise
        storage.patch_storage_class(CLASS, {"allowVolumeExpansion": True})
    name = f"h15data{secrets.token_hex(4)}"
    claim = objects.data_claim_name(name)
    path = HOST_DIR / name
    path.mkdir(parents=True)
    shutil.chown(path, 1000, 1000)
    pv: Any = {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": claim},
        "spec": {
            "capacity": {"storage": "16Mi"},
            "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": CLASS,
            "claimRef": {"namespace": NAMESPACE, "name": claim},
            "hostPath": {"path": str(path), "type": "Directory"},
        },
    }
    dev_cluster.core.create_persistent_volume(pv)
    yield name
    dev_cluster.reset(NAMESPACE)
    _ignore_missing(lambda: dev_cluster.core.delete_namespaced_persistent_volume_claim(claim, NAMESPACE))
    _ignore_missing(lambda: dev_cluster.core.delete_persistent_volume(claim))
    shutil.rmtree(path, ignore_errors=True)


def _claim(cluster: Cluster, name: str) -> dict[str, Any] | None:
    try:
        claim = cluster.core.read_namespaced_persistent_volume_claim(name, NAMESPACE)
        found: dict[str, Any] = cluster.admin.sanitize_for_serialization(claim)  # type: ignore[no-untyped-call]
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return found


@pytest.fixture
async def runtime(dev_cluster: Cluster) -> AsyncIterator[KubernetesRuntime]:
    rt = KubernetesRuntime(SETTINGS, api_client=dev_cluster.client())
    yield rt
    await rt.aclose()


def _in_pod(cluster: Cluster, code: str) -> str:
    """Run ``python3 -c code`` in the Space's running pod (the API server's exec, no kubectl needed)."""
    pods = [
        p["metadata"]["name"]
        for p in cluster.list("Pod", NAMESPACE)
        if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")
    ]
    assert len(pods) == 1, pods
    out: str = stream(
        client.CoreV1Api(cluster.client()).connect_get_namespaced_pod_exec,
        pods[0], NAMESPACE, command=["python3", "-c", code], stderr=True, stdin=False, stdout=True, tty=False,
    )  # fmt: skip
    return out.strip()


@pytest.mark.cluster
async def test_data_claim_survives_redeploy_and_sleep_and_goes_with_the_space(
    runtime: KubernetesRuntime, dev_cluster: Cluster, volume: str
) -> None:
    storage = StorageSpec(volume=volume, size_bytes=16 * 2**20)
    spec = AppSpec(space_id="h15data/keeps", revision="1" * 40, sdk="gradio", artifact=dev_cluster.images["ok"],
                   flavor=Flavor(name="cpu-basic"), storage=storage)  # fmt: skip
    handle = await runtime.start(spec, lambda line: None)
    await runtime.wait_ready(handle, timeout=180)
    assert _in_pod(dev_cluster, "open('/data/kept', 'w').write('x' * 2**20); print('ok')") == "ok"
    claim = _claim(dev_cluster, objects.data_claim_name(volume))
    assert claim is not None and claim["status"]["phase"] == "Bound"
    used = await runtime.volume_usage(volume)  # du in the running pod
    assert used is not None and 2**20 <= used < 2 * 2**20, used

    # a redeploy on a larger tier: a new revision replaces the pod; the claim asks for the new size (the
    # API server accepts it: the class allows expansion; growing the volume is its resizer's, none here)
    bigger = AppSpec(**{**spec.__dict__, "revision": "2" * 40, "storage": StorageSpec(volume, 32 * 2**20)})
    new = await runtime.start(bigger, lambda line: None)
    await runtime.wait_ready(new, timeout=180)
    await runtime.stop(handle)
    assert _in_pod(dev_cluster, "import os; print(os.listdir('/data'))") == "['kept']"
    grown = _claim(dev_cluster, objects.data_claim_name(volume))
    assert grown is not None and grown["spec"]["resources"]["requests"]["storage"] == str(32 * 2**20)
    assert grown["status"]["capacity"]["storage"] == "16Mi", "no resizer on the dev cluster: the PV stays"

    await runtime.suspend(new)  # asleep: no pod; the claim stays
    eventually(lambda: dev_cluster.list("Pod", NAMESPACE) == [], "the pod is gone", timeout=120)
    assert await runtime.volume_usage(volume) is None, "no pod to ask while asleep"
    woken = await runtime.resume(new, lambda line: None)
    await runtime.wait_ready(woken, timeout=180)
    assert _in_pod(dev_cluster, "import os; print(os.listdir('/data'))") == "['kept']"

    # deleted with the Space: the apps, then the claim
    await runtime.remove(woken)
    assert _claim(dev_cluster, objects.data_claim_name(volume)) is not None
    await runtime.delete_volume(volume)
    gone = _claim(dev_cluster, objects.data_claim_name(volume))
    assert gone is None or gone["metadata"].get("deletionTimestamp")


def test_an_oom_killed_container_says_out_of_memory_of_its_flavor() -> None:
    pod = {
        "metadata": {"name": "p", "annotations": {objects.ANNOTATION_FLAVOR: "cpu-basic"}},
        "spec": {"containers": [{"name": "app", "resources": {"limits": {"memory": "16384Mi"}}}]},
        "status": {
            "containerStatuses": [
                {
                    "name": "app",
                    "restartCount": 3,
                    "ready": False,
                    "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                    "lastState": {"terminated": {"reason": "OOMKilled", "exitCode": 137}},
                }
            ]
        },
    }
    crash = reconcile._crash(pod, ClusterConfig())
    assert crash is not None and crash[0] == "out of memory (limit 16 GiB of flavor cpu-basic)" and crash[1] == 137
