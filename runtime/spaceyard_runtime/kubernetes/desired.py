"""Typed inputs and outputs of the Kubernetes backend: what a Space should be, what it is.

* :class:`DesiredSpace` — the control plane's wish for one Space (image, flavor, secrets, awake).
* :class:`ClusterConfig` — cluster-wide facts the manifests need (namespaces, gateway labels, ranges).
* :class:`SpaceStatus` / :class:`Stage` — what the controller observed, in the Hub's vocabulary.
"""

from __future__ import annotations

import enum
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from ..api import Flavor, StorageSpec
from ..settings import DEFAULT_BLOCKED_CIDRS, DEFAULT_BLOCKED_CIDRS_V6

ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class DesiredSpace:
    """One Space as the control plane wants it. Everything the manifests depend on is in here."""

    space_id: str
    """``owner/name``, any characters; object names come from :mod:`.slugs`."""
    image: str
    """Image reference the builder pushed (``registry/spaces/owner--name:<revision>``)."""
    revision: str
    flavor: Flavor
    sdk: str = "gradio"
    app_port: int = 7860
    secrets: Mapping[str, str] = field(default_factory=dict)
    """Go into the Space's Secret and reach the app through ``envFrom``."""
    variables: Mapping[str, str] = field(default_factory=dict)
    """Plain environment variables (part of the pod template: a change rolls the pod)."""
    awake: bool = True
    """False = asleep (replicas 0)."""
    paused: bool = False
    """Explicit pause by the owner: scale to zero even while waiting for capacity (an idle sleep waits)."""
    storage: StorageSpec | None = None
    """Persistent ``/data``: a PersistentVolumeClaim of its own, kept across versions, deleted with the Space."""
    agent: tuple[str, ...] | None = None
    """The pod runs the in-container agent (:mod:`.agentpod`; light sleep) with these preload modules for its
    warm parent, around ``python app_file``; ``None``: the image's own command, as built."""
    app_file: str = "app.py"
    light: bool = False
    """Asleep (``awake`` False) but lightly: the pod and its warm parent stay (replicas 1), the app is stopped."""
    light_since: float = 0.0
    """``time.time()`` the light sleep began: the cluster's light sleepers are deepened oldest first."""
    light_bytes: int = 0
    """What the light sleeper costs (its agent's and warm parent's private memory), for the memory budget."""
    retiring: tuple[str, ...] = ()
    """Pod template hashes of replaced revisions that still serve the sessions pinned to them: their
    Deployment and Service stay until the runtime retires them (the lifecycle stops their handles); any other
    revision is removed once this one serves (or sleeps)."""

    def __post_init__(self) -> None:
        for kind, values in (("secret", self.secrets), ("variable", self.variables)):
            bad = [k for k in values if not ENV_NAME.match(k)]
            if bad:
                raise ValueError(f"{kind} names must be valid environment variable names: {', '.join(bad)}")
        if not 1 <= self.app_port <= 65535:
            raise ValueError(f"app_port {self.app_port} out of range")

    @property
    def replicas(self) -> int:
        return 1 if (self.awake or (self.light and self.agent is not None)) and not self.paused else 0


@dataclass(frozen=True)
class ClusterConfig:
    """Cluster-wide settings the manifests need; filled from :class:`RuntimeSettings` by the caller."""

    namespace: str = "spaceyard-spaces"
    platform_namespace: str = "spaceyard"
    """Where the control plane and gateway run; Spaces may not reach it."""
    gateway_pod_labels: Mapping[str, str] = field(
        default_factory=lambda: {"app.kubernetes.io/name": "spaceyard", "app.kubernetes.io/component": "platform"}
    )
    """Labels of the pods allowed to open connections to Spaces (the gateway)."""
    blocked_cidrs: tuple[str, ...] = DEFAULT_BLOCKED_CIDRS + DEFAULT_BLOCKED_CIDRS_V6
    dns_namespace: str = "kube-system"
    service_port: int = 80
    run_as_user: int = 1000
    cluster_domain: str = "cluster.local"
    image_pull_secrets: tuple[str, ...] = ()
    runtime_class_name: str | None = None
    tmp_size_limit: str = "10Gi"
    """sizeLimit of the writable emptyDir at /tmp (the root filesystem is read-only where possible)."""
    hub_relay_port: int | None = None
    """Port of the Hub relay on the gateway (platform) pods: Spaces may open connections to it; None: no relay."""
    crash_restart_threshold: int = 3
    """Restarts after which a Space counts as crashed even between CrashLoopBackOff waits."""
    storage_class: str | None = None
    """StorageClass of the Spaces' ``/data`` claims; ``None``: the cluster's default class."""


class Stage(enum.Enum):
    """What the controller reports for a Space (the Hub's stages plus the capacity wait)."""

    STARTING = "STARTING"
    RUNNING = "RUNNING"
    SCHEDULING = "SCHEDULING"
    """Pod unschedulable (no node with a free GPU yet): the Hub's name for a capacity wait. Not idle, never
    put to sleep, not an error."""
    SLEEPING = "SLEEPING"
    PAUSED = "PAUSED"
    RUNTIME_ERROR = "RUNTIME_ERROR"
    ABSENT = "ABSENT"
    """No objects in the cluster."""


@dataclass(frozen=True)
class SpaceStatus:
    space_id: str
    stage: Stage
    message: str = ""
    log_tail: str = ""
    exit_code: int | None = None
    restarts: int = 0
    pod: str | None = None
    sleep_deferred: bool = False
    """The control plane asked for an idle sleep, but the Space is waiting for capacity: kept awake."""


def stable_hash(value: object) -> str:
    """A short hash of a JSON-able value, independent of dict order."""
    data = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(data.encode()).hexdigest()[:16]
