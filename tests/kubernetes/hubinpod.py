"""The Hub inside a Space pod of the installed chart: plain ``huggingface_hub`` in the running app's container.

Called by ``test_chart_on_cluster`` once its Space runs (no build or install of its own). Through the
platform's NodePort, the admin uploads a private model and another user (made with ``spaceyard token create``
inside the platform pod) a private model of their own. Then, in the Space's pod (``pods/exec``: the process
gets the container's environment, so ``HF_ENDPOINT``/``HF_TOKEN`` as the app has them), ``hf_hub_download``
reads the owner's private model through the relay Service and is refused the other user's; a request with
no token, with the other user's own token, a write and a platform page are refused by the relay. The
objects the API server accepted say the rest: the relay Service, ``HF_ENDPOINT`` at its ClusterIP, and the
Space's NetworkPolicy with that port of the platform pods as its only way into the cluster. Whether the
policy is *enforced* needs a CNI that implements it (the dev cluster's bridge plugin does not).
"""

from __future__ import annotations

import base64
import json
import textwrap
import time
from typing import Any

import httpx
from kubernetes import client
from kubernetes.stream import stream

from tests.kubernetes.cluster import Cluster

OWN_MODEL, OTHER_MODEL, OTHER_USER = "admin/h17-private-model", "h17bob/h17-secret-model", "h17bob"
RELAY_PORT = 7850

PROBE = textwrap.dedent(
    """
    import json, os, sys, urllib.error, urllib.request
    from huggingface_hub import hf_hub_download

    own, other, other_token = sys.argv[1:4]
    ep = os.environ["HF_ENDPOINT"]
    out = {"endpoint": ep, "token_prefix": os.environ.get("HF_TOKEN", "")[:12]}
    out["own"] = open(hf_hub_download(own, "weights.txt"), encoding="utf-8").read()
    try:
        hf_hub_download(other, "weights.txt")
        out["other"] = "READ"
    except Exception as exc:
        out["other"] = type(exc).__name__

    def status(method, path, token=None, body=None):
        req = urllib.request.Request(ep + path, method=method, data=body)
        if token:
            req.add_header("Authorization", "Bearer " + token)
        if body is not None:
            req.add_header("Content-Type", "application/json")
        try:
            return urllib.request.urlopen(req, timeout=30).status
        except urllib.error.HTTPError as exc:
            return exc.code

    space_token = os.environ["HF_TOKEN"]
    out["anonymous"] = status("GET", "/api/models/" + own)
    out["user_token"] = status("GET", "/api/models/" + other, other_token)
    out["space_token"] = status("GET", "/api/models/" + own, space_token)
    out["write"] = status("POST", "/api/repos/create", space_token, b'{"name": "x", "type": "model"}')
    out["page"] = status("GET", "/", space_token)
    print(json.dumps(out))
    """
)


def exec_in_pod(dev_cluster: Cluster, namespace: str, pod: str, command: list[str]) -> tuple[str, str, int | None]:
    core = client.CoreV1Api(client.ApiClient(dev_cluster.admin.configuration))
    resp: Any = stream(
        core.connect_get_namespaced_pod_exec,
        pod,
        namespace,
        command=command,
        stderr=True,
        stdin=False,
        stdout=True,
        tty=False,
        _preload_content=False,
    )
    resp.run_forever(timeout=180)
    out, err = resp.read_stdout(), resp.read_stderr()
    resp.close()
    return out, err, resp.returncode


def other_user_token(dev_cluster: Cluster, platform_ns: str) -> str:
    core: Any = client.CoreV1Api(dev_cluster.admin)  # untyped: its models make every field optional
    pods = core.list_namespaced_pod(platform_ns, label_selector="app.kubernetes.io/component=platform")
    pod = next(p.metadata.name for p in pods.items if p.metadata.deletion_timestamp is None)
    out, err, rc = exec_in_pod(
        dev_cluster, platform_ns, pod, ["spaceyard", "token", "create", "--user", OTHER_USER, "--role", "write"]
    )
    assert rc == 0, f"spaceyard token create failed ({rc}): {err}"
    return out.strip().splitlines()[-1]


def check_the_hub_inside_a_space_pod(
    url: str, admin_token: str, dev_cluster: Cluster, platform_ns: str, spaces_ns: str, space_pod: dict[str, Any]
) -> None:
    started = time.monotonic()
    bob = other_user_token(dev_cluster, platform_ns)
    # the Hub API by hand: the client's URL checks expect the platform's public host (not this NodePort)
    for repo, token, text in ((OWN_MODEL, admin_token, "admin's weights"), (OTHER_MODEL, bob, "bob's weights")):
        auth = {"Authorization": f"Bearer {token}"}
        owner, name = repo.split("/")
        body = {"type": "model", "organization": owner, "name": name, "private": True}
        created = httpx.post(f"{url}/api/repos/create", json=body, headers=auth, timeout=60)
        assert created.status_code in (200, 409), created.text
        lines = [
            {"key": "header", "value": {"summary": "weights"}},
            {"key": "file", "value": {"path": "weights.txt", "content": base64.b64encode(text.encode()).decode(),
                                      "encoding": "base64"}},
        ]  # fmt: skip
        ndjson = "".join(json.dumps(line) + "\n" for line in lines)
        headers = {**auth, "Content-Type": "application/x-ndjson"}
        committed = httpx.post(f"{url}/api/models/{repo}/commit/main", content=ndjson, headers=headers, timeout=60)
        assert committed.status_code == 200, committed.text

    # what the API server accepted: the relay's Service, HF_ENDPOINT at its ClusterIP, the Space's policy
    service = dev_cluster.get("Service", platform_ns, "spaceyard-hub")
    assert service is not None, "the chart made the relay's Service"
    cluster_ip = service["spec"]["clusterIP"]
    name = space_pod["metadata"]["name"]
    slug = space_pod["metadata"]["labels"]["spaceyard.dev/space"]
    policy = dev_cluster.get("NetworkPolicy", spaces_ns, slug)
    assert policy is not None
    into_cluster = [rule for rule in policy["spec"]["egress"] if "ipBlock" not in rule["to"][0]]
    assert into_cluster == [
        {
            "to": [
                {
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
                }
            ],
            "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
        },
        {
            "to": [
                {
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": platform_ns}},
                    "podSelector": {"matchLabels": service["spec"]["selector"]},
                }
            ],
            "ports": [{"protocol": "TCP", "port": RELAY_PORT}],
        },
    ], policy["spec"]["egress"]

    out, err, rc = exec_in_pod(dev_cluster, spaces_ns, name, ["python", "-c", PROBE, OWN_MODEL, OTHER_MODEL, bob])
    assert rc == 0, f"the probe failed in the Space pod ({rc}):\n{err[-3000:]}"
    seen = json.loads(out.strip().splitlines()[-1])
    print(f"the Hub inside the Space pod ({time.monotonic() - started:.1f} s): {seen}")
    assert seen["endpoint"] == f"http://{cluster_ip}:{RELAY_PORT}"
    assert seen["token_prefix"] == "hf_sy_space_", "the Space's own read-only token"
    assert seen["own"] == "admin's weights"
    assert seen["other"] in ("RepositoryNotFoundError", "GatedRepoError"), seen
    assert seen["anonymous"] == 401 and seen["user_token"] == 401, "only Space tokens pass the shared relay"
    assert seen["space_token"] == 200
    assert seen["write"] == 403 and seen["page"] == 403
