"""A Space's cold start on Kubernetes, split into phases: a real `spaceyard up` with the Kubernetes runtime on
the dev cluster (`helm/dev-cluster.sh`), its image built by the oci engine.

    .venv/bin/python benchmarks/k8s_wake.py [--wakes 5]

Each cycle: the Space sleeps (0 replicas, no pod), then `GET /config` through the gateway is held until the
woken pod answers; the client times the first byte, the platform's `/metrics` give the phases of that wake
(`spaceyard_wake_phase_seconds{phase=...}`: the delta of each phase's sum over the cycle). Writes
`## Wake on Kubernetes` in docs/benchmarks.md, with the Knative anchor.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._report import write_section  # noqa: E402
from spaceyard_builder.baseimage import DEFAULT_TAG  # noqa: E402
from tests.conftest import free_port  # noqa: E402
from tests.kubernetes.cluster import Cluster, push_base_image, start_dev_cluster  # noqa: E402
from tests.support import Server, git, push, start_server, working_copy  # noqa: E402

NAMESPACE = "h14build-bench"
SPACE = "admin/bench-k8s-wake"
PHASES = ("scheduling", "image_pull", "container_start", "app_ready", "endpoints", "first_byte")
WHAT = {
    "scheduling": "scale to 1 → pod bound to a node (Deployment + ReplicaSet controllers, scheduler)",
    "image_pull": "the kubelet's pull (`Pulled` event; image already on the node after the first start)",
    "container_start": "bound → app container running (sandbox, CNI, container), less the pull",
    "app_ready": "running → readiness probe passes (Gradio imports and binds; probe every 1 s)",
    "endpoints": "ready → the EndpointSlice lists the pod and the Service accepts a connection (`wait_ready`)",
    "first_byte": "wake done → first byte of the held request through the gateway (kube-proxy, app)",
}


def phase_sums(server: Server) -> dict[str, float]:
    text = httpx.get(f"{server.url}/metrics", timeout=30).text
    out = {}
    for phase in PHASES:
        m = re.search(rf'spaceyard_wake_phase_seconds_sum\{{mode="cold",phase="{phase}"\}} (\S+)', text)
        out[phase] = float(m.group(1)) if m else 0.0
    return out


def first_byte(server: Server) -> float:
    started = time.perf_counter()
    print(f"wake at {time.time():.3f}", file=sys.stderr, flush=True)  # DEBUG-H18K8S
    host = f"{SPACE.replace('/', '-')}.localhost:{server.port}"
    with httpx.stream("GET", f"{server.url}/config", headers={"Host": host}, timeout=300) as r:
        next(r.iter_raw())
        elapsed = time.perf_counter() - started
        assert r.status_code == 200, r.status_code
    return elapsed


def until(predicate: Callable[[], bool], what: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out: {what}")
        time.sleep(0.25)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--wakes", type=int, default=5)
    parser.add_argument("--namespace", default=NAMESPACE, help="the Spaces namespace (unique per session)")
    args = parser.parse_args()
    namespace = args.namespace
    env = start_dev_cluster()
    cluster = Cluster(Path(env["KUBECONFIG"]), env["SPACEYARD_DEV_REGISTRY"], {})
    push_base_image(cluster.registry, DEFAULT_TAG)
    cluster.ensure_namespace(namespace)
    cluster.reset(namespace)
    cache = Path(os.environ.get("SPACEYARD_TEST_CACHE", ROOT / ".data" / "test-cache")).resolve()
    with tempfile.TemporaryDirectory() as tmp:
        extra = {
            "SPACEYARD_BUILD_ENGINE": "oci",
            "SPACEYARD_REGISTRY": cluster.registry,
            "SPACEYARD_DOCKER_BASE_IMAGE": DEFAULT_TAG,
            "SPACEYARD_DOCKER_IMAGE_REPOSITORY": "h14build/space",
            "SPACEYARD_OCI_CACHE_DIR": str(cache / "oci"),
            "SPACEYARD_RUNTIME": "kubernetes",
            "SPACEYARD_KUBERNETES_KUBECONFIG": str(cluster.kubeconfig),
            "SPACEYARD_KUBERNETES_NAMESPACE": namespace,
            "SPACEYARD_KUBERNETES_ENDPOINT": "cluster-ip",
        }
        server = start_server(Path(tmp) / "data", free_port(), cache / "envs", extra)
        try:
            server.create_space(SPACE)
            wc = working_copy(Path(tmp), "hello-gradio")
            push(server, wc, SPACE)
            built = time.monotonic()
            server.wait_stage(SPACE, {"RUNNING"}, sha=git(wc, "rev-parse", "HEAD").stdout.strip(), timeout=900)
            build_and_start = time.monotonic() - built
            assert server.api("POST", f"/api/spaces/{SPACE}/sleeptime", json={"seconds": 1}).status_code == 200
            totals: list[float] = []
            phases: dict[str, list[float]] = {p: [] for p in PHASES}
            for _ in range(args.wakes):
                server.wait_stage(SPACE, {"SLEEPING"}, timeout=120)
                until(lambda: cluster.list("Pod", namespace) == [], "no pod while asleep")
                before = phase_sums(server)
                totals.append(first_byte(server))
                time.sleep(0.5)  # the first-byte phase is observed as the response starts
                after = phase_sums(server)
                for p in PHASES:
                    phases[p].append(after[p] - before[p])
        finally:
            server.stop()
            cluster.reset(namespace)
    rows = [
        f"| `{p}` | {statistics.median(v):.2f} s | {min(v):.2f} s | {max(v):.2f} s | {WHAT[p]} |"
        for p, v in phases.items()
    ]
    summed = [sum(phases[p][i] for p in PHASES) for i in range(args.wakes)]
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load = os.getloadavg()[0]
    markdown = f"""`benchmarks/k8s_wake.py --wakes {args.wakes}`, {when}: a real `spaceyard up` with
`SPACEYARD_RUNTIME=kubernetes` on the dev cluster (`helm/dev-cluster.sh`: one real kubelet + containerd, 2 CPUs
shared with other sessions, load average {load:.0f} at the end), sample `hello-gradio` built by the oci engine
(first push to RUNNING: {build_and_start:.0f} s, build included). Each wake: the Space sleeps (no pod),
`GET /config` through the
gateway is held until the new pod answers. Phases from `spaceyard_wake_phase_seconds{{phase=...}}` (how the
runtime saw the pod start, `KubernetesRuntime.wait_ready`; see `runtime/.../kubernetes/coldstart.py`).

| phase | p50 | min | max | what |
|---|---|---|---|---|
{chr(10).join(rows)}
| **sum of the phases** | **{statistics.median(summed):.2f} s** | {min(summed):.2f} s | {max(summed):.2f} s | |
| **first byte, client side** | **{statistics.median(totals):.2f} s** | {min(totals):.2f} s | {max(totals):.2f} s \
| request sent → first byte (what a visitor waits) |
| Knative anchor | 0.8–4 s | | | scale-from-zero, as Knative reports it (queue-proxy, activator) |

The client's time also holds what no phase covers: the gateway's and the deployer's own work before the
scale request and after readiness. Not near the Knative anchor on this machine: `scheduling` (API server,
controllers and scheduler sharing 2 loaded cores) and `app_ready` (Gradio importing, then a readiness probe
every 2 s) are most of it.
"""
    print(markdown)
    write_section("Wake on Kubernetes", markdown)


if __name__ == "__main__":
    main()
