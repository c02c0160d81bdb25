"""Light sleep on Kubernetes: a Space's pod stays, its agent stops the app and keeps the warm parent.

What :class:`~.runtime.KubernetesRuntime` does with it (the pod runs the agent, :mod:`.agentpod`):

==============  ===========================================================================================
light sleep     ``POST /app/stop`` to the pod's agent; the pod's requests resized in place down to the warm
                parent's size (:func:`asleep_requests`; ``pods/resize``, no restart); the owner records
                ``light`` with its time and cost (replicas stay 1). The app's readiness probe fails, so the
                Service lists no endpoint: nothing reaches the warm-only pod through it.
light wake      ``POST /app/start`` (a fork from the warm parent) to the pod remembered from the suspend
                (:func:`remembered`: no Kubernetes API call before the fork; the requests are signed and every
                answer must prove it comes from this Space's agent, so an address now another pod's learns
                nothing and is not taken for it: then the pods are listed, as after a platform restart), then
                the requests resized back up and the owner awake, not waited for. Ready when the app says it
                listens (``GET /status?ready=``: the warm parent's readiness pipe, a long poll on the agent;
                probing ``GET /`` only where the app cannot say). The woken handle's endpoint is the pod's own
                address (the app port): no pod start, no readiness probe period, no EndpointSlice or
                kube-proxy round on the way (as Knative's activator sends the first requests to a pod
                directly).
deep sleep      replicas 0: the pod is gone and costs nothing; the next wake is a cold start.
budget          per cluster (the Spaces namespace): the owners record every light sleeper with its cost,
                so whichever platform process suspends a Space sees all of them; past
                ``light_sleep_memory_mib`` the least recently suspended go deep first (:func:`deepen_first`).
==============  ===========================================================================================

A GPU Space never sleeps lightly (the pod would keep its GPU); nor does a Space whose pod runs the image's
own command (``sdk: docker``, static): those sleep deep, as before.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..agent_client import AGENT_PORT, AgentClient
from . import objects
from .desired import DesiredSpace

MIB = 1 << 20
ASLEEP_CPU = "10m"
"""CPU request of a light sleeper: a warm parent only waits on its socket."""
ASLEEP_MIN_MIB = 32
ASLEEP_HEADROOM = 1.25
"""Memory request of a light sleeper: its measured cost with this headroom (a request, not a limit: the
limit stays the flavor's, so the app has all of it as soon as it wakes)."""


def asleep_requests(space: DesiredSpace, cost: int | None) -> dict[str, str]:
    """The requests of a light sleeper's pod: what its agent and warm parent hold, never more than awake."""
    awake = awake_requests(space)
    want = max(ASLEEP_MIN_MIB, math.ceil((cost or 0) * ASLEEP_HEADROOM / MIB))
    return {"cpu": ASLEEP_CPU, "memory": f"{min(want, _mib(awake['memory']))}Mi"}


def awake_requests(space: DesiredSpace) -> dict[str, str]:
    """The flavor's requests (CPU and memory: what a resize may change)."""
    requests = objects.resources(space.flavor)["requests"]
    return {"cpu": requests["cpu"], "memory": requests["memory"]}


def _mib(quantity: str) -> int:
    return int(quantity.removesuffix("Mi")) if quantity.endswith("Mi") else 1 << 30


@dataclass(frozen=True)
class Sleeper:
    """A light sleeper as its owner object records it."""

    name: str
    since: float
    cost: int


def sleepers(owners: Iterable[dict[str, Any]]) -> list[Sleeper]:
    """The light sleepers among the namespace's owner objects."""
    out = []
    for owner in owners:
        data = owner.get("data") or {}
        if data.get("light") == "true" and data.get("awake") == "false":
            try:
                since, cost = float(data.get("light-since") or 0), int(data.get("light-bytes") or 0)
            except ValueError:
                since, cost = 0.0, 0
            out.append(Sleeper(owner["metadata"]["name"], since, cost))
    return out


def deepen_first(light: Iterable[Sleeper], budget: int) -> list[Sleeper]:
    """The light sleepers to send to deep sleep, least recently suspended first, until the others' cost
    fits ``budget`` bytes."""
    ordered = sorted(light, key=lambda s: (s.since, s.name))
    total = sum(s.cost for s in ordered)
    out: list[Sleeper] = []
    for sleeper in ordered:
        if total <= budget:
            break
        out.append(sleeper)
        total -= sleeper.cost
    return out


REMEMBERED_CONNECT = 1.0
"""Seconds to wait for a connection to a remembered pod's agent (a pod gone since: the wake lists the pods)."""


@dataclass(frozen=True)
class PodAgent:
    """The agent of one running pod of a Space (``template``: the pod's, where known)."""

    pod: str
    ip: str
    client: AgentClient
    template: str = ""


def current_pod(pods: Iterable[dict[str, Any]], template: str) -> dict[str, Any] | None:
    """The Space's pod of ``template`` whose containers run (not terminating, with an address)."""
    for pod in pods:
        meta = pod.get("metadata") or {}
        status = pod.get("status") or {}
        if meta.get("deletionTimestamp") or (meta.get("labels") or {}).get(objects.LABEL_TEMPLATE) != template:
            continue
        if status.get("phase") == "Running" and status.get("podIP"):
            return pod
    return None


def pod_agent(pod: dict[str, Any], token: str) -> PodAgent:
    ip = str(pod["status"]["podIP"])
    return PodAgent(pod["metadata"]["name"], ip, AgentClient(ip, token, AGENT_PORT))


def remembered(agent: PodAgent, template: str) -> PodAgent:
    """``agent`` (as the pods' list showed it) to be reached again later without a new look: its requests
    signed, its answers proven, a quick connection or none."""
    client = AgentClient(
        agent.ip, agent.client.token, agent.client.port, signed=True, connect_timeout=REMEMBERED_CONNECT
    )
    return PodAgent(agent.pod, agent.ip, client, template)


__all__ = [
    "PodAgent",
    "Sleeper",
    "asleep_requests",
    "awake_requests",
    "current_pod",
    "deepen_first",
    "pod_agent",
    "remembered",
    "sleepers",
]
