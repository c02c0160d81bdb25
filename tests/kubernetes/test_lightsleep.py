"""Light sleep on Kubernetes, the pure parts: the agent pod's manifests, the owner's record of a light
sleeper (read back by the controller to the same pod template), the budget's order (no cluster)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

from spaceyard_runtime.agent_client import AGENT_DIR, AGENT_PORT, TOKEN_ENV
from spaceyard_runtime.api import AppSpec, Flavor
from spaceyard_runtime.kubernetes import agentpod, lightsleep, objects
from spaceyard_runtime.kubernetes.clients import KubeApi
from spaceyard_runtime.kubernetes.controller import ClusterRecordSource
from spaceyard_runtime.kubernetes.desired import ClusterConfig, DesiredSpace
from spaceyard_runtime.kubernetes.reconcile import agent_token, apply_space, template_hash
from spaceyard_runtime.kubernetes.runtime import KubernetesRuntime
from spaceyard_runtime.settings import RuntimeSettings

Make = Callable[..., DesiredSpace]
PRELOAD = ("gradio", "?uvicorn.main")


def _container(space: DesiredSpace, cfg: ClusterConfig) -> dict[str, Any]:
    return dict(objects.make_pod_template(space, cfg)["spec"]["containers"][0])


def test_an_agent_pod_runs_the_agent_around_python_app_py_with_its_own_token(space: Make, cfg: ClusterConfig) -> None:
    desired = space(agent=PRELOAD, app_file="main.py", variables={TOKEN_ENV: "mine", agentpod.TOKEN_FILE_ENV: "/x"})
    template = objects.make_pod_template(desired, cfg)
    container = template["spec"]["containers"][0]
    command = container["command"]
    assert command[:2] == ["sh", "-c"] and 'exec "$@"' in command[2] and command[3] == "sh"
    agent = command[4:]
    assert agent[:2] == ["python", f"{AGENT_DIR}/agent.py"] and "--autostart" in agent
    assert agent[agent.index("--control-port") + 1] == str(AGENT_PORT)
    assert agent[agent.index("--") :] == ["--", "python", "main.py"]
    assert [agent[i + 1] for i, a in enumerate(agent) if a == "--preload"] == list(PRELOAD)
    assert container["env"][-2:][0] == {"name": agentpod.TOKEN_FILE_ENV, "value": ""}  # a Space cannot set them
    token = container["env"][-1]
    assert token == {
        "name": TOKEN_ENV,
        "valueFrom": {"secretKeyRef": {"name": "space-alice--demo-agent", "key": agentpod.TOKEN_KEY}},
    }
    # the Space's own Secret (envFrom: everything in it reaches the app) is another one
    assert container["envFrom"] == [{"secretRef": {"name": "space-alice--demo", "optional": True}}]
    assert {"name": agentpod.VOLUME, "mountPath": AGENT_DIR, "readOnly": True} in container["volumeMounts"]
    volume = next(v for v in template["spec"]["volumes"] if v["name"] == agentpod.VOLUME)
    assert volume == {
        "name": agentpod.VOLUME,
        "configMap": {"name": agentpod.agent_config_name(), "defaultMode": 0o444},
    }
    # readiness is the app's, not the agent's: a pod with a stopped app is not an endpoint of its Service
    assert container["readinessProbe"]["httpGet"] == {"path": "/", "port": "http"}
    assert {"name": "agent", "containerPort": AGENT_PORT, "protocol": "TCP"} in container["ports"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_without_the_agent_the_pod_runs_the_images_own_command(space: Make, cfg: ClusterConfig) -> None:
    container = _container(space(), cfg)
    assert "command" not in container and not [e for e in container["env"] if e["name"] == TOKEN_ENV]
    ingress = objects.make_network_policy(space(), cfg)["spec"]["ingress"]
    assert [p["port"] for p in ingress[0]["ports"]] == [7860]


def test_only_the_platform_may_reach_the_control_port(space: Make, cfg: ClusterConfig) -> None:
    [rule] = objects.make_network_policy(space(agent=PRELOAD), cfg)["spec"]["ingress"]
    assert [p["port"] for p in rule["ports"]] == [7860, AGENT_PORT]
    assert rule["from"] == [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": cfg.platform_namespace}},
            "podSelector": {"matchLabels": dict(cfg.gateway_pod_labels)},
        }
    ]


def test_the_agents_files_are_one_immutable_config_map_per_version(cfg: ClusterConfig) -> None:
    made = agentpod.make_agent_config(cfg, objects.MANAGED_BY)
    assert made["metadata"]["name"] == agentpod.agent_config_name() and made["immutable"] is True
    assert set(made["data"]) == {"agent.py", "zygote.py"}
    assert made["data"]["agent.py"] == (agentpod.SOURCES[0]).read_text()


def test_a_light_sleeper_keeps_its_pod_and_the_controller_reads_back_the_same_template(
    space: Make, cfg: ClusterConfig, api: KubeApi, flavors: dict[str, Flavor]
) -> None:
    awake = space(agent=PRELOAD)
    asleep = dataclasses.replace(awake, awake=False, light=True, light_since=1234.5, light_bytes=150 << 20)
    assert (awake.replicas, asleep.replicas, dataclasses.replace(asleep, light=False).replicas) == (1, 1, 0)
    assert dataclasses.replace(asleep, paused=True).replicas == 0
    assert dataclasses.replace(asleep, agent=None).replicas == 0  # no agent: nothing to sleep lightly in
    apply_space(api, asleep, cfg)
    token = agent_token(api, awake.space_id)
    assert token and len(token) >= 32
    apply_space(api, asleep, cfg)  # made once: a second apply keeps the token
    assert agent_token(api, awake.space_id) == token
    back = ClusterRecordSource(api, flavors).desired_space("space-alice--demo")
    assert back is not None
    assert (back.agent, back.app_file, back.light, back.light_since, back.light_bytes) == (
        PRELOAD,
        "app.py",
        True,
        1234.5,
        150 << 20,
    )
    assert template_hash(back, cfg) == template_hash(awake, cfg)  # sleep and wake never roll the pod
    owner = api.get("ConfigMap", "space-alice--demo")
    assert owner is not None and json.loads(owner["data"]["agent"]) == list(PRELOAD)


def test_the_least_recently_suspended_go_deep_until_the_rest_fit() -> None:
    def owner(name: str, since: float, mib: int, light: str = "true") -> dict[str, Any]:
        data = {"light": light, "awake": "false", "light-since": str(since), "light-bytes": str(mib << 20)}
        return {"metadata": {"name": name}, "data": data}

    owners = [owner("c", 30, 100), owner("a", 10, 100), owner("b", 20, 100), owner("awake", 5, 900, "false")]
    sleepers = lightsleep.sleepers(owners)
    assert sorted(s.name for s in sleepers) == ["a", "b", "c"]
    assert [s.name for s in lightsleep.deepen_first(sleepers, 300 << 20)] == []
    assert [s.name for s in lightsleep.deepen_first(sleepers, 250 << 20)] == ["a"]
    assert [s.name for s in lightsleep.deepen_first(sleepers, 100 << 20)] == ["a", "b"]
    assert [s.name for s in lightsleep.deepen_first(sleepers, 0)] == ["a", "b", "c"]


def test_a_light_sleepers_requests_are_its_measured_size_never_more_than_awake(space: Make) -> None:
    desired = space(agent=PRELOAD)
    assert lightsleep.awake_requests(desired) == {"cpu": "500m", "memory": "2048Mi"}
    assert lightsleep.asleep_requests(desired, 100 << 20) == {"cpu": "10m", "memory": "125Mi"}
    assert lightsleep.asleep_requests(desired, None) == {"cpu": "10m", "memory": "32Mi"}
    small = dataclasses.replace(desired, flavor=Flavor(name="tiny", cpu=0.25, memory_mib=64))
    assert lightsleep.asleep_requests(small, 1 << 30)["memory"] == "64Mi"


def test_which_spaces_run_the_agent() -> None:
    def preload(settings: RuntimeSettings, **spec: Any) -> tuple[str, ...] | None:
        runtime = KubernetesRuntime(settings, api_client=object())
        fields: dict[str, Any] = {"space_id": "a/b", "revision": "1", "sdk": "gradio", "artifact": "i:1", **spec}
        return runtime.desired(AppSpec(**fields)).agent

    on, off = RuntimeSettings(runtime="kubernetes"), RuntimeSettings(runtime="kubernetes", light_sleep_memory_mib=0)
    assert (preload(on) or ())[0] == "gradio"
    assert preload(on, sdk="docker") is None and preload(on, sdk="streamlit") is None
    assert preload(on, flavor=Flavor(name="t4-small", gpus=1)) is None  # a light sleeper would keep its GPU
    assert preload(off) is None
    caps_on, caps_off = (KubernetesRuntime(s, api_client=object()).capabilities for s in (on, off))
    assert caps_on.light_sleep and not caps_on.restarts_crashed_apps
    assert not caps_off.light_sleep and caps_off.restarts_crashed_apps
