"""The in-container agent in a Space pod (light sleep on Kubernetes): its manifests, as pure functions.

A Gradio Space's pod runs :mod:`spaceyard_runtime.agent` as its main process instead of the image's
``python app.py``; the agent keeps a warm parent (Gradio imported) and forks the app on ``/app/start``, so a
light sleep stops only the app and the wake forks it again in the same pod (:mod:`.lightsleep`).

* **One ConfigMap per agent version** (:func:`make_agent_config`, ``spaceyard-agent-<digest>``) in the
  Spaces namespace holds ``agent.py`` and ``zygote.py``; every agent pod mounts it read-only at
  :data:`~spaceyard_runtime.agent_client.AGENT_DIR`. The runtime writes it, nothing is baked into images. A
  new version is a new name, so the pod template changes and pods roll onto it.
* **A token per Space** (:func:`make_agent_secret`, ``<space>-agent``: a Secret of its own, not the Space's
  ``envFrom`` Secret, owned by the Space's owner object). The pod gets it as ``SPACEYARD_AGENT_TOKEN``
  (the agent drops every ``SPACEYARD_AGENT_*`` variable before the warm parent and the app start). No other
  pod mounts it; Space pods have no service account token, so no Space can read another's.
* **The control port** :data:`~spaceyard_runtime.agent_client.AGENT_PORT` is a container port of its own;
  the Space's NetworkPolicy admits it, like the app port, only from the platform's pods.
* **Readiness stays the app's** (``GET /`` on the app port): a pod whose app is stopped is not ready, so its
  Service has no endpoint and nothing reaches a warm-only pod through it.

The container command is ``sh -c '<link preloaded Hub files>; exec "$@"' sh python agent.py ... -- python
app.py``: the same start as the image's own command (:func:`spaceyard_builder`'s ``hub_cmd``, which links
``.spaceyard-hub`` into the Hugging Face cache when the build preloaded files), with the agent as PID 1.
"""

from __future__ import annotations

import base64
import functools
import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..agent_client import AGENT_DIR, AGENT_PORT, TOKEN_ENV, agent_command
from ..hubcache import HUB_DIR
from . import slugs
from .desired import ClusterConfig, DesiredSpace

Manifest = dict[str, Any]

SOURCES = (Path(__file__).parent.parent / "agent.py", Path(__file__).parent.parent / "zygote.py")
CONFIG_PREFIX = "spaceyard-agent-"
TOKEN_KEY = "token"
TOKEN_FILE_ENV = "SPACEYARD_AGENT_TOKEN_FILE"
VOLUME = "spaceyard-agent"
STOP_GRACE = 5.0
"""Seconds the agent gives a stopping app (light sleep, pod end) before SIGKILL."""
HUB_LINK = (
    f'if [ -d {HUB_DIR} ]; then c="$HOME/.cache/huggingface/hub"; mkdir -p "$c" && cp -rs "$PWD/{HUB_DIR}/." "$c/"; '
    'fi; exec "$@"'
)


@functools.cache
def _sources() -> dict[str, str]:
    return {path.name: path.read_text(encoding="utf-8") for path in SOURCES}


@functools.cache
def agent_config_name() -> str:
    """``spaceyard-agent-<digest of agent.py and zygote.py>``: a new version is a new object."""
    digest = hashlib.sha256(b"\0".join(text.encode() for text in _sources().values())).hexdigest()[:12]
    return CONFIG_PREFIX + digest


def make_agent_config(cfg: ClusterConfig, labels: Mapping[str, str]) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": agent_config_name(),
            "namespace": cfg.namespace,
            "labels": {**labels, "spaceyard.dev/component": "agent"},
        },
        "data": dict(_sources()),
        "immutable": True,
    }


def agent_secret_name(space_id: str) -> str:
    return f"{slugs.space_name(space_id)}-agent"


def make_agent_secret(space: DesiredSpace, cfg: ClusterConfig, token: str, meta: Manifest) -> Manifest:
    """The Space's agent token (``meta``: the Space's metadata for a component, named here)."""
    metadata = {**meta, "name": agent_secret_name(space.space_id)}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata,
        "type": "Opaque",
        "data": {TOKEN_KEY: base64.b64encode(token.encode()).decode()},
    }


def wrap_container(space: DesiredSpace, container: dict[str, Any], volumes: list[dict[str, Any]]) -> None:
    """Make ``container`` (the app's, as :func:`.objects.make_pod_template` built it) run under the agent."""
    assert space.agent is not None
    argv = agent_command(
        ["python", space.app_file], python="python", preload=list(space.agent), quiet_queue=True, stop_grace=STOP_GRACE
    )
    container["command"] = ["sh", "-c", HUB_LINK, "sh", *argv]
    container["ports"].append({"name": "agent", "containerPort": AGENT_PORT, "protocol": "TCP"})
    # last in the list, so they win over a Space variable or secret of the same name (a Space must not pick
    # the file its agent reads the token from, nor the token)
    container["env"] += [
        {"name": TOKEN_FILE_ENV, "value": ""},
        {
            "name": TOKEN_ENV,
            "valueFrom": {"secretKeyRef": {"name": agent_secret_name(space.space_id), "key": TOKEN_KEY}},
        },
    ]
    container["volumeMounts"].append({"name": VOLUME, "mountPath": AGENT_DIR, "readOnly": True})
    volumes.append({"name": VOLUME, "configMap": {"name": agent_config_name(), "defaultMode": 0o444}})


__all__ = [
    "AGENT_PORT",
    "agent_config_name",
    "agent_secret_name",
    "make_agent_config",
    "make_agent_secret",
    "wrap_container",
]
