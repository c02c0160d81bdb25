"""The Spaces controller: desired state from the control plane in, Kubernetes objects out.

Loop (:meth:`Controller.run`), level-triggered like kopf/controller-runtime:

1. **Leader election** on a ``coordination.k8s.io/v1`` Lease (:class:`LeaderElector`): a replica acts
   only while it holds the lease; the holder renews it every ``lease_duration / 3``; another replica
   takes over once ``renewTime + leaseDurationSeconds`` has passed. Updates carry the Lease's
   ``resourceVersion``, so two replicas racing for an expired lease cannot both win (one gets 409).
2. **Resync**: every ``resync_interval`` the whole desired set is reconciled (:func:`reconcile_space`)
   and owners of Spaces that are no longer desired are deleted. Missed events cannot leave drift.
3. **Watch**: between resyncs, pod events of managed Spaces trigger a reconcile of just that Space,
   so a crash or a pod becoming ready is reported at once instead of at the next resync.

Each status goes to ``status_sink`` (the control plane records it: stage, message, log tail). The
control plane owns *policy* (when a Space sleeps); the controller owns *mechanism* and one rule of
its own: an idle sleep is deferred while the Space waits for capacity (see :mod:`.reconcile`).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from kubernetes.client.exceptions import ApiException

from ..api import Flavor, StorageSpec
from ..flavors import get_flavor, load_flavors
from . import objects, slugs
from .clients import KubeApi, is_retryable
from .desired import ClusterConfig, DesiredSpace, SpaceStatus
from .reconcile import delete_space, managed_spaces, reconcile_space

log = logging.getLogger(__name__)

StatusSink = Callable[[SpaceStatus], None]
RECHECKS = 3
"""Reconciles of one Space in a row while its desired state keeps changing under the controller."""


class DesiredStateSource(Protocol):
    """Where desired state comes from (the control plane's database, or the KubernetesRuntime).

    ``desired_space(name)`` is the current desired state of one Space (by object name), read at the
    moment it is asked: the controller reconciles from it, never from an older listing, so that a
    new revision written meanwhile (the platform's rolling update) is not put back to the old one.
    """

    def desired_spaces(self) -> Iterable[DesiredSpace]: ...

    def desired_space(self, name: str) -> DesiredSpace | None: ...


def _micro_time(t: float) -> str:
    """A MicroTime. The official client turns the body into its model and back with ``isoformat()``,
    which leaves out the fraction when it is zero, and the API server rejects a MicroTime without
    exactly six fraction digits (found on a real server: a whole-second renewTime is a 400). So the
    time never falls on a whole second: one microsecond later at most."""
    when = dt.datetime.fromtimestamp(t, dt.UTC)
    if when.microsecond == 0:
        when += dt.timedelta(microseconds=1)
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_time(value: Any) -> float:
    if isinstance(value, dt.datetime):
        return value.timestamp()
    if not value:
        return 0.0
    return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


class LeaderElector:
    """Holds a Lease named ``name``; :meth:`try_acquire_or_renew` is called before every round of work.

    Expiry is judged like client-go does, on this replica's own clock: another holder's lease is
    expired once its record has not changed for ``leaseDurationSeconds`` *since this replica first
    saw that version* (not by comparing ``renewTime`` with the local clock), so clock skew between
    nodes cannot make two replicas leaders at once.
    """

    def __init__(
        self,
        api: KubeApi,
        name: str,
        identity: str,
        lease_duration: int = 15,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.api, self.name, self.identity = api, name, identity
        self.lease_duration = lease_duration
        self.clock = clock
        self.is_leader = False
        self._observed: tuple[str, float] | None = None
        """(resourceVersion of the lease, local time it was first seen)."""

    def _lease(self, now: float, transitions: int, acquired: float) -> dict[str, Any]:
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.name, "labels": dict(objects.MANAGED_BY)},
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": self.lease_duration,
                "acquireTime": _micro_time(acquired),
                "renewTime": _micro_time(now),
                "leaseTransitions": transitions,
            },
        }

    def try_acquire_or_renew(self) -> bool:
        now = self.clock()
        try:
            live = self.api.get("Lease", self.name)
            if live is None:
                self.api.create(self._lease(now, 0, now))
                return self._set(True)
            spec = live.get("spec") or {}
            holder = spec.get("holderIdentity")
            version = str(live["metadata"]["resourceVersion"])
            if self._observed is None or self._observed[0] != version:
                self._observed = (version, now)
            duration = int(spec.get("leaseDurationSeconds") or self.lease_duration)
            if holder not in (None, "", self.identity) and now < self._observed[1] + duration:
                return self._set(False)
            transitions = int(spec.get("leaseTransitions") or 0)
            acquired = _parse_time(spec.get("acquireTime")) if holder == self.identity else now
            if holder != self.identity:
                transitions += 1
            lease = self._lease(now, transitions, acquired or now)
            lease["metadata"]["resourceVersion"] = live["metadata"]["resourceVersion"]
            self.api.replace(lease)
            return self._set(True)
        except Exception as exc:
            if isinstance(exc, ApiException) and exc.status == 409:  # somebody else created or renewed it first
                return self._set(False)
            if is_retryable(exc):  # API server unreachable or overloaded: not leader until it answers
                log.warning("lease %s: %s; not acting this round", self.name, exc)
                return self._set(False)
            raise

    def release(self) -> None:
        """Give the lease up at shutdown so another replica takes over without waiting for expiry."""
        if not self.is_leader:
            return
        self.is_leader = False
        try:
            live = self.api.get("Lease", self.name)
            if live and (live.get("spec") or {}).get("holderIdentity") == self.identity:
                now = self.clock()
                lease = self._lease(now, int(live["spec"].get("leaseTransitions") or 0), now)
                lease["spec"].update(holderIdentity="", leaseDurationSeconds=1)
                lease["metadata"]["resourceVersion"] = live["metadata"]["resourceVersion"]
                self.api.replace(lease)
        except Exception as exc:
            log.warning("lease %s: release failed (it will expire): %s", self.name, exc)

    def _set(self, leader: bool) -> bool:
        if leader != self.is_leader:
            log.info("lease %s: %s is %s", self.name, self.identity, "leader" if leader else "standby")
        self.is_leader = leader
        return leader


def default_identity() -> str:
    return f"{os.environ.get('HOSTNAME') or socket.gethostname()}-{uuid.uuid4().hex[:6]}"


class Controller:
    """Reconciles every Space of a :class:`DesiredStateSource` while it holds the Lease."""

    def __init__(
        self,
        api_client: Any,
        cfg: ClusterConfig,
        source: DesiredStateSource,
        *,
        identity: str | None = None,
        status_sink: StatusSink | None = None,
        lease_name: str = "spaceyard-controller",
        lease_duration: int = 15,
        resync_interval: float = 30.0,
        delete_orphans: bool = True,
        owner_is_record: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.api = KubeApi(api_client, cfg.namespace)
        self.delete_orphans = delete_orphans
        """Delete Spaces the source no longer lists (off when the source *is* the cluster's records)."""
        self.owner_is_record = owner_is_record
        """The source reads the owner objects (:class:`ClusterRecordSource`): the controller never writes them."""
        self.cfg = cfg
        self.source = source
        self.identity = identity or default_identity()
        self.status_sink = status_sink or (lambda status: None)
        self.elector = LeaderElector(self.api, lease_name, self.identity, lease_duration, clock)
        self.resync_interval = resync_interval
        self.statuses: dict[str, SpaceStatus] = {}
        self._desired: dict[str, DesiredSpace] = {}

    # -- one round ---------------------------------------------------------------------------------

    def resync(self) -> dict[str, SpaceStatus] | None:
        """One full pass if this replica is the leader (else ``None``): reconcile all, delete orphans."""
        if not self.elector.try_acquire_or_renew():
            return None
        try:
            desired = {slugs.space_name(s.space_id): s for s in self.source.desired_spaces()}
        except Exception:
            log.exception("desired state unavailable; skipping this resync (nothing is deleted)")
            return None
        self._desired = desired
        results: dict[str, SpaceStatus] = {}
        for name in desired:
            status = self.reconcile_one(name)
            if status is not None:
                results[name] = status
        for name, space_id in managed_spaces(self.api).items() if self.delete_orphans else ():
            if name not in desired:
                log.info("space %s (%s) is no longer desired: deleting", space_id, name)
                delete_space(self.api, space_id or name)
                self.statuses.pop(name, None)
        return results

    def reconcile_one(self, name: str) -> SpaceStatus | None:
        """Reconcile the Space whose objects are called ``name`` (a watch event, or one of a resync), if
        desired, from its desired state as it is now (not as the last resync listed it)."""
        if name not in self._desired or not self.elector.is_leader:
            return None
        try:
            space = self.source.desired_space(name)
        except Exception:
            log.exception("desired state of %s unavailable; retried at the next event or resync", name)
            return None
        if space is None:  # gone since the resync listed it: the next resync deletes it (or not)
            return None
        self._desired[name] = space
        return self._reconcile(space)

    def _reconcile(self, space: DesiredSpace) -> SpaceStatus | None:
        """Converge to ``space``; if the desired state changed meanwhile (the runtime wrote a newer one while
        this reconcile applied what it had read), converge again to the newer one, so that nothing written
        from the older read outlives it."""
        name = slugs.space_name(space.space_id)
        try:
            for _ in range(RECHECKS):
                status = reconcile_space(self.api, space, self.cfg, write_owner=not self.owner_is_record)
                fresh = self.source.desired_space(name)
                if fresh is None or fresh == space:
                    break
                log.info("space %s: its desired state changed while it was reconciled: again", space.space_id)
                space = self._desired[name] = fresh
        except Exception:
            log.exception("space %s: reconcile failed; retried at the next event or resync", space.space_id)
            return None
        if self.statuses.get(name) != status:
            self.statuses[name] = status
            self.status_sink(status)
        return status

    # -- the loop ----------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Until ``stop`` is set: elect, resync, then watch pods until the next renew or resync."""
        renew_every = max(1, self.elector.lease_duration // 3)
        next_resync = 0.0
        resource_version: str | None = None
        try:
            while not stop.is_set():
                if time.monotonic() >= next_resync or not self.elector.is_leader:
                    try:
                        result = self.resync()
                    except Exception as exc:
                        if not is_retryable(exc):
                            raise
                        log.warning("resync interrupted: %s", exc)
                        result = None
                    if result is None:
                        stop.wait(renew_every)
                        continue
                    next_resync = time.monotonic() + self.resync_interval
                    resource_version = None
                elif not self.elector.try_acquire_or_renew():
                    continue
                window = int(max(1, min(renew_every, next_resync - time.monotonic())))
                resource_version = self._watch_pods(window, resource_version, stop)
        finally:
            self.elector.release()

    def _watch_pods(self, seconds: int, resource_version: str | None, stop: threading.Event) -> str | None:
        try:
            for _type, pod in self.api.watch("Pod", objects.managed_selector(), seconds, resource_version):
                resource_version = pod["metadata"].get("resourceVersion") or resource_version
                name = (pod["metadata"].get("labels") or {}).get(objects.LABEL_SPACE)
                if name:
                    self.reconcile_one(name)
                if stop.is_set():
                    break
        except ApiException as exc:
            if exc.status == 410:  # resourceVersion too old: start from a fresh list next time
                return None
            log.warning("pod watch failed: %s", exc.reason)
            stop.wait(1)
            return None
        except Exception as exc:
            if not is_retryable(exc):
                raise
            log.warning("pod watch interrupted: %s", exc)
            stop.wait(1)
            return None
        return resource_version


class ClusterRecordSource:
    """Desired state as the cluster records it: the owner ConfigMaps (+ Secrets) the runtime wrote.

    This is what the deployed controller uses: the control plane writes each Space through
    :class:`~.runtime.KubernetesRuntime`, and the controller keeps every recorded Space converged
    (re-creates a deleted Deployment, undoes a ``kubectl scale``, reports crashes and capacity waits).
    A source backed by the control plane's API can replace it without touching the controller.
    """

    def __init__(self, api: KubeApi, flavors: dict[str, Flavor]) -> None:
        self.api, self.flavors = api, flavors

    def desired_spaces(self) -> list[DesiredSpace]:
        owners = self.api.list("ConfigMap", f"{objects.managed_selector()},{objects.LABEL_COMPONENT}=owner")
        return [space for owner in owners if (space := self._from_owner(owner)) is not None]

    def desired_space(self, name: str) -> DesiredSpace | None:
        owner = self.api.get("ConfigMap", name)
        if owner is None or (owner["metadata"].get("labels") or {}).get(objects.LABEL_COMPONENT) != "owner":
            return None
        return self._from_owner(owner)

    def _from_owner(self, owner: dict[str, Any]) -> DesiredSpace | None:
        data = owner.get("data") or {}
        try:
            secret = self.api.get("Secret", owner["metadata"]["name"]) or {}
            secrets = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
            return DesiredSpace(
                space_id=data["space-id"],
                image=data["image"],
                revision=data["revision"],
                flavor=get_flavor(self.flavors, data["flavor"]),
                sdk=data.get("sdk", "gradio"),
                app_port=int(data.get("app-port", "7860")),
                secrets=secrets,
                variables=json.loads(data.get("variables") or "{}"),
                awake=data.get("awake") != "false",
                paused=data.get("paused") == "true",
                storage=StorageSpec(**json.loads(data["storage"])) if data.get("storage") else None,
                agent=tuple(json.loads(data["agent"])) if data.get("agent") else None,
                app_file=data.get("app-file", "app.py"),
                light=data.get("light") == "true",
                light_since=float(data.get("light-since") or 0),
                light_bytes=int(data.get("light-bytes") or 0),
                retiring=tuple(json.loads(data.get("retiring") or "[]")),
            )
        except (KeyError, ValueError) as exc:  # UnknownFlavor is a KeyError: flavor removed from the file
            log.error("owner %s is not usable, leaving it alone: %s", owner["metadata"]["name"], exc)
            return None


def main() -> None:  # pragma: no cover - the container entry point; the pieces are tested
    """``python -m spaceyard_runtime.kubernetes.controller``: run the controller until SIGTERM."""
    import signal

    from ..settings import RuntimeSettings
    from .clients import make_api_client
    from .runtime import cluster_config

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = RuntimeSettings()
    cfg = cluster_config(settings)
    api_client = make_api_client(settings.kubernetes_kubeconfig)
    source = ClusterRecordSource(KubeApi(api_client, cfg.namespace), load_flavors(settings.flavors_file))

    def report(status: SpaceStatus) -> None:
        log.info("space %s: %s %s", status.space_id, status.stage.value, status.message)

    controller = Controller(
        api_client,
        cfg,
        source,
        status_sink=report,
        delete_orphans=False,
        owner_is_record=True,
        lease_name=settings.kubernetes_lease_name,
        resync_interval=settings.kubernetes_resync_interval,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    controller.run(stop)


if __name__ == "__main__":  # pragma: no cover
    main()
