"""Docker runtime: every Space version is one container, run from the image the docker engine built.

The container (see :meth:`DockerRuntime.container_kwargs`):

* runs as uid/gid 1000 whatever the image says, with every capability dropped and
  ``no-new-privileges``;
* has a read-only root filesystem for gradio/streamlit images (whose layout the engine generated),
  with tmpfs mounts for ``/tmp``, ``~/.cache``, ``~/.config`` and the SDK's own scratch directory;
  ``sdk: docker`` images keep a writable (ephemeral) layer because their layout is the author's;
* is limited by ``spec.flavor``: ``nano_cpus`` (clamped to this host's CPUs), ``mem_limit`` with no
  swap, a pids limit; GPU flavors get ``device_requests`` for specific GPU indices taken from
  ``RuntimeSettings.docker_gpus`` by a small allocator (:class:`GpuAllocator`); no free GPU ->
  :class:`~spaceyard_runtime.errors.CapacityPending`;
* gets ``spec.env`` plus what the SDK needs (port, bind address) and nothing of the platform's own
  environment.

Networking. This host's dockerd runs with ``--bridge=none --iptables=false`` (so no default bridge,
no NAT and no iptables isolation rules). ``--network host`` would let apps reach every loopback
service of the platform (Redis, PostgreSQL, the gateway), so it is never used. Instead each Space gets
its own *internal* user-defined bridge network ``spaceyard-<slug>`` (or the operator's
``docker_network``); the gateway reaches the app at the container's address on that bridge, no port is
published. Without iptables, ``internal`` alone does not isolate anything (Docker still installs a
default route), so after every start the runtime deletes the default route inside the container's
network namespace (``nsenter -n ip route del default``). What that achieves and what it does not is
documented in ``docs/docker.md``; in short: a Space can reach nothing outside its own bridge subnet (no
internet, no other Space, no host loopback service), except host services that listen on all
addresses (0.0.0.0), which answer on the bridge's gateway address.

Lifecycle. ``start`` creates and starts the container and returns at once; ``wait_ready`` polls HTTP on
the container's address every ``readiness_interval`` and fails with :class:`AppCrashed` (exit code and
last log lines) if the container exits first. Once ready, Docker's own ``on-failure`` restart policy
(``docker_restart_retries`` times, doubling back-off from 100 ms) restarts a crashing app; ``poll``
reports ``EXITED`` with the last lines when it gives up. ``suspend`` stops the container and keeps it;
``resume`` starts the same container again (``start_mode="reuse"``, no rebuild, same container id).
``stop``/``remove`` delete the container. Output is followed with ``docker logs --follow`` in a thread
and handed line by line to the ``log`` sink on the event loop.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import os
import secrets
import subprocess
import threading
import time
from collections import deque
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import docker
import docker.errors
from docker.types import DeviceRequest

from .api import AppHandle, AppSpec, AppState, AppStatus, Endpoint, LogSink, Runtime
from .docker_hub import DockerHubListeners
from .errors import AppCrashed, AppStartError, CapacityPending, RuntimeBackendError
from .hubpath import HubPath
from .local import startup_banner
from .readiness import wait_for_http
from .settings import RuntimeSettings

LOG_TAIL_LINES = 40
LABEL = "org.spaceyard"
HOME = "/home/user"
HEALTH_PROBE = (
    "import sys, urllib.request, urllib.error\n"
    "try: urllib.request.urlopen('http://127.0.0.1:{port}/', timeout=10)\n"
    "except urllib.error.HTTPError as e: sys.exit(e.code >= 500)\n"
)
"""Docker HEALTHCHECK of gradio/streamlit containers: healthy while ``GET /`` answers below 500."""
NO_DNS_RESOLV_CONF = (
    "# Spaceyard: Spaces on a per-Space network have no egress and no DNS\n"
    "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n"
)


class GpuAllocator:
    """Hands out this host's GPU indices to containers, each index to one holder at a time."""

    def __init__(self, gpus: list[str]) -> None:
        self.gpus = list(gpus)
        self._holders: dict[str, list[str]] = {}
        self._lock = threading.Lock()

    def free(self) -> list[str]:
        used = {g for held in self._holders.values() for g in held}
        return [g for g in self.gpus if g not in used]

    def allocate(self, holder: str, count: int, prefer: list[str] | None = None) -> list[str]:
        """``count`` GPU indices for ``holder`` (its preferred ones if free), or CapacityPending."""
        if count <= 0:
            return []
        with self._lock:
            if holder in self._holders:
                return self._holders[holder]
            free = self.free()
            if prefer and all(g in free for g in prefer) and len(prefer) == count:
                chosen = list(prefer)
            elif len(free) >= count:
                chosen = free[:count]
            else:
                raise CapacityPending(
                    f"waiting for {count} GPU(s): {len(free)} of {len(self.gpus)} free on this Docker host"
                )
            self._holders[holder] = chosen
            return chosen

    def claim(self, holder: str, gpus: list[str]) -> None:
        """Record GPUs already held (a running container found after a platform restart)."""
        if gpus:
            with self._lock:
                self._holders[holder] = list(gpus)

    def release(self, holder: str) -> None:
        with self._lock:
            self._holders.pop(holder, None)


@dataclass
class _App:
    container_id: str
    log: LogSink
    loop: asyncio.AbstractEventLoop
    gpus: list[str] = field(default_factory=list)
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=LOG_TAIL_LINES))
    ready: bool = False
    stopping: threading.Event = field(default_factory=threading.Event)
    follower: threading.Thread | None = None
    exited: asyncio.Future[int] | None = None

    def emit(self, line: str) -> None:
        self.tail.append(line)
        with contextlib.suppress(Exception):  # a broken sink must not stop the output pump
            self.log(line)

    def emit_threadsafe(self, line: str) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: the platform is gone
            self.loop.call_soon_threadsafe(self.emit, line)


def _parse_ts(raw: str) -> float:
    """Docker's RFC 3339 nano timestamp -> epoch seconds (microsecond precision)."""
    date, _, frac = raw.rstrip("Z").partition(".")
    base = datetime.fromisoformat(date + "+00:00").timestamp()
    return base + (float("0." + frac[:6]) if frac else 0.0)


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
        self._client: docker.DockerClient | None = None
        self._apps: dict[str, _App] = {}
        self._warned_route = False
        self.hub_listeners: DockerHubListeners | None = None

    def attach_hub(self, hub: HubPath) -> None:
        self.hub = hub
        self.hub_listeners = DockerHubListeners(hub)

    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            try:
                self._client = docker.DockerClient(base_url=self.settings.docker_url, version="auto", timeout=60)
            except docker.errors.DockerException as exc:
                raise RuntimeBackendError(f"the Docker engine is not reachable: {exc}") from exc
        return self._client

    # ------------------------------------------------------------------ plan

    def network_name(self, spec: AppSpec) -> str:
        return self.settings.docker_network or f"spaceyard-{spec.slug}"

    def app_env(self, spec: AppSpec) -> dict[str, str]:
        env = dict(spec.env)
        port = str(spec.app_port)
        env.update({"PORT": port, "HOME": HOME})
        if spec.sdk == "gradio":
            env.update({"GRADIO_SERVER_NAME": "0.0.0.0", "GRADIO_SERVER_PORT": port})
        elif spec.sdk == "streamlit":
            # browser.serverAddress set = Streamlit does not look up its "External URL" at start.
            env.update(
                {
                    "STREAMLIT_SERVER_PORT": port,
                    "STREAMLIT_SERVER_ADDRESS": "0.0.0.0",
                    "STREAMLIT_BROWSER_SERVER_ADDRESS": "localhost",
                    "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
                }
            )
        return env

    def container_kwargs(self, spec: AppSpec, name: str, network: str, gpus: list[str]) -> dict[str, Any]:
        """Arguments of ``containers.create`` for ``spec``: the whole sandbox, in one place."""
        flavor = spec.flavor
        cpus = min(float(flavor.cpu), float(os.cpu_count() or 1))
        size = self.settings.docker_tmpfs_size
        user_tmpfs = f"rw,nosuid,nodev,size={size},uid=1000,gid=1000,mode=0755"
        read_only = self.settings.docker_read_only and spec.sdk in ("gradio", "streamlit")
        tmpfs = {"/tmp": f"rw,nosuid,nodev,size={size},mode=1777"}
        if read_only:
            tmpfs[f"{HOME}/.cache"] = user_tmpfs
            tmpfs[f"{HOME}/.config"] = user_tmpfs
            if spec.sdk == "gradio":
                tmpfs[f"{HOME}/app/.gradio"] = user_tmpfs  # flagging and cached examples
            else:
                tmpfs[f"{HOME}/.streamlit"] = user_tmpfs
        kwargs: dict[str, Any] = {
            "image": spec.artifact,
            "name": name,
            "user": "1000:1000",
            "environment": self.app_env(spec),
            "labels": {
                f"{LABEL}.space": spec.space_id,
                f"{LABEL}.revision": spec.revision,
                f"{LABEL}.sdk": spec.sdk,
                f"{LABEL}.gpus": ",".join(gpus),
            },
            "network": network,
            "read_only": read_only,
            "tmpfs": tmpfs,
            "nano_cpus": int(cpus * 1e9),
            "mem_limit": f"{int(flavor.memory_mib)}m",
            "memswap_limit": f"{int(flavor.memory_mib)}m",
            "pids_limit": self.settings.docker_pids_limit,
            "cap_drop": ["ALL"],
            "security_opt": ["no-new-privileges"],
            "init": True,
            "detach": True,
            "log_config": {"Type": "json-file", "Config": {"max-size": "10m", "max-file": "3"}},
        }
        interval = self.settings.docker_health_interval
        if interval > 0 and spec.sdk in ("gradio", "streamlit"):  # images we generated: python3 is there
            kwargs["healthcheck"] = {
                "test": ["CMD", "python3", "-c", HEALTH_PROBE.format(port=spec.app_port)],
                "interval": int(interval * 1e9),
                "timeout": int(min(10.0, interval) * 1e9),
                "retries": 3,
                "start_period": int(self.settings.start_timeout * 1e9),
            }
        if not self.settings.docker_network:
            # No egress on a per-Space network, so no name resolution either: fail lookups at once instead
            # of Docker's embedded DNS timing out after 10 s (Streamlit looks up its external IP at start).
            kwargs["volumes"] = {str(self._resolv_conf()): {"bind": "/etc/resolv.conf", "mode": "ro"}}
        if gpus:
            kwargs["device_requests"] = [DeviceRequest(device_ids=list(gpus), capabilities=[["gpu"]])]
        return kwargs

    def _resolv_conf(self) -> Path:
        path = (self.settings.runtime_dir / "docker" / "resolv.conf").resolve()
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(NO_DNS_RESOLV_CONF)
            tmp.replace(path)
        return path

    # ------------------------------------------------------------------ docker helpers (blocking)

    def _ensure_network(self, name: str, spec: AppSpec) -> None:
        try:
            self.client.networks.get(name)
            return
        except docker.errors.NotFound:
            pass
        try:
            self.client.networks.create(
                name,
                driver="bridge",
                internal=True,
                check_duplicate=True,
                labels={f"{LABEL}.space": spec.space_id, f"{LABEL}.managed": "1"},
            )
        except docker.errors.APIError as exc:
            if exc.status_code != 409:  # created meanwhile by a concurrent start
                raise

    def _remove_network_if_unused(self, name: str) -> None:
        if self.settings.docker_network:
            return
        with contextlib.suppress(docker.errors.APIError):
            net = self.client.networks.get(name)
            if net.attrs.get("Labels", {}).get(f"{LABEL}.managed") == "1" and not net.attrs.get("Containers"):
                net.remove()

    def _address(self, container_id: str, network: str) -> str:
        attrs = self.client.api.inspect_container(container_id)
        nets = attrs["NetworkSettings"]["Networks"] or {}
        ip = (nets.get(network) or {}).get("IPAddress") or next(
            (n.get("IPAddress") for n in nets.values() if n.get("IPAddress")), ""
        )
        if not ip:
            if not attrs["State"].get("Running"):
                return ""  # it already exited: wait_ready reports the crash with its output
            raise AppStartError(f"the container has no address on network {network}")
        return str(ip)

    def _strip_default_route(self, container_id: str, log: LogSink) -> None:
        if not self.settings.docker_strip_default_route:
            return
        pid = self.client.api.inspect_container(container_id)["State"].get("Pid") or 0
        if not pid:
            return
        proc = subprocess.run(
            ["nsenter", "-t", str(pid), "-n", "ip", "route", "del", "default"],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0 and "No such process" not in proc.stderr and not self._warned_route:
            self._warned_route = True
            log(
                f"WARNING: could not remove the container's default route ({proc.stderr.strip()}); "
                "the Space can reach whatever this host routes to"
            )

    def _follow_logs(self, app: _App, since: float) -> None:
        """Thread: hand every output line to the app's sink, across Docker restarts, until stopped."""
        api = self.client.api
        last: float | None = None  # timestamp of the last line handed on; re-follows skip up to it
        while not app.stopping.is_set():
            decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
            pending = ""
            try:
                stream = api.logs(
                    app.container_id, stream=True, follow=True, timestamps=True, since=since if last is None else last
                )
                for chunk in stream:
                    pending += decoder.decode(chunk)
                    *lines, pending = pending.split("\n")
                    for raw in lines:
                        stamp, _, line = raw.partition(" ")
                        try:
                            ts = _parse_ts(stamp)
                        except ValueError:
                            ts = None
                        if ts is not None:
                            if last is not None and ts <= last:
                                continue
                            last = ts
                        app.emit_threadsafe(line.removesuffix("\r"))
            except docker.errors.NotFound:
                return
            except Exception:  # the engine restarted or the connection dropped: retry below
                pass
            if app.stopping.wait(0.2):
                return
            try:
                state = api.inspect_container(app.container_id)["State"]
            except docker.errors.NotFound:
                return
            except Exception:
                continue
            if not (state.get("Running") or state.get("Restarting")):
                return

    def _watch_exit(self, app: _App) -> None:
        """Thread: resolve ``app.exited`` with the exit code when the container stops."""
        fut = app.exited
        try:
            code = int(self.client.api.wait(app.container_id, timeout=None)["StatusCode"])
        except Exception:
            code = -1

        def resolve() -> None:
            if fut is not None and not fut.done():
                fut.set_result(code)

        with contextlib.suppress(RuntimeError):
            app.loop.call_soon_threadsafe(resolve)

    def _attach(self, app: _App, since: float) -> None:
        app.stopping.clear()
        app.exited = app.loop.create_future()
        app.follower = threading.Thread(target=self._follow_logs, args=(app, since), daemon=True)
        app.follower.start()
        threading.Thread(target=self._watch_exit, args=(app,), daemon=True).start()

    def _run_container(self, container_id: str, network: str, log: LogSink) -> str:
        self.client.api.start(container_id)
        self._strip_default_route(container_id, log)
        return self._address(container_id, network)

    # ------------------------------------------------------------------ contract

    async def start(self, spec: AppSpec, log: LogSink) -> AppHandle:
        if spec.sdk == "static":
            raise AppStartError("static Spaces need no container: the gateway serves their files")
        if spec.artifact.startswith("static:") or "/" not in spec.artifact and ":" not in spec.artifact:
            raise AppStartError(f"not a container image: {spec.artifact!r}")
        loop = asyncio.get_running_loop()
        name = f"spaceyard-{spec.slug}-{spec.revision[:7]}-{secrets.token_hex(3)}"
        network = self.network_name(spec)
        gpus = self.gpus.allocate(name, spec.flavor.gpus)
        log(startup_banner())
        if self.hub_listeners is not None:  # the Hub relay on the network's gateway (docker_hub.py)
            await asyncio.to_thread(self._ensure_network, network, spec)
            url = await self.hub_listeners.endpoint(self.client, network, spec.space_id)
            spec = replace(spec, env={**spec.env, "HF_ENDPOINT": url})

        def create() -> tuple[str, str, float]:
            self._ensure_network(network, spec)
            try:
                container = self.client.containers.create(**self.container_kwargs(spec, name, network, gpus))
            except docker.errors.ImageNotFound as exc:
                raise AppStartError(f"the Space's image is missing ({spec.artifact}); rebuild it") from exc
            since = time.time()
            try:
                return str(container.id), self._run_container(str(container.id), network, log), since
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
        app = _App(container_id=container_id, log=log, loop=loop, gpus=gpus)
        self._apps[container_id] = app
        self._attach(app, since)
        return AppHandle(
            spec=spec,
            endpoint=Endpoint(ip, spec.app_port),
            backend_id=container_id,
            started_at=time.time(),
            start_mode="cold",
            extra={"name": name, "network": network, "gpus": gpus},
        )

    def _tail_lines(self, container_id: str) -> str:
        app = self._apps.get(container_id)
        if app is not None and app.tail:
            return "\n".join(app.tail)
        with contextlib.suppress(docker.errors.APIError):
            raw = self.client.api.logs(container_id, tail=LOG_TAIL_LINES)
            return bytes(raw).decode("utf-8", errors="replace").rstrip("\n")
        return ""

    async def _crashed(self, container_id: str, code: int, when: str) -> AppCrashed:
        app = self._apps.get(container_id)
        if app is not None and app.follower is not None:
            await asyncio.to_thread(app.follower.join, 2.0)
            await asyncio.sleep(0)  # let the last call_soon_threadsafe lines land
        tail = await asyncio.to_thread(self._tail_lines, container_id)
        return AppCrashed(f"the app exited with code {code} {when}", exit_code=code, log_tail=tail)

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
            raise await self._crashed(app.container_id, exited.result(), "before answering HTTP")
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
            nets = attrs["NetworkSettings"].get("Networks") or {}
            address = next((n.get("IPAddress") for n in nets.values() if n.get("IPAddress")), "")
            if address and address != handle.endpoint.host:  # a Docker restart may move the app
                handle.endpoint = Endpoint(address, handle.endpoint.port)
            ready = app.ready if app is not None else True
            return AppStatus(AppState.RUNNING if ready else AppState.STARTING)
        code = state.get("ExitCode")
        message = f"exited with code {code}"
        if state.get("OOMKilled"):
            message = f"Memory limit exceeded ({handle.spec.flavor.memory_mib} MiB)"
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
        network = str(handle.extra.get("network") or self.network_name(handle.spec))
        await asyncio.to_thread(self._remove_network_if_unused, network)

    async def remove(self, handle: AppHandle) -> None:
        await self.stop(handle, self.settings.stop_grace)

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
        network = str(handle.extra.get("network") or self.network_name(handle.spec))
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
            await self.hub_listeners.endpoint(self.client, network, handle.spec.space_id)
        loop = asyncio.get_running_loop()
        since = time.time()
        try:
            ip = await asyncio.to_thread(self._run_container, handle.backend_id, network, log)
        except docker.errors.APIError as exc:
            self.gpus.release(name)
            raise AppStartError(f"Docker could not wake the app: {exc.explanation or exc}") from exc
        app = self._apps.get(handle.backend_id)
        if app is None:
            app = _App(container_id=handle.backend_id, log=log, loop=loop, gpus=previous)
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
        network = str(state.get("network") or self.network_name(spec))
        gpus = [str(g) for g in state.get("gpus", [])]
        running = bool(attrs["State"].get("Running"))
        host = str(state.get("host", ""))
        if running:
            self.gpus.claim(name, gpus)
            host = await asyncio.to_thread(self._address, container_id, network)
            app = _App(container_id=container_id, log=log, loop=asyncio.get_running_loop(), gpus=gpus, ready=True)
            self._apps[container_id] = app
            self._attach(app, time.time())
        return AppHandle(
            spec=spec,
            endpoint=Endpoint(host, int(state.get("port", spec.app_port))),
            backend_id=container_id,
            started_at=time.time(),
            start_mode="reuse",
            extra={"name": name, "network": network, "gpus": gpus},
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


__all__ = ["DockerRuntime", "GpuAllocator"]
