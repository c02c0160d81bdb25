"""The Hub inside every Space on Kubernetes, as rendered: the relay's Service and port on the platform pods,
the one egress rule into the cluster the Spaces' NetworkPolicy has (that port of the platform pods, beside
DNS), the same port in the platform's and the controller's settings (both write the policy), and the one
extra permission the platform gets (reading that Service's ClusterIP)."""

from __future__ import annotations

from typing import Any

import pytest

from spaceyard_runtime.api import Flavor
from spaceyard_runtime.kubernetes import objects
from spaceyard_runtime.kubernetes.desired import ClusterConfig, DesiredSpace
from spaceyard_runtime.kubernetes.runtime import cluster_config
from spaceyard_runtime.settings import RuntimeSettings
from tests.kubernetes.test_helm import env_of, find, rendered  # noqa: F401 (the rendered chart fixture)

SPACE = DesiredSpace(space_id="a/b", image="img:1", revision="1", flavor=Flavor(name="cpu-basic"))


def settings_of(deployment: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> RuntimeSettings:
    with monkeypatch.context() as m:
        for name, value in env_of(deployment).items():
            if value != "<from secret>":
                m.setenv(name, value)
        return RuntimeSettings()


def test_the_chart_serves_the_relay_behind_its_own_service(rendered: dict[str, list[dict[str, Any]]]) -> None:  # noqa: F811
    docs = rendered["default"]
    platform = find(docs, "Deployment", "spaceyard-platform")
    container = platform["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "hub", "containerPort": 7850} in container["ports"]
    hub = find(docs, "Service", "spaceyard-hub")["spec"]
    assert hub["type"] == "ClusterIP" and hub["ports"] == [{"name": "hub", "port": 7850, "targetPort": "hub"}]
    assert hub["selector"] == platform["spec"]["selector"]["matchLabels"]
    main = find(docs, "Service", "spaceyard")["spec"]["ports"]
    assert [p["targetPort"] for p in main] == ["http"], "the relay is not on the control plane's Service"
    role = find(docs, "Role", "spaceyard-platform-hub")
    assert role["metadata"]["namespace"] == "spaceyard"
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["services"], "resourceNames": ["spaceyard-hub"], "verbs": ["get"]}
    ]
    binding = find(docs, "RoleBinding", "spaceyard-platform-hub")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "spaceyard-platform", "namespace": "spaceyard"}]


def test_platform_and_controller_write_the_same_policy_with_the_relay_as_the_only_way_in(
    rendered: dict[str, list[dict[str, Any]]],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    docs = rendered["default"]
    platform = settings_of(find(docs, "Deployment", "spaceyard-platform"), monkeypatch)
    controller = settings_of(find(docs, "Deployment", "spaceyard-controller"), monkeypatch)
    assert platform.kubernetes_hub_relay_port == controller.kubernetes_hub_relay_port == 7850
    assert platform.kubernetes_hub_relay_service == "spaceyard-hub"
    policy = objects.make_network_policy(SPACE, cluster_config(platform))
    assert policy == objects.make_network_policy(SPACE, cluster_config(controller))
    dns, relay, internet = policy["spec"]["egress"]
    assert dns["to"][0]["podSelector"] == {"matchLabels": {"k8s-app": "kube-dns"}}
    assert relay == {
        "to": [
            {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "spaceyard"}},
                "podSelector": {"matchLabels": platform.kubernetes_gateway_labels},
            }
        ],
        "ports": [{"protocol": "TCP", "port": 7850}],
    }
    pod_labels = find(docs, "Deployment", "spaceyard-platform")["spec"]["template"]["metadata"]["labels"]
    assert platform.kubernetes_gateway_labels == pod_labels
    # everything else private (the pod and Service ranges with them) stays closed
    assert "ports" not in internet and "10.0.0.0/8" in internet["to"][0]["ipBlock"]["except"]


def test_without_a_relay_port_the_policy_has_no_way_into_the_cluster() -> None:
    dns, internet = objects.make_network_policy(SPACE, ClusterConfig())["spec"]["egress"]
    assert internet["to"][0]["ipBlock"]["cidr"] == "0.0.0.0/0"
