"""``KubernetesRuntime``: the Runtime contract on a cluster, built from the controller's pieces.

=================  ==============================================================================
``start``          ensure owner, Secret, NetworkPolicy, and the revision's Service and Deployment (replicas
                   1), next to a revision still serving; returns at once
``wait_ready``     watches the Space's pods until a pod of *this* template is ready; ``AppCrashed``
                   (exit code + last log lines) on a crash loop, ``AppStartError`` if the image cannot
                   be pulled or run at all; ``CapacityPending`` (not a failure)
                   if the deadline passes while the pod waits for a node; else ``AppStartTimeout``
``poll``           ``PENDING`` + the scheduler's message while unschedulable, ``EXITED`` on a crash
``suspend``        scale to 0 (objects and Service stay: waking needs no re-creation)
``resume``         scale to 1; the caller waits with ``wait_ready``
``stop``/``remove``  a replaced revision: its Deployment and Service only; the Space's only revision: every
                   object of the Space; a current one whose start failed while an older one serves: that
                   one is current again (:mod:`.revisions`)
``endpoint``       the revision's Service: DNS name (or ClusterIP: ``kubernetes_endpoint``) and port 80
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
import math
import socket
import threading
import time
from typing import Any

from kubernetes.client.exceptions import ApiException

from ..agent_client import AgentError, private_bytes
from ..api import AppHandle, AppSpec, AppState, AppStatus, Capabilities, Endpoint, Flavor, LogSink, Runtime
from ..errors import AppCrashed, AppStartError, AppStartTimeout, CapacityPending
from ..flavors import load_flavors
from ..hubpath import HubPath
from ..local.warm import preload_modules
from ..output import startup_banner
from ..readiness import wait_for_http
from ..settings import RuntimeSettings
from . import lightsleep, objects, slugs, volumes
from .clients import KubeApi, make_api_client
from .coldstart import ColdStart, may_change_stage, pull_seconds, slice_ready
from .controller import ClusterRecordSource
from .desired import ClusterConfig, DesiredSpace, SpaceStatus, Stage
from .hub import KubernetesHubListener
from .reconcile import (
    IMAGE_ERRORS,
    LOG_TAIL_LINES,
    agent_token,
    apply_space,
    delete_data_claim,
    delete_revision,
    delete_space,
    observe_space,
    remove_revisions,
    template_hash,
)
from .revisions import Revisions

log = logging.getLogger(__name__)
END_POLL = 0.25
"""Seconds between the agent status checks of a wake in the pod (did the app end before it answered?)."""


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

    def __init__(
        self, api: KubeApi, space_id: str, template: str, sink: LogSink, interval: float, since: float | None = None
    ) -> None:
        """``since``: follow only what the pod writes from then on (a light wake: the pod's earlier runs of
        the app are already logged); ``None``: the current pod's whole log first."""
        self.api, self.space_id, self.template, self.interval = api, space_id, template, interval
        self.since = since
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
                    since = self.since if not followed.get(name) else None
                    tail = 0 if followed.get(name) else None
                    for line in self.api.follow_pod_log(name, tail_lines=tail, since=since):
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
        self._revisions = Revisions()
        self._tokens: dict[str, str] = {}
        self._pending: dict[str, asyncio.Future[Any]] = {}
        self._budget_lock = asyncio.Lock()
        self.hub_listener: KubernetesHubListener | None = None

    def attach_hub(self, hub: HubPath) -> None:
        self.hub = hub
        if self.settings.kubernetes_hub_relay_port is not None:  # the relay in this pod, behind a Service (hub.py)
            self.hub_listener = KubernetesHubListener(hub, self.settings, self.client)

    async def _with_hub(self, spec: AppSpec) -> AppSpec:
        if self.hub_listener is None:
            return spec
        return dataclasses.replace(spec, env={**spec.env, "HF_ENDPOINT": await self.hub_listener.endpoint()})

    @property
    def capabilities(self) -> Capabilities:
        """Pods outlive the platform (and are re-attached after its restart), a Deployment scales back up, the
        Service routes to a pod a moment after it is ready (kube-proxy). With light sleep
        (``light_sleep_memory_mib`` > 0), Gradio pods run the in-container agent (:mod:`.lightsleep`): the
        wake forks the app in the same pod, and an app that exits is reported by ``poll`` with its exit code
        (the agent keeps the container up, so the kubelet does not restart it). Without it (and for
        ``sdk: docker`` pods) the kubelet restarts a crashed app."""
        light = self.settings.light_sleep_memory_mib > 0
        return Capabilities(
            reattach=True,
            restarts_crashed_apps=not light,
            wakes_in_place=True,
            light_sleep=light,
            endpoint_delay=15.0,
            survives_restart=True,
        )

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
        flavor = self._flavor(spec.flavor)
        return DesiredSpace(
            space_id=spec.space_id,
            image=spec.artifact,
            revision=spec.revision,
            flavor=flavor,
            sdk=spec.sdk,
            app_port=spec.app_port,
            secrets=dict(spec.env),
            awake=awake,
            storage=spec.storage,
            agent=self._agent_preload(spec, flavor),
            app_file=spec.app_file,
        )

    def _agent_preload(self, spec: AppSpec, flavor: Flavor) -> tuple[str, ...] | None:
        """The warm parent's modules if ``spec``'s pod runs the agent (light sleep): Gradio Spaces without a
        GPU (a light sleeper would keep its GPU), when the budget allows light sleep at all."""
        if self.settings.light_sleep_memory_mib <= 0 or spec.sdk != "gradio" or flavor.gpus:
            return None
        return tuple(preload_modules(spec))

    def desired_spaces(self) -> list[DesiredSpace]:
        """What this runtime has started: a :class:`~.controller.DesiredStateSource` for an in-process controller."""
        return list(self._desired.values())

    def desired_space(self, name: str) -> DesiredSpace | None:
        return next((s for s in self._desired.values() if slugs.space_name(s.space_id) == name), None)

    async def _endpoint(self, space_id: str, template: str) -> Endpoint:
        host = objects.service_host(space_id, template, self.cfg)
        if self.settings.kubernetes_endpoint == "cluster-ip":
            service = await asyncio.to_thread(self.api.get, "Service", slugs.revision_name(space_id, template))
            cluster_ip = ((service or {}).get("spec") or {}).get("clusterIP")
            if not cluster_ip:
                raise AppStartError(f"the Service of {space_id} has no ClusterIP")
            host = str(cluster_ip)
        return Endpoint(host, self.cfg.service_port)

    async def _handle(
        self, spec: AppSpec, desired: DesiredSpace, mode: str = "cold", began: float | None = None
    ) -> AppHandle:
        """``began``: ``time.monotonic()`` when the start was asked for (before the objects were written)."""
        template = template_hash(desired, self.cfg)
        return AppHandle(
            spec=spec,
            endpoint=await self._endpoint(spec.space_id, template),
            backend_id=slugs.space_name(spec.space_id),
            started_at=time.time(),
            start_mode=mode,
            extra={
                "template": template,
                "namespace": self.cfg.namespace,
                "began": began if began is not None else time.monotonic(),
            },
        )

    async def _apply(self, desired: DesiredSpace) -> None:
        """Write ``desired`` as the Space's current revision; the other revisions this process holds are
        recorded as retiring (kept for their pinned sessions)."""
        template = template_hash(desired, self.cfg)
        if self._revisions.knows(desired.space_id):
            desired = dataclasses.replace(desired, retiring=self._revisions.others(desired.space_id, template))
        self._revisions.update(template, desired)
        self._desired[desired.space_id] = desired
        await asyncio.to_thread(apply_space, self.api, desired, self.cfg)

    @staticmethod
    def _pump_key(handle: AppHandle) -> str:
        return f"{handle.backend_id}/{handle.extra.get('template')}"

    def _pump(self, handle: AppHandle, log_sink: LogSink, since: float | None = None) -> None:
        self._stop_pump(handle)
        self._pumps[self._pump_key(handle)] = _LogPump(
            self.api, handle.spec.space_id, handle.extra["template"], log_sink, self.settings.readiness_interval, since
        )

    def _stop_pump(self, handle: AppHandle) -> None:
        pump = self._pumps.pop(self._pump_key(handle), None)
        if pump:
            pump.close()

    # -- Runtime -----------------------------------------------------------------------------------

    async def start(self, spec: AppSpec, log: LogSink) -> AppHandle:
        """Create or scale up the Space's objects; if a pod of this template already runs its agent with no
        app (a light sleeper, or an app that exited), the app is started in that pod instead."""
        began = time.monotonic()
        spec = await self._with_hub(spec)
        desired = self.desired(spec)
        log(startup_banner())
        if desired.agent is not None:
            woken = await self._wake_in_pod(spec, desired, log, began)
            if woken is not None:
                return woken
        await self._apply(desired)
        handle = await self._handle(spec, desired, began=began)
        self._revisions.hold(handle.extra["template"], desired, handle)
        self._pump(handle, log)
        return handle

    # -- the agent in the pod (light sleep) ----------------------------------------------------------

    async def _token(self, space_id: str, *, fresh: bool = False) -> str | None:
        name = slugs.space_name(space_id)
        if fresh or name not in self._tokens:
            token = await asyncio.to_thread(agent_token, self.api, space_id)
            if token is None:
                return None
            self._tokens[name] = token
        return self._tokens[name]

    async def _pod_agent(self, space_id: str, template: str) -> lightsleep.PodAgent | None:
        """The agent of the Space's running pod of ``template``, if there is one."""
        pods = await asyncio.to_thread(self.api.list, "Pod", objects.space_selector(space_id))
        pod = lightsleep.current_pod(pods, template)
        token = await self._token(space_id) if pod is not None else None
        return lightsleep.pod_agent(pod, token) if pod is not None and token is not None else None

    async def _agent_status(self, agent: lightsleep.PodAgent, space_id: str) -> dict[str, Any]:
        """``GET /status``; a 401 re-reads the token once (the Secret was made again)."""
        try:
            return await agent.client.status()
        except AgentError as exc:
            if exc.status != 401:
                raise
            token = await self._token(space_id, fresh=True)
            if token is None:
                raise
            agent.client.token = token
            return await agent.client.status()

    async def _resize(self, pod: str, requests: dict[str, str], space_id: str) -> None:
        """Resize the pod's requests in place; a cluster without in-place resize keeps them (logged once)."""
        try:
            await asyncio.to_thread(self.api.resize_pod, pod, "app", requests)
        except ApiException as exc:
            log.warning("%s: pod %s keeps its requests (resize to %s: %s %s)", space_id, pod, requests, exc.status,
                        exc.reason)  # fmt: skip

    async def _wake_in_pod(
        self, spec: AppSpec, desired: DesiredSpace, log_sink: LogSink, began: float
    ) -> AppHandle | None:
        """Start the app in the Space's running pod of this template (a fork from its warm parent): the app
        was stopped by a light sleep, or exited. ``None`` if there is no such pod, its agent does not answer,
        or its app already runs (the caller goes the usual way: the objects, then the pod's readiness)."""
        template = template_hash(desired, self.cfg)
        agent = await self._pod_agent(spec.space_id, template)
        if agent is None:
            return None
        try:
            status = await self._agent_status(agent, spec.space_id)
        except AgentError as exc:
            log.info("%s: the agent of pod %s does not answer (%s): starting the usual way", spec.space_id,
                     agent.pod, exc)  # fmt: skip
            return None
        if (status.get("app") or {}).get("running"):
            return None
        since = time.time()
        name = slugs.space_name(spec.space_id)
        handle = AppHandle(
            spec=spec,
            endpoint=Endpoint(agent.ip, spec.app_port),
            backend_id=name,
            started_at=since,
            start_mode="fork",
            extra={"template": template, "namespace": self.cfg.namespace, "began": began, "pod": agent.pod},
        )
        self._revisions.hold(template, desired, handle)
        self._pump(handle, log_sink, since=since)
        # meanwhile, not waited for here (wait_ready does, once the app answers): the owner says awake
        # again, and the pod gets its flavor's requests back
        self._pending[name] = asyncio.ensure_future(
            asyncio.gather(
                self._apply(desired), self._resize(agent.pod, lightsleep.awake_requests(desired), spec.space_id)
            )
        )
        try:
            answer = await agent.client.start()
        except AgentError as exc:
            self._stop_pump(handle)
            raise AppStartError(f"the app could not be started in its pod: {exc}") from exc
        handle.start_mode = str(answer.get("mode") or "cold")
        handle.extra["agent"] = {"ip": agent.ip, "forked": round(time.monotonic() - began, 4)}
        return handle

    async def _settled(self, handle: AppHandle) -> None:
        """The writes a wake in the pod left running (owner, resize) are done."""
        pending = self._pending.pop(handle.backend_id, None)
        if pending is not None:
            await pending

    async def _wait_forked(self, handle: AppHandle, timeout: float) -> None:
        """A wake in the pod: the app answers HTTP on the pod's own address (polled every
        ``readiness_interval``), or AppCrashed with its exit code and log tail if the agent sees it end."""
        agent = await self._pod_agent(handle.spec.space_id, handle.extra["template"])
        if agent is None or agent.pod != handle.extra.get("pod"):
            raise AppCrashed("The app's pod is gone")
        exited: asyncio.Future[Any] = asyncio.ensure_future(self._app_end(agent, timeout))
        try:
            ok = await wait_for_http(agent.ip, handle.spec.app_port, exited, timeout, self.settings.readiness_interval)
        finally:
            if not exited.done():
                exited.cancel()
        if not ok:
            code = exited.result() if not exited.cancelled() else None
            tail = await asyncio.to_thread(self._log_tail, agent.pod)
            raise AppCrashed(f"The app exited with code {code}", exit_code=code, log_tail=tail)
        began = handle.extra.get("began", time.monotonic())
        forked = (handle.extra.get("agent") or {}).get("forked", 0.0)
        handle.extra["cold_start"] = {
            "seconds": round(time.time() - handle.started_at, 3),
            "capacity_wait_seconds": 0.0,
            "phases": {"fork": forked, "app_ready": round(max(0.0, time.monotonic() - began - forked), 4)},
        }
        await self._settled(handle)

    async def _app_end(self, agent: lightsleep.PodAgent, timeout: float) -> int | None:
        """Returns once the agent reports the app ended (its exit code). Plain ``/status`` requests every
        :data:`END_POLL` seconds, not a long poll: this is cancelled as soon as the app answers, and a long
        poll cut short makes the agent write a broken pipe into the app's log."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(AgentError):
                app = (await agent.client.status()).get("app") or {}
                if app and not app.get("running"):
                    code = app.get("exit_code")
                    return int(code) if code is not None else None
            await asyncio.sleep(END_POLL)
        await asyncio.Future()  # past the deadline: wait_for_http's timeout speaks
        return None

    def _log_tail(self, pod: str) -> str:
        try:
            return self.api.pod_log(pod, tail_lines=LOG_TAIL_LINES).rstrip("\n")
        except ApiException:
            return ""

    async def observe(self, handle: AppHandle) -> SpaceStatus:
        return await asyncio.to_thread(
            observe_space, self.api, handle.spec.space_id, self.cfg, want_template=handle.extra.get("template")
        )

    async def wait_ready(self, handle: AppHandle, timeout: float) -> None:
        if handle.extra.get("agent"):
            await self._wait_forked(handle, timeout)
        else:
            await self._wait_pod_ready(handle, timeout)
        handle.extra["ready"] = True

    async def _wait_pod_ready(self, handle: AppHandle, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        agent_pod = self._uses_agent(handle)
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
                template = handle.extra["template"]
                if await self._wait_routable(handle.spec.space_id, template, status.pod, cold, deadline):
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
            if agent_pod and status.stage is Stage.STARTING:
                await self._raise_if_app_ended(handle, pods)  # the agent outlives the app: the pod shows nothing
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                if status.stage is Stage.SCHEDULING:
                    raise CapacityPending(status.message)
                raise AppStartTimeout(f"The app did not become ready within {timeout:g} seconds")
            await asyncio.to_thread(
                self._wait_for_pod_event,
                selector,
                since,
                min(remaining, 1.0) if agent_pod else remaining,
                cold,
                handle.extra["template"],
            )

    def _uses_agent(self, handle: AppHandle) -> bool:
        desired = self._desired.get(handle.spec.space_id)
        return (desired or self.desired(handle.spec)).agent is not None

    async def _raise_if_app_ended(self, handle: AppHandle, pods: Any) -> None:
        """AppCrashed if the agent of the Space's starting pod reports that its app ended (exit code, log tail)."""
        pod = lightsleep.current_pod(pods, handle.extra["template"])
        token = await self._token(handle.spec.space_id) if pod is not None else None
        if pod is None or token is None:
            return
        try:
            status = await lightsleep.pod_agent(pod, token).client.status()
        except AgentError:
            return  # not listening yet
        app = status.get("app") or {}
        if app and not app.get("running"):
            tail = await asyncio.to_thread(self._log_tail, pod["metadata"]["name"])
            code = app.get("exit_code")
            raise AppCrashed(f"The app exited with code {code}", exit_code=code, log_tail=tail)

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

    async def _wait_routable(
        self, space_id: str, template: str, pod_name: str, cold: ColdStart, deadline: float
    ) -> bool:
        """Wait until the revision's Service lists the ready pod in an EndpointSlice: before that, a connection
        through the Service is refused. A cluster that does not let us read EndpointSlices skips the wait
        (False); True once the pod is listed."""
        selector = f"kubernetes.io/service-name={slugs.revision_name(space_id, template)}"
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
        if status.stage in (Stage.RUNNING, Stage.STARTING) and self._uses_agent(handle):
            said = await self._agent_poll(handle)
            if said is not None:
                return said
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

    async def _agent_poll(self, handle: AppHandle) -> AppStatus | None:
        """What the pod's agent says of the app: ``EXITED`` with its exit code once it ended, ``RUNNING``
        while it runs after ``wait_ready`` (a woken pod is ready for the kubelet a probe period later);
        ``None``: ask the pod."""
        agent = await self._pod_agent(handle.spec.space_id, handle.extra.get("template", ""))
        if agent is None:
            return None
        try:
            status = await self._agent_status(agent, handle.spec.space_id)
        except AgentError:
            return None
        app = status.get("app") or {}
        if app and not app.get("running"):
            code = app.get("exit_code")
            tail = await asyncio.to_thread(self._log_tail, agent.pod)
            message = f"The app exited with code {code}" + (f"\n{tail}" if tail else "")
            return AppStatus(AppState.EXITED, exit_code=code, message=message)
        if app and handle.extra.get("ready"):
            return AppStatus(AppState.RUNNING)
        return None

    async def _still_ours(self, handle: AppHandle) -> bool:
        owner = await asyncio.to_thread(self.api.get, "ConfigMap", handle.backend_id)
        return owner is not None and (owner.get("data") or {}).get("revision") == handle.spec.revision

    async def suspend(self, handle: AppHandle) -> None:
        """Light sleep where the pod runs the agent (:mod:`.lightsleep`): the app stopped, the pod kept with
        its requests down to the warm parent's size, within the cluster's budget. Else scale to 0."""
        self._stop_pump(handle)
        if not await self._still_ours(handle):
            return
        await self._settled(handle)
        desired = self.desired(handle.spec, awake=False)
        agent = await self._pod_agent(handle.spec.space_id, handle.extra.get("template", ""))
        if desired.agent is None or agent is None:
            await self._apply(desired)  # deep: no pod is kept
            return
        try:
            await agent.client.stop(self.settings.stop_grace)
            status = await self._agent_status(agent, handle.spec.space_id)
        except AgentError as exc:
            log.warning("%s: the agent of pod %s failed (%s): deep sleep", handle.spec.space_id, agent.pod, exc)
            await self._apply(desired)
            return
        cost = private_bytes(status, "warm_private_bytes", "agent_private_bytes") or 0
        await self._resize(agent.pod, lightsleep.asleep_requests(desired, cost), handle.spec.space_id)
        light = dataclasses.replace(desired, light=True, light_since=time.time(), light_bytes=cost)
        await self._apply(light)
        await self._keep_budget()

    async def resume(self, handle: AppHandle, log: LogSink) -> AppHandle:
        """A light sleeper wakes in its pod (a fork: ``start_mode`` ``fork``, or ``cold`` where the warm
        parent cannot serve); a deep sleeper scales to 1 (a cold start). The caller waits with ``wait_ready``."""
        self._revisions.release(handle.spec.space_id, handle.extra.get("template", ""), handle)  # the new one holds it
        return await self.start(handle.spec, log)

    async def deep_sleep(self, handle: AppHandle) -> None:
        """Scale to 0: the pod, its agent and warm parent are gone; the next wake starts a new pod. A light
        sleeper's pod has no app to drain: it is ended at once (no preStop wait)."""
        self._stop_pump(handle)
        if await self._still_ours(handle):
            owner = await asyncio.to_thread(self.api.get, "ConfigMap", handle.backend_id)
            await self._apply(self.desired(handle.spec, awake=False))
            if ((owner or {}).get("data") or {}).get("light") == "true":
                await self._end_pods(handle.spec.space_id, handle.extra.get("template", ""), 1.0)

    async def _end_pods(self, space_id: str, template: str, grace: float) -> None:
        """End the pods of the Space's revision of ``template`` within ``grace`` seconds (after its Deployment
        went to 0 or away), instead of their preStop pause and termination grace, which are there for swaps."""
        selector = objects.revision_selector(space_id, template)
        with contextlib.suppress(ApiException):
            await asyncio.to_thread(self.api.delete_pods, selector, max(1, math.ceil(grace)))

    async def sleep_cost(self, handle: AppHandle) -> int | None:
        """A light sleeper's agent and warm parent (private memory, as its agent reads ``smaps_rollup``);
        0 once deep asleep (no pod)."""
        owner = await asyncio.to_thread(self.api.get, "ConfigMap", handle.backend_id)
        data = (owner or {}).get("data") or {}
        if data.get("light") != "true":
            return 0
        agent = await self._pod_agent(handle.spec.space_id, handle.extra.get("template", ""))
        if agent is not None:
            with contextlib.suppress(AgentError):
                status = await self._agent_status(agent, handle.spec.space_id)
                return private_bytes(status, "warm_private_bytes", "agent_private_bytes")
        return int(data.get("light-bytes") or 0) or None

    async def _keep_budget(self) -> None:
        """Deepen the cluster's light sleepers, least recently suspended first, until they fit
        ``light_sleep_memory_mib`` (every owner of the namespace counts, whoever suspended it)."""
        budget = self.settings.light_sleep_memory_mib * lightsleep.MIB
        selector = f"{objects.managed_selector()},{objects.LABEL_COMPONENT}=owner"
        async with self._budget_lock:
            owners = await asyncio.to_thread(self.api.list, "ConfigMap", selector)
            for sleeper in lightsleep.deepen_first(lightsleep.sleepers(owners), budget):
                space = self.desired_space(sleeper.name) or await asyncio.to_thread(
                    ClusterRecordSource(self.api, self.flavors).desired_space, sleeper.name
                )
                if space is None or not space.light:
                    continue
                log.info("%s: light sleepers exceed %d MiB: deep sleep (it held %d bytes)", space.space_id,
                         self.settings.light_sleep_memory_mib, sleeper.cost)  # fmt: skip
                await self._apply(dataclasses.replace(space, light=False, awake=False))
                await self._end_pods(space.space_id, template_hash(space, self.cfg), 1.0)  # no app to drain

    async def stop(self, handle: AppHandle, grace: float = 5.0) -> None:
        """See the module docstring: what goes depends on whether the handle's revision is the current one
        and on what other revisions still serve."""
        self._stop_pump(handle)
        pending = self._pending.pop(handle.backend_id, None)
        if pending is not None:
            with contextlib.suppress(Exception):
                await pending
        space_id, template = handle.spec.space_id, handle.extra.get("template", "")
        if self._revisions.release(space_id, template, handle):
            return  # another handle holds the same revision (a restart of an unchanged Space)
        owner = await asyncio.to_thread(self.api.get, "ConfigMap", handle.backend_id)
        current = ((owner or {}).get("data") or {}).get("template")
        fallback = self._revisions.newest(space_id)
        if owner is not None and template != current:
            await self._retire(space_id, template, grace)  # replaced: its own objects only
            if space_id in self._desired and fallback is not None:
                await self._apply(self._desired[space_id])  # no longer kept as retiring
            return
        if fallback is not None and owner is not None:
            # its start failed or was superseded while an older revision serves: that one is current again
            await self._apply(fallback[1])
            await self._retire(space_id, template, grace)
            return
        if owner is None:
            await self._retire(space_id, template, grace)  # the Space is gone already: what is left of it
            return
        self._desired.pop(space_id, None)
        self._tokens.pop(handle.backend_id, None)
        await self._retire(space_id, template, grace)
        await asyncio.to_thread(delete_space, self.api, space_id)

    async def _retire(self, space_id: str, template: str, grace: float) -> None:
        """End one revision: replicas 0 first (so that no ReplicaSet makes a new pod for the one ended within
        ``grace``), then its Deployment and Service go."""
        with contextlib.suppress(ApiException):
            await asyncio.to_thread(self.api.scale, slugs.revision_name(space_id, template), 0)
        await self._end_pods(space_id, template, grace)
        await asyncio.to_thread(delete_revision, self.api, space_id, template)

    async def remove(self, handle: AppHandle) -> None:
        await self.stop(handle)

    async def forget(self, space_id: str) -> None:
        """The Space is deleted: remove its objects even where no handle of this process holds them (pods
        outlive the platform: one a restarted platform did not re-attach, or of a revision it never ran)."""
        self._desired.pop(space_id, None)
        self._revisions.forget(space_id)
        await asyncio.to_thread(delete_space, self.api, space_id)

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
        template = handle.extra["template"]
        self._revisions.hold(template, desired, handle)
        # the gateway's pins did not survive the restart: revisions kept for them (a swap the previous
        # process did not finish retiring) go; the owner no longer lists them
        await self._apply(desired)
        await asyncio.to_thread(remove_revisions, self.api, spec.space_id, {template})
        handle.extra["ready"] = status.stage is Stage.RUNNING
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
