"""The Docker runtime's contract methods, wiring :mod:`.containers`, :mod:`.network`, :mod:`.gpus` and
:mod:`.logs` together (see the package docstring for the lifecycle)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import docker
import docker.errors

from .. import hubcache, hubpath
from ..api import AppHandle, AppSpec, AppState, AppStatus, Capabilities, Endpoint, Flavor, LogSink, Runtime
from ..errors import AppCrashed, AppStartError, RuntimeBackendError
from ..flavors import oom_message
from ..hubpath import HubPath
from ..output import startup_banner
from ..readiness import wait_for_http
from ..settings import RuntimeSettings
from ..spacefiles import SpaceFiles
from . import containers, logs, network
from .gpus import GpuAllocator
from .hub import DockerHubListeners
from .logs import DockerApp

log = logging.getLogger("spaceyard.runtime.docker")


class DockerRuntime(Runtime):
    name = "docker"

    @classmethod
    def start_warnings(cls, settings: RuntimeSettings) -> list[str]:
        if settings.docker_host_firewall:
            return []
        return [
            "docker runtime: services of this host listening on all interfaces (0.0.0.0 / ::) are reachable from "
            "every Space container through its bridge's gateway address, since Docker adds no rule against it. "
            "Add the firewall rules of docs/docker.md ('Network isolation'), keep platform services on 127.0.0.1, "
            "then set SPACEYARD_DOCKER_HOST_FIREWALL=true to silence this warning."
        ]

    def __init__(self, settings: RuntimeSettings) -> None:
        self.settings = settings
        self.gpus = GpuAllocator(settings.docker_gpus)
        self.files = SpaceFiles(settings.runtime_dir)
        self._client: docker.DockerClient | None = None
        self._apps: dict[str, DockerApp] = {}
        self._warned_route = False
        self.hub_listeners: DockerHubListeners | None = None

    def attach_hub(self, hub: HubPath) -> None:
        self.hub = hub
        self.hub_listeners = DockerHubListeners(hub)

    @property
    def capabilities(self) -> Capabilities:
        """Containers outlive the platform (``load_state`` re-attaches), Docker restarts a crashed app
        (``docker_restart_retries``), and a sleeping Space's stopped container is started again."""
        return Capabilities(
            reattach=True, restarts_crashed_apps=self.settings.docker_restart_retries > 0, wakes_in_place=True
        )

    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            try:
                self._client = docker.DockerClient(base_url=self.settings.docker_url, version="auto", timeout=60)
            except docker.errors.DockerException as exc:
                raise RuntimeBackendError(f"the Docker engine is not reachable: {exc}") from exc
        return self._client

    def network_name(self, spec: AppSpec) -> str:
        return network.network_name(self.settings, spec)

    def container_kwargs(self, spec: AppSpec, name: str, net: str, gpus: list[str]) -> dict[str, Any]:
        """Arguments of ``containers.create`` for ``spec``: the whole sandbox, in one place."""
        return containers.container_kwargs(self.settings, spec, name, net, gpus, hub_cache=self._hub_view(spec))

    def _hub_view(self, spec: AppSpec) -> Path | None:
        """The Space's cache view, when its relay listener is its own (one network per Space, not a shared one)."""
        if self.hub_listeners is None or self.settings.docker_network:
            return None
        return hubpath.cache_view(self.settings.runtime_dir, spec.slug)

    # ------------------------------------------------------------------ docker helpers (blocking)

    def _run_container(self, container_id: str, net: str, log: LogSink) -> str:
        self.client.api.start(container_id)
        if self.settings.docker_strip_default_route:
            error = network.strip_default_route(self.client, container_id)
            if error and not self._warned_route:
                self._warned_route = True
                log(
                    f"WARNING: could not remove the container's default route ({error}); "
                    "the Space can reach whatever this host routes to"
                )
        return network.address(self.client, container_id, net)

    def _attach(self, app: DockerApp, since: float) -> None:
        logs.attach(self.client, app, since)

    def _tail_lines(self, container_id: str) -> str:
        return logs.tail_lines(self.client, self._apps.get(container_id), container_id)

    # ------------------------------------------------------------------ contract

    def unavailable(self, flavor: Flavor) -> str | None:
        if flavor.gpus > len(self.settings.docker_gpus):
            have = len(self.settings.docker_gpus)
            return (
                f"{flavor.name} needs {flavor.gpus} GPU{'s' if flavor.gpus > 1 else ''}, and this Docker host gives "
                f"Spaces {have} (SPACEYARD_DOCKER_GPUS)"
                if have
                else super().unavailable(flavor)
            )
        return None

    async def purge(self, space_id: str, slug: str) -> None:
        await asyncio.to_thread(self.files.purge, space_id, slug)  # its Hub cache view

    async def delete_volume(self, volume: str) -> None:
        await asyncio.to_thread(containers.remove_data_volume, self.client, volume)
        await asyncio.to_thread(self.files.delete_volume, volume)

    async def volume_usage(self, volume: str) -> int | None:
        return await asyncio.to_thread(self.files.volume_usage, volume)

    async def start(self, spec: AppSpec, log: LogSink) -> AppHandle:
        if (why_not := self.unavailable(spec.flavor)) is not None:
            raise AppStartError(why_not)
        if spec.sdk == "static":
            raise AppStartError("static Spaces need no container: the gateway serves their files")
        if spec.artifact.startswith("static:") or "/" not in spec.artifact and ":" not in spec.artifact:
            raise AppStartError(f"not a container image: {spec.artifact!r}")
        loop = asyncio.get_running_loop()
        name = f"spaceyard-{spec.slug}-{spec.revision[:7]}-{secrets.token_hex(3)}"
        net = self.network_name(spec)
        gpus = self.gpus.allocate(name, spec.flavor.gpus)
        log(startup_banner())
        if self.hub_listeners is not None:  # the Hub relay on the network's gateway (hub.py)
            await asyncio.to_thread(network.ensure_network, self.client, net, spec)
            view = self._hub_view(spec)  # HF_HUB_CACHE, mounted read-only
            env = {**spec.env, "HF_ENDPOINT": await self.hub_listeners.endpoint(self.client, net, spec.space_id, view)}
            if view is not None:
                env.update(hubpath.app_env(view))
                await asyncio.to_thread(hubcache.install_view, spec.app_dir, view)  # preload_from_hub's files
            spec = replace(spec, env=env)

        def create() -> tuple[str, str, float]:
            network.ensure_network(self.client, net, spec)
            containers.ensure_data_volume(self.client, self.files, spec)
            try:
                container = self.client.containers.create(**self.container_kwargs(spec, name, net, gpus))
            except docker.errors.ImageNotFound as exc:
                raise AppStartError(f"the Space's image is missing ({spec.artifact}); rebuild it") from exc
            since = time.time()
            try:
                return str(container.id), self._run_container(str(container.id), net, log), since
            except BaseException:
                with contextlib.suppress(docker.errors.APIError):
                    container.remove(force=True)
                raise

        try:
            container_id, ip, since = await asyncio.to_thread(create)
        except docker.errors.APIError as exc:
            self.gpus.release(name)
            raise AppStartError(f"Docker could not start the app: {exc.explanation or exc}") from exc
        except BaseException:
            self.gpus.release(name)
            raise
        app = DockerApp(container_id=container_id, log=log, loop=loop, gpus=gpus)
        self._apps[container_id] = app
        self._attach(app, since)
        return AppHandle(
            spec=spec,
            endpoint=Endpoint(ip, spec.app_port),
            backend_id=container_id,
            started_at=time.time(),
            start_mode="cold",
            extra={"name": name, "network": net, "gpus": gpus},
        )

    async def _crashed(self, container_id: str, code: int, when: str, flavor: Flavor | None = None) -> AppCrashed:
        app = self._apps.get(container_id)
        if app is not None and app.follower is not None:
            await asyncio.to_thread(app.follower.join, 2.0)
            await asyncio.sleep(0)  # let the last call_soon_threadsafe lines land
        tail = await asyncio.to_thread(self._tail_lines, container_id)
        message = f"the app exited with code {code} {when}"
        if flavor is not None and await asyncio.to_thread(self._oom_killed, container_id):
            message = oom_message(flavor.name, flavor.memory_mib * 2**20)
        return AppCrashed(message, exit_code=code, log_tail=tail)

    def _oom_killed(self, container_id: str) -> bool:
        try:
            return bool(self.client.api.inspect_container(container_id)["State"].get("OOMKilled"))
        except docker.errors.DockerException:
            return False

    async def wait_ready(self, handle: AppHandle, timeout: float) -> None:
        app = self._apps.get(handle.backend_id)
        if app is None or app.exited is None:
            status = await self.poll(handle)
            if status.state != AppState.RUNNING:
                raise AppCrashed("the app is not running", exit_code=status.exit_code)
            return
        host, port = handle.endpoint.host, handle.endpoint.port
        exited = app.exited
        if not await wait_for_http(host, port, exited, timeout, self.settings.readiness_interval):
            raise await self._crashed(app.container_id, exited.result(), "before answering HTTP", handle.spec.flavor)
        app.ready = True
        await asyncio.to_thread(self._arm_restarts, app.container_id)

    def _arm_restarts(self, container_id: str) -> None:
        if self.settings.docker_restart_retries > 0:
            with contextlib.suppress(docker.errors.APIError):
                self.client.api.update_container(
                    container_id,
                    restart_policy={"Name": "on-failure", "MaximumRetryCount": self.settings.docker_restart_retries},
                )

    async def poll(self, handle: AppHandle) -> AppStatus:
        try:
            attrs = await asyncio.to_thread(self.client.api.inspect_container, handle.backend_id)
        except docker.errors.NotFound:
            return AppStatus(AppState.EXITED, message="the container is gone")
        state = attrs["State"]
        app = self._apps.get(handle.backend_id)
        if state.get("Restarting"):
            return AppStatus(AppState.STARTING, message=f"restarting after a crash ({attrs.get('RestartCount', 0)})")
        if state.get("Running"):
            health = (state.get("Health") or {}).get("Status")
            if health == "unhealthy":
                tail = await asyncio.to_thread(self._tail_lines, handle.backend_id)
                message = "the app stopped answering HTTP (failed health checks)"
                return AppStatus(AppState.EXITED, message=message + ("\n" + tail if tail else ""))
            address = network.first_address(attrs)
            if address and address != handle.endpoint.host:  # a Docker restart may move the app
                handle.endpoint = Endpoint(address, handle.endpoint.port)
            ready = app.ready if app is not None else True
            return AppStatus(AppState.RUNNING if ready else AppState.STARTING)
        code = state.get("ExitCode")
        message = f"exited with code {code}"
        if state.get("OOMKilled"):
            message = oom_message(handle.spec.flavor.name, handle.spec.flavor.memory_mib * 2**20)
        tail = await asyncio.to_thread(self._tail_lines, handle.backend_id)
        if tail and code:
            message += "\n" + tail
        return AppStatus(AppState.EXITED, exit_code=code, message=message)

    def _stop_container(self, container_id: str, grace: float, remove: bool) -> None:
        with contextlib.suppress(docker.errors.NotFound):
            # No restart after an explicit stop, whatever the policy says.
            with contextlib.suppress(docker.errors.APIError):
                self.client.api.update_container(container_id, restart_policy={"Name": "no"})
            self.client.api.stop(container_id, timeout=max(int(grace), 0))
            if remove:
                self.client.api.remove_container(container_id, force=True)

    async def stop(self, handle: AppHandle, grace: float = 5.0) -> None:
        app = self._apps.pop(handle.backend_id, None)
        if app is not None:
            app.stopping.set()
        try:
            await asyncio.to_thread(self._stop_container, handle.backend_id, grace, True)
        except docker.errors.APIError as exc:
            raise RuntimeBackendError(f"Docker could not remove the app: {exc}") from exc
        finally:
            self.gpus.release(str(handle.extra.get("name", "")))
        net = str(handle.extra.get("network") or self.network_name(handle.spec))
        await asyncio.to_thread(network.remove_network_if_unused, self.client, self.settings, net)

    async def remove(self, handle: AppHandle) -> None:
        await self.stop(handle, self.settings.stop_grace)

    async def end_previous(self) -> None:
        """Remove the containers a killed platform on this state directory left (running or stopped):
        labelled with its owner key, none of them is one this process started."""

        def end() -> int:
            label = f"{containers.LABEL}.owner={containers.owner_key(self.settings)}"
            ended = 0
            for container in self.client.containers.list(all=True, filters={"label": label}):
                if container.id in self._apps:
                    continue
                with contextlib.suppress(docker.errors.NotFound):
                    container.remove(force=True)
                    ended += 1
            return ended

        try:
            ended = await asyncio.to_thread(end)
        except (docker.errors.DockerException, RuntimeBackendError) as exc:
            log.warning("could not look for containers a previous platform left: %s", exc)
            return
        if ended:
            log.info("removed %d container(s) a previous platform process left", ended)

    async def suspend(self, handle: AppHandle) -> None:
        """Sleep: stop the container and keep it (and its image) for :meth:`resume`."""
        app = self._apps.get(handle.backend_id)
        if app is not None:
            app.stopping.set()
            app.ready = False
        await asyncio.to_thread(self._stop_container, handle.backend_id, self.settings.stop_grace, False)
        self.gpus.release(str(handle.extra.get("name", "")))

    async def resume(self, handle: AppHandle, log: LogSink) -> AppHandle:
        """Wake: start the same container again (``start_mode="reuse"``); a fresh one if it is gone."""
        name = str(handle.extra.get("name", ""))
        net = str(handle.extra.get("network") or self.network_name(handle.spec))
        previous = [str(g) for g in handle.extra.get("gpus", [])]
        try:
            await asyncio.to_thread(self.client.api.inspect_container, handle.backend_id)
        except docker.errors.NotFound:
            return await self.start(handle.spec, log)
        if previous:
            gpus = self.gpus.allocate(name, len(previous), prefer=previous)
            if gpus != previous:  # device requests are fixed at create time: another GPU means a new container
                self.gpus.release(name)
                await self.stop(handle, 0)
                return await self.start(handle.spec, log)
        log(startup_banner())
        if self.hub_listeners is not None:
            await self.hub_listeners.endpoint(self.client, net, handle.spec.space_id)
        loop = asyncio.get_running_loop()
        since = time.time()
        try:
            ip = await asyncio.to_thread(self._run_container, handle.backend_id, net, log)
        except docker.errors.APIError as exc:
            self.gpus.release(name)
            raise AppStartError(f"Docker could not wake the app: {exc.explanation or exc}") from exc
        app = self._apps.get(handle.backend_id)
        if app is None:
            app = DockerApp(container_id=handle.backend_id, log=log, loop=loop, gpus=previous)
            self._apps[handle.backend_id] = app
        if app.follower is not None:
            await asyncio.to_thread(app.follower.join, 2.0)
        app.log, app.loop, app.ready = log, loop, False
        self._attach(app, since)
        return AppHandle(
            spec=handle.spec,
            endpoint=Endpoint(ip, handle.spec.app_port),
            backend_id=handle.backend_id,
            started_at=time.time(),
            start_mode="reuse",
            extra=dict(handle.extra),
        )

    def get_state(self, handle: AppHandle) -> dict[str, Any]:
        state = super().get_state(handle)
        state.update(
            name=handle.extra.get("name"),
            network=handle.extra.get("network"),
            gpus=handle.extra.get("gpus", []),
            start_mode=handle.start_mode,
        )
        return state

    async def load_state(self, spec: AppSpec, state: dict[str, Any], log: LogSink) -> AppHandle | None:
        """Re-attach to the container (running, or stopped by ``suspend``); ``None`` if it is gone."""
        container_id = str(state.get("backend_id", ""))
        try:
            attrs = await asyncio.to_thread(self.client.api.inspect_container, container_id)
        except docker.errors.NotFound:
            return None
        name = str(state.get("name") or attrs.get("Name", "").lstrip("/"))
        net = str(state.get("network") or self.network_name(spec))
        gpus = [str(g) for g in state.get("gpus", [])]
        running = bool(attrs["State"].get("Running"))
        host = str(state.get("host", ""))
        if running:
            self.gpus.claim(name, gpus)
            host = await asyncio.to_thread(network.address, self.client, container_id, net)
            app = DockerApp(container_id=container_id, log=log, loop=asyncio.get_running_loop(), gpus=gpus, ready=True)
            self._apps[container_id] = app
            self._attach(app, time.time())
        return AppHandle(
            spec=spec,
            endpoint=Endpoint(host, int(state.get("port", spec.app_port))),
            backend_id=container_id,
            started_at=time.time(),
            start_mode="reuse",
            extra={"name": name, "network": net, "gpus": gpus},
        )

    async def aclose(self) -> None:
        """Stop following logs and close the API client; containers keep running (see load_state)."""
        for app in self._apps.values():
            app.stopping.set()
        self._apps.clear()
        if self.hub_listeners is not None:
            self.hub_listeners.close()
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.close()
            self._client = None
