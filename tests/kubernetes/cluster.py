"""The real cluster of the Kubernetes tests: ``helm/dev-cluster.sh``, test images, and a view of its objects.

* :func:`start_dev_cluster` runs ``helm/dev-cluster.sh up`` (it builds the binaries once into
  ``~/.cache/spaceyard/kubernetes/<version>`` and reuses a cluster that is already up) and fails the
  test session with the script's own output when the cluster cannot start: no skip.
* :func:`build_test_images` builds the test apps with the Docker engine from the debootstrap base
  image (``spaceyard/python:3.11-bookworm``) and pushes them to the cluster's registry; the nodes pull
  them from there like any image.
* :class:`Cluster` reads objects (``get``/``list``, like the fake API server's helpers), records the
  requests of the clients it hands out (``writes``), adds and removes kwok GPU nodes, and resets the
  Spaces namespace between tests.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from spaceyard_builder.baseimage import ensure_base_image
from spaceyard_runtime.kubernetes.clients import KubeApi, config

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "helm" / "dev-cluster.sh"
BASE_IMAGE = os.environ.get("SPACEYARD_BASE_IMAGE", "spaceyard/python:3.11-bookworm")

# One program, one image tag per behaviour. It handles SIGTERM (PID 1 ignores it otherwise), runs as
# any uid on a read-only root filesystem, and prints a line per request so log streaming can be seen.
# ``GET /walls`` answers what the process sees from inside its pod (tests/security/test_kubernetes_walls.py).
TEST_APP = r"""
import errno, http.server, json, os, signal, socket, sys, time

mode = sys.argv[1]
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
print(f"booting {mode}", flush=True)
if mode == "crash":
    for i in range(100):
        print(f"line {i}")
    print("Traceback (most recent call last):")
    print("ModuleNotFoundError: torch", flush=True)
    sys.exit(3)
if mode == "slow":
    time.sleep(float(os.environ.get("SLOW_SECONDS", "12")))
port = int(os.environ.get("PORT", "7860"))


def write_error(path):
    try:
        with open(path, "w") as f:
            f.write("x")
        return None
    except OSError as exc:
        return errno.errorcode.get(exc.errno, str(exc.errno))


def connect(host, port):
    with socket.socket() as s:
        s.settimeout(2)
        return s.connect_ex((host, port))


def walls():
    status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines() if ":" in line)
    return {
        "uid": os.getuid(), "euid": os.geteuid(), "gid": os.getgid(), "groups": os.getgroups(),
        "write_usr": write_error("/usr/probe"), "write_root": write_error("/probe"),
        "write_tmp": write_error("/tmp/probe"),
        "root_mount": [line.split()[3].split(",") for line in open("/proc/self/mounts") if line.split()[1] == "/"],
        "service_account": os.path.exists("/var/run/secrets/kubernetes.io"),
        "env": dict(os.environ),
        "status": {k: status[k].strip() for k in ("NoNewPrivs", "CapEff", "CapPrm", "CapBnd", "CapAmb", "Seccomp")},
        "pids": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
        "loopback": {p: connect("127.0.0.1", p) for p in (6379, 5432)},
    }


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"{mode} {os.environ.get('GREETING', 'hello')} {os.environ.get('TOKEN', '-')}\n".encode()
        if self.path == "/walls":
            body = json.dumps(walls()).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        print("request served", self.path, flush=True)


print(f"* Running on local URL:  http://0.0.0.0:{port}", flush=True)
http.server.ThreadingHTTPServer(("0.0.0.0", port), Handler).serve_forever()
"""
MODES = ("ok", "slow", "crash")

KINDS = {
    "ConfigMap": ("", "v1", "configmaps"),
    "Secret": ("", "v1", "secrets"),
    "Service": ("", "v1", "services"),
    "Pod": ("", "v1", "pods"),
    "Event": ("", "v1", "events"),
    "Deployment": ("apps", "v1", "deployments"),
    "ReplicaSet": ("apps", "v1", "replicasets"),
    "NetworkPolicy": ("networking.k8s.io", "v1", "networkpolicies"),
    "Lease": ("coordination.k8s.io", "v1", "leases"),
}
RESET_KINDS = ("Deployment", "ReplicaSet", "Service", "NetworkPolicy", "Secret", "ConfigMap", "Lease", "Event")


def start_dev_cluster() -> dict[str, str]:
    """``helm/dev-cluster.sh up``; its ``KEY=value`` lines (``KUBECONFIG``, ``SPACEYARD_DEV_REGISTRY``)."""
    proc = subprocess.run(["bash", str(SCRIPT), "up"], capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        pytest.fail(
            f"helm/dev-cluster.sh up failed (exit {proc.returncode}); the cluster tests need it.\n"
            f"{proc.stderr[-6000:]}",
            pytrace=False,
        )
    return dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)


def build_test_images(registry: str) -> dict[str, str]:
    """``{mode: image}`` for :data:`MODES`, built from the base image and pushed to ``registry``."""
    docker = shutil.which("docker")
    if docker is None:
        pytest.fail("the cluster tests build their images with the Docker engine: docker is not installed")
    ensure_base_image(BASE_IMAGE)
    # The tag carries the program's hash: nodes pull ``IfNotPresent``, so a changed program needs a new tag.
    digest = hashlib.sha256(TEST_APP.encode()).hexdigest()[:12]
    images = {mode: f"{registry}/spaceyard-test/app:{mode}-{digest}" for mode in MODES}
    with tempfile.TemporaryDirectory() as tmp:
        ctx = Path(tmp)
        (ctx / "app.py").write_text(TEST_APP)
        for mode, ref in images.items():
            (ctx / "Dockerfile").write_text(
                f'FROM {BASE_IMAGE}\nCOPY app.py /app/app.py\nUSER 1000\nCMD ["python3", "/app/app.py", "{mode}"]\n'
            )
            for cmd in ([docker, "build", "-q", "-t", ref, str(ctx)], [docker, "push", "-q", ref]):
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
                if proc.returncode != 0:
                    pytest.fail(f"{' '.join(cmd)} failed:\n{proc.stdout}{proc.stderr}", pytrace=False)
    return images


class Cluster:
    """A view of the dev cluster for assertions, in the shape of the fake API server's helpers."""

    def __init__(self, kubeconfig: Path, registry: str, images: dict[str, str], base_image: str = BASE_IMAGE) -> None:
        self.kubeconfig, self.registry, self.images, self.base_image = kubeconfig, registry, images, base_image
        self.configuration = client.Configuration()
        config.load_kube_config(config_file=str(kubeconfig), client_configuration=self.configuration)
        self.url = str(self.configuration.host)
        self.writes: list[tuple[str, str]] = []
        self.admin = client.ApiClient(self.configuration)
        self.custom = client.CustomObjectsApi(self.admin)
        self.core = client.CoreV1Api(self.admin)

    # -- clients -----------------------------------------------------------------------------------

    def client(self) -> Any:
        """A new official client on the cluster; its writes are recorded in :attr:`writes`."""
        api_client = client.ApiClient(copy.deepcopy(self.configuration))  # its own host, pools, headers
        rest: Any = api_client.rest_client  # untyped (urllib3 underneath)
        request: Callable[..., Any] = rest.request

        def recording(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            if method not in ("GET", "HEAD", "OPTIONS"):
                self.writes.append((method, urlparse(url).path))
            return request(method, url, *args, **kwargs)

        rest.request = recording
        return api_client

    def api(self, namespace: str) -> KubeApi:
        return KubeApi(self.admin, namespace)

    # -- reads ---------------------------------------------------------------------------------------

    def _path(self, kind: str, namespace: str | None) -> str:
        group, version, plural = KINDS[kind]
        prefix = f"/apis/{group}/{version}" if group else f"/api/{version}"
        return f"{prefix}/namespaces/{namespace}/{plural}" if namespace else f"{prefix}/{plural}"

    def _raw(self, method: str, path: str, body: Any = None, query: list[tuple[str, Any]] | None = None) -> Any:
        response: Any = self.admin.call_api(  # an untyped urllib3 response
            *self.admin.param_serialize(
                method,
                path,
                query_params=query or [],
                header_params={"Content-Type": "application/json", "Accept": "application/json"},
                body=body,
                auth_settings=["BearerToken"],
            )
        )
        response.read()
        if response.status >= 400:
            raise ApiException(status=response.status, reason=response.reason, http_resp=response.response)
        return yaml.safe_load(response.data) if response.data else None

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            obj = self._raw("GET", f"{self._path(kind, namespace)}/{name}")
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return dict(obj)

    def list(self, kind: str, namespace: str | None = None, selector: str | None = None) -> list[dict[str, Any]]:
        query = [("labelSelector", selector)] if selector else []
        items = self._raw("GET", self._path(kind, namespace), query=query)["items"]
        if kind == "Pod":  # pods being deleted are gone as far as a Space is concerned
            items = [p for p in items if not p["metadata"].get("deletionTimestamp")]
        if kind == "ConfigMap":  # the CA bundle Kubernetes puts into every namespace
            items = [c for c in items if c["metadata"]["name"] != "kube-root-ca.crt"]
        return list(items)

    def secret_data(self, namespace: str, name: str) -> dict[str, str]:
        secret = self.get("Secret", namespace, name) or {}
        return {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}

    # -- nodes -------------------------------------------------------------------------------------

    def add_gpu_node(self, name: str, gpus: int = 1) -> None:
        """A kwok node of the GPU pool (what a cluster autoscaler would add)."""
        capacity = {"cpu": "8", "memory": "32Gi", "pods": "110", "nvidia.com/gpu": str(gpus)}
        node = client.V1Node(
            api_version="v1",
            kind="Node",
            metadata=client.V1ObjectMeta(
                name=name,
                annotations={"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
                labels={
                    "kubernetes.io/hostname": name,
                    "kubernetes.io/os": "linux",
                    "type": "kwok",
                    "spaceyard.dev/pool": "gpu",
                    "nvidia.com/gpu.present": "true",
                    "nvidia.com/gpu.product": "Tesla-T4",
                },
            ),
            spec=client.V1NodeSpec(taints=[client.V1Taint(key="nvidia.com/gpu", value="present", effect="NoSchedule")]),
            status=client.V1NodeStatus(capacity=capacity, allocatable=capacity),
        )
        self.core.create_node(node)

    def remove_node(self, name: str) -> None:
        try:
            self.core.delete_node(name)
        except ApiException as exc:
            if exc.status != 404:
                raise

    # -- between tests -----------------------------------------------------------------------------

    def ensure_namespace(self, name: str, pod_security: str = "restricted") -> None:
        body = client.V1Namespace(
            api_version="v1",
            kind="Namespace",
            metadata=client.V1ObjectMeta(name=name, labels={"pod-security.kubernetes.io/enforce": pod_security}),
        )
        try:
            self.core.create_namespace(body)
        except ApiException as exc:
            if exc.status != 409:
                raise

    def reset(self, namespace: str, timeout: float = 60) -> None:
        """Delete every object a test made in ``namespace``; pods go at once (grace 0)."""
        for kind in RESET_KINDS:
            self._raw("DELETE", self._path(kind, namespace))
        self._raw("DELETE", self._path("Pod", namespace), query=[("gracePeriodSeconds", 0)])
        for node in self.core.list_node(label_selector="type=kwok").items:
            name = node.metadata.name if node.metadata else None
            if name and name != "gpu-0":
                self.remove_node(name)
        deadline = time.monotonic() + timeout
        while self._raw("GET", self._path("Pod", namespace))["items"]:
            if time.monotonic() > deadline:
                raise AssertionError(f"pods of {namespace} did not go away")
            time.sleep(0.2)
        self.writes.clear()


def eventually(predicate: Callable[[], Any], what: str, timeout: float = 90, interval: float = 0.25) -> Any:
    """Wait for a cluster to do something (a real one takes its time); the predicate's truthy value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened within {timeout:g} s: {what}")
        time.sleep(interval)


def push_base_image(registry: str, tag: str) -> str:
    """``tag`` (the debootstrapped base) in ``registry``, pushed with docker once (the registry keeps it),
    the way an operator puts a base image where an in-cluster builder reads it. Returns ``tag``."""
    name, _, version = tag.partition(":")
    accept = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json"
    url = f"http://{registry}/v2/{name}/manifests/{version}"
    if httpx.head(url, headers={"Accept": accept}, timeout=10).status_code != 200:
        ensure_base_image(tag)
        for cmd in (["docker", "tag", tag, f"{registry}/{tag}"], ["docker", "push", "-q", f"{registry}/{tag}"]):
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
            if proc.returncode != 0:
                pytest.fail(f"{' '.join(cmd)} failed:\n{proc.stdout}{proc.stderr}", pytrace=False)
    return tag
