"""Space pods and the chart's pods satisfy the restricted Pod Security Standard the Spaces namespace enforces."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from spaceyard_runtime.kubernetes import objects
from spaceyard_runtime.kubernetes.desired import ClusterConfig, DesiredSpace
from tests.kubernetes.pss import restricted_violations
from tests.kubernetes.test_helm import VALUES, find, render


@pytest.mark.parametrize("flavor", ["cpu-basic", "t4-small", "a100-large"])
@pytest.mark.parametrize("sdk", ["gradio", "streamlit", "static", "docker"])
def test_space_pods_are_admitted_at_restricted(
    flavor: str, sdk: str, space: Callable[..., DesiredSpace], cfg: ClusterConfig
) -> None:
    pod = objects.make_deployment(space(flavor=flavor, sdk=sdk), cfg)["spec"]["template"]["spec"]
    assert restricted_violations(pod) == []


def test_the_checker_catches_what_restricted_forbids(space: Callable[..., DesiredSpace], cfg: ClusterConfig) -> None:
    pod = copy.deepcopy(objects.make_deployment(space(), cfg)["spec"]["template"]["spec"])
    container = pod["containers"][0]["securityContext"]
    container["seccompProfile"] = {"type": "Unconfined"}  # what user namespaces need under containerd
    container["appArmorProfile"] = {"type": "Unconfined"}
    problems = restricted_violations(pod)
    assert any("seccompProfile" in p for p in problems) and any("appArmorProfile" in p for p in problems)
    assert not any("privileged" in p or "runAsUser 0" in p for p in problems)
    container["privileged"] = True
    assert any("privileged" in p for p in restricted_violations(pod))


@pytest.mark.parametrize("values", list(VALUES))
def test_chart_pods_are_admitted_at_restricted(values: str) -> None:
    docs = render(VALUES[values])
    workloads = [d for d in docs if d["kind"] in ("Deployment", "StatefulSet")]
    assert workloads
    for doc in workloads:
        pod: dict[str, Any] = doc["spec"]["template"]["spec"]
        if doc["metadata"]["name"] != "spaceyard-worker":
            assert restricted_violations(pod) == [], doc["metadata"]["name"]
    # the worker is the outside of the build walls (bubblewrap as root, then the unprivileged build uid):
    # exactly these deviations, and none without walls
    worker = find(docs, "Deployment", "spaceyard-worker")["spec"]["template"]["spec"]
    problems = restricted_violations(worker)
    assert len(problems) == 4 and not any("privileged" in p for p in problems), problems
    assert any("SYS_ADMIN" in p for p in problems) and any("runAsUser 0" in p or "runAsNonRoot" in p for p in problems)
    no_walls = render({**VALUES[values], "worker": {**VALUES[values].get("worker", {}), "buildWalls": False}})
    assert restricted_violations(find(no_walls, "Deployment", "spaceyard-worker")["spec"]["template"]["spec"]) == []
    spaces_ns = find(docs, "Namespace", "spaceyard-spaces")
    assert spaces_ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert [d["metadata"]["name"] for d in docs if d["kind"] == "Namespace"] == ["spaceyard-spaces"]
