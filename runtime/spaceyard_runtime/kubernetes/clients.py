"""The one place that talks to the official ``kubernetes`` client (untyped: ``Any`` stays here).

:class:`KubeApi` wraps the typed API classes behind a handful of verbs on plain manifests (dicts),
in one namespace, and makes writes idempotent in the kubespawner way: ``409`` on create means the
object exists (then it is compared and replaced if it differs), ``404`` on delete means it is gone.
:func:`retry` wraps a call in full-jitter exponential backoff for the errors worth retrying (conflicts,
throttling, server errors, broken connections); anything else (a 422 from a bad manifest) raises.

All calls are synchronous (the client is urllib3-based); async callers use ``asyncio.to_thread``.
"""

from __future__ import annotations

import copy
import datetime as dt
import logging
import math
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import kubernetes.config
import kubernetes.watch
import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from .objects import ANNOTATION_HASH, Manifest

log = logging.getLogger(__name__)
T = TypeVar("T")

config: Any = kubernetes.config  # untyped modules: Any at the boundary
watch: Any = kubernetes.watch
MERGE_PATCH = "application/merge-patch+json"
REQUEST_TIMEOUT = (10, 60)
"""(connect, read) seconds for ordinary calls: a stuck API server must not hang a reconcile forever."""
LOG_READ_TIMEOUT = 300
"""A log stream silent this long is re-opened (it also notices half-open connections)."""
RETRYABLE_STATUS = {0, 409, 429, 500, 502, 503, 504}


@dataclass(frozen=True)
class _Kind:
    api: str
    suffix: str


KINDS: dict[str, _Kind] = {
    "ConfigMap": _Kind("core", "config_map"),
    "Secret": _Kind("core", "secret"),
    "Service": _Kind("core", "service"),
    "Pod": _Kind("core", "pod"),
    "Event": _Kind("core", "event"),
    "EndpointSlice": _Kind("discovery", "endpoint_slice"),
    "Deployment": _Kind("apps", "deployment"),
    "NetworkPolicy": _Kind("networking", "network_policy"),
    "Lease": _Kind("coordination", "lease"),
    "PersistentVolumeClaim": _Kind("core", "persistent_volume_claim"),
}


def status_of(exc: BaseException) -> int | None:
    """HTTP status of a client error; 0 for connection-level failures; None for anything else."""
    if isinstance(exc, ApiException):
        return int(exc.status or 0)
    if isinstance(exc, urllib3.exceptions.HTTPError | ConnectionError):
        return 0
    return None


def is_retryable(exc: BaseException) -> bool:
    return status_of(exc) in RETRYABLE_STATUS


def retry(
    fn: Callable[[], T],
    *,
    attempts: int = 6,
    base: float = 0.05,
    cap: float = 5.0,
    sleep: Callable[[float], None] = time.sleep,
    rand: Callable[[], float] = random.random,
) -> T:
    """Call ``fn`` until it succeeds; retryable failures wait ``rand() * min(cap, base * 2**n)`` (full jitter)."""
    for attempt in range(attempts):
        try:
            return fn()
        except Exception as exc:
            if not is_retryable(exc) or attempt == attempts - 1:
                raise
            delay = rand() * min(cap, base * 2**attempt)
            log.debug("retrying after %s (attempt %d, %.3fs)", exc, attempt + 1, delay)
            sleep(delay)
    raise AssertionError("unreachable")


def make_api_client(kubeconfig: Path | None = None, context: str | None = None) -> Any:
    """In-cluster configuration when running in a pod, else the kubeconfig (``KUBECONFIG`` / ~/.kube/config)."""
    if kubeconfig is None:
        try:
            config.load_incluster_config()
            return client.ApiClient()
        except config.ConfigException:
            pass
    return config.new_client_from_config(config_file=str(kubeconfig) if kubeconfig else None, context=context)


class KubeApi:
    """Verbs on plain manifests in one namespace, over one ``kubernetes.client.ApiClient``."""

    def __init__(self, api_client: Any, namespace: str) -> None:
        self.client = api_client
        self.namespace = namespace
        self._apis: dict[str, Any] = {
            "core": client.CoreV1Api(api_client),
            "apps": client.AppsV1Api(api_client),
            "networking": client.NetworkingV1Api(api_client),
            "coordination": client.CoordinationV1Api(api_client),
            "discovery": client.DiscoveryV1Api(api_client),
        }

    def _call(self, verb: str, kind: str, *args: Any, **kwargs: Any) -> Any:
        spec = KINDS[kind]
        method = getattr(self._apis[spec.api], f"{verb}_namespaced_{spec.suffix}")
        kwargs.setdefault("_request_timeout", REQUEST_TIMEOUT)
        return method(*args, **kwargs)

    def to_dict(self, model: Any) -> dict[str, Any]:
        result: dict[str, Any] = self.client.sanitize_for_serialization(model)
        return result

    # -- plain verbs ---------------------------------------------------------------------------

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        try:
            return self.to_dict(self._call("read", kind, name, self.namespace))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def list(self, kind: str, selector: str | None = None, fields: str | None = None) -> list[dict[str, Any]]:
        extra = {"field_selector": fields} if fields else {}
        result = self._call("list", kind, self.namespace, label_selector=selector, **extra)
        return [self.to_dict(item) for item in result.items or []]

    def list_with_version(self, kind: str, selector: str | None = None) -> tuple[str, Sequence[dict[str, Any]]]:
        """The items and the list's resourceVersion (a watch from it sees only what happens afterwards)."""
        result = self._call("list", kind, self.namespace, label_selector=selector)
        return str(result.metadata.resource_version), [self.to_dict(item) for item in result.items or []]

    def resource_version(self, kind: str, selector: str | None = None) -> str:
        """The list's resourceVersion: a watch from it sees only what happens afterwards."""
        result = self._call("list", kind, self.namespace, label_selector=selector)
        return str(result.metadata.resource_version)

    def create(self, obj: Manifest) -> dict[str, Any]:
        return self.to_dict(self._call("create", obj["kind"], self.namespace, obj))

    def replace(self, obj: Manifest) -> dict[str, Any]:
        return self.to_dict(self._call("replace", obj["kind"], obj["metadata"]["name"], self.namespace, obj))

    def delete(self, kind: str, name: str) -> bool:
        """Delete ``kind/name``; True if it was there, False if it was already gone (404)."""
        try:
            self._call("delete", kind, name, self.namespace, propagation_policy="Background")
            return True
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise

    def delete_pods(self, selector: str, grace: int) -> None:
        """Delete the pods of ``selector`` within ``grace`` seconds (shortens a longer grace already running)."""
        self._apis["core"].delete_collection_namespaced_pod(
            self.namespace, label_selector=selector, grace_period_seconds=grace, _request_timeout=REQUEST_TIMEOUT
        )

    def scale(self, name: str, replicas: int) -> None:
        self._apis["apps"].patch_namespaced_deployment_scale(
            name,
            self.namespace,
            {"spec": {"replicas": replicas}},
            _content_type=MERGE_PATCH,
            _request_timeout=REQUEST_TIMEOUT,
        )

    def resize_pod(self, name: str, container: str, requests: dict[str, str]) -> dict[str, Any]:
        """Change a running pod's resource requests in place (the ``resize`` subresource; the kubelet applies
        it without a restart). A strategic merge: the container's limits stay as they are."""
        body = {"spec": {"containers": [{"name": container, "resources": {"requests": requests}}]}}
        return self.to_dict(
            self._apis["core"].patch_namespaced_pod_resize(
                name,
                self.namespace,
                body,
                _content_type="application/strategic-merge-patch+json",
                _request_timeout=REQUEST_TIMEOUT,
            )
        )

    def pod_log(self, name: str, *, tail_lines: int = 50, previous: bool = False) -> str:
        text: str = self._apis["core"].read_namespaced_pod_log(
            name,
            self.namespace,
            container="app",
            tail_lines=tail_lines,
            previous=previous,
            _request_timeout=REQUEST_TIMEOUT,
        )
        return text

    def follow_pod_log(self, name: str, *, tail_lines: int | None = None, since: float | None = None) -> Iterator[str]:
        """Lines of the app container's log as they are written; ends when the pod goes away. ``since`` (a
        ``time.time()``): only the lines written from then on (the kubelet's timestamps, to the nanosecond)."""
        extra: dict[str, Any] = {}
        if since is not None:
            extra = {"since_seconds": max(1, math.ceil(time.time() - since) + 1), "timestamps": True}
        stream = watch.Watch().stream(
            self._apis["core"].read_namespaced_pod_log,
            name,
            self.namespace,
            container="app",
            follow=True,
            tail_lines=tail_lines,
            _request_timeout=(10, LOG_READ_TIMEOUT),
            **extra,
        )
        if since is None:
            yield from stream
            return
        for line in stream:
            stamp, _, text = line.partition(" ")
            try:
                when = dt.datetime.fromisoformat(stamp[:26].rstrip("Z") + "+00:00").timestamp()
            except ValueError:
                when = since
            if when >= since:
                yield text

    def watch(
        self, kind: str, selector: str | None, timeout_seconds: int, resource_version: str | None = None
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """Watch events ``(type, object)`` for at most ``timeout_seconds``."""
        spec = KINDS[kind]
        func = getattr(self._apis[spec.api], f"list_namespaced_{spec.suffix}")
        kwargs: dict[str, Any] = {
            "label_selector": selector,
            "timeout_seconds": timeout_seconds,
            "_request_timeout": (10, timeout_seconds + 30),
        }
        if resource_version:
            kwargs["resource_version"] = resource_version
        for event in watch.Watch().stream(func, self.namespace, **kwargs):
            yield event["type"], self.to_dict(event["object"])

    # -- idempotent writes ---------------------------------------------------------------------

    def ensure(self, obj: Manifest) -> tuple[str, dict[str, Any]]:
        """Make the live object match ``obj``; returns the action and the live object.

        The action is ``created``, ``updated``, ``scaled`` or ``unchanged``.

        Objects carry a hash of their manifest (:func:`objects.with_hash`); a live object with the same
        hash is left alone, so a resync of an unchanged Space writes nothing. A Deployment's replicas are
        not in the hash: they are compared on their own and set through the ``scale`` subresource (sleep,
        wake, and a ``kubectl scale`` behind our back is put back: the controller is the level).
        """
        kind, name = obj["kind"], obj["metadata"]["name"]
        live = self.get(kind, name)
        if live is None:
            try:
                return "created", self.create(obj)
            except ApiException as exc:
                if exc.status != 409:
                    raise
                live = self.get(kind, name)
                if live is None:
                    raise
        if not self._differs(obj, live):
            if kind == "Deployment" and live.get("spec", {}).get("replicas") != obj["spec"]["replicas"]:
                self.scale(name, obj["spec"]["replicas"])
                return "scaled", live
            return "unchanged", live
        desired = copy.deepcopy(obj)
        desired["metadata"]["resourceVersion"] = live["metadata"]["resourceVersion"]
        if kind == "Service":
            for immutable in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"):
                if immutable in live.get("spec", {}):
                    desired["spec"][immutable] = live["spec"][immutable]
        return "updated", self.replace(desired)

    @staticmethod
    def _differs(obj: Manifest, live: dict[str, Any]) -> bool:
        want = obj["metadata"].get("annotations", {}).get(ANNOTATION_HASH)
        have = ((live.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_HASH)
        return bool(want != have)
