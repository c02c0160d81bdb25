"""The Docker runtime's contract methods, wiring :mod:`.containers`, :mod:`.network`, :mod:`.gpus`,
:mod:`.logs`, :mod:`.agentapp` and :mod:`.sleepers` together (see the package docstring for the lifecycle)."""

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
from ..agent_client import (
    AgentClient,
    AgentError,
    agent_files,
    new_token,
    private_bytes,
    split_setup,
    token_in,
)
from ..api import AppHandle, AppSpec, AppState, AppStatus, Capabilities, Endpoint, Flavor, LogSink, Runtime
from ..errors import AppCrashed, AppStartError, RuntimeBackendError
from ..flavors import oom_message
from ..hubpath import HubPath
from ..local.warm import preload_modules
from ..output import startup_banner
from ..readiness import wait_for_http
from ..settings import RuntimeSettings
from ..spacefiles import SpaceFiles
from . import agentapp, containers, logs, network
from .containers import AgentLaunch
from .gpus import GpuAllocator
from .hub import DockerHubListeners
from .logs import DockerApp
from .routeguard import RouteGuard
from .sleepers import Sleepers

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
        self.sleepers = Sleepers()
        self._budget_lock = asyncio.Lock()
        self.route_guard = RouteGuard(settings) if settings.docker_strip_default_route else None

    def attach_hub(self, hub: HubPath) -> None:
        self.hub = hub
        self.hub_listeners = DockerHubListeners(hub)

    @property
    def capabilities(self) -> Capabilities:
        """Containers outlive the platform (``load_state`` re-attaches); a crashed app is restarted
        (``docker_restart_retries``: by the runtime through the container's agent, or by Docker's restart
        policy for ``sdk: docker`` images); a sleeping Space wakes in its own container. Light sleep: a
        gradio/streamlit container stays up with its agent and warm parent while the app is stopped, and the
        wake forks the app there (``start_mode="fork"``; Streamlit, and apps whose command is not ``python
        app.py``, start cold in the same container); within ``light_sleep_memory_mib``, past which the least
        recently suspended are removed (deep sleep). ``sdk: docker`` containers are stopped and kept."""
        return Capabilities(
            reattach=True,
            restarts_crashed_apps=self.settings.docker_restart_retries > 0,
            wakes_in_place=True,
            light_sleep=self.settings.light_sleep_memory_mib > 0,
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
        return network.network_name(self.settings, spec.slug)

    def container_kwargs(
        self, spec: AppSpec, name: str, net: str, gpus: list[str], agent: AgentLaunch | None = None
    ) -> dict[str, Any]:
        """Arguments of ``containers.create`` for ``spec``: the whole sandbox, in one place."""
        return containers.container_kwargs(
            self.settings, spec, name, net, gpus, hub_cache=self._hub_view(spec), agent=agent
        )

    def _hub_view(self, spec: AppSpec) -> Path | None:
        """The Space's cache view, when its relay listener is its own (one network per Space, not a shared one)."""
        if self.hub_listeners is None or self.settings.docker_network:
            return None
        return hubpath.cache_view(self.settings.runtime_dir, spec.slug)

    def _agent_launch(self, spec: AppSpec) -> AgentLaunch | None:
        """How ``spec``'s container runs its app under the agent (blocking: inspects the image), or ``None``."""
        if not containers.uses_agent(spec):
            return None
        try:
            config = self.client.api.inspect_image(spec.artifact).get("Config") or {}
        except docker.errors.ImageNotFound as exc:
            raise AppStartError(f"the Space's image is missing ({spec.artifact}); rebuild it") from exc
        argv = [str(a) for a in (*(config.get("Entrypoint") or []), *(config.get("Cmd") or []))]
        if not argv:
            raise AppStartError(f"the Space's image has no command ({spec.artifact})")
        setup, argv = split_setup(argv)
        gradio = spec.sdk == "gradio"
        return AgentLaunch(
            files=agent_files(self.settings.runtime_dir / "docker"),
            token=new_token(),
            app_argv=tuple(argv),
            setup=setup,
            preload=tuple(preload_modules(spec)) if gradio else (),
            quiet_queue=gradio,
            stop_grace=self.settings.stop_grace,
        )

    # ------------------------------------------------------------------ docker helpers (blocking)

    def _run_container(self, container_id: str, net: str, log: LogSink) -> str:
        if self.route_guard is not None:
            self.route_guard.start()  # from now on, also after starts the engine makes by itself
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

    async def _drop_network(self, net: str) -> None:
        """Remove a per-Space network no container is on any more, and the Hub relay listener on it."""
        gone = await asyncio.to_thread(network.remove_network_if_unused, self.client, self.settings, net)
        if gone and self.hub_listeners is not None:
            self.hub_listeners.forget(net)

    async def purge(self, space_id: str, slug: str) -> None:
        await asyncio.to_thread(self.files.purge, space_id, slug)  # its Hub cache view
        await self._drop_network(network.network_name(self.settings, slug))

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
            await asyncio.to_thread(network.ensure_network, self.client, self.settings, net, spec)
            view = self._hub_view(spec)  # HF_HUB_CACHE, mounted read-only
            env = {**spec.env, "HF_ENDPOINT": await self.hub_listeners.endpoint(self.client, net, spec.space_id, view)}
            if view is not None:
                env.update(hubpath.app_env(view))
                await asyncio.to_thread(hubcache.install_view, spec.app_dir, view)  # preload_from_hub's files
            spec = replace(spec, env=env)

        def create() -> tuple[str, str, float, AgentLaunch | None]:
            network.ensure_network(self.client, self.settings, net, spec)
            containers.ensure_data_volume(self.client, self.files, spec)
            agent = self._agent_launch(spec)
            try:
                container = self.client.containers.create(**self.container_kwargs(spec, name, net, gpus, agent))
            except docker.errors.ImageNotFound as exc:
                raise AppStartError(f"the Space's image is missing ({spec.artifact}); rebuild it") from exc
            since = time.time()
            try:
                return str(container.id), self._run_container(str(container.id), net, log), since, agent
            except BaseException:
                with contextlib.suppress(docker.errors.APIError):
                    container.remove(force=True)
                raise

        try:
            container_id, ip, since, agent = await asyncio.to_thread(create)
        except Exception as exc:
            self.gpus.release(name)
            await self._drop_network(net)  # a new Space's network must not outlive its failed first start
            if isinstance(exc, docker.errors.APIError):
                raise AppStartError(f"Docker could not start the app: {exc.explanation or exc}") from exc
            raise
        except BaseException:
            self.gpus.release(name)
            raise
        app = DockerApp(container_id=container_id, log=log, loop=loop, gpus=gpus)
        self._apps[container_id] = app
        self._attach(app, since)
        extra: dict[str, Any] = {"name": name, "network": net, "gpus": gpus}
        if agent is not None:
            extra["agent_token"] = agent.token
            if ip:
                app.agent = AgentClient(ip, agent.token)
                agentapp.begin_run(app, None, self.settings.docker_restart_retries)  # the agent's autostart
        return AppHandle(
            spec=spec,
            endpoint=Endpoint(ip, spec.app_port),
            backend_id=container_id,
            started_at=time.time(),
            start_mode="cold",
            extra=extra,
        )

    async def _crashed(self, container_id: str, code: int, when: str, flavor: Flavor | None = None) -> AppCrashed:
        app = self._apps.get(container_id)
        if app is not None and app.agent is not None and app.container_exited and not app.container_exited.done():
            await _quiet(app)  # the container runs on: wait for the app's last lines to come through
        elif app is not None and app.follower is not None:
            await asyncio.to_thread(app.follower.join, 2.0)
            await asyncio.sleep(0)  # let the last call_soon_threadsafe lines land
        tail = await asyncio.to_thread(self._tail_lines, container_id)
        message = f"the app exited with code {code} {when}"
        if flavor is not None and await self._out_of_memory(container_id, code, app):
            message = oom_message(flavor.name, flavor.memory_mib * 2**20)
        return AppCrashed(message, exit_code=code, log_tail=tail)

    async def _out_of_memory(self, container_id: str, code: int | None, app: DockerApp | None) -> bool:
        """Whether the app (code 137: SIGKILL) was ended by the OOM killer: Docker says so for a container
        that ended; in a running agent container the agent reads the container's memory cgroup."""
        if await asyncio.to_thread(self._oom_killed, container_id):
            return True
        if code != 137 or app is None or app.agent is None:
            return False
        try:
            return bool((await app.agent.status()).get("oom_kills"))
        except AgentError:
            return False

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
        started = asyncio.get_running_loop().time()
        if await self._announced(app, exited, timeout):  # the forked app said it listens: no probing
            app.ready = True
            return
        left = max(timeout - (asyncio.get_running_loop().time() - started), 0.0)
        if not await wait_for_http(host, port, exited, left, self.settings.readiness_interval):
            raise await self._crashed(app.container_id, exited.result(), "before answering HTTP", handle.spec.flavor)
        app.ready = True
        if app.agent is None:  # with the agent, the watcher restarts the app (agentapp)
            await asyncio.to_thread(self._arm_restarts, app.container_id)

    async def _announced(self, app: DockerApp, exited: asyncio.Future[int], timeout: float) -> bool:
        """Whether the agent says that this run (a fork) announced it listens, within ``timeout``; ``False``
        when it cannot say (a cold start, an older warm parent): then the caller probes."""
        if app.agent is None or app.pid is None:
            return False
        ask = asyncio.ensure_future(app.agent.status(ready=min(timeout, 60.0)))
        waiting: list[asyncio.Future[Any]] = [ask, exited]
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        if not ask.done():
            ask.cancel()
            with contextlib.suppress(asyncio.CancelledError, AgentError):
                await ask
            return False
        try:
            run = (ask.result()).get("app") or {}
        except AgentError:
            return False
        return run.get("pid") == app.pid and run.get("running") is True and run.get("announced") is True

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
            agent = self._agent(handle, app)
            if agent is not None:
                return await self._poll_agent(handle, app, agent, ready)
            return AppStatus(AppState.RUNNING if ready else AppState.STARTING)
        code = state.get("ExitCode")
        message = f"exited with code {code}"
        if state.get("OOMKilled"):
            message = oom_message(handle.spec.flavor.name, handle.spec.flavor.memory_mib * 2**20)
        tail = await asyncio.to_thread(self._tail_lines, handle.backend_id)
        if tail and code:
            message += "\n" + tail
        return AppStatus(AppState.EXITED, exit_code=code, message=message)

    def _agent(self, handle: AppHandle, app: DockerApp | None) -> AgentClient | None:
        if app is not None and app.agent is not None:
            return app.agent
        token = handle.extra.get("agent_token")
        return AgentClient(handle.endpoint.host, str(token)) if token and handle.endpoint.host else None

    async def _poll_agent(self, handle: AppHandle, app: DockerApp | None, agent: AgentClient, ready: bool) -> AppStatus:
        """The app's state in a running container, from its agent."""
        if app is not None and app.restarting:
            return AppStatus(AppState.STARTING, message=f"restarting after a crash ({app.restarts})")
        try:
            status = await agent.status()
        except AgentError as exc:
            return AppStatus(AppState.STARTING, message=f"the container's agent does not answer: {exc}")
        run = status.get("app")
        if run is None:
            if handle.backend_id in self.sleepers:
                return AppStatus(AppState.EXITED, message="asleep")
            return AppStatus(AppState.STARTING)
        if run.get("running") and run.get("healthy") is False:
            tail = await asyncio.to_thread(self._tail_lines, handle.backend_id)
            message = "the app stopped answering HTTP (failed health checks)"
            return AppStatus(AppState.EXITED, message=message + ("\n" + tail if tail else ""))
        if run.get("running"):
            return AppStatus(AppState.RUNNING if ready else AppState.STARTING)
        if (app is not None and app.asleep) or handle.backend_id in self.sleepers:
            return AppStatus(AppState.EXITED, message="asleep (light sleep: the warm parent waits)")
        if app is not None and app.exited is not None and not app.exited.done():
            return AppStatus(AppState.STARTING)  # the watcher decides about a restart
        code = agentapp.container_code(run.get("exit_code"))
        message = f"exited with code {code}"
        if await self._out_of_memory(handle.backend_id, code, app):
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
        self.sleepers.pop(handle.backend_id)
        if app is not None:
            app.stopping.set()
            agentapp.end_run(app)
        try:
            await asyncio.to_thread(self._stop_container, handle.backend_id, grace, True)
        except docker.errors.APIError as exc:
            raise RuntimeBackendError(f"Docker could not remove the app: {exc}") from exc
        finally:
            self.gpus.release(str(handle.extra.get("name", "")))
        net = str(handle.extra.get("network") or self.network_name(handle.spec))
        await self._drop_network(net)

    async def remove(self, handle: AppHandle) -> None:
        await self.stop(handle, self.settings.stop_grace)

    async def end_previous(self) -> None:
        """Remove the containers a killed platform on this state directory left (running or stopped):
        labelled with its owner key, none of them is one this process started."""

        def end() -> tuple[int, int]:
            label = f"{containers.LABEL}.owner={containers.owner_key(self.settings)}"
            ended = 0
            for container in self.client.containers.list(all=True, filters={"label": label}):
                if container.id in self._apps:
                    continue
                with contextlib.suppress(docker.errors.NotFound):
                    container.remove(force=True)
                    ended += 1
            return ended, network.remove_unused_networks(self.client, self.settings)

        try:
            ended, networks = await asyncio.to_thread(end)
        except (docker.errors.DockerException, RuntimeBackendError) as exc:
            log.warning("could not look for containers a previous platform left: %s", exc)
            return
        if ended or networks:
            log.info("removed %d container(s) and %d network(s) a previous platform process left", ended, networks)

    async def suspend(self, handle: AppHandle) -> None:
        """Sleep. With the agent: stop the app and keep the container, its agent and warm parent (light
        sleep), within the memory budget; a GPU container (its devices are fixed at create) and a budget of
        0 go to deep sleep at once. Without (``sdk: docker``): stop the container and keep it."""
        app = self._apps.get(handle.backend_id)
        agent = self._agent(handle, app)
        if agent is None:
            if app is not None:
                app.stopping.set()
                app.ready = False
            await asyncio.to_thread(self._stop_container, handle.backend_id, self.settings.stop_grace, False)
            self.gpus.release(str(handle.extra.get("name", "")))
            return
        if handle.extra.get("gpus") or self.settings.light_sleep_memory_mib <= 0:
            await self.deep_sleep(handle)
            return
        if app is not None:
            app.asleep, app.ready = True, False
        try:
            await agent.stop(self.settings.stop_grace)
        except AgentError as exc:
            log.warning("could not put %s to light sleep (%s): deep sleep", handle.spec.space_id, exc)
            await self.deep_sleep(handle)
            return
        cost = await self.sleep_cost(handle)
        self.sleepers.add(handle, cost if cost is not None else 0)
        await self._keep_budget()

    async def _keep_budget(self) -> None:
        """Deepen the least recently suspended light sleepers until the rest fit ``light_sleep_memory_mib``."""
        async with self._budget_lock:
            for handle in self.sleepers.over(self.settings.light_sleep_memory_mib * 2**20):
                log.info("light sleepers over budget: %s goes to deep sleep", handle.spec.space_id)
                await self.deep_sleep(handle)

    async def sleep_cost(self, handle: AppHandle) -> int | None:
        """A light sleeper's container: its agent's and warm parent's private memory (as the agent reads
        ``/proc/PID/smaps_rollup``); 0 once removed (deep sleep) or for a stopped container."""
        app = self._apps.get(handle.backend_id)
        agent = self._agent(handle, app)
        try:
            attrs = await asyncio.to_thread(self.client.api.inspect_container, handle.backend_id)
        except docker.errors.NotFound:
            return 0
        if not attrs["State"].get("Running"):
            return 0
        if agent is None:
            return None
        try:
            status = await agent.status()
        except AgentError:
            return None
        return private_bytes(status, "warm_private_bytes", "agent_private_bytes")

    async def deep_sleep(self, handle: AppHandle) -> None:
        """Remove the container (its warm parent with it): the next :meth:`resume` creates a new one, cold."""
        self.sleepers.pop(handle.backend_id)
        await self.stop(handle, min(self.settings.stop_grace, 1.0))

    async def resume(self, handle: AppHandle, log: LogSink) -> AppHandle:
        """Wake. A light sleeper: ask its agent to start the app again in the running container (a fork
        from the warm parent: ``start_mode="fork"``, or ``"cold"``). A stopped container: start it again
        (``"reuse"``). Gone (deep sleep): a fresh one (``"cold"``)."""
        name = str(handle.extra.get("name", ""))
        net = str(handle.extra.get("network") or self.network_name(handle.spec))
        previous = [str(g) for g in handle.extra.get("gpus", [])]
        app = self._apps.get(handle.backend_id)
        if app is not None and app.agent is not None and app.container_exited and not app.container_exited.done():
            return await self._wake(handle, app, app.agent, log)  # followed and running: no Docker call
        try:
            attrs = await asyncio.to_thread(self.client.api.inspect_container, handle.backend_id)
        except docker.errors.NotFound:
            self.sleepers.pop(handle.backend_id)
            return await self.start(handle.spec, log)
        agent = self._agent(handle, app)
        if agent is not None and attrs["State"].get("Running"):
            return await self._wake(handle, app, agent, log)
        if agent is not None:  # a stopped agent container (Docker restarted?): start afresh
            await self.stop(handle, 0)
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

    async def _wake(self, handle: AppHandle, app: DockerApp | None, agent: AgentClient, log: LogSink) -> AppHandle:
        """A light sleeper wakes: the banner, then the app forked (or started) in its running container."""
        self.sleepers.pop(handle.backend_id)
        loop = asyncio.get_running_loop()
        if app is None:  # re-attached while asleep (load_state): follow the container from now
            app = DockerApp(container_id=handle.backend_id, log=log, loop=loop, agent=agent)
            self._apps[handle.backend_id] = app
            self._attach(app, time.time())
        log(startup_banner())
        app.log, app.loop = log, loop  # the follower hands the new run's lines to the new sink
        app.ready, app.asleep, app.restarts = False, False, 0
        net = str(handle.extra.get("network") or self.network_name(handle.spec))
        if self.hub_listeners is not None and not self.hub_listeners.serves(net):  # (re-attached: listen again)
            await self.hub_listeners.endpoint(self.client, net, handle.spec.space_id, self._hub_view(handle.spec))
        try:
            answer = await agent.start()
        except AgentError as exc:
            raise AppStartError(f"the container's agent could not start the app: {exc}") from exc
        agentapp.begin_run(app, int(answer["pid"]), self.settings.docker_restart_retries)
        if answer.get("reason"):
            log_reason = f"{handle.spec.space_id} woke cold in its container: {answer['reason']}"
            logging.getLogger("spaceyard.runtime.docker").info(log_reason)
        return AppHandle(
            spec=handle.spec,
            endpoint=handle.endpoint,
            backend_id=handle.backend_id,
            started_at=time.time(),
            start_mode=str(answer.get("mode", "fork")),
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
        """Re-attach to the container (running, light asleep, or stopped by ``suspend``); ``None`` if it is
        gone. The agent's token is read back from the container's own configuration."""
        container_id = str(state.get("backend_id", ""))
        if self.route_guard is not None:
            self.route_guard.start()  # its first sweep covers the containers the engine restarted meanwhile
        try:
            attrs = await asyncio.to_thread(self.client.api.inspect_container, container_id)
        except docker.errors.NotFound:
            return None
        name = str(state.get("name") or attrs.get("Name", "").lstrip("/"))
        net = str(state.get("network") or self.network_name(spec))
        gpus = [str(g) for g in state.get("gpus", [])]
        running = bool(attrs["State"].get("Running"))
        host = str(state.get("host", ""))
        extra: dict[str, Any] = {"name": name, "network": net, "gpus": gpus}
        token = token_in([str(a) for a in attrs.get("Args") or []])
        if token:
            extra["agent_token"] = token
        handle = AppHandle(
            spec=spec,
            endpoint=Endpoint(host, int(state.get("port", spec.app_port))),
            backend_id=container_id,
            started_at=time.time(),
            start_mode="reuse",
            extra=extra,
        )
        if running:
            self.gpus.claim(name, gpus)
            host = await asyncio.to_thread(network.address, self.client, container_id, net)
            handle.endpoint = Endpoint(host, handle.endpoint.port)
            app = DockerApp(container_id=container_id, log=log, loop=asyncio.get_running_loop(), gpus=gpus, ready=True)
            self._apps[container_id] = app
            self._attach(app, time.time())
            if "agent_token" in extra:
                app.agent = AgentClient(host, str(extra["agent_token"]))
                try:
                    run = (await app.agent.status()).get("app") or {}
                except AgentError:
                    run = {"running": True}  # busy or starting: the watcher finds out
                if run.get("running"):
                    agentapp.begin_run(app, run.get("pid"), self.settings.docker_restart_retries)
                else:  # light asleep (or its app exited): a wake starts it again
                    app.asleep, app.ready = True, False
                    self.sleepers.add(handle, await self.sleep_cost(handle) or 0)
        return handle

    async def aclose(self) -> None:
        """Stop following logs and close the API client; containers keep running (see load_state)."""
        for app in self._apps.values():
            app.stopping.set()
            agentapp.end_run(app)
        self._apps.clear()
        if self.hub_listeners is not None:
            self.hub_listeners.close()
        if self.route_guard is not None:
            await asyncio.to_thread(self.route_guard.close)
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.close()
            self._client = None


async def _quiet(app: DockerApp, settle: float = 0.2, limit: float = 2.0) -> None:
    """Wait until no new output line arrived for ``settle`` seconds (at most ``limit``)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    seen = (len(app.tail), app.tail[-1] if app.tail else None)
    while loop.time() < deadline:
        await asyncio.sleep(settle)
        now = (len(app.tail), app.tail[-1] if app.tail else None)
        if now == seen:
            return
        seen = now
