"""The controller against the real API server of ``helm/dev-cluster.sh``, through the official client.

Covers the life of a Space (create, image update, flavor change, sleep, wake, delete), the capacity
wait for GPUs (a distinct stage with the scheduler's own message, never slept), crash loops of a real
container, a controller restart half-way, and two replicas sharing one Lease. Server-side validation,
defaulting, ReplicaSets, rolling updates, the garbage collector, the scheduler and kubelet are the real
ones; the CPU node is a real kubelet with containerd, the GPU node is managed by kwok.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from spaceyard_runtime.kubernetes import objects, slugs
from spaceyard_runtime.kubernetes.clients import KubeApi
from spaceyard_runtime.kubernetes.controller import ClusterRecordSource, Controller, LeaderElector
from spaceyard_runtime.kubernetes.desired import ClusterConfig, DesiredSpace, SpaceStatus, Stage
from spaceyard_runtime.kubernetes.reconcile import apply_space, delete_space, observe_space, reconcile_space
from tests.kubernetes.cluster import Cluster, eventually
from tests.kubernetes.conftest import NAMESPACE

pytestmark = pytest.mark.cluster
NAME = "space-alice--demo"
KINDS = ["ConfigMap", "Secret", "Service", "Deployment", "NetworkPolicy"]


class Source:
    """The control plane's desired state, editable by the test."""

    def __init__(self, *spaces: DesiredSpace) -> None:
        self.spaces = {s.space_id: s for s in spaces}

    def desired_spaces(self) -> Iterable[DesiredSpace]:
        return list(self.spaces.values())

    def desired_space(self, name: str) -> DesiredSpace | None:
        return next((s for s in self.spaces.values() if slugs.space_name(s.space_id) == name), None)

    def set(self, space: DesiredSpace) -> None:
        self.spaces[space.space_id] = space


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def rspace(kube: Cluster, space: Callable[..., DesiredSpace]) -> Callable[..., DesiredSpace]:
    """``space(...)`` with a real image of the cluster's registry (``mode="ok"|"slow"|"crash"``)."""

    def make(space_id: str = "alice/demo", flavor: str = "cpu-basic", mode: str = "ok", **kwargs: Any) -> DesiredSpace:
        kwargs.setdefault("image", kube.images[mode])
        return space(space_id, flavor, **kwargs)

    return make


def rev(kube: Cluster, space_id: str = "alice/demo") -> str:
    """The name of the Space's current revision (its Deployment and Service), from its owner."""
    owner = kube.get("ConfigMap", NAMESPACE, slugs.space_name(space_id))
    assert owner is not None, space_id
    return slugs.revision_name(space_id, owner["data"]["template"])


def space_writes(kube: Cluster) -> list[tuple[str, str]]:
    """Writes other than Lease renewals."""
    return [w for w in kube.writes if "/leases" not in w[1]]


def pods(kube: Cluster) -> list[dict[str, Any]]:
    return kube.list("Pod", NAMESPACE)


def controller(
    kube: Cluster, cfg: ClusterConfig, source: Source, identity: str = "one", **kwargs: Any
) -> tuple[Controller, list[SpaceStatus]]:
    seen: list[SpaceStatus] = []
    ctl = Controller(kube.client(), cfg, source, identity=identity, status_sink=seen.append, **kwargs)
    return ctl, seen


def settle(ctl: Controller, stage: Stage, name: str = NAME, timeout: float = 120) -> SpaceStatus:
    """Resync until the Space reaches ``stage`` (a real cluster needs a few seconds to start a pod)."""

    def reached() -> SpaceStatus | None:
        statuses = ctl.resync()
        status = (statuses or {}).get(name)
        return status if status is not None and status.stage is stage else None

    status: SpaceStatus = eventually(reached, f"{name} {stage.value}", timeout=timeout, interval=0.5)
    return status


def test_create_is_idempotent_and_owned(kube: Cluster, cfg: ClusterConfig, rspace: Callable[..., DesiredSpace]) -> None:
    ctl, seen = controller(kube, cfg, Source(rspace(secrets={"TOKEN": "t0ken"})))
    settle(ctl, Stage.RUNNING)
    assert seen[-1].stage is Stage.RUNNING and seen[0].stage in (Stage.STARTING, Stage.RUNNING)
    owner = kube.get("ConfigMap", NAMESPACE, NAME)
    assert owner is not None
    for kind in KINDS[1:]:
        obj = kube.get(kind, NAMESPACE, rev(kube) if kind in ("Deployment", "Service") else NAME)
        assert obj is not None, kind
        assert obj["metadata"]["ownerReferences"][0]["uid"] == owner["metadata"]["uid"]
    (pod,) = pods(kube)
    assert pod["spec"]["nodeName"] == "cpu-0", "cpu-basic runs on the real node of the CPU pool"
    # the real ReplicaSet sits between the Deployment and the pod
    assert pod["metadata"]["ownerReferences"][0]["kind"] == "ReplicaSet"
    assert kube.secret_data(NAMESPACE, NAME) == {"TOKEN": "t0ken"}
    writes = len(space_writes(kube))
    ctl.resync()
    ctl.resync()
    assert len(space_writes(kube)) == writes, "a resync of an unchanged Space writes nothing"
    assert seen[-1].stage is Stage.RUNNING


def test_image_update_rolls_to_the_new_image(
    kube: Cluster, cfg: ClusterConfig, rspace: Callable[..., DesiredSpace]
) -> None:
    source = Source(rspace())
    ctl, _ = controller(kube, cfg, source)
    settle(ctl, Stage.RUNNING)
    old = rev(kube)
    new_image = kube.images["slow"]
    source.set(rspace(image=new_image, revision="2" * 40))
    settle(ctl, Stage.RUNNING)
    assert rev(kube) != old, "a new revision is a Deployment and a Service of its own"
    # once it serves, the controller removes the older revision nobody keeps (retiring is empty)
    assert {d["metadata"]["name"] for d in kube.list("Deployment", NAMESPACE)} == {rev(kube)}
    assert {d["metadata"]["name"] for d in kube.list("Service", NAMESPACE)} == {rev(kube)}
    current = eventually(lambda: len(pods(kube)) == 1 and pods(kube), "the old pod is gone after the update")
    (pod,) = current
    assert pod["spec"]["containers"][0]["image"] == new_image
    assert pod["metadata"]["labels"][objects.LABEL_REVISION] == "2" * 40


def test_flavor_change_moves_the_space_to_the_gpu_pool(
    kube: Cluster, cfg: ClusterConfig, rspace: Callable[..., DesiredSpace]
) -> None:
    source = Source(rspace())
    ctl, _ = controller(kube, cfg, source)
    settle(ctl, Stage.RUNNING)
    source.set(rspace(flavor="t4-small"))
    settle(ctl, Stage.RUNNING)
    (pod,) = eventually(lambda: len(pods(kube)) == 1 and pods(kube), "one pod after Recreate")
    assert pod["spec"]["nodeName"] == "gpu-0", "the real scheduler put the T4 Space on the GPU pool's node"
    assert pod["spec"]["nodeSelector"] == {"nvidia.com/gpu.product": "Tesla-T4"}
    assert pod["spec"]["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert pod["spec"]["containers"][0]["resources"]["limits"] == {
        "cpu": "4",
        "memory": "15Gi",
        "nvidia.com/gpu": "1",
    }, "quantities as the API server canonicalises them"
    deployment = kube.get("Deployment", NAMESPACE, rev(kube))
    assert deployment is not None and deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert len(kube.list("Deployment", NAMESPACE)) == 1, "a GPU Space's old revision went before the new one"


def test_sleep_scales_to_zero_and_wake_scales_back(
    kube: Cluster, cfg: ClusterConfig, rspace: Callable[..., DesiredSpace]
) -> None:
    source = Source(rspace())
    ctl, _ = controller(kube, cfg, source)
    settle(ctl, Stage.RUNNING)
    source.set(rspace(awake=False))
    settle(ctl, Stage.SLEEPING)
    eventually(lambda: pods(kube) == [], "the pod is gone while asleep")
    deployment = kube.get("Deployment", NAMESPACE, rev(kube))
    assert deployment is not None and deployment["spec"]["replicas"] == 0
    assert kube.get("Service", NAMESPACE, rev(kube)) is not None, "the Service stays while asleep"
    assert ("PATCH", f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/{rev(kube)}/scale") in kube.writes
    source.set(rspace(awake=True))
    settle(ctl, Stage.RUNNING)
    assert len(pods(kube)) == 1
    source.set(rspace(paused=True))
    settle(ctl, Stage.PAUSED)


def test_kubectl_scale_behind_our_back_is_undone(
    kube: Cluster, cfg: ClusterConfig, rspace: Callable[..., DesiredSpace], kube_api: KubeApi
) -> None:
    ctl, _ = controller(kube, cfg, Source(rspace()))
    settle(ctl, Stage.RUNNING)
    kube_api.scale(rev(kube), 0)
    eventually(lambda: pods(kube) == [], "scaled to zero behind the controller's back")
    settle(ctl, Stage.RUNNING)
    kube_api.delete("Deployment", rev(kube))
    settle(ctl, Stage.RUNNING)
    assert kube.get("Deployment", NAMESPACE, rev(kube)) is not None and len(pods(kube)) == 1


def test_gpu_space_waits_for_capacity_and_is_not_slept(
    kube: Cluster, cfg: ClusterConfig, rspace: Callable[..., DesiredSpace]
) -> None:
    source = Source(rspace("bob/gpu-hog", flavor="t4-small"))  # takes the GPU pool's only GPU
    ctl, seen = controller(kube, cfg, source)
    settle(ctl, Stage.RUNNING, name="space-bob--gpu-hog")
    source.set(rspace(flavor="t4-small"))
    waiting = settle(ctl, Stage.SCHEDULING)
    # the real scheduler's message
    assert "0/2 nodes are available" in waiting.message and "Insufficient nvidia.com/gpu" in waiting.message
    # the control plane's idle policy asks for sleep while the pod waits: deferred, the pod stays
    source.set(rspace(flavor="t4-small", awake=False))
    statuses = ctl.resync()
    assert statuses is not None and statuses[NAME].stage is Stage.SCHEDULING
    assert statuses[NAME].sleep_deferred is True
    (pod,) = kube.list("Pod", NAMESPACE, objects.space_selector("alice/demo"))
    assert pod["status"]["phase"] == "Pending"
    deployment = kube.get("Deployment", NAMESPACE, rev(kube))
    assert deployment is not None and deployment["spec"]["replicas"] == 1
    # a GPU node joins (what a cluster autoscaler does for the pending pod): the same pod runs there
    kube.add_gpu_node("gpu-1")
    source.set(rspace(flavor="t4-small"))
    settle(ctl, Stage.RUNNING)
    (running,) = kube.list("Pod", NAMESPACE, objects.space_selector("alice/demo"))
    assert running["metadata"]["uid"] == pod["metadata"]["uid"] and running["spec"]["nodeName"] == "gpu-1"
    source.set(rspace(flavor="t4-small", awake=False))
    settle(ctl, Stage.SLEEPING)
    assert Stage.SCHEDULING in [s.stage for s in seen if s.space_id == "alice/demo"]


def test_explicit_pause_is_honoured_while_waiting(
    kube: Cluster, cfg: ClusterConfig, rspace: Callable[..., DesiredSpace]
) -> None:
    source = Source(rspace(flavor="l4x4"))
    ctl, _ = controller(kube, cfg, source)
    waiting = settle(ctl, Stage.SCHEDULING)
    assert "didn't match Pod's node affinity/selector" in waiting.message, "no L4 node in this cluster"
    source.set(rspace(flavor="l4x4", paused=True))
    settle(ctl, Stage.PAUSED)
    eventually(lambda: pods(kube) == [], "the pending pod is removed by the pause")


def test_crash_loop_is_a_runtime_error_with_the_last_log_lines(
    kube: Cluster, cfg: ClusterConfig, rspace: Callable[..., DesiredSpace]
) -> None:
    ctl, seen = controller(kube, cfg, Source(rspace(mode="crash")))
    status = settle(ctl, Stage.RUNTIME_ERROR)
    assert status.exit_code == 3 and status.restarts >= 1
    assert "exit code 3" in status.message
    assert status.log_tail.endswith("ModuleNotFoundError: torch")
    assert "line 0\n" not in status.log_tail and len(status.log_tail.splitlines()) == 30
    assert seen[-1].stage is Stage.RUNTIME_ERROR


def test_delete_removes_everything(
    kube: Cluster, cfg: ClusterConfig, rspace: Callable[..., DesiredSpace], kube_api: KubeApi
) -> None:
    source = Source(rspace(), rspace("bob/other"))
    ctl, _ = controller(kube, cfg, source)
    settle(ctl, Stage.RUNNING)
    settle(ctl, Stage.RUNNING, name="space-bob--other")
    del source.spaces["alice/demo"]
    ctl.resync()
    for kind in KINDS:
        assert all(o["metadata"]["name"].startswith("space-bob--other") for o in kube.list(kind, NAMESPACE)), kind
    eventually(
        lambda: all(p["metadata"]["name"].startswith("space-bob--other") for p in pods(kube)),
        "alice's pod goes with its ReplicaSet",
    )
    assert kube.get("Deployment", NAMESPACE, rev(kube, "bob/other")) is not None
    assert delete_space(kube_api, "alice/demo") is False, "deleting again is a no-op (404 = gone)"


def test_deleting_the_owner_garbage_collects_the_rest(
    kube: Cluster, cfg: ClusterConfig, rspace: Callable[..., DesiredSpace], kube_api: KubeApi
) -> None:
    apply_space(kube_api, rspace(), cfg)
    eventually(lambda: pods(kube), "a pod")
    assert kube_api.delete("ConfigMap", NAME) is True
    # the real garbage collector follows the ownerReferences (Deployment -> ReplicaSet -> Pod)
    eventually(
        lambda: all(kube.list(kind, NAMESPACE) == [] for kind in [*KINDS, "ReplicaSet", "Pod"]),
        "everything owned by the ConfigMap is collected",
    )


def test_a_new_controller_converges_after_a_crash_half_way(
    kube: Cluster, cfg: ClusterConfig, rspace: Callable[..., DesiredSpace], kube_api: KubeApi
) -> None:
    desired = rspace(secrets={"A": "1"})
    # the first controller died after writing the owner and the Secret
    _, owner = kube_api.ensure(objects.make_owner(desired, cfg))
    kube_api.ensure(objects.make_secret(desired, cfg, owner))
    ctl, _ = controller(kube, cfg, Source(desired), identity="second")
    settle(ctl, Stage.RUNNING)
    for kind in KINDS:
        assert len(kube.list(kind, NAMESPACE)) == 1, kind
    assert len(pods(kube)) == 1
    writes = len(space_writes(kube))
    ctl2, _ = controller(kube, cfg, Source(desired), identity="second")  # same identity: a restarted pod
    assert ctl2.resync() is not None
    assert len(space_writes(kube)) == writes, "nothing to do: no duplicates, no rewrites"


def test_two_replicas_only_the_leader_acts(
    kube: Cluster, cfg: ClusterConfig, rspace: Callable[..., DesiredSpace]
) -> None:
    clock = Clock()
    source = Source(rspace())
    one, seen_one = controller(kube, cfg, source, identity="one", clock=clock, lease_duration=15)
    two, seen_two = controller(kube, cfg, source, identity="two", clock=clock, lease_duration=15)
    assert one.resync() is not None
    writes = len(kube.writes)
    assert two.resync() is None
    assert len(kube.writes) == writes, "the standby replica writes nothing"
    source.set(rspace(image=kube.images["slow"]))
    clock.now += 10
    assert two.resync() is None and one.resync() is not None
    assert seen_two == [] and seen_one
    # "one" stops renewing; once "two" has seen the same lease version for the lease duration, it takes over
    clock.now += 10
    assert two.resync() is None  # first sight of the version "one" renewed at +10
    clock.now += 16
    assert two.resync() is not None
    assert one.resync() is None
    lease = kube.get("Lease", NAMESPACE, "spaceyard-controller")
    assert lease is not None
    assert lease["spec"]["holderIdentity"] == "two" and lease["spec"]["leaseTransitions"] == 1


def test_racing_for_an_expired_lease_has_one_winner(kube: Cluster) -> None:
    clock = Clock()
    apis = [KubeApi(kube.client(), NAMESPACE) for _ in range(6)]
    LeaderElector(apis[0], "race", "old", 15, clock).try_acquire_or_renew()
    electors = [LeaderElector(api, "race", f"r{i}", 15, clock) for i, api in enumerate(apis[1:])]
    assert not any(e.try_acquire_or_renew() for e in electors)
    clock.now += 60  # "old" never renewed
    barrier = threading.Barrier(len(electors))
    results: list[bool] = []

    def contend(elector: LeaderElector) -> None:
        barrier.wait()
        results.append(elector.try_acquire_or_renew())

    threads = [threading.Thread(target=contend, args=(e,)) for e in electors]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(True) == 1, "the API server's resourceVersion check lets one update through"


def test_clock_skew_does_not_shorten_a_lease(kube: Cluster) -> None:
    """A holder whose clock is far behind still keeps its lease while it renews."""
    behind, ahead = Clock(), Clock()
    ahead.now += 3600
    api = KubeApi(kube.client(), NAMESPACE)
    holder = LeaderElector(api, "skew", "holder", 15, behind)
    other = LeaderElector(api, "skew", "other", 15, ahead)
    assert holder.try_acquire_or_renew()
    for _ in range(3):
        assert not other.try_acquire_or_renew()
        behind.now += 5
        ahead.now += 5
        assert holder.try_acquire_or_renew()


def test_release_hands_over_without_waiting(kube: Cluster) -> None:
    clock = Clock()
    api = KubeApi(kube.client(), NAMESPACE)
    first = LeaderElector(api, "handover", "first", 15, clock)
    second = LeaderElector(api, "handover", "second", 15, clock)
    assert first.try_acquire_or_renew() and not second.try_acquire_or_renew()
    first.release()
    assert second.try_acquire_or_renew()


def test_run_loop_reacts_to_pod_events_and_releases_the_lease(
    kube: Cluster, cfg: ClusterConfig, rspace: Callable[..., DesiredSpace]
) -> None:
    running = threading.Event()

    def sink(status: SpaceStatus) -> None:
        if status.stage is Stage.RUNNING:
            running.set()

    ctl = Controller(
        kube.client(),
        cfg,
        Source(rspace(mode="slow")),  # ready ~12 s after it starts
        identity="looper",
        status_sink=sink,
        lease_duration=3,
        resync_interval=3600,  # only a watch event can report RUNNING in this test
    )
    stop = threading.Event()
    thread = threading.Thread(target=ctl.run, args=(stop,))
    thread.start()
    try:
        eventually(lambda: pods(kube) and ctl.statuses.get(NAME), "the first resync", timeout=60)
        assert ctl.statuses[NAME].stage is Stage.STARTING
        assert running.wait(90), "the pod watch triggers a reconcile when the kubelet reports it ready"
    finally:
        stop.set()
        thread.join(30)
    assert not thread.is_alive()
    lease = kube.get("Lease", NAMESPACE, "spaceyard-controller")
    assert lease is not None and lease["spec"]["holderIdentity"] == ""


def test_cluster_record_source_replays_what_the_runtime_wrote(
    kube: Cluster, cfg: ClusterConfig, rspace: Callable[..., DesiredSpace], kube_api: KubeApi, flavors: Any
) -> None:
    desired = rspace(flavor="cpu-upgrade", secrets={"TOKEN": "x"}, variables={"MODE": "demo"}, app_port=8501)
    apply_space(kube_api, desired, cfg)
    (replayed,) = ClusterRecordSource(kube_api, flavors).desired_spaces()
    assert replayed == desired
    kube_api.delete("Deployment", rev(kube))
    eventually(lambda: kube.get("Deployment", NAMESPACE, rev(kube)) is None, "the Deployment is gone")
    assert reconcile_space(kube_api, replayed, cfg).stage in (Stage.STARTING, Stage.SCHEDULING)
    assert kube.get("Deployment", NAMESPACE, rev(kube)) is not None


def test_a_pod_event_after_a_new_revision_does_not_put_the_old_one_back(
    kube: Cluster, cfg: ClusterConfig, rspace: Callable[..., DesiredSpace], kube_api: KubeApi, flavors: Any
) -> None:
    # Found by the chart installed for real: the platform rolled a Space to a new revision, the new pod's
    # first event made the controller reconcile from its last resync's listing, and it wrote the old
    # revision back into the owner and the Deployment, for good.
    old = rspace()
    apply_space(kube_api, old, cfg)  # what KubernetesRuntime.start writes
    ctl = Controller(kube.client(), cfg, ClusterRecordSource(kube_api, flavors), identity="x", delete_orphans=False)
    assert ctl.resync() is not None  # lists revision 1
    new = dataclasses.replace(old, revision="2" * 40, image=kube.images["slow"])
    apply_space(kube_api, new, cfg)  # the platform's rolling update, between two resyncs
    ctl.reconcile_one(NAME)  # the new pod's first watch event
    owner, deployment = kube.get("ConfigMap", NAMESPACE, NAME), kube.get("Deployment", NAMESPACE, rev(kube))
    assert owner is not None and owner["data"]["revision"] == "2" * 40
    assert deployment is not None
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == kube.images["slow"]


def test_a_reconcile_from_a_read_older_than_the_runtimes_write_leaves_the_newer_state(
    kube: Cluster, cfg: ClusterConfig, rspace: Callable[..., DesiredSpace], kube_api: KubeApi, flavors: Any
) -> None:
    # Found under the deployed controller: a light sleep's pod resize is a pod event; the controller read the
    # owner (still awake), the runtime wrote the sleep, and the controller wrote what it had read back over it:
    # the owner said awake again, so the light sleeper was never deepened by the budget.
    awake = rspace()
    apply_space(kube_api, awake, cfg)
    records = ClusterRecordSource(kube_api, flavors)

    class ReadBeforeTheWrite:
        """The controller's first read of the Space happened before the runtime's write."""

        reads = 0

        def desired_spaces(self) -> list[DesiredSpace]:
            return records.desired_spaces()

        def desired_space(self, name: str) -> DesiredSpace | None:
            self.reads += 1
            return awake if self.reads == 1 else records.desired_space(name)

    ctl = Controller(kube.client(), cfg, ReadBeforeTheWrite(), identity="x", delete_orphans=False, owner_is_record=True)
    apply_space(kube_api, dataclasses.replace(awake, awake=False), cfg)  # the runtime's sleep, after that read
    assert ctl.resync() is not None
    owner = kube.get("ConfigMap", NAMESPACE, NAME)
    assert owner is not None and owner["data"]["awake"] == "false", "the owner is the runtime's, never rewritten"
    deployment = kube.get("Deployment", NAMESPACE, rev(kube))
    assert deployment is not None and deployment["spec"]["replicas"] == 0, "converged again to the newer state"


def test_cluster_record_source_skips_unusable_owners_without_deleting_them(
    kube: Cluster, cfg: ClusterConfig, rspace: Callable[..., DesiredSpace], kube_api: KubeApi, flavors: Any
) -> None:
    apply_space(kube_api, rspace(), cfg)
    apply_space(kube_api, rspace("bob/gone-flavor"), cfg)
    owner = kube.get("ConfigMap", NAMESPACE, "space-bob--gone-flavor")
    assert owner is not None
    owner["data"]["flavor"] = "h100x8"  # the operator removed this flavor from the file
    kube_api.replace(owner)
    source = ClusterRecordSource(kube_api, flavors)
    assert [s.space_id for s in source.desired_spaces()] == ["alice/demo"]
    ctl = Controller(kube.client(), cfg, source, identity="x", delete_orphans=False)
    assert ctl.resync() is not None
    assert kube.get("Deployment", NAMESPACE, rev(kube, "bob/gone-flavor")) is not None


def test_observe_reports_absent_and_previous_version_serving(
    kube: Cluster, cfg: ClusterConfig, rspace: Callable[..., DesiredSpace], kube_api: KubeApi
) -> None:
    assert observe_space(kube_api, "alice/demo", cfg).stage is Stage.ABSENT
    first = rspace()
    eventually(lambda: reconcile_space(kube_api, first, cfg).stage is Stage.RUNNING, "first version ready")
    # a real rolling update (maxSurge 1, maxUnavailable 0): the old pod serves while the new one starts
    status = reconcile_space(kube_api, dataclasses.replace(first, image=kube.images["slow"]), cfg)
    assert status.stage is Stage.STARTING
    eventually(
        lambda: observe_space(kube_api, "alice/demo", cfg).message == "previous version still serving",
        "the surge pod exists next to the serving one",
    )
    assert len(pods(kube)) == 2


def test_an_unreachable_api_server_means_standby_not_a_crash(
    kube: Cluster, cfg: ClusterConfig, rspace: Callable[..., DesiredSpace]
) -> None:
    ctl, _ = controller(kube, cfg, Source(rspace()))
    assert ctl.resync() is not None and ctl.elector.is_leader
    ctl.api.client.configuration.host = "https://127.0.0.1:9"  # the API server is gone
    assert ctl.resync() is None and not ctl.elector.is_leader


def test_the_controller_entry_point_repairs_and_releases_on_sigterm(
    kube: Cluster, cfg: ClusterConfig, rspace: Callable[..., DesiredSpace], kube_api: KubeApi, tmp_path: Path
) -> None:
    """``python -m spaceyard_runtime.kubernetes.controller`` as the chart runs it: env settings, kubeconfig."""
    apply_space(kube_api, rspace(), cfg)
    kube_api.delete("Deployment", rev(kube))
    eventually(lambda: kube.get("Deployment", NAMESPACE, rev(kube)) is None, "the Deployment is gone")
    env = {
        **os.environ,
        "SPACEYARD_KUBERNETES_KUBECONFIG": str(kube.kubeconfig),
        "SPACEYARD_KUBERNETES_NAMESPACE": NAMESPACE,
        "SPACEYARD_KUBERNETES_RESYNC_INTERVAL": "3600",
        "HOSTNAME": "controller-0",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "spaceyard_runtime.kubernetes.controller"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        eventually(
            lambda: kube.get("Deployment", NAMESPACE, rev(kube)) is not None or proc.poll() is not None,
            "the controller re-creates the Deployment",
        )
        assert kube.get("Deployment", NAMESPACE, rev(kube)) is not None, "the controller re-created the Deployment"
        lease = kube.get("Lease", NAMESPACE, "spaceyard-controller")
        assert lease is not None and lease["spec"]["holderIdentity"].startswith("controller-0-")
        # the pod watch reports RUNNING once the kubelet has the pod ready
        eventually(lambda: any(p for p in pods(kube) if p.get("status", {}).get("podIP")), "the pod runs")
    finally:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, output
    assert "space alice/demo:" in output
    lease = kube.get("Lease", NAMESPACE, "spaceyard-controller")
    assert lease is not None and lease["spec"]["holderIdentity"] == "", "released on SIGTERM"


def test_watch_resumes_from_a_real_resource_version(kube: Cluster, kube_api: KubeApi) -> None:
    """A watch from a list's resourceVersion sees a later write (the real server's watch cache)."""
    since = kube_api.resource_version("ConfigMap")
    watched = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="watched"))
    client.CoreV1Api(kube.admin).create_namespaced_config_map(NAMESPACE, watched)
    seen = [(kind, obj["metadata"]["name"]) for kind, obj in kube_api.watch("ConfigMap", None, 3, since)]
    assert ("ADDED", "watched") in seen
