"""A pod's cold start split into phases, as ``KubernetesRuntime.wait_ready`` sees it happen.

Pod conditions and container states carry one-second timestamps, too coarse for starts that take a
second or two (the Knative anchor: 0.8-4 s from zero). So the runtime times what it *observes*: every
pod it sees through its watch and its lists is handed to :meth:`ColdStart.see` with this process's
monotonic clock, and the first sighting of each step marks it. When a pod is first seen already
running (the kubelet reported binding and start in one go), the pod's own timestamps split the two.
The image pull comes from the kubelet's own ``Pulled``
event, whose message carries the pull's duration (``Successfully pulled image "x" in 1.234s (1.5s
including waiting)``; ``already present on machine`` = 0).

==================  ==========================================================================
``scheduling``      scale to 1 (or create) → the pod is bound to a node (Deployment controller,
                    ReplicaSet, scheduler)
``image_pull``      the kubelet's pull, from its ``Pulled`` event (0 when the image was present)
``container_start`` bound → the app container runs, less the pull (sandbox, network, container)
``app_ready``       running → the kubelet's readiness probe passes (``Ready``)
``endpoints``       ready → the Service's EndpointSlice lists the pod ready and a connection to the
                    Service is accepted (the node's service proxy programmed): what the gateway's
                    first request through the Service needs
==================  ==========================================================================

The gateway adds ``first_byte`` (ready → the first byte of the held request's response) on the
platform's side. The phases go to ``handle.extra["cold_start"]["phases"]``; the platform observes them
as ``spaceyard_wake_phase_seconds{phase=...}``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

PHASES = ("scheduling", "image_pull", "container_start", "app_ready", "endpoints")
_DURATION = r"(?:[\d.]+(?:ms|µs|us|ns|h|m|s))+"
_PULLED = re.compile(rf"\bin ({_DURATION})(?: \(({_DURATION}) including waiting\))?")
_UNIT = re.compile(r"([\d.]+)(ms|µs|us|ns|h|m|s)")
_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "µs": 1e-6, "us": 1e-6, "ns": 1e-9}


def go_duration(text: str) -> float:
    """Seconds of a Go duration string (``1m2.5s``, ``350ms``)."""
    return sum(float(n) * _SECONDS[u] for n, u in _UNIT.findall(text))


def pull_seconds(events: list[dict[str, Any]], pod_name: str) -> float | None:
    """The app container's image pull from the pod's ``Pulled`` events; None if there is none yet."""
    for event in events:
        involved = event.get("involvedObject") or {}
        if event.get("reason") != "Pulled" or involved.get("name") != pod_name:
            continue
        path = involved.get("fieldPath") or ""
        if path and "{app}" not in path:
            continue
        message = event.get("message") or ""
        if "already present" in message:
            return 0.0
        match = _PULLED.search(message)
        if match:
            return go_duration(match.group(2) or match.group(1))
    return None


def _conditions(pod: dict[str, Any]) -> dict[str, str]:
    return {c.get("type", ""): c.get("status", "") for c in (pod.get("status") or {}).get("conditions") or []}


def _app_running(pod: dict[str, Any]) -> bool:
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        if cs.get("name") == "app" and "running" in (cs.get("state") or {}):
            return True
    return False


def _timestamp(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _started_after_scheduled(pod: dict[str, Any]) -> float | None:
    """Seconds from the pod's ``PodScheduled`` transition to its app container's start (1 s resolution)."""
    status = pod.get("status") or {}
    scheduled = next(
        (c.get("lastTransitionTime") for c in status.get("conditions") or [] if c.get("type") == "PodScheduled"), None
    )
    started = next(
        (
            ((cs.get("state") or {}).get("running") or {}).get("startedAt")
            for cs in status.get("containerStatuses") or []
            if cs.get("name") == "app"
        ),
        None,
    )
    a, b = _timestamp(scheduled), _timestamp(started)
    return max(0.0, b - a) if a is not None and b is not None else None


@dataclass
class ColdStart:
    """First sightings (monotonic seconds) of one pod's steps; see the module docstring."""

    began: float
    pod: str | None = None
    scheduled: float | None = None
    running: float | None = None
    ready: float | None = None
    routable: float | None = None
    pull: float | None = None
    seen: dict[str, float] = field(default_factory=dict)

    def see(self, pod: dict[str, Any], now: float) -> None:
        """A sighting of the Space's current pod at ``now``: marks the steps it shows for the first time.

        A terminating pod (``deletionTimestamp``: the one a sleep or a rollout is ending, still reporting while
        its preStop and grace run) is not the pod being started and is ignored: counting it would start the
        sightings over each time it reports, and the whole start would be booked as ``scheduling``."""
        if (pod.get("metadata") or {}).get("deletionTimestamp"):
            return
        name = (pod.get("metadata") or {}).get("name")
        if name and self.pod != name:  # another pod of the same template (a replaced one): start over
            self.pod, self.scheduled, self.running, self.ready, self.routable = name, None, None, None, None
        conditions = _conditions(pod)
        if self.ready is None and conditions.get("Ready") == "True":
            self.ready = now
        if self.running is None and (_app_running(pod) or self.ready is not None):
            self.running = now
        if self.scheduled is None and (
            conditions.get("PodScheduled") == "True" or (pod.get("spec") or {}).get("nodeName") or self.running
        ):
            self.scheduled = now
            if self.running == now:  # bound and running at once: split them by the pod's own (1 s) timestamps
                gap = _started_after_scheduled(pod)
                if gap is not None:
                    self.scheduled = max(self.began, now - gap)

    def phases(self) -> dict[str, float]:
        """Seconds per phase that was seen (a phase not seen is left out, never guessed)."""
        out: dict[str, float] = {}
        if self.scheduled is not None:
            out["scheduling"] = self.scheduled - self.began
        if self.pull is not None:
            out["image_pull"] = self.pull
        if self.running is not None and self.scheduled is not None:
            out["container_start"] = max(0.0, self.running - self.scheduled - (self.pull or 0.0))
        if self.ready is not None and self.running is not None:
            out["app_ready"] = self.ready - self.running
        if self.routable is not None and self.ready is not None:
            out["endpoints"] = max(0.0, self.routable - self.ready)
        return {k: round(max(0.0, v), 4) for k, v in out.items()}


STARTING_REASONS = frozenset({"ContainerCreating", "PodInitializing"})


def may_change_stage(pod: dict[str, Any]) -> bool:
    """Whether a sighting of the pod can change what ``observe_space`` says: it is ready, unschedulable,
    or a container stopped or waits for something other than its own start (back-off, pull errors)."""
    status = pod.get("status") or {}
    conditions = _conditions(pod)
    if conditions.get("Ready") == "True" or status.get("phase") in ("Failed", "Succeeded"):
        return True
    if conditions.get("PodScheduled") == "False":
        return True
    for cs in status.get("containerStatuses") or []:
        state = cs.get("state") or {}
        if "terminated" in state or cs.get("restartCount"):
            return True
        if "waiting" in state and (state["waiting"] or {}).get("reason") not in STARTING_REASONS:
            return True
    return False


def slice_ready(slices: list[dict[str, Any]], pod_name: str) -> bool:
    """Whether one of the Service's EndpointSlices lists ``pod_name`` as a ready endpoint."""
    for s in slices:
        for endpoint in s.get("endpoints") or []:
            target = endpoint.get("targetRef") or {}
            if target.get("name") == pod_name and (endpoint.get("conditions") or {}).get("ready") is not False:
                return bool(endpoint.get("addresses"))
    return False


__all__ = ["PHASES", "ColdStart", "go_duration", "may_change_stage", "pull_seconds", "slice_ready"]
