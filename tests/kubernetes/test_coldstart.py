"""The cold-start phases of a pod, from sightings and the kubelet's Pulled event (pure: no cluster)."""

from __future__ import annotations

from typing import Any

import pytest

from spaceyard_runtime.kubernetes.coldstart import ColdStart, go_duration, pull_seconds, slice_ready


def _pod(name: str = "p1", *, node: str | None = None, running: bool = False, ready: bool = False) -> dict[str, Any]:
    conditions = [{"type": "PodScheduled", "status": "True" if node else "False"}]
    conditions.append({"type": "Ready", "status": "True" if ready else "False"})
    state = {"running": {"startedAt": "2026-12-02T10:00:00Z"}} if running else {"waiting": {"reason": "x"}}
    return {
        "metadata": {"name": name},
        "spec": {"nodeName": node} if node else {},
        "status": {"conditions": conditions, "containerStatuses": [{"name": "app", "state": state}]},
    }


def test_phases_from_first_sightings() -> None:
    cold = ColdStart(began=100.0)
    cold.see(_pod(), 100.1)
    cold.see(_pod(node="cpu-0"), 100.4)
    cold.see(_pod(node="cpu-0"), 100.6)  # seen again: the first sighting counts
    cold.see(_pod(node="cpu-0", running=True), 101.9)
    cold.see(_pod(node="cpu-0", running=True, ready=True), 104.0)
    cold.routable, cold.pull = 104.25, 1.0
    assert cold.phases() == {
        "scheduling": pytest.approx(0.4),
        "image_pull": 1.0,
        "container_start": pytest.approx(0.5),
        "app_ready": pytest.approx(2.1),
        "endpoints": pytest.approx(0.25),
    }


def test_a_pod_first_seen_ready_and_unseen_phases() -> None:
    cold = ColdStart(began=10.0)
    cold.see(_pod(node="n", running=True, ready=True), 12.0)
    assert cold.phases() == {"scheduling": 2.0, "container_start": 0.0, "app_ready": 0.0}


def test_bound_and_running_at_once_are_split_by_the_pods_timestamps() -> None:
    pod = _pod(node="n", running=True)  # started 10:00:00
    pod["status"]["conditions"][0]["lastTransitionTime"] = "2026-12-02T09:59:58Z"
    cold = ColdStart(began=10.0)
    cold.see(pod, 15.0)
    assert cold.phases() == {"scheduling": 3.0, "container_start": 2.0}
    cold.see(_pod("p2"), 13.0)  # a replacement pod starts the sightings over
    assert cold.phases() == {}


def test_a_terminating_pod_of_the_same_template_does_not_reset_the_sightings() -> None:
    """Found on the dev cluster: the pod a sleep ended still reports (preStop, grace) while the woken one
    starts; each of its reports started the sightings over, and the whole wake was booked as scheduling."""
    old = _pod("old", node="cpu-0", running=True, ready=True)
    old["metadata"]["deletionTimestamp"] = "2026-12-02T09:59:50Z"
    cold = ColdStart(began=100.0)
    cold.see(_pod(node="cpu-0"), 100.2)
    cold.see(old, 100.5)
    cold.see(_pod(node="cpu-0", running=True), 101.2)
    cold.see(old, 103.0)
    cold.see(_pod(node="cpu-0", running=True, ready=True), 106.2)
    assert cold.phases() == {
        "scheduling": pytest.approx(0.2),
        "container_start": pytest.approx(1.0),
        "app_ready": pytest.approx(5.0),
    }


@pytest.mark.parametrize(
    ("message", "seconds"),
    [
        ('Successfully pulled image "r/x:1" in 2.413s (2.413s including waiting). Image size: 191 bytes.', 2.413),
        ('Successfully pulled image "r/x:1" in 350ms (1m2.5s including waiting). Image size: 1 bytes.', 62.5),
        ('Container image "r/x:1" already present on machine and can be accessed by the pod', 0.0),
    ],
)
def test_pull_time_from_the_kubelets_event(message: str, seconds: float) -> None:
    events = [
        {"reason": "Scheduled", "message": "x", "involvedObject": {"name": "p1"}},
        {
            "reason": "Pulled",
            "message": message,
            "involvedObject": {"name": "other", "fieldPath": "spec.containers{app}"},
        },
        {"reason": "Pulled", "message": message, "involvedObject": {"name": "p1", "fieldPath": "spec.containers{app}"}},
    ]
    assert pull_seconds(events, "p1") == pytest.approx(seconds)
    assert pull_seconds(events[:1], "p1") is None
    assert go_duration("1h2m3.5s") == pytest.approx(3723.5)


def test_endpoint_slice_readiness() -> None:
    def endpoint(name: str, ready: bool | None) -> dict[str, Any]:
        cond = {} if ready is None else {"ready": ready}
        return {"addresses": ["10.88.0.5"], "conditions": cond, "targetRef": {"kind": "Pod", "name": name}}

    assert not slice_ready([], "p1")
    assert not slice_ready([{"endpoints": [endpoint("p1", False), endpoint("p0", True)]}], "p1")
    assert slice_ready([{"endpoints": None}, {"endpoints": [endpoint("p1", True)]}], "p1")
    assert slice_ready([{"endpoints": [endpoint("p1", None)]}], "p1")  # no condition = ready (the API's rule)
