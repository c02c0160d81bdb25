"""The Helm chart, checked with the real Helm engine and the official Kubernetes schemas.

``helm-python-sdk`` bundles Helm's Go SDK (v4) as a shared library, so ``lint``, schema validation and
template rendering here are Helm's own code, offline (``lookup`` returns nothing, no cluster is
contacted). Every rendered object is then validated against the Kubernetes 1.30-1.35 OpenAPI schemas
in strict mode. What only a real cluster can show is listed in docs/kubernetes.md.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import re
import subprocess
import threading
from pathlib import Path
from typing import Any

import helm_python as helm
import jsonschema
import kubernetes_validate
import pytest
import yaml
from kubernetes import client

from spaceyard_runtime.api import AppSpec, Flavor
from spaceyard_runtime.flavors import DEFAULT_FLAVORS_FILE, parse_flavors
from spaceyard_runtime.kubernetes.controller import Controller
from spaceyard_runtime.kubernetes.desired import ClusterConfig, DesiredSpace
from spaceyard_runtime.kubernetes.runtime import KubernetesRuntime
from spaceyard_runtime.settings import RuntimeSettings
from tests.kubernetes.conftest import NAMESPACE
from tests.kubernetes.fakeapi import PATH, FakeKubeAPI

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "spaceyard"
GPU_VALUES = yaml.safe_load((CHART / "ci" / "gpu-values.yaml").read_text())
SUPPORTED_VERSIONS = ["1.30.0", "1.31.0", "1.32.0", "1.33.0", "1.34.0", "1.35.0"]
VALUES = {"default": {}, "gpu": GPU_VALUES}


def render(values: dict[str, Any], namespace: str = "spaceyard") -> list[dict[str, Any]]:
    with helm.Chart.load(str(CHART)) as chart:
        chart.validate_schema(values)
        rendered = chart.render(values, name="spaceyard", namespace=namespace, is_install=True)
    docs: list[dict[str, Any]] = []
    for path, text in sorted(rendered.items()):
        if path.endswith(".yaml"):
            docs += [d for d in yaml.safe_load_all(text) if d]
    return docs


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict[str, Any]]]:
    return {name: render(values) for name, values in VALUES.items()}


def merged(defaults: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Helm's coalescing of a values file over the chart's values.yaml (maps merge, the rest replaces)."""
    result = dict(defaults)
    for key, value in overrides.items():
        base = result.get(key)
        result[key] = merged(base, value) if isinstance(base, dict) and isinstance(value, dict) else value
    return result


def find(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    matches = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}"
    return matches[0]


def env_of(deployment: dict[str, Any]) -> dict[str, str]:
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", "<from secret>") for e in container["env"]}


@pytest.mark.parametrize("version", SUPPORTED_VERSIONS)
@pytest.mark.parametrize("values", list(VALUES))
def test_helm_lint_strict(values: str, version: str) -> None:
    result = helm.lint(str(CHART), VALUES[values], strict=True, kube_version=version)
    assert result["errors"] == [] and result["messages"] == []


@pytest.mark.parametrize("version", SUPPORTED_VERSIONS)
@pytest.mark.parametrize("values", list(VALUES))
def test_rendered_objects_match_the_kubernetes_schemas(
    rendered: dict[str, list[dict[str, Any]]], values: str, version: str
) -> None:
    docs = rendered[values]
    assert len(docs) >= 15
    for doc in docs:
        kubernetes_validate.validate(doc, version, strict=True)


def test_values_schema_is_valid_and_strict() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    jsonschema.validate(defaults, schema)
    jsonschema.validate(merged(defaults, GPU_VALUES), schema)
    for bad in (
        {"bogus": 1},
        {"platform": {"replica": 2}},
        {"redis": {"url": "redis://x"}},
        {"ingress": {"tls": {"enable": True}}},
        {"flavors": {"flavors": {"x": {"cpu": 1, "memory": "1Gi", "gpu": 1}}}},
        {"flavors": {"flavors": {"x": {"cpu": "lots", "memory": "1Gi"}}}},
        {"spaces": {"namespace": "Not_A_Namespace"}},
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({**defaults, **bad}, schema)
        with helm.Chart.load(str(CHART)) as chart, pytest.raises(helm.HelmValuesError):
            chart.validate_schema(bad)


def test_external_services_are_required_when_the_in_chart_ones_are_off() -> None:
    with pytest.raises(helm.HelmError, match="redis.externalUrl is required"):
        render({"redis": {"enabled": False}})
    with pytest.raises(helm.HelmError, match="postgresql.externalUrl is required"):
        render({"postgresql": {"enabled": False}})


def test_the_generated_database_password_is_the_same_in_both_secrets(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    # two templates ask for it: a second randAlphaNum once gave the platform a password PostgreSQL never had
    default = rendered["default"]
    password = base64.b64decode(find(default, "Secret", "spaceyard-postgresql")["data"]["password"]).decode()
    url = base64.b64decode(find(default, "Secret", "spaceyard-urls")["data"]["database-url"]).decode()
    assert len(password) == 32 and url == f"postgresql+psycopg://spaceyard:{password}@spaceyard-postgresql:5432/spaceyard"


def test_chart_pods_have_no_service_links_and_take_the_dns_override() -> None:
    # a Service named "spaceyard" would inject SPACEYARD_PORT=tcp://... (a setting) into every pod
    dns = {"nameservers": ["10.0.0.10"], "searches": ["spaceyard.svc.cluster.local"]}
    service_values = {"service": {"type": "NodePort", "nodePort": 30080}}
    docs = render({"dnsPolicy": "None", "dnsConfig": dns, "platform": service_values})
    workloads = [d for d in docs if d["kind"] in ("Deployment", "StatefulSet")]
    assert len(workloads) == 5
    for doc in workloads:
        pod = doc["spec"]["template"]["spec"]
        assert pod["enableServiceLinks"] is False, doc["metadata"]["name"]
        assert pod["dnsPolicy"] == "None" and pod["dnsConfig"] == dns
    service = find(docs, "Service", "spaceyard")["spec"]
    assert service["type"] == "NodePort" and service["ports"][0]["nodePort"] == 30080
    assert "dnsPolicy" not in find(render({}), "Deployment", "spaceyard-platform")["spec"]["template"]["spec"]


def test_components(rendered: dict[str, list[dict[str, Any]]]) -> None:
    default, gpu = rendered["default"], rendered["gpu"]
    for docs in (default, gpu):
        for name in ("spaceyard-platform", "spaceyard-worker", "spaceyard-controller"):
            find(docs, "Deployment", name)
        find(docs, "Service", "spaceyard")
        find(docs, "ConfigMap", "spaceyard-flavors")
        find(docs, "Ingress", "spaceyard")
    find(default, "Deployment", "spaceyard-redis")
    find(default, "StatefulSet", "spaceyard-postgresql")
    assert not [d for d in gpu if d["metadata"]["name"] in ("spaceyard-redis", "spaceyard-postgresql")]
    controller = find(default, "Deployment", "spaceyard-controller")
    assert controller["spec"]["replicas"] == 2
    assert controller["spec"]["template"]["spec"]["containers"][0]["args"] == [
        "python",
        "-m",
        "spaceyard_runtime.kubernetes.controller",
    ]
    platform_env = env_of(find(default, "Deployment", "spaceyard-platform"))
    assert platform_env["SPACEYARD_RUNTIME"] == "kubernetes" and platform_env["SPACEYARD_EMBEDDED_WORKER"] == "false"
    assert platform_env["SPACEYARD_REDIS_URL"] == platform_env["SPACEYARD_DATABASE_URL"] == "<from secret>"


def test_chart_pods_are_non_root_and_never_mount_host_paths(rendered: dict[str, list[dict[str, Any]]]) -> None:
    for docs in rendered.values():
        for doc in docs:
            if doc["kind"] not in ("Deployment", "StatefulSet"):
                continue
            pod = doc["spec"]["template"]["spec"]
            assert pod["securityContext"]["runAsNonRoot"] is True, doc["metadata"]["name"]
            assert not any("hostPath" in v for v in pod.get("volumes", []))
            for c in pod["containers"]:
                assert c["securityContext"]["allowPrivilegeEscalation"] is False
        assert "docker.sock" not in yaml.safe_dump_all(docs)


def test_flavors_configmap(rendered: dict[str, list[dict[str, Any]]]) -> None:
    assert (CHART / "files" / "flavors.yaml").read_bytes() == DEFAULT_FLAVORS_FILE.read_bytes()
    default = yaml.safe_load(find(rendered["default"], "ConfigMap", "spaceyard-flavors")["data"]["flavors.yaml"])
    assert default == yaml.safe_load(DEFAULT_FLAVORS_FILE.read_text())
    gpu = parse_flavors(yaml.safe_load(find(rendered["gpu"], "ConfigMap", "spaceyard-flavors")["data"]["flavors.yaml"]))
    assert set(gpu) == {"cpu-basic", "t4-small", "a10g-largex2"}  # Helm maps are unordered: sorted by name
    assert gpu["t4-small"].node_selector == {"cloud.google.com/gke-accelerator": "nvidia-tesla-t4"}


def test_ingress_has_the_wildcard_host_and_long_timeouts(rendered: dict[str, list[dict[str, Any]]]) -> None:
    ingress = find(rendered["gpu"], "Ingress", "spaceyard")
    hosts = [r["host"] for r in ingress["spec"]["rules"]]
    assert hosts == ["spaceyard.gpu.example.org", "*.apps.gpu.example.org"]
    annotations = ingress["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"] == "3600"
    assert annotations["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"
    assert annotations["cert-manager.io/cluster-issuer"] == "letsencrypt-dns"
    assert ingress["spec"]["tls"][0]["hosts"] == hosts


def test_chart_settings_reach_the_runtime(
    rendered: dict[str, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The env the chart sets parses into RuntimeSettings, and the gateway labels are the platform pods' labels."""
    docs = rendered["gpu"]
    for name, value in env_of(find(docs, "Deployment", "spaceyard-controller")).items():
        monkeypatch.setenv(name, value)
    settings = RuntimeSettings()
    platform = find(docs, "Deployment", "spaceyard-platform")
    assert settings.kubernetes_gateway_labels == platform["spec"]["template"]["metadata"]["labels"]
    assert settings.kubernetes_platform_namespace == "spaceyard"
    assert settings.kubernetes_runtime_class == "nvidia"
    assert settings.kubernetes_image_pull_secrets == ["spaceyard-pull"]
    assert "169.254.0.0/16" in settings.kubernetes_blocked_cidrs
    assert str(settings.flavors_file) == "/etc/spaceyard/flavors.yaml"
    mount = platform["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
    assert {"name": "flavors", "mountPath": "/etc/spaceyard", "readOnly": True} in mount


# ------------------------------------------------------------------------------------------- RBAC

VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


def needed_permissions(fake: FakeKubeAPI) -> set[tuple[str, str, str]]:
    """(apiGroup, resource, verb) of every request the fake API server saw."""
    needed = set()
    for method, path, is_watch in fake.calls:
        match = PATH.match(path)
        assert match, path
        resource = match["plural"] + (f"/{match['sub']}" if match["sub"] else "")
        listing = "watch" if is_watch else "list"
        verb = VERBS.get(method) or ("get" if match["name"] else listing)
        if method == "DELETE" and not match["name"]:
            verb = "deletecollection"
        needed.add((match["group"] or "", resource, verb))
    return needed


def granted(role: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


async def exercise_runtime(fake: FakeKubeAPI) -> None:
    api_client = client.ApiClient(client.Configuration(host=fake.url))
    runtime = KubernetesRuntime(RuntimeSettings(kubernetes_namespace=NAMESPACE), api_client=api_client)
    fake.set_image("crash:1", "crash")
    spec = AppSpec(space_id="a/b", revision="1", sdk="gradio", artifact="img:1", env={"A": "1"})
    handle = await runtime.start(spec, lambda line: None)
    await runtime.wait_ready(handle, 10)
    await runtime.poll(handle)
    await runtime.suspend(handle)
    handle = await runtime.resume(handle, lambda line: None)
    await runtime.wait_ready(handle, 10)
    crashing = await runtime.start(AppSpec(space_id="a/c", revision="1", sdk="gradio", artifact="crash:1"), print)
    await runtime.poll(crashing)
    await asyncio.sleep(0.2)  # let the log pumps connect
    await runtime.stop(handle)
    await runtime.aclose()


def exercise_controller(fake: FakeKubeAPI, flavors: dict[str, Flavor]) -> None:
    class Source:
        spaces = [DesiredSpace(space_id="a/b", image="img:1", revision="1", flavor=flavors["cpu-basic"])]

        def desired_spaces(self) -> list[DesiredSpace]:
            return self.spaces

        def desired_space(self, name: str) -> DesiredSpace | None:
            return self.spaces[0] if name == "space-a--b" else None

    source = Source()
    api_client = client.ApiClient(client.Configuration(host=fake.url))
    ctl = Controller(api_client, ClusterConfig(namespace=NAMESPACE), source, identity="x", lease_duration=3)
    ctl.resync()
    source.spaces = [dataclasses.replace(source.spaces[0], awake=False)]
    ctl.resync()
    source.spaces = []
    ctl.resync()
    stop = threading.Event()
    thread = threading.Thread(target=ctl.run, args=(stop,))
    thread.start()
    while not any(is_watch for _, _, is_watch in fake.calls):
        stop.wait(0.02)
    stop.set()
    thread.join()


async def test_rbac_grants_exactly_what_the_code_uses(
    rendered: dict[str, list[dict[str, Any]]], flavors: dict[str, Flavor]
) -> None:
    docs = rendered["default"]
    fakes = {"platform": FakeKubeAPI(), "controller": FakeKubeAPI()}
    for fake in fakes.values():
        fake.start()
    try:
        await exercise_runtime(fakes["platform"])
        await asyncio.to_thread(exercise_controller, fakes["controller"], flavors)
    finally:
        for fake in fakes.values():
            fake.stop()
    for component, fake in fakes.items():
        role = find(docs, "Role", f"spaceyard-{component}")
        assert role["metadata"]["namespace"] == "spaceyard-spaces"
        needed, allowed = needed_permissions(fake), granted(role)
        assert needed <= allowed, f"{component} lacks {sorted(needed - allowed)}"
        assert {p for p in allowed if p[0] == "coordination.k8s.io"} == (
            {p for p in needed if p[0] == "coordination.k8s.io"} | {("coordination.k8s.io", "leases", "create")}
            if component == "controller"
            else set()
        )
        binding = find(docs, "RoleBinding", f"spaceyard-{component}")
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": f"spaceyard-{component}", "namespace": "spaceyard"}
        ]
    assert not [d for d in docs if d["kind"] in ("ClusterRole", "ClusterRoleBinding")]
    # the worker calls no Kubernetes API: no Role, no binding, and no token in its pod for a build to find
    assert not [d for d in docs if d["kind"] in ("Role", "RoleBinding") and "worker" in d["metadata"]["name"]]
    worker = find(docs, "Deployment", "spaceyard-worker")["spec"]["template"]["spec"]
    assert worker["automountServiceAccountToken"] is False


# ------------------------------------------------------------------------------------ other files


def test_e2e_script_and_dockerfile_are_well_formed() -> None:
    subprocess.run(["bash", "-n", str(ROOT / "helm" / "e2e.sh")], check=True)
    dockerfile = (ROOT / "helm" / "Dockerfile").read_text()
    assert "USER 1000" in dockerfile and "pip install" in dockerfile


def test_every_value_e2e_sh_sets_is_in_the_charts_schema() -> None:
    """helm/e2e.sh cannot run here (no kind/k3s): at least every ``--set`` it passes names a value the chart
    has (values.schema.json forbids unknown keys, so a stale one would fail its ``helm install``)."""
    script = (ROOT / "helm" / "e2e.sh").read_text()
    keys = set(re.findall(r"--set ([A-Za-z][A-Za-z0-9_.]*)=", script))
    assert {"image.repository", "worker.baseImage", "spaces.namespace", "platform.extraEnv.E2E_REVISION"} <= keys
    schema = json.loads((CHART / "values.schema.json").read_text())
    for key in keys:
        node = schema
        for part in key.split("."):
            props = node.get("properties", {})
            if part in props:
                node = props[part]
            elif isinstance(node.get("additionalProperties"), dict):
                node = node["additionalProperties"]
            else:
                raise AssertionError(f"helm/e2e.sh sets {key}, which the chart does not have ({part!r})")
