"""The controller against the fake API server, through the official client over HTTP.

Covers the life of a Space (create, image update, flavor change, sleep, wake, delete), the capacity
wait for GPUs (a distinct stage, never slept), crash loops, a controller restart half-way, and two
replicas sharing one Lease.
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

import yaml
from kubernetes import client

from spaceyard_runtime.kubernetes import objects
from spaceyard_runtime.kubernetes.clients import KubeApi
from spaceyard_runtime.kubernetes.controller import ClusterRecordSource, Controller, LeaderElector
from spaceyard_runtime.kubernetes.desired import ClusterConfig, DesiredSpace, SpaceStatus, Stage
from spaceyard_runtime.kubernetes.reconcile import apply_space, delete_space, observe_space, reconcile_space
from tests.kubernetes.conftest import NAMESPACE
from tests.kubernetes.fakeapi import FakeKubeAPI

NAME = "space-alice--demo"
KINDS = ["ConfigMap", "Secret", "Service", "Deployment", "NetworkPolicy"]


class Source:
    """The control plane's desired state, editable by the test."""

    def __init__(self, *spaces: DesiredSpace) -> None:
        self.spaces = {s.space_id: s for s in spaces}

    def desired_spaces(self) -> Iterable[DesiredSpace]:
        return list(self.spaces.values())

    def set(self, space: DesiredSpace) -> None:
        self.spaces[space.space_id] = space


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def space_writes(fake: FakeKubeAPI) -> list[tuple[str, str]]:
    """Writes other than Lease renewals."""
    return [w for w in fake.writes if "/leases" not in w[1]]


def pods(fake: FakeKubeAPI) -> list[dict[str, Any]]:
    return fake.list("Pod", NAMESPACE)


def controller(
    fake: FakeKubeAPI, cfg: ClusterConfig, source: Source, identity: str = "one", **kwargs: Any
) -> tuple[Controller, list[SpaceStatus]]:
    seen: list[SpaceStatus] = []
    api_client = client.ApiClient(client.Configuration(host=fake.url))
    ctl = Controller(api_client, cfg, source, identity=identity, status_sink=seen.append, **kwargs)
    return ctl, seen


def test_create_is_idempotent_and_owned(
    fake: FakeKubeAPI, cfg: ClusterConfig, space: Callable[..., DesiredSpace]
) -> None:
    ctl, seen = controller(fake, cfg, Source(space(secrets={"TOKEN": "t0ken"})))
    statuses = ctl.resync()
    assert statuses is not None and statuses[NAME].stage is Stage.RUNNING
    assert [s.stage for s in seen] == [Stage.RUNNING]
    owner = fake.get("ConfigMap", NAMESPACE, NAME)
    assert owner is not None
    for kind in KINDS[1:]:
        obj = fake.get(kind, NAMESPACE, NAME)
        assert obj is not None, kind
        assert obj["metadata"]["ownerReferences"][0]["uid"] == owner["metadata"]["uid"]
    assert len(pods(fake)) == 1
    writes = len(space_writes(fake))
    ctl.resync()
    ctl.resync()
    assert len(space_writes(fake)) == writes, "a resync of an unchanged Space writes nothing"
    assert len(seen) == 1


def test_image_update_rolls_to_the_new_image(
    fake: FakeKubeAPI, cfg: ClusterConfig, space: Callable[..., DesiredSpace]
) -> None:
    source = Source(space())
    ctl, _ = controller(fake, cfg, source)
    ctl.resync()
    uid = fake.get("Deployment", NAMESPACE, NAME)["metadata"]["uid"]  # type: ignore[index]
    source.set(space(image="registry.local/spaces/alice--demo:2", revision="2" * 40))
    statuses = ctl.resync()
    assert statuses is not None and statuses[NAME].stage is Stage.RUNNING
    deployment = fake.get("Deployment", NAMESPACE, NAME)
    assert deployment is not None and deployment["metadata"]["uid"] == uid, "updated in place"
    (pod,) = pods(fake)
    assert pod["spec"]["containers"][0]["image"] == "registry.local/spaces/alice--demo:2"
    assert pod["metadata"]["labels"][objects.LABEL_REVISION] == "2" * 40


def test_flavor_change_moves_the_space_to_the_gpu_pool(
    fake: FakeKubeAPI, cfg: ClusterConfig, space: Callable[..., DesiredSpace]
) -> None:
    fake.add_gpus(1)
    source = Source(space())
    ctl, _ = controller(fake, cfg, source)
    ctl.resync()
    source.set(space(flavor="t4-small"))
    statuses = ctl.resync()
    assert statuses is not None and statuses[NAME].stage is Stage.RUNNING
    (pod,) = pods(fake)
    assert pod["spec"]["nodeSelector"] == {"nvidia.com/gpu.product": "Tesla-T4"}
    assert pod["spec"]["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert pod["spec"]["containers"][0]["resources"]["limits"] == {
        "cpu": "4000m",
        "memory": "15360Mi",
        "nvidia.com/gpu": "1",
    }
    deployment = fake.get("Deployment", NAMESPACE, NAME)
    assert deployment is not None and deployment["spec"]["strategy"] == {"type": "Recreate"}


def test_sleep_scales_to_zero_and_wake_scales_back(
    fake: FakeKubeAPI, cfg: ClusterConfig, space: Callable[..., DesiredSpace]
) -> None:
    source = Source(space())
    ctl, _ = controller(fake, cfg, source)
    ctl.resync()
    source.set(space(awake=False))
    statuses = ctl.resync()
    assert statuses is not None and statuses[NAME].stage is Stage.SLEEPING
    assert pods(fake) == []
    deployment = fake.get("Deployment", NAMESPACE, NAME)
    assert deployment is not None and deployment["spec"]["replicas"] == 0
    assert fake.get("Service", NAMESPACE, NAME) is not None, "the Service stays while asleep"
    assert ("PATCH", f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/{NAME}/scale") in fake.writes
    source.set(space(awake=True))
    statuses = ctl.resync()
    assert statuses is not None and statuses[NAME].stage is Stage.RUNNING
    assert len(pods(fake)) == 1
    source.set(space(paused=True))
    statuses = ctl.resync()
    assert statuses is not None and statuses[NAME].stage is Stage.PAUSED


def test_kubectl_scale_behind_our_back_is_undone(
    fake: FakeKubeAPI, cfg: ClusterConfig, space: Callable[..., DesiredSpace], api: KubeApi
) -> None:
    ctl, _ = controller(fake, cfg, Source(space()))
    ctl.resync()
    api.scale(NAME, 0)
    assert pods(fake) == []
    ctl.resync()
    assert len(pods(fake)) == 1
    api.delete("Deployment", NAME)
    ctl.resync()
    assert fake.get("Deployment", NAMESPACE, NAME) is not None and len(pods(fake)) == 1


def test_gpu_space_waits_for_capacity_and_is_not_slept(
    fake: FakeKubeAPI, cfg: ClusterConfig, space: Callable[..., DesiredSpace]
) -> None:
    source = Source(space(flavor="a10g-small"))
    ctl, seen = controller(fake, cfg, source)
    statuses = ctl.resync()
    assert statuses is not None
    waiting = statuses[NAME]
    assert waiting.stage is Stage.WAITING_FOR_CAPACITY
    assert "Insufficient nvidia.com/gpu" in waiting.message
    # the control plane's idle policy asks for sleep while the pod waits: deferred, the pod stays
    source.set(space(flavor="a10g-small", awake=False))
    statuses = ctl.resync()
    assert statuses is not None and statuses[NAME].stage is Stage.WAITING_FOR_CAPACITY
    assert statuses[NAME].sleep_deferred is True
    (pod,) = pods(fake)
    assert pod["status"]["phase"] == "Pending"
    deployment = fake.get("Deployment", NAMESPACE, NAME)
    assert deployment is not None and deployment["spec"]["replicas"] == 1
    # a GPU node joins: the same pod runs, and now the idle sleep goes through
    fake.add_gpus(1)
    source.set(space(flavor="a10g-small"))
    statuses = ctl.resync()
    assert statuses is not None and statuses[NAME].stage is Stage.RUNNING
    source.set(space(flavor="a10g-small", awake=False))
    statuses = ctl.resync()
    assert statuses is not None and statuses[NAME].stage is Stage.SLEEPING
    assert [s.stage for s in seen][:1] == [Stage.WAITING_FOR_CAPACITY]


def test_explicit_pause_is_honoured_while_waiting(
    fake: FakeKubeAPI, cfg: ClusterConfig, space: Callable[..., DesiredSpace]
) -> None:
    source = Source(space(flavor="l4x4"))
    ctl, _ = controller(fake, cfg, source)
    ctl.resync()
    source.set(space(flavor="l4x4", paused=True))
    statuses = ctl.resync()
    assert statuses is not None and statuses[NAME].stage is Stage.PAUSED and pods(fake) == []


def test_crash_loop_is_a_runtime_error_with_the_last_log_lines(
    fake: FakeKubeAPI, cfg: ClusterConfig, space: Callable[..., DesiredSpace]
) -> None:
    logs = [f"line {i}" for i in range(100)] + ["Traceback (most recent call last):", "ModuleNotFoundError: torch"]
    fake.set_image("registry.local/broken:1", "crash", logs, exit_code=3)
    ctl, seen = controller(fake, cfg, Source(space(image="registry.local/broken:1")))
    statuses = ctl.resync()
    assert statuses is not None
    status = statuses[NAME]
    assert status.stage is Stage.RUNTIME_ERROR
    assert status.exit_code == 3 and status.restarts == 4
    assert "exit code 3" in status.message
    assert status.log_tail.endswith("ModuleNotFoundError: torch")
    assert "line 0\n" not in status.log_tail and len(status.log_tail.splitlines()) == 30
    assert seen[-1].stage is Stage.RUNTIME_ERROR


def test_delete_removes_everything(
    fake: FakeKubeAPI, cfg: ClusterConfig, space: Callable[..., DesiredSpace], api: KubeApi
) -> None:
    source = Source(space(), space("bob/other"))
    ctl, _ = controller(fake, cfg, source)
    ctl.resync()
    del source.spaces["alice/demo"]
    ctl.resync()
    for kind in [*KINDS, "Pod"]:
        assert all(o["metadata"]["name"].startswith("space-bob--other") for o in fake.list(kind, NAMESPACE)), kind
    assert fake.get("Deployment", NAMESPACE, "space-bob--other") is not None
    assert delete_space(api, "alice/demo") is False, "deleting again is a no-op (404 = gone)"


def test_deleting_the_owner_garbage_collects_the_rest(
    fake: FakeKubeAPI, cfg: ClusterConfig, space: Callable[..., DesiredSpace], api: KubeApi
) -> None:
    apply_space(api, space(), cfg)
    assert api.delete("ConfigMap", NAME) is True
    assert all(fake.list(kind, NAMESPACE) == [] for kind in [*KINDS, "Pod"])


def test_a_new_controller_converges_after_a_crash_half_way(
    fake: FakeKubeAPI, cfg: ClusterConfig, space: Callable[..., DesiredSpace], api: KubeApi
) -> None:
    desired = space(secrets={"A": "1"})
    # the first controller died after writing the owner and the Secret
    _, owner = api.ensure(objects.make_owner(desired, cfg))
    api.ensure(objects.make_secret(desired, cfg, owner))
    ctl, _ = controller(fake, cfg, Source(desired), identity="second")
    statuses = ctl.resync()
    assert statuses is not None and statuses[NAME].stage is Stage.RUNNING
    for kind in KINDS:
        assert len(fake.list(kind, NAMESPACE)) == 1, kind
    assert len(pods(fake)) == 1
    writes = len(space_writes(fake))
    ctl2, _ = controller(fake, cfg, Source(desired), identity="second")  # same identity: a restarted pod
    assert ctl2.resync() is not None
    assert len(space_writes(fake)) == writes, "nothing to do: no duplicates, no rewrites"


def test_two_replicas_only_the_leader_acts(
    fake: FakeKubeAPI, cfg: ClusterConfig, space: Callable[..., DesiredSpace]
) -> None:
    clock = Clock()
    source = Source(space())
    one, seen_one = controller(fake, cfg, source, identity="one", clock=clock, lease_duration=15)
    two, seen_two = controller(fake, cfg, source, identity="two", clock=clock, lease_duration=15)
    assert one.resync() is not None
    writes = len(fake.writes)
    assert two.resync() is None
    assert len(fake.writes) == writes, "the standby replica writes nothing"
    source.set(space(image="registry.local/spaces/alice--demo:2"))
    clock.now += 10
    assert two.resync() is None and one.resync() is not None
    assert seen_two == [] and len(seen_one) == 2  # RUNNING, then RUNNING on the new pod
    # "one" stops renewing; once "two" has seen the same lease version for the lease duration, it takes over
    clock.now += 10
    assert two.resync() is None  # first sight of the version "one" renewed at +10
    clock.now += 16
    statuses = two.resync()
    assert statuses is not None and statuses[NAME].stage is Stage.RUNNING
    assert one.resync() is None
    lease = fake.get("Lease", NAMESPACE, "spaceyard-controller")
    assert lease is not None
    assert lease["spec"]["holderIdentity"] == "two" and lease["spec"]["leaseTransitions"] == 1


def test_racing_for_an_expired_lease_has_one_winner(fake: FakeKubeAPI) -> None:
    clock = Clock()
    apis = [KubeApi(client.ApiClient(client.Configuration(host=fake.url)), NAMESPACE) for _ in range(6)]
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
    assert results.count(True) == 1


def test_clock_skew_does_not_shorten_a_lease(fake: FakeKubeAPI) -> None:
    """A holder whose clock is far behind still keeps its lease while it renews."""
    behind, ahead = Clock(), Clock()
    ahead.now += 3600
    api = KubeApi(client.ApiClient(client.Configuration(host=fake.url)), NAMESPACE)
    holder = LeaderElector(api, "skew", "holder", 15, behind)
    other = LeaderElector(api, "skew", "other", 15, ahead)
    assert holder.try_acquire_or_renew()
    for _ in range(3):
        assert not other.try_acquire_or_renew()
        behind.now += 5
        ahead.now += 5
        assert holder.try_acquire_or_renew()


def test_release_hands_over_without_waiting(fake: FakeKubeAPI, cfg: ClusterConfig) -> None:
    clock = Clock()
    api = KubeApi(client.ApiClient(client.Configuration(host=fake.url)), NAMESPACE)
    first = LeaderElector(api, "handover", "first", 15, clock)
    second = LeaderElector(api, "handover", "second", 15, clock)
    assert first.try_acquire_or_renew() and not second.try_acquire_or_renew()
    first.release()
    assert second.try_acquire_or_renew()


def test_run_loop_reacts_to_pod_events_and_releases_the_lease(
    fake: FakeKubeAPI, cfg: ClusterConfig, space: Callable[..., DesiredSpace]
) -> None:
    fake.set_image("registry.local/slow:1", "slow")
    running = threading.Event()

    def sink(status: SpaceStatus) -> None:
        if status.stage is Stage.RUNNING:
            running.set()

    api_client = client.ApiClient(client.Configuration(host=fake.url))
    ctl = Controller(
        api_client,
        cfg,
        Source(space(image="registry.local/slow:1")),
        identity="looper",
        status_sink=sink,
        lease_duration=3,
        resync_interval=3600,  # only a watch event can report RUNNING in this test
    )
    stop = threading.Event()
    thread = threading.Thread(target=ctl.run, args=(stop,))
    thread.start()
    try:
        for _ in range(200):
            if pods(fake) and ctl.statuses.get(NAME):
                break
            stop.wait(0.05)
        assert ctl.statuses[NAME].stage is Stage.STARTING
        fake.make_ready(pods(fake)[0]["metadata"]["name"])
        assert running.wait(20), "the pod watch triggers a reconcile"
    finally:
        stop.set()
        thread.join(20)
    assert not thread.is_alive()
    lease = fake.get("Lease", NAMESPACE, "spaceyard-controller")
    assert lease is not None and lease["spec"]["holderIdentity"] == ""


def test_cluster_record_source_replays_what_the_runtime_wrote(
    fake: FakeKubeAPI, cfg: ClusterConfig, space: Callable[..., DesiredSpace], api: KubeApi, flavors: Any
) -> None:
    desired = space(flavor="cpu-upgrade", secrets={"TOKEN": "x"}, variables={"MODE": "demo"}, app_port=8501)
    apply_space(api, desired, cfg)
    (replayed,) = ClusterRecordSource(api, flavors).desired_spaces()
    assert replayed == desired
    api.delete("Deployment", NAME)
    assert reconcile_space(api, replayed, cfg).stage is Stage.RUNNING


def test_cluster_record_source_skips_unusable_owners_without_deleting_them(
    fake: FakeKubeAPI, cfg: ClusterConfig, space: Callable[..., DesiredSpace], api: KubeApi, flavors: Any
) -> None:
    apply_space(api, space(), cfg)
    apply_space(api, space("bob/gone-flavor"), cfg)
    owner = fake.get("ConfigMap", NAMESPACE, "space-bob--gone-flavor")
    assert owner is not None
    owner["data"]["flavor"] = "h100x8"  # the operator removed this flavor from the file
    api.replace(owner)
    api_client = client.ApiClient(client.Configuration(host=fake.url))
    source = ClusterRecordSource(api, flavors)
    assert [s.space_id for s in source.desired_spaces()] == ["alice/demo"]
    ctl = Controller(api_client, cfg, source, identity="x", delete_orphans=False)
    assert ctl.resync() is not None
    assert fake.get("Deployment", NAMESPACE, "space-bob--gone-flavor") is not None


def test_observe_reports_absent_and_previous_version_serving(
    fake: FakeKubeAPI, cfg: ClusterConfig, space: Callable[..., DesiredSpace], api: KubeApi
) -> None:
    assert observe_space(api, "alice/demo", cfg).stage is Stage.ABSENT
    apply_space(api, space(), cfg)
    fake.set_image("registry.local/slow:2", "slow")
    status = reconcile_space(api, dataclasses.replace(space(), image="registry.local/slow:2"), cfg)
    assert status.stage is Stage.STARTING and status.message == "previous version still serving"
    assert len(pods(fake)) == 2


def test_an_unreachable_api_server_means_standby_not_a_crash(
    fake: FakeKubeAPI, cfg: ClusterConfig, space: Callable[..., DesiredSpace]
) -> None:
    ctl, _ = controller(fake, cfg, Source(space()))
    assert ctl.resync() is not None and ctl.elector.is_leader
    fake.stop()
    assert ctl.resync() is None and not ctl.elector.is_leader


def test_the_controller_entry_point_repairs_and_releases_on_sigterm(
    fake: FakeKubeAPI, cfg: ClusterConfig, space: Callable[..., DesiredSpace], api: KubeApi, tmp_path: Path
) -> None:
    """``python -m spaceyard_runtime.kubernetes.controller`` as the chart runs it: env settings, kubeconfig."""
    apply_space(api, space(), cfg)
    api.delete("Deployment", NAME)
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "fake", "cluster": {"server": fake.url}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "u"}}],
                "current-context": "fake",
            }
        )
    )
    env = {
        **os.environ,
        "SPACEYARD_KUBERNETES_KUBECONFIG": str(kubeconfig),
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
        for _ in range(400):
            if fake.get("Deployment", NAMESPACE, NAME) is not None or proc.poll() is not None:
                break
            threading.Event().wait(0.05)
        assert fake.get("Deployment", NAMESPACE, NAME) is not None, "the controller re-created the Deployment"
        lease = fake.get("Lease", NAMESPACE, "spaceyard-controller")
        assert lease is not None and lease["spec"]["holderIdentity"].startswith("controller-0-")
    finally:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, output
    assert "space alice/demo: RUNNING" in output
    lease = fake.get("Lease", NAMESPACE, "spaceyard-controller")
    assert lease is not None and lease["spec"]["holderIdentity"] == "", "released on SIGTERM"
