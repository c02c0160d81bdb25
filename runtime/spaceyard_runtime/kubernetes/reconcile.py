"""Reconcile one Space: make the cluster match a :class:`DesiredSpace`, then say what it looks like.

Level-triggered and idempotent: :func:`reconcile_space` can run any number of times, from any
controller replica or after any restart, and converges to the same objects (each write goes through
:meth:`KubeApi.ensure` inside :func:`clients.retry`). Nothing is remembered between calls; the
cluster and the desired state are the only inputs.

:func:`observe_space` turns pods into a :class:`SpaceStatus`:

* ``PodScheduled=False`` with reason ``Unschedulable`` -> ``SCHEDULING`` with the scheduler's
  message ("0/3 nodes are available: 3 Insufficient nvidia.com/gpu"). Not an error, not idle: an
  *idle* sleep requested meanwhile is deferred (the pending pod is what makes a cluster autoscaler
  add the GPU node; deleting it would mean never getting one). An explicit pause still scales to 0.
* ``CrashLoopBackOff``, repeated restarts, image pull failures -> ``RUNTIME_ERROR`` with the exit code
  and the last lines of the crashed container's log.
* a ready pod of the current template -> ``RUNNING``; replicas 0 -> ``SLEEPING`` / ``PAUSED``.

Revisions (:mod:`.objects`: a Deployment and a Service per pod template): once the current revision
serves (or sleeps), :func:`reconcile_space` removes the Space's other revisions that are older than it and
not kept for pinned sessions (``DesiredSpace.retiring``) — what a platform that stopped mid-swap, or a
template changed by a new version of this code, leaves behind. Newer ones are never removed here: they
are what a reconcile from an older desired state could not know of yet.
"""

from __future__ import annotations

import base64
import dataclasses
import logging
import secrets
from typing import Any

from kubernetes.client.exceptions import ApiException

from ..flavors import oom_message
from . import agentpod, objects, slugs, volumes
from .clients import KubeApi, retry
from .desired import ClusterConfig, DesiredSpace, SpaceStatus, Stage

log = logging.getLogger(__name__)

LOG_TAIL_LINES = 30
IMAGE_ERRORS = {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "CreateContainerConfigError"}
DEPENDENT_KINDS = ("NetworkPolicy", "Secret")
"""Kinds of the Space's own objects (named as the Space); Deployments and Services are per revision."""
REVISION_KINDS = ("Deployment", "Service")


def template_hash(space: DesiredSpace, cfg: ClusterConfig) -> str:
    return objects.template_key(space, cfg)


def revision_of(obj: dict[str, Any]) -> str | None:
    """The template hash a Deployment or Service belongs to (``None``: not a revision's object)."""
    return ((obj.get("metadata") or {}).get("labels") or {}).get(objects.LABEL_TEMPLATE)


def delete_revision(api: KubeApi, space_id: str, template: str) -> bool:
    """Delete one revision's Deployment and Service (its pods go with the ReplicaSet). True if any was there."""
    name = slugs.revision_name(space_id, template)
    found = False
    for kind in REVISION_KINDS:
        found = retry(lambda kind=kind: api.delete(kind, name)) or found  # type: ignore[misc]
    return found


def remove_revisions(api: KubeApi, space_id: str, keep: set[str], older_than: str | None = None) -> list[str]:
    """Delete the Space's Deployments and Services of revisions not in ``keep``; ``older_than`` (a
    ``creationTimestamp``): only those created before it. Returns the names deleted."""
    gone = []
    for kind in REVISION_KINDS:
        for obj in api.list(kind, objects.space_selector(space_id)):
            meta = obj["metadata"]
            created = str(meta.get("creationTimestamp") or "")
            if revision_of(obj) in keep or (older_than is not None and not created < older_than):
                continue
            if retry(lambda kind=kind, name=meta["name"]: api.delete(kind, name)):  # type: ignore[misc]
                gone.append(f"{kind}/{meta['name']}")
    if gone:
        log.info("space %s: removed the revisions' objects %s", space_id, gone)
    return gone


def apply_space(api: KubeApi, space: DesiredSpace, cfg: ClusterConfig, *, write_owner: bool = True) -> dict[str, str]:
    """Create or update the owner, then everything it owns. Returns ``{kind: action}``.

    ``write_owner=False``: ``space`` was read from the owner (the deployed controller's source), which is left
    as it is — writing back what was read could undo a newer desired state the runtime wrote meanwhile (a
    light sleep, found so under the deployed controller); without an owner nothing is written."""
    if write_owner:
        owner_action, owner = retry(lambda: api.ensure(objects.make_owner(space, cfg)))
    else:
        found = retry(lambda: api.get("ConfigMap", slugs.space_name(space.space_id)))
        if found is None:
            return {"ConfigMap": "absent"}
        owner_action, owner = "unchanged", found
    actions = {"ConfigMap": owner_action}
    if space.storage is not None:
        actions["PersistentVolumeClaim"] = ensure_data_claim(api, space, cfg)
    if space.agent is not None:
        actions["agent"] = ensure_agent_objects(api, space, cfg, owner)
    if objects.needs_one_revision(space) and remove_revisions(api, space.space_id, {template_hash(space, cfg)}):
        actions["revisions"] = "removed"  # a GPU or a ReadWriteOnce claim: the old revision goes first
    for obj in objects.make_space_objects(space, cfg, owner):
        action, _ = retry(lambda obj=obj: api.ensure(obj))  # type: ignore[misc]
        actions[obj["kind"]] = action
    changed = {k: v for k, v in actions.items() if v != "unchanged"}
    if changed:
        log.info("space %s: %s", space.space_id, changed)
    return actions


def ensure_data_claim(api: KubeApi, space: DesiredSpace, cfg: ClusterConfig) -> str:
    """Create the Space's ``/data`` claim if it has none, else grow it to a larger tier (``volumes.grow``)."""
    claim = objects.make_data_claim(space, cfg)
    if (existing := api.get("PersistentVolumeClaim", claim["metadata"]["name"])) is not None:
        return volumes.grow(api, existing, claim)
    try:
        retry(lambda: api.create(claim))
    except ApiException as exc:
        if exc.status != 409:
            raise
    return "created"


def _create_if_absent(api: KubeApi, obj: dict[str, Any]) -> bool:
    """Create ``obj`` unless an object of its name exists (kept as it is); True if it was created."""
    if api.get(obj["kind"], obj["metadata"]["name"]) is not None:
        return False
    try:
        retry(lambda: api.create(obj))
    except ApiException as exc:
        if exc.status != 409:
            raise
        return False
    return True


def ensure_agent_objects(api: KubeApi, space: DesiredSpace, cfg: ClusterConfig, owner: dict[str, Any]) -> str:
    """The agent's files (one immutable ConfigMap per version, shared by the namespace's agent pods) and the
    Space's agent token (a Secret made once, with a new random token, owned by the Space's owner object)."""
    made = _create_if_absent(api, agentpod.make_agent_config(cfg, objects.MANAGED_BY))
    meta = objects.owned_meta(space, cfg, "agent-token", owner)
    made = _create_if_absent(api, agentpod.make_agent_secret(space, cfg, secrets.token_urlsafe(32), meta)) or made
    return "created" if made else "unchanged"


def agent_token(api: KubeApi, space_id: str) -> str | None:
    """The Space's agent token, from its Secret (``None``: there is none)."""
    secret = api.get("Secret", agentpod.agent_secret_name(space_id))
    value = ((secret or {}).get("data") or {}).get(agentpod.TOKEN_KEY)
    return base64.b64decode(value).decode() if value else None


def delete_data_claim(api: KubeApi, volume: str) -> bool:
    return bool(retry(lambda: api.delete("PersistentVolumeClaim", objects.data_claim_name(volume))))


def _condition(pod: dict[str, Any], kind: str) -> dict[str, Any]:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return dict(cond)
    return {}


def _ready(pod: dict[str, Any]) -> bool:
    return _condition(pod, "Ready").get("status") == "True"


def unschedulable_message(pod: dict[str, Any]) -> str | None:
    cond = _condition(pod, "PodScheduled")
    if cond.get("status") == "False" and cond.get("reason") == "Unschedulable":
        return str(cond.get("message") or "waiting for a node with enough capacity")
    return None


def _crash(pod: dict[str, Any], cfg: ClusterConfig) -> tuple[str, int | None, int] | None:
    """``(message, exit_code, restarts)`` if the app container is crashing or cannot start."""
    status = pod.get("status") or {}
    for cs in status.get("containerStatuses") or []:
        restarts = int(cs.get("restartCount") or 0)
        waiting = (cs.get("state") or {}).get("waiting") or {}
        terminated = (cs.get("lastState") or {}).get("terminated") or (cs.get("state") or {}).get("terminated") or {}
        exit_code = terminated.get("exitCode")
        reason = waiting.get("reason")
        if reason in IMAGE_ERRORS:
            return f"{reason}: {waiting.get('message') or 'the image could not be started'}", None, restarts
        if reason == "CrashLoopBackOff" or (restarts >= cfg.crash_restart_threshold and not cs.get("ready")):
            if terminated.get("reason") == "OOMKilled":
                return _oom(pod, cs.get("name")), exit_code, restarts
            code = f" with exit code {exit_code}" if exit_code is not None else ""
            return f"Container exited{code} and keeps restarting ({restarts} restarts)", exit_code, restarts
    if status.get("phase") == "Failed":
        return f"Pod failed: {status.get('reason') or status.get('message') or 'unknown reason'}", None, 0
    return None


def _oom(pod: dict[str, Any], container: str | None) -> str:
    """The Space ran out of its flavor's memory: the limit from the pod, the flavor from its label."""
    flavor = (pod["metadata"].get("annotations") or {}).get(objects.ANNOTATION_FLAVOR, "?")
    for c in (pod.get("spec") or {}).get("containers") or []:
        if c.get("name") == container:
            limit = ((c.get("resources") or {}).get("limits") or {}).get("memory", "")
            return oom_message(flavor, _bytes(str(limit)))
    return f"out of memory (flavor {flavor})"


def _bytes(quantity: str) -> int:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
    for suffix, factor in units.items():
        if quantity.endswith(suffix) and quantity[: -len(suffix)].isdigit():
            return int(quantity[: -len(suffix)]) * factor
    return int(quantity) if quantity.isdigit() else 0


def _log_tail(api: KubeApi, pod_name: str) -> str:
    for previous in (True, False):
        try:
            text = api.pod_log(pod_name, tail_lines=LOG_TAIL_LINES, previous=previous)
        except ApiException:
            continue
        if text:
            return text.rstrip("\n")
    return ""


def observe_space(api: KubeApi, space_id: str, cfg: ClusterConfig, *, want_template: str | None = None) -> SpaceStatus:
    """What the Space's revision of ``want_template`` looks like now (``None``: the owner's current one)."""
    name = slugs.space_name(space_id)
    template = want_template
    if template is None:
        template = ((api.get("ConfigMap", name) or {}).get("data") or {}).get("template")
        if template is None:
            return SpaceStatus(space_id, Stage.ABSENT)
    deployment = api.get("Deployment", slugs.revision_name(space_id, template))
    if deployment is None:
        return SpaceStatus(space_id, Stage.ABSENT)
    spec = deployment.get("spec") or {}
    if not spec.get("replicas"):
        owner = api.get("ConfigMap", name) or {}
        paused = (owner.get("data") or {}).get("paused") == "true"
        return SpaceStatus(space_id, Stage.PAUSED if paused else Stage.SLEEPING)
    if _runs_agent(deployment) and ((api.get("ConfigMap", name) or {}).get("data") or {}).get("light") == "true":
        return SpaceStatus(space_id, Stage.SLEEPING, message="light sleep")  # the pod stays, its app is stopped
    pods = [p for p in api.list("Pod", objects.space_selector(space_id)) if not p["metadata"].get("deletionTimestamp")]
    current = [p for p in pods if p["metadata"].get("labels", {}).get(objects.LABEL_TEMPLATE) == template]
    for pod in current:
        crash = _crash(pod, cfg)
        if crash:
            message, exit_code, restarts = crash
            pod_name = pod["metadata"]["name"]
            return SpaceStatus(
                space_id,
                Stage.RUNTIME_ERROR,
                message=message,
                log_tail=_log_tail(api, pod_name),
                exit_code=exit_code,
                restarts=restarts,
                pod=pod_name,
            )
    for pod in current:
        waiting = unschedulable_message(pod)
        if waiting:
            return SpaceStatus(space_id, Stage.SCHEDULING, message=waiting, pod=pod["metadata"]["name"])
    for pod in current:
        if _ready(pod):
            return SpaceStatus(space_id, Stage.RUNNING, pod=pod["metadata"]["name"])
    serving = [p for p in pods if p not in current and _ready(p)]
    message = "previous version still serving" if serving else ""
    pod_name = current[0]["metadata"]["name"] if current else None
    return SpaceStatus(space_id, Stage.STARTING, message=message, pod=pod_name)


def _runs_agent(deployment: dict[str, Any]) -> bool:
    volumes = (((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}).get("volumes") or []
    return any(v.get("name") == agentpod.VOLUME for v in volumes)


def reconcile_space(api: KubeApi, space: DesiredSpace, cfg: ClusterConfig, *, write_owner: bool = True) -> SpaceStatus:
    """Converge one Space and return its observed status (``write_owner``: see :func:`apply_space`)."""
    want = template_hash(space, cfg)
    if space.replicas == 0 and not space.paused:
        before = observe_space(api, space.space_id, cfg, want_template=want)
        if before.stage is Stage.SCHEDULING:
            log.info("space %s: idle sleep deferred, waiting for capacity: %s", space.space_id, before.message)
            apply_space(api, dataclasses.replace(space, awake=True), cfg, write_owner=write_owner)
            after = observe_space(api, space.space_id, cfg, want_template=want)
            return dataclasses.replace(after, sleep_deferred=True)
    apply_space(api, space, cfg, write_owner=write_owner)
    status = observe_space(api, space.space_id, cfg, want_template=want)
    if status.stage in (Stage.RUNNING, Stage.SLEEPING, Stage.PAUSED):
        current = api.get("Deployment", slugs.revision_name(space.space_id, want)) or {}
        created = (current.get("metadata") or {}).get("creationTimestamp")
        if created:
            remove_revisions(api, space.space_id, {want, *space.retiring}, older_than=str(created))
    return status


def delete_space(api: KubeApi, space_id: str) -> bool:
    """Remove every object of the Space, every revision's included. True if anything was there.

    Deleting the owner ConfigMap is enough on a real cluster (the garbage collector follows the
    ownerReferences); the explicit deletes make it immediate and cover objects whose owner was lost.
    """
    name = slugs.space_name(space_id)
    found = retry(lambda: api.delete("ConfigMap", name))
    for kind in DEPENDENT_KINDS:
        found = retry(lambda kind=kind: api.delete(kind, name)) or found  # type: ignore[misc]
    found = retry(lambda: api.delete("Secret", agentpod.agent_secret_name(space_id))) or found
    found = bool(retry(lambda: remove_revisions(api, space_id, set()))) or found  # every revision's
    return found


def managed_spaces(api: KubeApi) -> dict[str, str]:
    """``{object name: space id}`` of every Space that has an owner object in the namespace."""
    owners = api.list("ConfigMap", f"{objects.managed_selector()},{objects.LABEL_COMPONENT}=owner")
    return {
        o["metadata"]["name"]: (o.get("data") or {}).get("space-id")
        or (o["metadata"].get("annotations") or {}).get(objects.ANNOTATION_SPACE_ID, "")
        for o in owners
    }
