"""Manifests as pure functions: ``make_*(typed input) -> dict``. No I/O, no client, no clock.

Per Space (all labelled ``spaceyard.dev/space=<slug>``), named :func:`slugs.space_name`:

* a **ConfigMap** — the *owner object*: it records the desired state (id, revision, flavor, the current
  revision's pod template hash, the replaced revisions still kept) and every other object of the Space has
  an ``ownerReference`` to it, so deleting it makes the Kubernetes garbage collector remove the rest (and a
  controller restart finds Spaces by listing owners);
* a **Secret** with the Space's secrets, reaching the app through ``envFrom.secretRef``;
* a **NetworkPolicy**: ingress only from the gateway pods, egress to DNS, to the Hub relay port of the
  platform pods (``hub_relay_port``) and the internet but not to private/cluster ranges (so neither the
  platform's other services nor other Spaces are reachable); it selects every revision's pods.

Per **revision** (one pod template: image, flavor, variables, secrets' hash), named
:func:`slugs.revision_name` (the Space's slug and the template hash) and labelled with the hash too:

* a **Deployment** with replicas 1 (awake) or 0 (asleep), resources from the flavor;
* a **Service** (ClusterIP, port 80 -> the app port) selecting only that revision's pod: the address the
  gateway proxies to for this revision.

A new revision is a new Deployment and Service next to the old ones, never an update of them: the replaced
revision keeps its own address, so the gateway can keep the sessions that started there on it (version
pinning, as with the local and Docker runtimes) until the lifecycle retires it (``Runtime.stop`` of its
handle deletes its two objects). A revision's template never changes, so its Deployment never rolls.
GPU flavors and Spaces with ``/data`` cannot run two revisions at once (a second GPU, a ReadWriteOnce
claim): the other revisions are removed before the new one is applied (an outage, as ``Recreate`` was).

Why a Deployment and not a bare pod or a StatefulSet: the ReplicaSet re-creates a pod that is evicted or
deleted, and scales to 0 and back for sleep and wake; a StatefulSet's stable identity and ordered,
volume-bound pods buy nothing for one stateless replica.

Images are built by the build worker (``spaceyard_builder``'s oci engine pushes them to the registry
without a Docker socket or privileges); nothing here runs builds.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Mapping
from typing import Any

from ..flavors import ClusterFlavor
from . import agentpod, slugs
from .desired import ClusterConfig, DesiredSpace, stable_hash

Manifest = dict[str, Any]

GROUP = "spaceyard.dev"
LABEL_SPACE = f"{GROUP}/space"
LABEL_COMPONENT = f"{GROUP}/component"
LABEL_REVISION = f"{GROUP}/revision"
LABEL_TEMPLATE = f"{GROUP}/template-hash"
ANNOTATION_SPACE_ID = f"{GROUP}/space-id"
ANNOTATION_HASH = f"{GROUP}/spec-hash"
ANNOTATION_SECRETS_HASH = f"{GROUP}/secrets-hash"
ANNOTATION_FLAVOR = f"{GROUP}/flavor"
LABEL_VOLUME = f"{GROUP}/volume"
DATA_MOUNT = "/data"
MANAGED_BY = {"app.kubernetes.io/managed-by": "spaceyard"}
GPU_RESOURCE = "nvidia.com/gpu"
WRITABLE_SDKS = {"docker"}
"""SDKs whose images we did not build: they may write anywhere, so their root filesystem stays writable."""
PRESTOP_SECONDS = 5
"""How long a Space pod keeps serving after it is told to stop (its Service stops routing to it meanwhile)."""


def space_labels(space_id: str) -> dict[str, str]:
    return {**MANAGED_BY, "app.kubernetes.io/name": "space", LABEL_SPACE: slugs.space_name(space_id)}


def space_selector(space_id: str) -> str:
    return f"{LABEL_SPACE}={slugs.space_name(space_id)}"


def managed_selector() -> str:
    return "app.kubernetes.io/managed-by=spaceyard,app.kubernetes.io/name=space"


def _meta(space: DesiredSpace, cfg: ClusterConfig, component: str) -> dict[str, Any]:
    return {
        "name": slugs.space_name(space.space_id),
        "namespace": cfg.namespace,
        "labels": {**space_labels(space.space_id), LABEL_COMPONENT: component},
        "annotations": {ANNOTATION_SPACE_ID: space.space_id},
    }


def _revision_meta(space: DesiredSpace, cfg: ClusterConfig, component: str, template: str) -> dict[str, Any]:
    meta = _meta(space, cfg, component)
    meta["name"] = slugs.revision_name(space.space_id, template)
    meta["labels"][LABEL_TEMPLATE] = template
    return meta


def revision_selector(space_id: str, template: str) -> str:
    """The pods (and the Deployment and Service) of one revision of the Space."""
    return f"{space_selector(space_id)},{LABEL_TEMPLATE}={template}"


def template_key(space: DesiredSpace, cfg: ClusterConfig) -> str:
    """The hash of the Space's pod template: what names its revision."""
    return str(make_pod_template(space, cfg)["metadata"]["labels"][LABEL_TEMPLATE])


def owned_meta(space: DesiredSpace, cfg: ClusterConfig, component: str, owner: Mapping[str, Any]) -> dict[str, Any]:
    """Metadata of a Space's object of ``component``, owned by the Space's owner object."""
    return {**_meta(space, cfg, component), "ownerReferences": [owner_reference(owner)]}


def with_hash(obj: Manifest) -> Manifest:
    """Stamp the manifest with a hash of itself: the controller compares it to the live object.

    A Deployment's ``spec.replicas`` is left out: sleep and wake change only the scale subresource.
    """
    hashed = obj
    if obj.get("kind") == "Deployment":
        hashed = {**obj, "spec": {k: v for k, v in obj["spec"].items() if k != "replicas"}}
    obj["metadata"].setdefault("annotations", {})[ANNOTATION_HASH] = stable_hash(hashed)
    return obj


def owner_reference(owner: Mapping[str, Any]) -> dict[str, Any]:
    """An ownerReference to a live object (needs its ``uid``, so only after the owner exists)."""
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
    }


def make_owner(space: DesiredSpace, cfg: ClusterConfig) -> Manifest:
    """The owner ConfigMap: the desired state as the cluster remembers it (no secrets)."""
    return with_hash(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": _meta(space, cfg, "owner"),
            "data": {
                "space-id": space.space_id,
                "revision": space.revision,
                "image": space.image,
                "flavor": space.flavor.name,
                "sdk": space.sdk,
                "app-port": str(space.app_port),
                "variables": json.dumps(dict(space.variables), sort_keys=True),
                "awake": str(space.awake).lower(),
                "paused": str(space.paused).lower(),
                "template": template_key(space, cfg),
                **({"retiring": json.dumps(list(space.retiring))} if space.retiring else {}),
                **(
                    {
                        "agent": json.dumps(list(space.agent)),
                        "app-file": space.app_file,
                        "light": str(space.light).lower(),
                        **(
                            {"light-since": f"{space.light_since:.3f}", "light-bytes": str(space.light_bytes)}
                            if space.light
                            else {}
                        ),
                    }
                    if space.agent is not None
                    else {}
                ),
                **(
                    {"storage": json.dumps(dataclasses.asdict(space.storage), sort_keys=True)}
                    if space.storage is not None
                    else {}
                ),
            },
        }
    )


def make_secret(space: DesiredSpace, cfg: ClusterConfig, owner: Mapping[str, Any] | None = None) -> Manifest:
    data = {k: base64.b64encode(v.encode()).decode() for k, v in sorted(space.secrets.items())}
    obj: Manifest = {"apiVersion": "v1", "kind": "Secret", "metadata": _meta(space, cfg, "secret"), "type": "Opaque"}
    if data:
        obj["data"] = data
    return _owned(with_hash(obj), owner)


def _quantity_cpu(cpus: float) -> str:
    return f"{round(cpus * 1000)}m"


def resources(flavor: ClusterFlavor | Any) -> dict[str, dict[str, str]]:
    """Requests and limits from a flavor; a plain ``Flavor`` (no requests) gets requests = limits."""
    cpu_request = getattr(flavor, "cpu_request", 0.0) or flavor.cpu
    memory_request = getattr(flavor, "memory_request_mib", 0) or flavor.memory_mib
    requests = {"cpu": _quantity_cpu(cpu_request), "memory": f"{memory_request}Mi"}
    limits = {"cpu": _quantity_cpu(flavor.cpu), "memory": f"{flavor.memory_mib}Mi"}
    if flavor.gpus:
        requests[GPU_RESOURCE] = limits[GPU_RESOURCE] = str(flavor.gpus)
    return {"requests": requests, "limits": limits}


def _container_security(read_only: bool) -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": read_only,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }


def _pod_security(cfg: ClusterConfig) -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": cfg.run_as_user,
        "runAsGroup": cfg.run_as_user,
        "fsGroup": cfg.run_as_user,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def app_env(space: DesiredSpace) -> list[dict[str, str]]:
    """Variables of the Space plus what every SDK needs to listen on the pod's address and port."""
    env = {
        "HOME": "/tmp/home",
        "XDG_CACHE_HOME": "/tmp/home/.cache",
        "HF_HOME": "/tmp/home/.cache/huggingface",
        "MPLCONFIGDIR": "/tmp/home/.config/matplotlib",
        "PORT": str(space.app_port),
        "GRADIO_SERVER_NAME": "0.0.0.0",
        "GRADIO_SERVER_PORT": str(space.app_port),
        "STREAMLIT_SERVER_ADDRESS": "0.0.0.0",
        "STREAMLIT_SERVER_PORT": str(space.app_port),
        **dict(space.variables),
    }
    return [{"name": k, "value": v} for k, v in env.items()]


def make_pod_template(space: DesiredSpace, cfg: ClusterConfig) -> Manifest:
    flavor = space.flavor
    labels = {
        **space_labels(space.space_id),
        LABEL_COMPONENT: "app",
        LABEL_REVISION: slugs.safe_slug(space.revision) if not slugs.is_dns_label(space.revision) else space.revision,
    }
    read_only = space.sdk not in WRITABLE_SDKS
    probe_action: dict[str, Any] = (
        {"tcpSocket": {"port": "http"}} if space.sdk == "docker" else {"httpGet": {"path": "/", "port": "http"}}
    )
    container: dict[str, Any] = {
        "name": "app",
        "image": space.image,
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": "http", "containerPort": space.app_port, "protocol": "TCP"}],
        "env": app_env(space),
        "envFrom": [{"secretRef": {"name": slugs.space_name(space.space_id), "optional": True}}],
        "resources": resources(flavor),
        "readinessProbe": {**probe_action, "periodSeconds": 1, "timeoutSeconds": 2, "failureThreshold": 3},
        # a replaced pod keeps serving while the endpoints and kube-proxy's rules stop sending it new
        # requests (they learn of its end at the same time as the kubelet): no refused call mid-rollout
        "lifecycle": {"preStop": {"sleep": {"seconds": PRESTOP_SECONDS}}},
        "securityContext": _container_security(read_only),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": _pod_security(cfg),
        "terminationGracePeriodSeconds": 10,
        "containers": [container],
        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": cfg.tmp_size_limit}}],
    }
    if space.storage is not None:
        spec["volumes"].append(
            {"name": "data", "persistentVolumeClaim": {"claimName": data_claim_name(space.storage.volume)}}
        )
        container["volumeMounts"].append({"name": "data", "mountPath": DATA_MOUNT})
    if space.agent is not None:
        agentpod.wrap_container(space, container, spec["volumes"])
    if flavor.node_selector:
        spec["nodeSelector"] = dict(flavor.node_selector)
    affinity = getattr(flavor, "affinity", None)
    if affinity:
        spec["affinity"] = dict(affinity)
    if flavor.tolerations:
        spec["tolerations"] = [dict(t) for t in flavor.tolerations]
    if cfg.image_pull_secrets:
        spec["imagePullSecrets"] = [{"name": n} for n in cfg.image_pull_secrets]
    if cfg.runtime_class_name:
        spec["runtimeClassName"] = cfg.runtime_class_name
    secrets_hash = stable_hash(sorted(space.secrets.items()))
    template: Manifest = {
        "metadata": {
            "labels": labels,
            "annotations": {
                ANNOTATION_SPACE_ID: space.space_id,
                ANNOTATION_SECRETS_HASH: secrets_hash,
                ANNOTATION_FLAVOR: flavor.name,
            },
        },
        "spec": spec,
    }
    template["metadata"]["labels"][LABEL_TEMPLATE] = stable_hash(template)
    return template


def data_claim_name(volume: str) -> str:
    return f"data-{slugs.safe_slug(volume)}" if not slugs.is_dns_label(volume) else f"data-{volume}"


def make_data_claim(space: DesiredSpace, cfg: ClusterConfig) -> Manifest:
    """The Space's ``/data``: a claim of its own, not owned by the Space's owner object, so that replacing,
    stopping or pausing the app never touches it; deleted only with the Space (``delete_volume``)."""
    assert space.storage is not None
    spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": str(space.storage.size_bytes)}},
    }
    if cfg.storage_class is not None:
        spec["storageClassName"] = cfg.storage_class
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": data_claim_name(space.storage.volume),
            "namespace": cfg.namespace,
            "labels": {**MANAGED_BY, LABEL_VOLUME: data_claim_name(space.storage.volume)},
            "annotations": {ANNOTATION_SPACE_ID: space.space_id},
        },
        "spec": spec,
    }


def make_deployment(space: DesiredSpace, cfg: ClusterConfig, owner: Mapping[str, Any] | None = None) -> Manifest:
    """The Deployment of the Space's current revision (see the module docstring: one per revision)."""
    template = make_pod_template(space, cfg)
    key = template["metadata"]["labels"][LABEL_TEMPLATE]
    obj: Manifest = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _revision_meta(space, cfg, "app", key),
        "spec": {
            "replicas": space.replicas,
            "revisionHistoryLimit": 0,
            "progressDeadlineSeconds": 600,
            # its template never changes (a new one is a new Deployment): nothing ever rolls; a pod that is
            # replaced (evicted, deleted) may need the GPU or the ReadWriteOnce claim of the one it replaces
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": {LABEL_SPACE: slugs.space_name(space.space_id), LABEL_TEMPLATE: key}},
            "template": template,
        },
    }
    return _owned(with_hash(obj), owner)


def make_service(space: DesiredSpace, cfg: ClusterConfig, owner: Mapping[str, Any] | None = None) -> Manifest:
    """The address of the Space's current revision: its pod only, never another revision's."""
    key = template_key(space, cfg)
    obj: Manifest = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _revision_meta(space, cfg, "service", key),
        "spec": {
            "type": "ClusterIP",
            "selector": {LABEL_SPACE: slugs.space_name(space.space_id), LABEL_COMPONENT: "app", LABEL_TEMPLATE: key},
            "ports": [{"name": "http", "port": cfg.service_port, "targetPort": "http", "protocol": "TCP"}],
        },
    }
    return _owned(with_hash(obj), owner)


def needs_one_revision(space: DesiredSpace) -> bool:
    """Two revisions of the Space cannot run at once: a GPU each, or one ReadWriteOnce ``/data`` claim."""
    return bool(space.flavor.gpus) or space.storage is not None


def make_network_policy(space: DesiredSpace, cfg: ClusterConfig, owner: Mapping[str, Any] | None = None) -> Manifest:
    v4 = [c for c in cfg.blocked_cidrs if ":" not in c]
    v6 = [c for c in cfg.blocked_cidrs if ":" in c]
    internet: list[dict[str, Any]] = [{"ipBlock": {"cidr": "0.0.0.0/0", "except": v4}}]
    if v6:
        internet.append({"ipBlock": {"cidr": "::/0", "except": v6}})
    obj: Manifest = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _meta(space, cfg, "network-policy"),
        "spec": {
            "podSelector": {"matchLabels": {LABEL_SPACE: slugs.space_name(space.space_id)}},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [
                {
                    "from": [
                        {
                            "namespaceSelector": {
                                "matchLabels": {"kubernetes.io/metadata.name": cfg.platform_namespace}
                            },
                            "podSelector": {"matchLabels": dict(cfg.gateway_pod_labels)},
                        }
                    ],
                    "ports": [
                        {"protocol": "TCP", "port": space.app_port},
                        *([{"protocol": "TCP", "port": agentpod.AGENT_PORT}] if space.agent is not None else []),
                    ],
                }
            ],
            "egress": [
                {
                    "to": [
                        {
                            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": cfg.dns_namespace}},
                            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
                        }
                    ],
                    "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
                },
                *_hub_relay_egress(cfg),
                {"to": internet},
            ],
        },
    }
    return _owned(with_hash(obj), owner)


def _hub_relay_egress(cfg: ClusterConfig) -> list[dict[str, Any]]:
    """The one way into the cluster a Space has: the Hub relay port of the platform pods (its Service's
    backends: policies see the destination after the Service's address translation)."""
    if cfg.hub_relay_port is None:
        return []
    platform = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": cfg.platform_namespace}},
        "podSelector": {"matchLabels": dict(cfg.gateway_pod_labels)},
    }
    return [{"to": [platform], "ports": [{"protocol": "TCP", "port": cfg.hub_relay_port}]}]


def _owned(obj: Manifest, owner: Mapping[str, Any] | None) -> Manifest:
    if owner is not None:
        obj["metadata"]["ownerReferences"] = [owner_reference(owner)]
    return obj


def make_space_objects(space: DesiredSpace, cfg: ClusterConfig, owner: Mapping[str, Any] | None) -> list[Manifest]:
    """Everything but the owner, in the order they are applied (the Secret before the pods need it)."""
    return [
        make_secret(space, cfg, owner),
        make_network_policy(space, cfg, owner),
        make_service(space, cfg, owner),
        make_deployment(space, cfg, owner),
    ]


def service_host(space_id: str, template: str, cfg: ClusterConfig) -> str:
    """The cluster DNS name of one revision's Service."""
    return f"{slugs.revision_name(space_id, template)}.{cfg.namespace}.svc.{cfg.cluster_domain}"
