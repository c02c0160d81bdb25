"""Every manifest the backend produces, validated against the official Kubernetes OpenAPI schemas.

``kubernetes-validate`` ships the schemas of 1.25 to 1.37; Spaceyard supports 1.30 to 1.35, checked
here in strict mode (unknown fields are errors, as with ``kubectl apply --validate=strict``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import kubernetes_validate
import pytest

from spaceyard_runtime.api import Flavor
from spaceyard_runtime.kubernetes import objects, slugs
from spaceyard_runtime.kubernetes.desired import ClusterConfig, DesiredSpace

SUPPORTED_VERSIONS = ["1.30.0", "1.31.0", "1.32.0", "1.33.0", "1.34.0", "1.35.0"]
FLAVORS = ["cpu-basic", "cpu-upgrade", "t4-small", "l4x4", "a10g-largex2", "a100-large"]
OWNER_UID = "6f1d2c1e-0000-4000-8000-000000000001"


def all_objects(space: DesiredSpace, cfg: ClusterConfig) -> list[dict[str, Any]]:
    owner = objects.make_owner(space, cfg)
    owner["metadata"]["uid"] = OWNER_UID
    return [owner, *objects.make_space_objects(space, cfg, owner)]


@pytest.mark.parametrize("version", SUPPORTED_VERSIONS)
@pytest.mark.parametrize("flavor", FLAVORS)
def test_every_manifest_is_valid(
    version: str, flavor: str, space: Callable[..., DesiredSpace], cfg: ClusterConfig
) -> None:
    desired = space("Some_Owner/A.Space", flavor=flavor, secrets={"HF_TOKEN": "t"}, variables={"MODE": "x"})
    for obj in all_objects(desired, cfg):
        kubernetes_validate.validate(obj, version, strict=True)


def test_asleep_paused_docker_and_plain_flavor_variants_are_valid(
    space: Callable[..., DesiredSpace], cfg: ClusterConfig
) -> None:
    variants = [
        space(awake=False),
        space(paused=True),
        space(sdk="docker", app_port=8080),
        DesiredSpace(space_id="a/b", image="i:1", revision="r", flavor=Flavor(name="custom", gpus=1)),
    ]
    custom = ClusterConfig(image_pull_secrets=("pull",), runtime_class_name="gvisor", blocked_cidrs=("10.0.0.0/8",))
    for desired in variants:
        for obj in all_objects(desired, cfg) + all_objects(desired, custom):
            for version in (SUPPORTED_VERSIONS[0], SUPPORTED_VERSIONS[-1]):
                kubernetes_validate.validate(obj, version, strict=True)


def test_invalid_manifests_are_caught_by_the_schemas(space: Callable[..., DesiredSpace], cfg: ClusterConfig) -> None:
    deployment = objects.make_deployment(space(), cfg)
    deployment["spec"]["template"]["spec"]["containers"][0]["resourcez"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, "1.35.0", strict=True)


def _pod(space: DesiredSpace, cfg: ClusterConfig) -> dict[str, Any]:
    return objects.make_deployment(space, cfg)["spec"]["template"]["spec"]  # type: ignore[no-any-return]


def test_pod_security(space: Callable[..., DesiredSpace], cfg: ClusterConfig) -> None:
    pod = _pod(space(), cfg)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 1000 and pod["securityContext"]["runAsGroup"] == 1000
    assert pod["automountServiceAccountToken"] is False and pod["enableServiceLinks"] is False
    container = pod["containers"][0]
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    assert not any("hostPath" in v for v in pod["volumes"])
    docker = _pod(space(sdk="docker"), cfg)["containers"][0]
    assert docker["securityContext"]["readOnlyRootFilesystem"] is False  # images we did not build may write anywhere
    assert "tcpSocket" in docker["readinessProbe"]


def test_resources_and_gpu_scheduling_come_from_the_flavor(
    space: Callable[..., DesiredSpace], cfg: ClusterConfig
) -> None:
    cpu = _pod(space(flavor="cpu-basic"), cfg)
    assert cpu["containers"][0]["resources"] == {
        "requests": {"cpu": "500m", "memory": "2048Mi"},
        "limits": {"cpu": "2000m", "memory": "16384Mi"},
    }
    assert "nodeSelector" not in cpu and "tolerations" not in cpu
    gpu = _pod(space(flavor="a10g-largex2"), cfg)
    resources = gpu["containers"][0]["resources"]
    assert resources["limits"]["nvidia.com/gpu"] == "2" and resources["requests"]["nvidia.com/gpu"] == "2"
    assert gpu["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-A10G"}
    assert gpu["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    a100 = _pod(space(flavor="a100-large"), cfg)
    assert a100["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    plain = objects.resources(Flavor(name="x", cpu=1.5, memory_mib=1000))
    assert plain["requests"] == plain["limits"] == {"cpu": "1500m", "memory": "1000Mi"}


def test_deployment_strategy_replicas_probe_and_secret_ref(
    space: Callable[..., DesiredSpace], cfg: ClusterConfig
) -> None:
    awake = objects.make_deployment(space(), cfg)
    assert awake["spec"]["replicas"] == 1
    # one Deployment per revision: its template never changes, so nothing rolls (a new revision is a new one)
    assert awake["spec"]["strategy"] == {"type": "Recreate"}
    template = awake["spec"]["template"]["metadata"]["labels"][objects.LABEL_TEMPLATE]
    assert awake["metadata"]["name"] == f"space-alice--demo-{template}"
    assert awake["spec"]["selector"]["matchLabels"] == {
        objects.LABEL_SPACE: "space-alice--demo",
        objects.LABEL_TEMPLATE: template,
    }
    assert objects.make_deployment(space(awake=False), cfg)["spec"]["replicas"] == 0
    assert objects.make_deployment(space(paused=True), cfg)["spec"]["replicas"] == 0
    other = objects.make_deployment(space(image="registry/spaces/alice--demo:2"), cfg)
    assert other["metadata"]["name"] != awake["metadata"]["name"], "a new revision is a new Deployment"
    assert objects.needs_one_revision(space(flavor="t4-small")) and not objects.needs_one_revision(space())
    container = awake["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"] == {"path": "/", "port": "http"}
    assert container["ports"] == [{"name": "http", "containerPort": 7860, "protocol": "TCP"}]
    assert container["envFrom"] == [{"secretRef": {"name": "space-alice--demo", "optional": True}}]
    # sleep and wake change only replicas: the hash the controller compares stays the same
    asleep = objects.make_deployment(space(awake=False), cfg)
    key = objects.ANNOTATION_HASH
    assert asleep["metadata"]["annotations"][key] == awake["metadata"]["annotations"][key]


def test_secret_changes_roll_the_pods_and_never_appear_in_the_template(
    space: Callable[..., DesiredSpace], cfg: ClusterConfig
) -> None:
    one = objects.make_deployment(space(secrets={"TOKEN": "s3cr3t-one"}), cfg)
    two = objects.make_deployment(space(secrets={"TOKEN": "s3cr3t-two"}), cfg)
    assert one["spec"]["template"]["metadata"] != two["spec"]["template"]["metadata"]
    assert "s3cr3t" not in str(one) and "s3cr3t" not in str(two)
    secret = objects.make_secret(space(secrets={"TOKEN": "one"}), cfg)
    assert secret["data"] == {"TOKEN": "b25l"} and secret["type"] == "Opaque"


def test_owner_references_and_labels(space: Callable[..., DesiredSpace], cfg: ClusterConfig) -> None:
    desired = space("Bob/X_Y")
    owner = objects.make_owner(desired, cfg)
    owner["metadata"]["uid"] = OWNER_UID
    name = slugs.space_name("Bob/X_Y")
    assert owner["kind"] == "ConfigMap" and owner["data"]["space-id"] == "Bob/X_Y"
    template = objects.template_key(desired, cfg)
    assert owner["data"]["template"] == template
    for obj in objects.make_space_objects(desired, cfg, owner):
        per_revision = obj["kind"] in ("Deployment", "Service")
        assert obj["metadata"]["name"] == (slugs.revision_name("Bob/X_Y", template) if per_revision else name)
        assert len(obj["metadata"]["name"]) <= 63
        assert obj["metadata"]["ownerReferences"] == [
            {"apiVersion": "v1", "kind": "ConfigMap", "name": name, "uid": OWNER_UID}
        ]
        assert obj["metadata"]["labels"][objects.LABEL_SPACE] == name
        assert obj["metadata"]["annotations"][objects.ANNOTATION_SPACE_ID] == "Bob/X_Y"


def test_network_policy_isolates_spaces(space: Callable[..., DesiredSpace], cfg: ClusterConfig) -> None:
    policy = objects.make_network_policy(space(), cfg)["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    assert policy["podSelector"] == {"matchLabels": {objects.LABEL_SPACE: "space-alice--demo"}}
    (ingress,) = policy["ingress"]
    (source,) = ingress["from"]
    assert source["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": "spaceyard"}}
    assert source["podSelector"]["matchLabels"] == dict(cfg.gateway_pod_labels)
    assert ingress["ports"] == [{"protocol": "TCP", "port": 7860}]
    dns, internet = policy["egress"]
    assert {"protocol": "UDP", "port": 53} in dns["ports"]
    v4 = internet["to"][0]["ipBlock"]
    assert v4["cidr"] == "0.0.0.0/0"
    assert {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"} <= set(v4["except"])
    assert internet["to"][1]["ipBlock"]["cidr"] == "::/0"
    assert "ports" not in internet  # any port on the internet


def test_service_points_at_the_app_port(space: Callable[..., DesiredSpace], cfg: ClusterConfig) -> None:
    service = objects.make_service(space(app_port=8501), cfg)
    assert service["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]
    template = objects.template_key(space(app_port=8501), cfg)
    assert service["spec"]["selector"][objects.LABEL_TEMPLATE] == template, "this revision's pod only"
    assert "sessionAffinity" not in service["spec"]
    host = objects.service_host("alice/demo", template, cfg)
    assert host == f"space-alice--demo-{template}.{cfg.namespace}.svc.cluster.local"
