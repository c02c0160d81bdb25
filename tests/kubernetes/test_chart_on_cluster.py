"""The Helm chart installed for real on the dev cluster, through Helm's own library (helm-python-sdk).

``helm/images.sh`` builds the platform, PostgreSQL and Redis images from the debootstrap base image
(reused by a content tag when nothing changed) and pushes them to the cluster's registry; the chart
is installed with ``Config.install`` (Helm v4's Go SDK), with the in-chart PostgreSQL (StatefulSet +
PVC) and Redis, and the platform's Service as a NodePort (the Ingress-less gateway). Then, only
through that Service: create a Space, ``git push sample_spaces/hello-gradio``, watch BUILDING ->
RUNNING (the chart's worker builds in the cluster), call the app with ``gradio_client``, push an
app-only change while calling it without pause (zero failed calls across the rolling update), sleep
(0 replicas) and wake with the request held, ``helm upgrade`` (the platform pod is replaced: its
repositories, database and the running Space survive), delete the Space (nothing left), uninstall
(only the objects the chart keeps on purpose are left; they are deleted, and nothing is left).

The release is named ``spaceyard`` on purpose: its Service ``spaceyard`` would inject
``SPACEYARD_PORT=tcp://...`` into every pod of the namespace if the chart left service links on.
The dev cluster's kubelet has no cluster DNS; the chart's pods are pointed at the cluster's CoreDNS
with ``dnsPolicy: None`` + ``dnsConfig`` (values any cluster with a custom resolver would use).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import helm_python as helm
import httpx
import pytest
from gradio_client import Client
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.kubernetes import hubinpod
from tests.kubernetes.caller import Caller
from tests.kubernetes.cluster import Cluster, eventually
from tests.support import ROOT, commit_all, git, read_sse, working_copy

pytestmark = [pytest.mark.cluster, pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(2700)]

CHART = ROOT / "helm" / "spaceyard"
RELEASE = "spaceyard"
# another prefix keeps a second run on the shared dev cluster apart (namespaces, volumes, image repository)
PREFIX = os.environ.get("SPACEYARD_CHART_TEST_PREFIX", "h14chart")
NAMESPACE = f"{PREFIX}-system"
SPACES_NS = f"{PREFIX}-spaces"
TOKEN = "sy_h14chart_admin_token_0123456789"
SPACE = "admin/hello"
SLUG = "space-admin--hello"
DATA_PVC = f"{RELEASE}-data"
PG_PVC = f"data-{RELEASE}-postgresql-0"
PV_ROOT = Path(os.environ.get("SPACEYARD_CHART_TEST_PV_ROOT", f"/var/tmp/{PREFIX}-chart-test-pv"))
# the objects `helm uninstall` leaves on purpose (helm.sh/resource-policy: keep, StatefulSet volumes)
KEPT = {("PersistentVolumeClaim", DATA_PVC), ("PersistentVolumeClaim", PG_PVC), ("Secret", f"{RELEASE}-postgresql")}


def chart_images(registry: str) -> dict[str, str]:
    """``helm/images.sh REGISTRY``: ``{"platform": ref, "postgresql": ref, "redis": ref, "base": name}``."""
    proc = subprocess.run(
        ["bash", str(ROOT / "helm" / "images.sh"), registry], capture_output=True, text=True, timeout=3000
    )
    if proc.returncode != 0:
        pytest.fail(f"helm/images.sh failed (exit {proc.returncode}):\n{proc.stderr[-6000:]}", pytrace=False)
    refs = dict(line.split("=", 1) for line in proc.stdout.splitlines() if line.startswith("SPACEYARD_IMAGE_"))
    return {key.removeprefix("SPACEYARD_IMAGE_").lower(): ref for key, ref in refs.items()}


def dev_dns() -> str:
    proc = subprocess.run(
        ["bash", str(ROOT / "helm" / "dev-cluster.sh"), "env"], capture_output=True, text=True, check=True
    )
    env = dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)
    return env["SPACEYARD_DEV_DNS"]


def values(images: dict[str, str], dns: str, **platform_extra: str) -> dict[str, Any]:
    repository, _, tag = images["platform"].rpartition(":")
    return {
        "image": {"repository": repository, "tag": tag, "pullPolicy": "IfNotPresent"},
        "host": "spaceyard.h14chart.test",
        "appsDomain": "apps.h14chart.test",
        "scheme": "http",
        "adminToken": TOKEN,
        "dnsPolicy": "None",
        "dnsConfig": {
            "nameservers": [dns],
            "searches": [f"{NAMESPACE}.svc.cluster.local", "svc.cluster.local", "cluster.local"],
            "options": [{"name": "ndots", "value": "5"}],
        },
        "platform": {
            "persistence": {"size": "1Gi"},
            "service": {"type": "NodePort", "nodePort": None},
            "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "2Gi"}},
            # every light sleeper over the 1 MiB budget: deepened by the runtime at once, under the deployed
            # controller (which once wrote an older read of the owner back over the light sleep), so the wake
            # below is from zero; a replaced version in continuous use is retired after 20 grace periods: 60 s
            "extraEnv": {"SPACEYARD_LIGHT_SLEEP_MEMORY_MIB": "1", "SPACEYARD_VERSION_GRACE": "3", **platform_extra},
        },
        "worker": {
            "buildEngine": "oci",
            "baseImage": images["base"],
            # the registry (127.0.0.1:5000) and the package index are reachable from the node only
            "hostNetwork": True,
            "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "3Gi"}},
        },
        "controller": {"replicas": 2, "resources": {"requests": {"cpu": "20m", "memory": "64Mi"}}},
        "spaces": {"namespace": SPACES_NS},
        "registry": {"url": "127.0.0.1:5000", "repository": f"{PREFIX}/space", "insecure": True},
        "redis": {"image": images["redis"], "resources": {"requests": {"cpu": "20m", "memory": "32Mi"}}},
        "postgresql": {
            "image": images["postgresql"],
            "persistence": {"size": "1Gi"},
            "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}},
        },
        "ingress": {"enabled": False},
    }


@dataclass
class Gateway:
    """The platform as a user outside the cluster sees it: its NodePort on the node's address."""

    url: str
    diagnose: Callable[[], str] = lambda: ""
    stages: list[str] = field(default_factory=list)

    def api(self, method: str, path: str, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        return httpx.request(method, f"{self.url}{path}", headers=headers, timeout=60, **kw)

    def runtime(self) -> dict[str, Any]:
        r = self.api("GET", f"/api/spaces/{SPACE}/runtime")
        assert r.status_code == 200, r.text
        rt: dict[str, Any] = r.json()
        if not self.stages or self.stages[-1] != rt["stage"]:
            self.stages.append(rt["stage"])
        return rt

    def wait_stage(self, stages: set[str], sha: str | None = None, timeout: float = 600) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        rt: dict[str, Any] = {}
        while time.monotonic() < deadline:
            rt = self.runtime()
            if rt["stage"] in stages and (sha is None or rt.get("sha") == sha):
                return rt
            failed = rt["stage"] in {"BUILD_ERROR", "RUNTIME_ERROR", "CONFIG_ERROR"}
            if failed and (sha is None or rt.get("sha") == sha):
                raise AssertionError(f"{SPACE} failed: {rt} (stages seen: {self.stages})\n{self.diagnose()}")
            time.sleep(0.5)
        raise AssertionError(
            f"{SPACE} did not reach {stages} in {timeout}s: {rt} (stages seen: {self.stages})\n{self.diagnose()}"
        )

    def git_url(self) -> str:
        return self.url.replace("http://", f"http://admin:{TOKEN}@") + f"/spaces/{SPACE}"

    def app(self) -> Client:
        return Client(f"{self.url}/apps/{SPACE}/", verbose=False)


def core(dev_cluster: Cluster) -> Any:
    """The official client's CoreV1Api, untyped (its models make every field optional)."""
    return dev_cluster.core


def helm_config(dev_cluster: Cluster) -> helm.Config:
    return helm.Config(kubeconfig_path=str(dev_cluster.kubeconfig), namespace=NAMESPACE)


def remaining(dev_cluster: Cluster) -> set[tuple[str, str]]:
    """What is left in the release namespace (besides what Kubernetes puts in every namespace)."""
    core_api, apps = core(dev_cluster), client.AppsV1Api(dev_cluster.admin)
    found: set[tuple[str, str]] = set()
    items: Any
    try:
        for kind, items in (
            ("PersistentVolumeClaim", core_api.list_namespaced_persistent_volume_claim(NAMESPACE).items),
            ("Secret", core_api.list_namespaced_secret(NAMESPACE).items),
            ("ConfigMap", core_api.list_namespaced_config_map(NAMESPACE).items),
            ("Service", core_api.list_namespaced_service(NAMESPACE).items),
            ("Pod", core_api.list_namespaced_pod(NAMESPACE).items),
            ("ServiceAccount", core_api.list_namespaced_service_account(NAMESPACE).items),
            ("Deployment", apps.list_namespaced_deployment(NAMESPACE).items),
            ("StatefulSet", apps.list_namespaced_stateful_set(NAMESPACE).items),
        ):
            found |= {(kind, item.metadata.name) for item in items}
    except ApiException as exc:
        if exc.status != 404:
            raise
    return found - {("ConfigMap", "kube-root-ca.crt"), ("ServiceAccount", "default")}


def namespace_exists(dev_cluster: Cluster, name: str) -> bool:
    try:
        core(dev_cluster).read_namespace(name)
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True


def clean(dev_cluster: Cluster) -> None:
    """Remove what an earlier (killed) run may have left: the release, its namespaces, the PVs."""
    with helm_config(dev_cluster) as cfg, contextlib.suppress(helm.HelmError):
        cfg.uninstall(RELEASE, ignore_not_found=True, wait="watcher", timeout=300)
    for ns in (NAMESPACE, SPACES_NS):
        try:
            core(dev_cluster).delete_namespace(ns)
        except ApiException as exc:
            if exc.status != 404:
                raise
    for name in (f"{PREFIX}-data", f"{PREFIX}-postgresql"):
        try:
            core(dev_cluster).delete_persistent_volume(name)
        except ApiException as exc:
            if exc.status != 404:
                raise
    eventually(
        lambda: not any(namespace_exists(dev_cluster, ns) for ns in (NAMESPACE, SPACES_NS)),
        "the test's namespaces are gone",
        timeout=300,
        interval=2,
    )
    shutil.rmtree(PV_ROOT, ignore_errors=True)


def create_volumes(dev_cluster: Cluster) -> None:
    """The dev cluster has no dynamic provisioner: one hostPath PV per claim of the chart, pre-bound."""
    for name, claim, owner in ((f"{PREFIX}-data", DATA_PVC, 1000), (f"{PREFIX}-postgresql", PG_PVC, 70)):
        path = PV_ROOT / name
        path.mkdir(parents=True)
        os.chown(path, owner, owner)
        core(dev_cluster).create_persistent_volume(
            {
                "apiVersion": "v1",
                "kind": "PersistentVolume",
                "metadata": {"name": name, "labels": {"spaceyard.dev/test": PREFIX}},
                "spec": {
                    "capacity": {"storage": "1Gi"},
                    "accessModes": ["ReadWriteOnce"],
                    "persistentVolumeReclaimPolicy": "Retain",
                    "storageClassName": "",
                    "claimRef": {"namespace": NAMESPACE, "name": claim},
                    "hostPath": {"path": str(path), "type": "Directory"},
                },
            }
        )


def pod_logs(dev_cluster: Cluster, lines: int = 40) -> str:
    """The last lines of every pod of the release (what a failed step shows)."""
    out = []
    for pod in core(dev_cluster).list_namespaced_pod(NAMESPACE).items:
        try:
            text = core(dev_cluster).read_namespaced_pod_log(pod.metadata.name, NAMESPACE, tail_lines=lines)
        except ApiException as exc:
            text = f"(no log: {exc.status})"
        out.append(f"--- {pod.metadata.name} ({pod.status.phase})\n{text}")
    return "\n".join(out)


def node_port(dev_cluster: Cluster) -> int:
    service = core(dev_cluster).read_namespaced_service(RELEASE, NAMESPACE)
    assert service.spec.type == "NodePort"
    return int(service.spec.ports[0].node_port)


def platform_pod(dev_cluster: Cluster) -> Any:
    pods = core(dev_cluster).list_namespaced_pod(NAMESPACE, label_selector="app.kubernetes.io/component=platform")
    running = [p for p in pods.items if p.metadata.deletion_timestamp is None]
    assert len(running) == 1, [p.metadata.name for p in pods.items]
    return running[0]


def space_objects(dev_cluster: Cluster) -> list[str]:
    return [
        f"{kind}/{obj['metadata']['name']}"
        for kind in ("ConfigMap", "Secret", "Service", "NetworkPolicy", "Deployment", "Pod")
        for obj in dev_cluster.list(kind, SPACES_NS)
        if obj["metadata"]["name"].startswith(SLUG)
    ]


def wait_healthy(gateway: Gateway) -> None:
    """Until the platform answers through its NodePort: the workloads are ready when ``helm install`` or
    ``upgrade`` returns, but kube-proxy programs the node's NodePort rules a moment later (refused until then)."""

    def healthy() -> bool:
        try:
            return gateway.api("GET", "/api/health").status_code == 200
        except httpx.TransportError:
            return False

    eventually(healthy, "the platform answers through its NodePort", timeout=120)


@pytest.fixture(scope="module")
def installed(dev_cluster: Cluster) -> Iterator[tuple[Gateway, dict[str, Any]]]:
    started = time.monotonic()
    images = chart_images(dev_cluster.registry)
    print(f"images ready in {time.monotonic() - started:.0f} s: {images}")
    dns = dev_dns()
    clean(dev_cluster)
    create_volumes(dev_cluster)
    vals = values(images, dns)
    t0 = time.monotonic()
    try:
        with helm_config(dev_cluster) as cfg:
            try:
                release = cfg.install(CHART, RELEASE, vals, create_namespace=True, wait="watcher", timeout=600)
            except helm.HelmError as exc:
                raise AssertionError(f"helm install failed: {exc}\n{pod_logs(dev_cluster)}") from exc
        print(f"helm install (waited for every workload to be ready) in {time.monotonic() - t0:.0f} s")
        assert release["status"] == "deployed" and release["revision"] == 1, release
        gateway = Gateway(f"http://{dns}:{node_port(dev_cluster)}", lambda: pod_logs(dev_cluster))
        wait_healthy(gateway)
        yield gateway, {"images": images, "dns": dns}
    finally:
        if os.environ.get("SPACEYARD_CHART_TEST_KEEP") != "1":
            clean(dev_cluster)


HOSTILE_DOCKERFILE = ROOT / "tests" / "security" / "spaces" / "hostile-dockerfile"


def _docker_space(gateway: Gateway, name: str, wc: Path, stages: set[str]) -> dict[str, Any]:
    """Create ``admin/NAME`` (sdk docker), push ``wc`` and wait for one of ``stages``."""
    body = {"type": "space", "organization": "admin", "name": name, "sdk": "docker"}
    assert gateway.api("POST", "/api/repos/create", json=body).status_code == 200
    url = gateway.url.replace("http://", f"http://admin:{TOKEN}@") + f"/spaces/admin/{name}"
    git(wc, "push", "-q", url, "main")
    sha = git(wc, "rev-parse", "HEAD").stdout.strip()
    deadline = time.monotonic() + 1200
    while time.monotonic() < deadline:
        rt: dict[str, Any] = gateway.api("GET", f"/api/spaces/admin/{name}/runtime").json()
        if rt.get("sha") == sha and rt["stage"] in stages:
            return rt
        if rt.get("sha") == sha and rt["stage"].endswith("_ERROR"):
            raise AssertionError(f"admin/{name}: {rt}\n{gateway.diagnose()}")
        time.sleep(1)
    raise AssertionError(f"admin/{name} never reached {stages}\n{gateway.diagnose()}")


def test_docker_spaces_are_built_in_the_worker_pod_and_a_hostile_dockerfile_finds_nothing(
    installed: tuple[Gateway, dict[str, Any]], dev_cluster: Cluster, tmp_path: Path
) -> None:
    """Runs before the end-to-end test below (which uninstalls the chart)."""
    gateway, _ctx = installed
    worker = core(dev_cluster).list_namespaced_pod(NAMESPACE, label_selector="app.kubernetes.io/component=worker")
    (worker_pod,) = worker.items
    assert worker_pod.spec.automount_service_account_token is False  # nothing for a build step to find
    # sample_spaces/hello-docker: its own Dockerfile, built by buildah inside the worker pod, run as a pod
    t0 = time.monotonic()
    _docker_space(gateway, "hello-docker", working_copy(tmp_path, "hello-docker"), {"RUNNING"})
    print(f"Docker Space built in the worker pod and running: {time.monotonic() - t0:.0f} s")
    (pod,) = dev_cluster.list("Pod", SPACES_NS, selector="spaceyard.dev/space=space-admin--hello-docker")
    assert pod["spec"]["containers"][0]["image"].startswith(f"127.0.0.1:5000/{PREFIX}/space:docker-")
    info = eventually(
        lambda: (
            (r := httpx.get(f"{gateway.url}/apps/admin/hello-docker/api/info", timeout=60)).status_code == 200 and r
        ),
        "the Docker Space answers through the gateway",
        timeout=180,
    )
    assert info.json()["uid"] == 1000 and info.json()["greeting"] == "Hello", info.text
    # a Dockerfile that looks for the worker's token, environment, key and API server
    rt = _docker_space(gateway, "evil-docker", working_copy(tmp_path, HOSTILE_DOCKERFILE), {"BUILD_ERROR"})
    log = "\n".join(read_sse(f"{gateway.url}/api/spaces/admin/evil-docker/logs/build"))
    assert "EVIL done" in log and "EVIL id 0" in log, log[-3000:]
    for text in (rt["errorMessage"], log):
        assert "EVIL read" not in text, [line for line in text.splitlines() if "EVIL read" in line]
        assert "SPACEYARD_" not in text and TOKEN not in text and "KUBERNETES_SERVICE" not in text
        assert "EVIL chroot worked" not in text
    api = [line for line in log.splitlines() if "EVIL api " in line]
    assert api and not [line for line in api if " 200 " in line], api
    # the worker (root) handed what it exported to the volume's owner: the platform's collector can remove it
    sources = PV_ROOT / f"{PREFIX}-data" / "sources"
    owners = {(p.lstat().st_uid, p.lstat().st_gid) for p in [sources, *sources.rglob("*")]}
    assert owners == {(1000, 1000)}, owners
    for name in ("hello-docker", "evil-docker"):
        body = {"type": "space", "organization": "admin", "name": name}
        assert gateway.api("DELETE", "/api/repos/delete", json=body).status_code == 200


def test_the_chart_installed_for_real_serves_a_space_end_to_end(
    installed: tuple[Gateway, dict[str, Any]], dev_cluster: Cluster, tmp_path: Path
) -> None:
    gateway, ctx = installed
    assert gateway.api("GET", "/api/health").status_code == 200
    pod = platform_pod(dev_cluster)
    assert not any((e.name or "").startswith("SPACEYARD_PORT") for e in pod.spec.containers[0].env or [])
    assert pod.spec.enable_service_links is False

    def holder() -> Any:
        lease = dev_cluster.get("Lease", SPACES_NS, "spaceyard-controller")
        return lease and lease["spec"].get("holderIdentity")

    eventually(holder, "a controller replica holds the Lease", timeout=120)

    # create + push: BUILDING (the worker in the cluster) -> RUNNING
    body = {"type": "space", "organization": "admin", "name": "hello", "sdk": "gradio"}
    r = gateway.api("POST", "/api/repos/create", json=body)
    assert r.status_code == 200, r.text
    wc = working_copy(tmp_path, "hello-gradio")
    git(wc, "push", "-q", gateway.git_url(), "main")
    sha = git(wc, "rev-parse", "HEAD").stdout.strip()
    t0 = time.monotonic()
    gateway.wait_stage({"RUNNING"}, sha=sha, timeout=1500)
    print(f"first build + start: {time.monotonic() - t0:.0f} s; stages {gateway.stages}")
    assert "BUILDING" in gateway.stages and gateway.stages.index("BUILDING") < gateway.stages.index("RUNNING")
    (space_pod,) = dev_cluster.list("Pod", SPACES_NS, selector=f"spaceyard.dev/space={SLUG}")
    assert space_pod["spec"]["containers"][0]["image"].startswith(f"127.0.0.1:5000/{PREFIX}/space:")
    assert space_pod["spec"]["nodeName"] == "cpu-0"
    app = gateway.app()
    assert app.predict("chart", api_name="/greet") == "Hello chart! (v1)"
    hubinpod.check_the_hub_inside_a_space_pod(gateway.url, TOKEN, dev_cluster, NAMESPACE, SPACES_NS, space_pod)

    # an app-only change, called without pause across the build and the rolling update
    caller = Caller(app)
    caller.start()
    app_py = wc / "app.py"
    app_py.write_text(app_py.read_text().replace('"HELLO_VERSION", "v1"', '"HELLO_VERSION", "v2"'))
    sha2 = commit_all(wc, "v2")
    git(wc, "push", "-q", gateway.git_url(), "main")
    gateway.wait_stage({"RUNNING"}, sha=sha2, timeout=900)
    # both revisions have their own Deployment and Service: the caller's session stays on v1 meanwhile
    assert len(dev_cluster.list("Service", SPACES_NS, selector=f"spaceyard.dev/space={SLUG}")) == 2
    v1, v2 = "Hello rolling! (v1)", "Hello rolling! (v2)"
    eventually(lambda: caller.answers[-3:] == [v2] * 3, "the caller's session moves to v2", timeout=150)
    caller.finish()
    print(caller.report(v2))
    # zero failed calls: v1 kept its own address while the session was pinned to it, and was drained (the stream of
    # a join it took still reached it) before it was retired
    caller.check_rolled(v1, v2)
    eventually(
        lambda: len(dev_cluster.list("Deployment", SPACES_NS, selector=f"spaceyard.dev/space={SLUG}")) == 1,
        "the retired revision's Deployment is gone",
        timeout=60,
    )

    # sleep: 0 replicas, no pod; wake: a request through the gateway is held until the pod is ready
    assert gateway.api("POST", f"/api/spaces/{SPACE}/sleeptime", json={"seconds": 1}).status_code == 200
    gateway.wait_stage({"SLEEPING"}, timeout=180)
    # the 1 MiB light-sleep budget (values above): the light sleeper is deepened just after it sleeps, so the
    # Deployment goes to 0 replicas a moment after the stage says SLEEPING
    eventually(
        lambda: [d["spec"]["replicas"] for d in dev_cluster.list("Deployment", SPACES_NS)] == [0],
        "the sleeping Space's Deployment at 0 replicas (deep sleep)",
        timeout=60,
    )
    eventually(lambda: dev_cluster.list("Pod", SPACES_NS) == [], "no Space pod while asleep", timeout=120)
    assert gateway.api("POST", f"/api/spaces/{SPACE}/sleeptime", json={"seconds": 3600}).status_code == 200
    t0 = time.monotonic()
    held = httpx.get(f"{gateway.url}/apps/{SPACE}/config", timeout=300)
    print(f"wake through the gateway (request held): {time.monotonic() - t0:.1f} s")
    assert held.status_code == 200, held.text[:500]
    assert gateway.runtime()["stage"] == "RUNNING"
    assert gateway.app().predict("awake", api_name="/greet") == "Hello awake! (v2)"

    # helm upgrade: a new platform pod (same volume, same database password) finds everything again
    old_pod = platform_pod(dev_cluster).metadata.uid
    (space_pod,) = dev_cluster.list("Pod", SPACES_NS, selector=f"spaceyard.dev/space={SLUG}")
    password = dev_cluster.secret_data(NAMESPACE, f"{RELEASE}-postgresql")["password"]
    with helm_config(dev_cluster) as cfg:
        new_values = values(ctx["images"], ctx["dns"], SPACEYARD_H14CHART_REVISION="2")
        upgraded = cfg.upgrade(CHART, RELEASE, new_values, wait="watcher", timeout=600)
        assert upgraded["revision"] == 2 and upgraded["status"] == "deployed", upgraded
        assert cfg.get_values(RELEASE)["platform"]["extraEnv"]["SPACEYARD_H14CHART_REVISION"] == "2"
    assert platform_pod(dev_cluster).metadata.uid != old_pod, "the upgrade replaced the platform pod"
    assert dev_cluster.secret_data(NAMESPACE, f"{RELEASE}-postgresql")["password"] == password
    gateway.url = f"http://{ctx['dns']}:{node_port(dev_cluster)}"
    wait_healthy(gateway)
    # the stopping platform leaves the Space's pod and the new one re-attaches it: RUNNING at once, the same pod
    assert gateway.wait_stage({"RUNNING"}, sha=sha2, timeout=300)["sha"] == sha2
    (same,) = dev_cluster.list("Pod", SPACES_NS, selector=f"spaceyard.dev/space={SLUG}")
    assert same["metadata"]["uid"] == space_pod["metadata"]["uid"], "re-attached, not restarted"
    woken = httpx.get(f"{gateway.url}/apps/{SPACE}/config", timeout=300)
    assert woken.status_code == 200, woken.text[:500]
    assert gateway.app().predict("upgraded", api_name="/greet") == "Hello upgraded! (v2)"
    assert gateway.runtime()["stage"] == "RUNNING"
    heads = git(wc, "ls-remote", gateway.git_url(), "refs/heads/main").stdout.split()
    assert heads[:1] == [sha2], "the repository is on the kept volume"

    # delete the Space: nothing of it is left in the Spaces namespace
    r = gateway.api("DELETE", "/api/repos/delete", json={"type": "space", "organization": "admin", "name": "hello"})
    assert r.status_code == 200, r.text
    eventually(lambda: space_objects(dev_cluster) == [], "nothing of the Space is left", timeout=180)

    # uninstall: the namespaces the chart made go; only what the chart keeps on purpose stays
    with helm_config(dev_cluster) as cfg:
        cfg.uninstall(RELEASE, wait="watcher", timeout=600)
        assert [r["name"] for r in cfg.list()] == []
    eventually(
        lambda: not namespace_exists(dev_cluster, SPACES_NS),
        "the Spaces namespace is gone",
        timeout=300,
        interval=2,
    )
    eventually(lambda: remaining(dev_cluster) == KEPT, f"only {sorted(KEPT)} is left", timeout=180, interval=2)
    for kind, name in KEPT:
        if kind == "Secret":
            core(dev_cluster).delete_namespaced_secret(name, NAMESPACE)
        else:
            core(dev_cluster).delete_namespaced_persistent_volume_claim(name, NAMESPACE)
    eventually(lambda: remaining(dev_cluster) == set(), "nothing is left", timeout=120, interval=2)
