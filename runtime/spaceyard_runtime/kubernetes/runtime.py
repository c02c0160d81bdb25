"""``KubernetesRuntime``: the Runtime contract on a cluster, built from the controller's pieces.

=================  ==============================================================================
``start``          ensure owner, Secret, NetworkPolicy, Service, Deployment (replicas 1); returns at once
``wait_ready``     watches the Space's pods until a pod of *this* template is ready; ``AppCrashed``
                   (exit code + last log lines) on a crash loop, ``AppStartError`` if the image cannot
                   be pulled or run at all; ``CapacityPending`` (not a failure)
                   if the deadline passes while the pod waits for a node; else ``AppStartTimeout``
``poll``           ``PENDING`` + the scheduler's message while unschedulable, ``EXITED`` on a crash
``suspend``        scale to 0 (objects and Service stay: waking needs no re-creation)
``resume``         scale to 1; the caller waits with ``wait_ready``
``stop``/``remove``  delete every object of the Space (only if it still runs this handle's revision)
``endpoint``       the Service's DNS name (or ClusterIP: ``kubernetes_endpoint``) and port 80
=================  ==============================================================================

Run logs are streamed from the pod (``pods/log?follow=true``) by a thread per handle and handed to the
``log`` sink on the event loop that called ``start``/``resume``. Every environment variable of
``AppSpec.env`` goes into the Space's Secret (the runtime cannot tell secrets from variables).

The runtime writes the same objects the :class:`~.controller.Controller` would, through the same
:func:`~.reconcile.apply_space`, so the two can run side by side: the controller repairs drift and
reports crashes between the platform's polls.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import socket
import threading
import time
from typing import Any

from kubernetes.client.exceptions import ApiException

from ..api import AppHandle, AppSpec, AppState, AppStatus, Capabilities, Endpoint, Flavor, LogSink, Runtime
from ..errors import AppCrashed, AppStartError, AppStartTimeout, CapacityPending
from ..flavors import load_flavors
from ..hubpath import HubPath
from ..output import startup_banner
from ..settings import RuntimeSettings
from . import objects, slugs, volumes
from .clients import KubeApi, make_api_client
from .coldstart import ColdStart, may_change_stage, pull_seconds, slice_ready
from .desired import ClusterConfig, DesiredSpace, SpaceStatus, Stage
from .hub import KubernetesHubListener
from .reconcile import IMAGE_ERRORS, apply_space, delete_data_claim, delete_space, observe_space, template_hash

log = logging.getLogger(__name__)


def cluster_config(settings: RuntimeSettings) -> ClusterConfig:
    return ClusterConfig(
        namespace=settings.kubernetes_namespace,
        platform_namespace=settings.kubernetes_platform_namespace,
        gateway_pod_labels=dict(settings.kubernetes_gateway_labels),
        blocked_cidrs=tuple(settings.kubernetes_blocked_cidrs),
        image_pull_secrets=tuple(settings.kubernetes_image_pull_secrets),
        runtime_class_name=settings.kubernetes_runtime_class,
        cluster_domain=settings.kubernetes_cluster_domain,
        storage_class=settings.kubernetes_storage_class,
        hub_relay_port=settings.kubernetes_hub_relay_port,
    )


class _LogPump:
    """Follows the app container's log of the Space's current pod, across pod replacements."""

    MAX_DELAY = 10.0

    def __init__(self, api: KubeApi, space_id: str, template: str, sink: LogSink, interval: float) -> None:
        self.api, self.space_id, self.template, self.interval = api, space_id, template, interval
        self.loop = asyncio.get_running_loop()
        self.sink = sink
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True, name=f"k8s-logs-{space_id}")
        self.thread.start()

    def _emit(self, line: str) -> None:
        if not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.sink, line)

    def _run(self) -> None:
        followed: dict[str, bool] = {}
        delay = self.interval * 10
        while not self.stop.is_set():
            try:
                pods = self.api.list("Pod", objects.space_selector(self.space_id))
                current = [
                    p
                    for p in pods
                    if p["metadata"].get("labels", {}).get(objects.LABEL_TEMPLATE) == self.template
                    and (p.get("status") or {}).get("phase") in ("Running", "Succeeded", "Failed")
                ]
                if current:
                    name = current[0]["metadata"]["name"]
                    for line in self.api.follow_pod_log(name, tail_lines=0 if followed.get(name) else None):
                        followed[name] = True
                        delay = self.interval * 10
                        self._emit(line)
                        if self.stop.is_set():
                            return
                    followed[name] = True
            except ApiException as exc:  # e.g. 400 while the container waits to (re)start
                log.debug("log stream of %s: %s", self.space_id, exc.reason)
            except Exception as exc:
                log.debug("log stream of %s interrupted: %s", self.space_id, exc)
            # nothing to follow yet (pending for a GPU, crash back-off): look again, less and less often
            self.stop.wait(delay)
            delay = min(self.MAX_DELAY, delay * 2)

    def close(self) -> None:
        self.stop.set()


class KubernetesRuntime(Runtime):
    """Spaces as Deployments in ``settings.kubernetes_namespace``; see the module docstring."""

    name = "kubernetes"

    def __init__(self, settings: RuntimeSettings, api_client: Any = None) -> None:
        self.settings = settings
        self.cfg = cluster_config(settings)
        self._owns_client = api_client is None
        self.client = api_client if api_client is not None else make_api_client(settings.kubernetes_kubeconfig)
        self.api = KubeApi(self.client, self.cfg.namespace)
        self.flavors = load_flavors(settings.flavors_file)
        self._pumps: dict[str, _LogPump] = {}
        self._desired: dict[str, DesiredSpace] = {}
        self.hub_listener: KubernetesHubListener | None = None

    def attach_hub(self, hub: HubPath) -> None:
        self.hub = hub
        if self.settings.kubernetes_hub_relay_port is not None:  # the relay in this pod, behind a Service (hub.py)
            self.hub_listener = KubernetesHubListener(hub, self.settings, self.client)

    async def _with_hub(self, spec: AppSpec) -> AppSpec:
        if self.hub_listener is None:
            return spec
        return dataclasses.replace(spec, env={**spec.env, "HF_ENDPOINT": await self.hub_listener.endpoint()})

    capabilities = Capabilities(reattach=True, restarts_crashed_apps=True, wakes_in_place=True, endpoint_delay=15.0)
    """Pods outlive the platform, the kubelet restarts a crashed app, a Deployment scales back up; the
    Service routes to a pod a moment after it is ready (kube-proxy)."""

    # -- desired state -----------------------------------------------------------------------------

    def _flavor(self, flavor: Flavor) -> Flavor:
        """The flavors file's version of ``flavor`` (it has requests and affinity), if it knows the name."""
        return self.flavors.get(flavor.name, flavor) if type(flavor) is Flavor else flavor

    def desired(self, spec: AppSpec, *, awake: bool = True) -> DesiredSpace:
        try:
            return self._desired_space(spec, awake)
        except ValueError as exc:  # e.g. an environment variable name Kubernetes cannot pass
            raise AppStartError(str(exc)) from exc

    def _desired_space(self, spec: AppSpec, awake: bool) -> DesiredSpace:
        return DesiredSpace(
            space_id=spec.space_id,
            image=spec.artifact,
            revision=spec.revision,
            flavor=self._flavor(spec.flavor),
            sdk=spec.sdk,
            app_port=spec.app_port,
            secrets=dict(spec.env),
            awake=awake,
            storage=spec.storage,
        )

    def desired_spaces(self) -> list[DesiredSpace]:
        """What this runtime has started: a :class:`~.controller.DesiredStateSource` for an in-process controller."""
        return list(self._desired.values())

    def desired_space(self, name: str) -> DesiredSpace | None:
        return next((s for s in self._desired.values() if slugs.space_name(s.space_id) == name), None)

    async def _endpoint(self, space_id: str) -> Endpoint:
        host = objects.service_host(space_id, self.cfg)
        if self.settings.kubernetes_endpoint == "cluster-ip":
            service = await asyncio.to_thread(self.api.get, "Service", slugs.space_name(space_id))
            cluster_ip = ((service or {}).get("spec") or {}).get("clusterIP")
            if not cluster_ip:
                raise AppStartError(f"the Service of {space_id} has no ClusterIP")
            host = str(cluster_ip)
        return Endpoint(host, self.cfg.service_port)

    async def _handle(
        self, spec: AppSpec, desired: DesiredSpace, mode: str = "cold", began: float | None = None
    ) -> AppHandle:
        """``began``: ``time.monotonic()`` when the start was asked for (before the objects were written)."""
        return AppHandle(
            spec=spec,
            endpoint=await self._endpoint(spec.space_id),
            backend_id=slugs.space_name(spec.space_id),
            started_at=time.time(),
            start_mode=mode,
            extra={
                "template": template_hash(desired, self.cfg),
                "namespace": self.cfg.namespace,
                "began": began if began is not None else time.monotonic(),
            },
        )

    async def _apply(self, desired: DesiredSpace) -> None:
        self._desired[desired.space_id] = desired
        await asyncio.to_thread(apply_space, self.api, desired, self.cfg)

    def _pump(self, handle: AppHandle, log_sink: LogSink) -> None:
        self._stop_pump(handle)
        self._pumps[handle.backend_id] = _LogPump(
            self.api, handle.spec.space_id, handle.extra["template"], log_sink, self.settings.readiness_interval
        )

    def _stop_pump(self, handle: AppHandle) -> None:
        pump = self._pumps.pop(handle.backend_id, None)
        if pump:
            pump.close()

    # -- Runtime -----------------------------------------------------------------------------------

    async def start(self, spec: AppSpec, log: LogSink) -> AppHandle:
        began = time.monotonic()
        spec = await self._with_hub(spec)
        desired = self.desired(spec)
        log(startup_banner())
        await self._apply(desired)
        handle = await self._handle(spec, desired, began=began)
        self._pump(handle, log)
        return handle

    async def observe(self, handle: AppHandle) -> SpaceStatus:
        return await asyncio.to_thread(
            observe_space, self.api, handle.spec.space_id, self.cfg, want_template=handle.extra.get("template")
        )

    async def wait_ready(self, handle: AppHandle, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        selector = objects.space_selector(handle.spec.space_id)
        capacity_wait, waiting_since = 0.0, None
        cold = ColdStart(began=handle.extra.get("began", time.monotonic()))
        while True:
            # the list's resourceVersion first, then the look: a change in between is still seen by the watch
            since, pods = await asyncio.to_thread(self.api.list_with_version, "Pod", selector)
            for pod in pods:  # a sighting of each step the watch did not show (it returns on stage changes)
                if (pod.get("metadata") or {}).get("labels", {}).get(objects.LABEL_TEMPLATE) == handle.extra[
                    "template"
                ]:
                    cold.see(pod, time.monotonic())
            status = await self.observe(handle)
            now = time.monotonic()
            if waiting_since is not None:
                capacity_wait += now - waiting_since
            waiting_since = now if status.stage is Stage.SCHEDULING else None
            if status.stage is Stage.RUNNING and status.pod:
                if cold.ready is None:
                    current = await asyncio.to_thread(self.api.get, "Pod", status.pod)
                    cold.see(current or {}, now)
                if await self._wait_routable(handle.spec.space_id, status.pod, cold, deadline):
                    await self._wait_connectable(handle, cold, deadline)
                cold.pull = await asyncio.to_thread(self._pull_seconds, status.pod)
                # cold-start metrics: the total, the part spent waiting for a node, and the phases (coldstart.py)
                handle.extra["cold_start"] = {
                    "seconds": round(time.time() - handle.started_at, 3),
                    "capacity_wait_seconds": round(capacity_wait, 3),
                    "phases": cold.phases(),
                }
                return
            if status.stage is Stage.RUNTIME_ERROR:
                if status.exit_code is None and status.message.partition(":")[0] in IMAGE_ERRORS:
                    raise AppStartError(status.message)  # the image cannot run at all: a bad artifact, no crash
                raise AppCrashed(status.message, exit_code=status.exit_code, log_tail=status.log_tail)
            if status.stage in (Stage.ABSENT, Stage.SLEEPING, Stage.PAUSED):
                raise AppCrashed(f"The app is not running ({status.stage.value.lower()})")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                if status.stage is Stage.SCHEDULING:
                    raise CapacityPending(status.message)
                raise AppStartTimeout(f"The app did not become ready within {timeout:g} seconds")
            await asyncio.to_thread(
                self._wait_for_pod_event, selector, since, remaining, cold, handle.extra["template"]
            )

    def _wait_for_pod_event(
        self, selector: str, since: str, remaining: float, cold: ColdStart | None = None, template: str | None = None
    ) -> None:
        """Block until the Space's pods change after ``since`` in a way that may change its stage (a watch
        event), or ``remaining`` (max 5 s) passes. Every pod of ``template`` in the events is a sighting for
        ``cold``; steps on the way to ready (bound, creating, running) are only sighted, not returned for."""
        seconds = max(1, int(min(remaining, 5.0) + 0.999))
        for kind, pod in self.api.watch("Pod", selector, seconds, since):
            ours = (pod.get("metadata") or {}).get("labels", {}).get(objects.LABEL_TEMPLATE) == template
            if cold is not None and ours:
                cold.see(pod, time.monotonic())
            if kind == "DELETED" or not ours or may_change_stage(pod):
                return

    async def _wait_routable(self, space_id: str, pod_name: str, cold: ColdStart, deadline: float) -> bool:
        """Wait until the Space's Service lists the ready pod in an EndpointSlice: before that, a connection
        through the Service is refused. A cluster that does not let us read EndpointSlices skips the wait
        (False); True once the pod is listed."""
        selector = f"kubernetes.io/service-name={slugs.space_name(space_id)}"
        try:
            while True:
                since = await asyncio.to_thread(self.api.resource_version, "EndpointSlice", selector)
                slices = await asyncio.to_thread(self.api.list, "EndpointSlice", selector)
                if slice_ready(slices, pod_name):
                    cold.routable = time.monotonic()
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    log.warning("%s: pod %s is ready but not in its Service's endpoints yet", space_id, pod_name)
                    return False
                seconds = max(1, int(min(remaining, 5.0) + 0.999))
                await asyncio.to_thread(self._wait_for_slice_event, selector, seconds, since)
        except ApiException as exc:
            if exc.status not in (403, 404):
                raise
            log.info("%s: not waiting for EndpointSlices (%s %s)", space_id, exc.status, exc.reason)
            return False

    async def _wait_connectable(self, handle: AppHandle, cold: ColdStart, deadline: float) -> None:
        """After the EndpointSlice, kube-proxy (or the CNI's service proxy) programs the node a moment later:
        until then a connection to the Service is refused, and the gateway's first request would fail. So
        connect (TCP only, nothing sent) until it is accepted; an endpoint this process cannot resolve or
        reach at all (a platform outside the cluster network) is not waited for."""
        host, port = handle.endpoint.host, handle.endpoint.port
        while time.monotonic() < deadline:
            try:
                _reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 2.0)
            except socket.gaierror:
                return
            except (OSError, TimeoutError):
                await asyncio.sleep(0.05)
                continue
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            cold.routable = time.monotonic()
            return
        log.warning("%s: its Service at %s:%d did not accept a connection in time", handle.spec.space_id, host, port)

    def _wait_for_slice_event(self, selector: str, seconds: int, since: str) -> None:
        for _event in self.api.watch("EndpointSlice", selector, seconds, since):
            return

    def _pull_seconds(self, pod_name: str) -> float | None:
        """The image pull of the pod's app container, from the kubelet's ``Pulled`` event (None: not known)."""
        try:
            events = self.api.list("Event", fields=f"involvedObject.name={pod_name}")
        except ApiException as exc:
            log.debug("events of %s: %s", pod_name, exc.reason)
            return None
        return pull_seconds(events, pod_name)

    async def poll(self, handle: AppHandle) -> AppStatus:
        status = await self.observe(handle)
        if status.stage is Stage.RUNNING:
            return AppStatus(AppState.RUNNING)
        if status.stage is Stage.STARTING:
            return AppStatus(AppState.STARTING, message=status.message)
        if status.stage is Stage.SCHEDULING:
            return AppStatus(AppState.PENDING, message=status.message)
        if status.stage is Stage.RUNTIME_ERROR:
            message = f"{status.message}\n{status.log_tail}" if status.log_tail else status.message
            return AppStatus(AppState.EXITED, exit_code=status.exit_code, message=message)
        return AppStatus(AppState.EXITED, message=status.stage.value.lower())

    async def _still_ours(self, handle: AppHandle) -> bool:
        owner = await asyncio.to_thread(self.api.get, "ConfigMap", handle.backend_id)
        return owner is not None and (owner.get("data") or {}).get("revision") == handle.spec.revision

    async def suspend(self, handle: AppHandle) -> None:
        self._stop_pump(handle)
        if await self._still_ours(handle):
            await self._apply(self.desired(handle.spec, awake=False))

    async def resume(self, handle: AppHandle, log: LogSink) -> AppHandle:
        began = time.monotonic()
        desired = self.desired(handle.spec, awake=True)
        log(startup_banner())
        await self._apply(desired)
        new = await self._handle(handle.spec, desired, mode="cold", began=began)
        self._pump(new, log)
        return new

    async def stop(self, handle: AppHandle, grace: float = 5.0) -> None:
        self._stop_pump(handle)
        if await self._still_ours(handle):
            self._desired.pop(handle.spec.space_id, None)
            await asyncio.to_thread(delete_space, self.api, handle.spec.space_id)

    async def remove(self, handle: AppHandle) -> None:
        await self.stop(handle)

    def unavailable(self, flavor: Flavor) -> str | None:
        return None  # GPU flavors are scheduled onto GPU nodes; SCHEDULING with the reason while none is free

    async def delete_volume(self, volume: str) -> None:
        """Delete the Space's ``/data`` claim; its data goes as the StorageClass's reclaim policy says
        (``Delete`` for dynamically provisioned volumes)."""
        await asyncio.to_thread(delete_data_claim, self.api, volume)

    async def volume_usage(self, volume: str) -> int | None:
        return await asyncio.to_thread(volumes.usage, self.api, volume)  # du in the running pod, None asleep

    def get_state(self, handle: AppHandle) -> dict[str, Any]:
        return {**super().get_state(handle), "template": handle.extra.get("template")}

    async def load_state(self, spec: AppSpec, state: dict[str, Any], log: LogSink) -> AppHandle | None:
        spec = await self._with_hub(spec)
        desired = self.desired(spec)
        status = await asyncio.to_thread(
            observe_space, self.api, spec.space_id, self.cfg, want_template=template_hash(desired, self.cfg)
        )
        if status.stage in (Stage.ABSENT, Stage.SLEEPING, Stage.PAUSED):
            return None
        handle = await self._handle(spec, desired)
        if not await self._still_ours(handle):
            return None
        self._desired[spec.space_id] = desired
        self._pump(handle, log)
        return handle

    async def aclose(self) -> None:
        if self.hub_listener is not None:
            self.hub_listener.close()
        for pump in list(self._pumps.values()):
            pump.close()
        self._pumps.clear()
        if self._owns_client:
            await asyncio.to_thread(self.client.close)


__all__ = ["KubernetesRuntime", "cluster_config"]
