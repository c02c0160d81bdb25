"""A FAKE Kubernetes API server for tests: real HTTP on loopback, spoken to by the official client.

It is not Kubernetes. It keeps objects in memory with uids and resourceVersions, answers the REST calls
our code makes (create / get / list / watch / replace / merge- and JSON-patch / delete, ``pods/log``,
``deployments/scale``) with real Kubernetes JSON (including ``Status`` errors: 404 NotFound, 409
AlreadyExists / Conflict on a stale resourceVersion, 422 Invalid), and emits watch events. Every
object written is validated against the official OpenAPI schema (``kubernetes-validate``, strict), so
a manifest the real API server would reject is rejected here too.

A small *simulated cluster* runs after each write, synchronously (no timers, no sleeps):

* deployment controller: pods for ``spec.replicas`` from the current template; old pods go at once
  (``Recreate``, or when scaled to 0) or when a new one is ready (rolling update); status counters;
* scheduler: a pod asking for more ``nvidia.com/gpu`` than the free GPU capacity stays ``Pending`` with
  ``PodScheduled=False, reason=Unschedulable`` and the scheduler's message (:meth:`add_gpus` frees it);
* kubelet: images behave as told by :meth:`set_image` — ``ok`` (ready at once), ``slow`` (running, not
  ready until :meth:`make_ready`), ``crash`` (``CrashLoopBackOff``, restarts, exit code, log lines);
* garbage collector: deleting an object deletes everything whose ``ownerReferences`` point at it.

Simplifications (a real cluster still has to show these): pods are owned by the Deployment directly
(no ReplicaSets), there are no nodes besides a GPU count, no admission, no NetworkPolicy enforcement,
label selectors support ``k=v`` and ``k`` only, strategic-merge patches are treated as merge patches.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import kubernetes_validate

KINDS: dict[tuple[str, str], str] = {
    ("v1", "configmaps"): "ConfigMap",
    ("v1", "secrets"): "Secret",
    ("v1", "services"): "Service",
    ("v1", "pods"): "Pod",
    ("v1", "events"): "Event",
    ("apps/v1", "deployments"): "Deployment",
    ("networking.k8s.io/v1", "networkpolicies"): "NetworkPolicy",
    ("batch/v1", "jobs"): "Job",
    ("coordination.k8s.io/v1", "leases"): "Lease",
}
PATH = re.compile(
    r"^/(?:api/(?P<core>v1)|apis/(?P<group>[^/]+)/(?P<version>[^/]+))"
    r"/namespaces/(?P<ns>[^/]+)/(?P<plural>[^/]+)(?:/(?P<name>[^/]+))?(?:/(?P<sub>[^/]+))?$"
)
SCHEMA_VERSION = "1.35.0"
Key = tuple[str, str, str, str]
Objects = list[dict[str, Any]]


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message

    def status(self) -> dict[str, Any]:
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def selector_matches(selector: str | None, labels: dict[str, str]) -> bool:
    for term in filter(None, (selector or "").split(",")):
        if "=" in term:
            k, _, v = term.partition("=")
            if labels.get(k.rstrip("=").rstrip("!")) != v.lstrip("="):
                return False
        elif term not in labels:
            return False
    return True


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            result.pop(k, None)
        else:
            result[k] = merge_patch(result.get(k), v)
    return result


def json_patch(target: dict[str, Any], ops: list[dict[str, Any]]) -> dict[str, Any]:
    doc = copy.deepcopy(target)
    for op in ops:
        parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
        parent: Any = doc
        for p in parts[:-1]:
            parent = parent[int(p)] if isinstance(parent, list) else parent.setdefault(p, {})
        last = parts[-1]
        if op["op"] in ("add", "replace"):
            if isinstance(parent, list):
                parent.insert(int(last), op["value"]) if op["op"] == "add" else parent.__setitem__(
                    int(last), op["value"]
                )
            else:
                parent[last] = op["value"]
        elif op["op"] == "remove":
            del parent[int(last) if isinstance(parent, list) else last]
        else:
            raise ApiError(422, "Invalid", f"unsupported JSON patch op {op['op']}")
    return doc


@dataclass
class ImageBehaviour:
    mode: str = "ok"
    """``ok``, ``slow`` (not ready until make_ready) or ``crash``."""
    logs: list[str] = field(default_factory=lambda: ["* Running on local URL:  http://0.0.0.0:7860"])
    exit_code: int = 1


@dataclass
class Event:
    rv: int
    gv: str
    plural: str
    namespace: str
    type: str
    obj: dict[str, Any]


class FakeKubeAPI:
    """In-memory objects + simulated cluster; :meth:`start` serves it over HTTP on 127.0.0.1."""

    def __init__(self, gpu_capacity: int = 0, validate: bool = True) -> None:
        self.objects: dict[Key, dict[str, Any]] = {}
        self.events: list[Event] = []
        self.rv = itertools.count(100)
        self.last_rv = 99
        self.lock = threading.Condition(threading.RLock())
        self.gpu_capacity = gpu_capacity
        self.validate = validate
        self.images: dict[str, ImageBehaviour] = {}
        self.logs: dict[str, list[str]] = {}
        self.ready_overrides: set[str] = set()
        self.writes: list[tuple[str, str]] = []
        """(method, path) of every successful write, for assertions."""
        self.requests = 0
        self.failures: list[tuple[str, str, int]] = []
        """Injected errors: (method, plural, status), each answered once, first match first."""
        self.calls: list[tuple[str, str, bool]] = []
        """(method, path, is_watch) of every request, for the RBAC test."""
        self.closing = False
        self.server: ThreadingHTTPServer | None = None
        self.url = ""
        self.ip_counter = itertools.count(10)

    # ------------------------------------------------------------------ test controls

    def start(self) -> str:
        fake = self

        class Handler(_Handler):
            api = fake

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True, name="fake-kube-api"
        ).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        return self.url

    def stop(self) -> None:
        with self.lock:
            self.closing = True
            self.lock.notify_all()
        if self.server:
            self.server.shutdown()
            self.server.server_close()

    def fail(self, method: str, plural: str, status: int, times: int = 1) -> None:
        """Answer the next ``times`` matching requests with ``status`` (503, 429, 409, 403...)."""
        with self.lock:
            self.failures += [(method, plural, status)] * times

    def set_image(self, image: str, mode: str = "ok", logs: list[str] | None = None, exit_code: int = 1) -> None:
        with self.lock:
            self.images[image] = ImageBehaviour(mode, logs or ImageBehaviour().logs, exit_code)

    def add_gpus(self, count: int) -> None:
        """A GPU node joined (cluster autoscaler): pending pods may schedule now."""
        with self.lock:
            self.gpu_capacity += count
            self._resync_all()

    def make_ready(self, pod_name: str) -> None:
        with self.lock:
            self.ready_overrides.add(pod_name)
            self._resync_all()

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        with self.lock:
            for (gv, plural, ns, n), obj in self.objects.items():
                if KINDS[(gv, plural)] == kind and ns == namespace and n == name:
                    return copy.deepcopy(obj)
            return None

    def list(self, kind: str, namespace: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [
                copy.deepcopy(o)
                for (gv, plural, ns, _), o in self.objects.items()
                if KINDS[(gv, plural)] == kind and namespace in (None, ns)
            ]

    # ------------------------------------------------------------------ storage

    def _emit(self, key: Key, type_: str, obj: dict[str, Any]) -> None:
        self.events.append(
            Event(int(obj["metadata"]["resourceVersion"]), key[0], key[1], key[2], type_, copy.deepcopy(obj))
        )
        self.lock.notify_all()

    def _bump(self, obj: dict[str, Any]) -> None:
        self.last_rv = next(self.rv)
        obj["metadata"]["resourceVersion"] = str(self.last_rv)

    def _store(self, key: Key, obj: dict[str, Any], type_: str) -> dict[str, Any]:
        self._bump(obj)
        self.objects[key] = obj
        self._emit(key, type_, obj)
        return obj

    def _check_schema(self, obj: dict[str, Any]) -> None:
        if not self.validate:
            return
        try:
            kubernetes_validate.validate(obj, SCHEMA_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            raise ApiError(422, "Invalid", f"{obj.get('kind')} is invalid: {path}: {exc.message}") from exc

    def create(self, gv: str, plural: str, ns: str, body: dict[str, Any]) -> dict[str, Any]:
        kind = KINDS[(gv, plural)]
        obj = copy.deepcopy(body)
        obj.setdefault("apiVersion", gv)
        obj.setdefault("kind", kind)
        meta = obj.setdefault("metadata", {})
        if meta.get("generateName") and not meta.get("name"):
            meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
        name = meta.get("name")
        if not name:
            raise ApiError(422, "Invalid", f"{kind}: metadata.name: Required value")
        key = (gv, plural, ns, name)
        if key in self.objects:
            raise ApiError(409, "AlreadyExists", f'{plural} "{name}" already exists')
        meta.pop("resourceVersion", None)
        meta.update(namespace=ns, uid=str(uuid.uuid4()), creationTimestamp=now())
        if kind in ("Deployment", "Job"):
            meta["generation"] = 1
        if kind == "Service":
            ip = f"10.96.0.{next(self.ip_counter)}"
            obj["spec"].setdefault("clusterIP", ip)
            obj["spec"].setdefault("clusterIPs", [obj["spec"]["clusterIP"]])
        self._check_schema(obj)
        self._store(key, obj, "ADDED")
        self._after_write(key)
        return self.objects[key]

    def replace(self, gv: str, plural: str, ns: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        key = (gv, plural, ns, name)
        live = self._live(key)
        obj = copy.deepcopy(body)
        given = obj.get("metadata", {}).get("resourceVersion")
        if given and given != live["metadata"]["resourceVersion"]:
            raise ApiError(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on {plural} "{name}": the object has been modified; '
                "please apply your changes to the latest version and try again",
            )
        if KINDS[(gv, plural)] == "Service":
            want = obj.get("spec", {}).get("clusterIP")
            if want != live["spec"]["clusterIP"]:
                raise ApiError(
                    422, "Invalid", f'Service "{name}" is invalid: spec.clusterIP: field is immutable (got {want!r})'
                )
        if KINDS[(gv, plural)] == "Deployment" and obj["spec"].get("selector") != live["spec"].get("selector"):
            raise ApiError(422, "Invalid", f'Deployment "{name}" is invalid: spec.selector: field is immutable')
        return self._update(key, live, obj)

    def _update(self, key: Key, live: dict[str, Any], obj: dict[str, Any]) -> dict[str, Any]:
        obj.setdefault("apiVersion", key[0])
        obj.setdefault("kind", KINDS[(key[0], key[1])])
        meta = obj.setdefault("metadata", {})
        for k in ("uid", "creationTimestamp", "namespace", "name", "generation"):
            if k in live["metadata"]:
                meta[k] = live["metadata"][k]
        if "status" in live:
            obj["status"] = live["status"]
        if "generation" in meta and obj.get("spec") != live.get("spec"):
            meta["generation"] += 1
        self._check_schema(obj)
        if obj == live:
            return live
        self._store(key, obj, "MODIFIED")
        self._after_write(key)
        return self.objects[key]

    def patch(self, gv: str, plural: str, ns: str, name: str, body: Any, content_type: str) -> dict[str, Any]:
        key = (gv, plural, ns, name)
        live = self._live(key)
        if content_type.startswith("application/json-patch+json"):
            if not isinstance(body, list):
                raise ApiError(400, "BadRequest", "json: cannot unmarshal object into Go value of type jsonpatch.Patch")
            obj = json_patch(live, body)
        elif content_type.startswith(("application/merge-patch+json", "application/strategic-merge-patch+json")):
            if not isinstance(body, dict):
                raise ApiError(400, "BadRequest", "a merge patch must be a JSON object")
            obj = merge_patch(live, body)
        else:
            raise ApiError(
                415, "UnsupportedMediaType", f"the body of the request was in an unknown format: {content_type}"
            )
        obj.get("metadata", {}).pop("resourceVersion", None)
        return self._update(key, live, obj)

    def delete(self, gv: str, plural: str, ns: str, name: str) -> dict[str, Any]:
        key = (gv, plural, ns, name)
        live = self._live(key)
        self._delete(key)
        self._resync_all()
        return live

    def _delete(self, key: Key) -> None:
        obj = self.objects.pop(key, None)
        if obj is None:
            return
        self._bump(obj)
        self._emit(key, "DELETED", obj)
        uid = obj["metadata"]["uid"]
        for dep_key, dep in list(self.objects.items()):
            if any(ref.get("uid") == uid for ref in dep["metadata"].get("ownerReferences", [])):
                self._delete(dep_key)

    def _live(self, key: Key) -> dict[str, Any]:
        if key not in self.objects:
            raise ApiError(404, "NotFound", f'{key[1]} "{key[3]}" not found')
        return self.objects[key]

    def select(self, gv: str, plural: str, ns: str, selector: str | None) -> Objects:
        return [
            o
            for (g, p, n, _), o in sorted(self.objects.items())
            if (g, p, n) == (gv, plural, ns) and selector_matches(selector, o["metadata"].get("labels", {}))
        ]

    # ------------------------------------------------------------------ simulated cluster

    def _after_write(self, key: Key) -> None:
        self._resync_all()

    def _resync_all(self) -> None:
        for key, obj in list(self.objects.items()):
            if KINDS[(key[0], key[1])] == "Deployment" and key in self.objects:
                self._sync_deployment(key, obj)

    def _gpus_of(self, pod: dict[str, Any]) -> int:
        limits = pod["spec"]["containers"][0].get("resources", {}).get("limits", {})
        return int(limits.get("nvidia.com/gpu", 0))

    def _gpus_used(self) -> int:
        return sum(
            self._gpus_of(o)
            for (gv, plural, _, _), o in self.objects.items()
            if plural == "pods" and o["status"].get("phase") != "Pending"
        )

    def _sync_deployment(self, key: Key, dep: dict[str, Any]) -> None:
        ns = key[2]
        template = dep["spec"]["template"]
        thash = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]
        uid = dep["metadata"]["uid"]
        pods = [
            (k, p)
            for k, p in self.objects.items()
            if k[1] == "pods" and any(r.get("uid") == uid for r in p["metadata"].get("ownerReferences", []))
        ]
        current = [(k, p) for k, p in pods if p["metadata"]["annotations"].get("fake/template") == thash]
        old = [(k, p) for k, p in pods if (k, p) not in current]
        replicas = dep["spec"].get("replicas", 1)
        recreate = dep["spec"].get("strategy", {}).get("type") == "Recreate"
        if replicas == 0 or recreate or any(self._ready(p) for _, p in current):
            for k, _ in old:
                self._delete(k)
            old = []
        for k, _ in current[replicas:]:
            self._delete(k)
        current = current[:replicas]
        while len(current) < replicas:
            pod_key, pod = self._new_pod(ns, dep, thash)
            current.append((pod_key, pod))
        for pod_key, pod in current:
            self._run_pod(pod_key, pod)
        if any(self._ready(p) for _, p in current):
            for k, _ in old:
                self._delete(k)
            old = []
        live_pods = [p for _, p in current] + [p for _, p in old]
        status = {
            "observedGeneration": dep["metadata"].get("generation", 1),
            "replicas": len(live_pods),
            "updatedReplicas": len(current),
            "readyReplicas": sum(self._ready(p) for p in live_pods),
            "availableReplicas": sum(self._ready(p) for p in live_pods),
        }
        status = {k: v for k, v in status.items() if v or k == "observedGeneration"}
        if dep.get("status") != status:
            dep["status"] = status
            self._store(key, dep, "MODIFIED")

    def _new_pod(self, ns: str, dep: dict[str, Any], thash: str) -> tuple[Key, dict[str, Any]]:
        template = copy.deepcopy(dep["spec"]["template"])
        name = f"{dep['metadata']['name']}-{thash}-{uuid.uuid4().hex[:5]}"
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                **template.get("metadata", {}),
                "name": name,
                "namespace": ns,
                "uid": str(uuid.uuid4()),
                "creationTimestamp": now(),
                "ownerReferences": [
                    {
                        "apiVersion": "apps/v1",
                        "kind": "Deployment",
                        "name": dep["metadata"]["name"],
                        "uid": dep["metadata"]["uid"],
                    }
                ],
            },
            "spec": template["spec"],
            "status": {"phase": "Pending"},
        }
        pod["metadata"].setdefault("annotations", {})["fake/template"] = thash
        key = ("v1", "pods", ns, name)
        self._store(key, pod, "ADDED")
        return key, pod

    def _ready(self, pod: dict[str, Any]) -> bool:
        return any(c.get("type") == "Ready" and c.get("status") == "True" for c in pod["status"].get("conditions", []))

    def _run_pod(self, key: Key, pod: dict[str, Any]) -> None:
        """Scheduler + kubelet for one pod: compute its status from capacity and image behaviour."""
        name = pod["metadata"]["name"]
        container = pod["spec"]["containers"][0]
        gpus = self._gpus_of(pod)
        phase = pod["status"].get("phase")
        if phase == "Pending" and gpus and gpus > self.gpu_capacity - self._gpus_used():
            free = max(0, self.gpu_capacity - self._gpus_used())
            status: dict[str, Any] = {
                "phase": "Pending",
                "conditions": [
                    {
                        "type": "PodScheduled",
                        "status": "False",
                        "reason": "Unschedulable",
                        "message": f"0/3 nodes are available: 3 Insufficient nvidia.com/gpu (free: {free}). "
                        "preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod.",
                    }
                ],
            }
        else:
            behaviour = self.images.get(container["image"], ImageBehaviour())
            self.logs.setdefault(name, list(behaviour.logs))
            ready = behaviour.mode == "ok" or (behaviour.mode == "slow" and name in self.ready_overrides)
            cstatus: dict[str, Any] = {
                "name": container["name"],
                "image": container["image"],
                "imageID": "",
                "ready": ready,
                "restartCount": 0,
                "started": True,
                "state": {"running": {"startedAt": now()}},
            }
            if behaviour.mode == "crash":
                cstatus.update(
                    ready=False,
                    restartCount=4,
                    started=False,
                    state={
                        "waiting": {
                            "reason": "CrashLoopBackOff",
                            "message": f"back-off 1m20s restarting failed container=app pod={name}",
                        }
                    },
                    lastState={
                        "terminated": {
                            "exitCode": behaviour.exit_code,
                            "reason": "Error",
                            "startedAt": now(),
                            "finishedAt": now(),
                        }
                    },
                )
            status = {
                "phase": "Running",
                "podIP": pod["status"].get("podIP") or f"10.244.0.{next(self.ip_counter)}",
                "conditions": [
                    {"type": "PodScheduled", "status": "True"},
                    {"type": "Ready", "status": "True" if ready else "False"},
                    {"type": "ContainersReady", "status": "True" if ready else "False"},
                ],
                "containerStatuses": [cstatus],
            }
        previous = {k: v for k, v in pod["status"].items() if k != "startTime"}
        if previous != status:
            status["startTime"] = pod["status"].get("startTime") or now()
            pod["status"] = status
            self._store(key, pod, "MODIFIED")

    # ------------------------------------------------------------------ HTTP

    def handle(self, method: str, path: str, query: dict[str, str], body: Any, content_type: str) -> tuple[int, Any]:
        match = PATH.match(path)
        if path == "/version":
            return 200, {"major": "1", "minor": "35", "gitVersion": "v1.35.0-fake"}
        if not match:
            raise ApiError(404, "NotFound", f"the server could not find the requested resource ({path})")
        gv = match["core"] or f"{match['group']}/{match['version']}"
        plural, ns, name, sub = match["plural"], match["ns"], match["name"], match["sub"]
        if (gv, plural) not in KINDS:
            raise ApiError(404, "NotFound", f"the server could not find the requested resource ({gv} {plural})")
        kind = KINDS[(gv, plural)]
        with self.lock:
            self.requests += 1
            for failure in self.failures:
                if failure[:2] == (method, plural):
                    self.failures.remove(failure)
                    reasons = {409: "Conflict", 429: "TooManyRequests", 403: "Forbidden"}
                    raise ApiError(failure[2], reasons.get(failure[2], "InternalError"), "injected by the test")
            if method == "GET" and name is None:
                items = copy.deepcopy(self.select(gv, plural, ns, query.get("labelSelector")))
                return 200, {
                    "kind": f"{kind}List",
                    "apiVersion": gv,
                    "metadata": {"resourceVersion": str(self.last_rv)},
                    "items": items,
                }
            if method == "GET" and sub == "log":
                self._live((gv, plural, ns, name))
                return 200, None
            if method == "GET" and sub == "scale" or method == "PATCH" and sub == "scale":
                key = (gv, plural, ns, name)
                if method == "PATCH":
                    replicas = body["spec"]["replicas"] if isinstance(body, dict) else body[0]["value"]
                    self.patch(gv, plural, ns, name, {"spec": {"replicas": replicas}}, "application/merge-patch+json")
                    self.writes.append((method, path))
                dep = self._live(key)
                return 200, {
                    "apiVersion": "autoscaling/v1",
                    "kind": "Scale",
                    "metadata": {k: dep["metadata"][k] for k in ("name", "namespace", "uid", "resourceVersion")},
                    "spec": {"replicas": dep["spec"].get("replicas", 1)},
                    "status": {"replicas": dep.get("status", {}).get("replicas", 0)},
                }
            if sub:
                raise ApiError(404, "NotFound", f"subresource {sub} not supported by the fake")
            if method == "GET":
                return 200, copy.deepcopy(self._live((gv, plural, ns, name)))
            if method == "POST" and name is None:
                result = self.create(gv, plural, ns, body)
            elif method == "PUT":
                result = self.replace(gv, plural, ns, name, body)
            elif method == "PATCH":
                result = self.patch(gv, plural, ns, name, body, content_type)
            elif method == "DELETE":
                gone = self.delete(gv, plural, ns, name)
                self.writes.append((method, path))
                if kind in ("Service", "Pod"):  # their registries return the deleted object, others a Status
                    return 200, copy.deepcopy(gone)
                return 200, {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "metadata": {},
                    "status": "Success",
                    "details": {"name": name, "kind": plural, "uid": gone["metadata"]["uid"]},
                }
            else:
                raise ApiError(405, "MethodNotAllowed", f"{method} not allowed on {path}")
            self.writes.append((method, path))
            return (201 if method == "POST" else 200), copy.deepcopy(result)

    def watch(self, gv: str, plural: str, ns: str, query: dict[str, str]) -> Iterator[dict[str, Any]]:
        selector = query.get("labelSelector")
        deadline = time.monotonic() + float(query.get("timeoutSeconds", "30"))
        with self.lock:
            if query.get("resourceVersion") not in (None, "", "0"):
                since = int(query["resourceVersion"])
                initial: Objects = []
            else:
                since = self.last_rv
                initial = [{"type": "ADDED", "object": copy.deepcopy(o)} for o in self.select(gv, plural, ns, selector)]
            cursor = len(self.events)
            while cursor > 0 and self.events[cursor - 1].rv > since:
                cursor -= 1
        yield from initial
        while True:
            with self.lock:
                while cursor >= len(self.events) and not self.closing and time.monotonic() < deadline:
                    self.lock.wait(timeout=max(0.0, min(0.5, deadline - time.monotonic())))
                if self.closing or cursor >= len(self.events):
                    return
                batch = self.events[cursor:]
                cursor = len(self.events)
            for event in batch:
                if (event.gv, event.plural, event.namespace) == (gv, plural, ns) and selector_matches(
                    selector, event.obj["metadata"].get("labels", {})
                ):
                    yield {"type": event.type, "object": event.obj}

    def follow_log(self, ns: str, name: str, query: dict[str, str]) -> Iterator[str]:
        key = ("v1", "pods", ns, name)
        with self.lock:
            lines = list(self.logs.get(name, []))
        tail = query.get("tailLines")
        sent = len(lines)
        if tail is not None:
            lines = lines[-int(tail) :] if int(tail) else []
        yield from lines
        if query.get("follow", "").lower() != "true":
            return
        while True:
            with self.lock:
                while not self.closing and key in self.objects and len(self.logs.get(name, [])) <= sent:
                    self.lock.wait(timeout=0.5)
                if self.closing or key not in self.objects:
                    return
                new = self.logs[name][sent:]
                sent += len(new)
            yield from new

    def append_log(self, pod_name: str, line: str) -> None:
        with self.lock:
            self.logs.setdefault(pod_name, []).append(line)
            self.lock.notify_all()


class _Handler(BaseHTTPRequestHandler):
    api: FakeKubeAPI
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - BaseHTTPRequestHandler's name
        pass

    def _query(self) -> tuple[str, dict[str, str]]:
        url = urlparse(self.path)
        return url.path, {k: v[-1] for k, v in parse_qs(url.query).items()}

    def _send_json(self, code: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, lines: Iterator[str], content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for line in lines:
                data = (line + "\n").encode()
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _dispatch(self, method: str) -> None:
        if self.api.closing:  # stopped: drop kept-alive connections like a dead server would
            self.close_connection = True
            return
        path, query = self._query()
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        content_type = self.headers.get("Content-Type", "application/json")
        try:
            body = json.loads(raw) if raw else None
            match = PATH.match(path)
            self.api.calls.append((method, path, query.get("watch", "").lower() == "true"))
            if method == "GET" and match and query.get("watch", "").lower() == "true":
                gv = match["core"] or f"{match['group']}/{match['version']}"
                events = self.api.watch(gv, match["plural"], match["ns"], query)
                self._stream((json.dumps(e) for e in events), "application/json")
                return
            code, payload = self.api.handle(method, path, query, body, content_type)
            if match and match["sub"] == "log":
                self._stream(self.api.follow_log(match["ns"], match["name"] or "", query), "text/plain")
                return
            self._send_json(code, payload)
        except ApiError as exc:
            self._send_json(exc.code, exc.status())

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")
