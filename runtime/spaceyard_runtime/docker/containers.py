"""What a Space's container is: the whole sandbox as the arguments of ``containers.create``, in one place.

The container (:func:`container_kwargs`):

* runs as uid/gid 1000 whatever the image says, with every capability dropped and
  ``no-new-privileges``;
* has a read-only root filesystem for gradio/streamlit images (whose layout the engine generated),
  with tmpfs mounts for ``/tmp``, ``~/.cache``, ``~/.config`` and the SDK's own scratch directory;
  ``sdk: docker`` images keep a writable (ephemeral) layer because their layout is the author's;
* is limited by ``spec.flavor``: ``nano_cpus`` (clamped to this host's CPUs), ``mem_limit`` with no
  swap, a pids limit; GPU flavors get ``device_requests`` for the GPU indices given
  (:class:`~.gpus.GpuAllocator`);
* gets ``spec.env`` plus what the SDK needs (port, bind address) and nothing of the platform's own
  environment (:func:`app_env`);
* on a per-Space network, a ``resolv.conf`` that fails lookups at once (:func:`resolv_conf`);
* with persistent storage, its ``/data`` volume (:func:`ensure_data_volume`);
* gradio/streamlit containers (:func:`uses_agent`): the in-container agent as PID 1 (no Docker init:
  it reaps orphans itself, and an init would hold its token in an environment the app can read)
  (:class:`AgentLaunch`; :mod:`spaceyard_runtime.agent`), its files bound read-only at
  ``/opt/spaceyard``, its token as ``--token`` (the agent blanks it in its own ``/proc/1/cmdline`` at once
  and makes itself non-dumpable; not in the container's environment, which every process exec'd into the
  container gets), the image's own command after it; the agent, not a Docker ``HEALTHCHECK``, checks
  the app's HTTP.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
from docker.types import DeviceRequest

from ..agent_client import AGENT_DIR, agent_command
from ..api import AppSpec
from ..settings import RuntimeSettings
from ..spacefiles import DATA_MOUNT, SpaceFiles

LABEL = "org.spaceyard"
HOME = "/home/user"
APP_UID = 1000
HEALTH_PROBE = (
    "import sys, urllib.request, urllib.error\n"
    "try: urllib.request.urlopen('http://127.0.0.1:{port}/', timeout=10)\n"
    "except urllib.error.HTTPError as e: sys.exit(e.code >= 500)\n"
)
"""Docker HEALTHCHECK of gradio/streamlit containers without the agent: healthy while ``GET /`` answers
below 500 (with the agent, the agent checks: ``--health-port``)."""


@dataclass(frozen=True)
class AgentLaunch:
    """How a container runs its app under the agent."""

    files: Path
    """Host folder holding ``agent.py`` and ``zygote.py`` (:func:`~spaceyard_runtime.agent_client.agent_files`)."""
    token: str
    app_argv: tuple[str, ...]
    """The image's own command (entrypoint and cmd)."""
    preload: tuple[str, ...] = ()
    quiet_queue: bool = False
    stop_grace: float = 5.0
    setup: str = ""
    """Shell run once before the app (the image command's own ``sh -c 'SETUP; exec "$@"'`` wrapper)."""


def uses_agent(spec: AppSpec) -> bool:
    """Images the docker engine generated (gradio/streamlit: Python is there) run the agent; ``sdk: docker``
    images are the author's and run as they are."""
    return spec.sdk in ("gradio", "streamlit")


NO_DNS_RESOLV_CONF = (
    "# Spaceyard: Spaces on a per-Space network have no egress and no DNS\n"
    "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n"
)


def owner_key(settings: RuntimeSettings) -> str:
    """Which platform a container belongs to (label ``org.spaceyard.owner``): one per state directory, so
    platforms sharing a Docker engine never end each other's containers."""
    return hashlib.sha256(str(settings.runtime_dir.resolve()).encode()).hexdigest()[:16]


def app_env(spec: AppSpec) -> dict[str, str]:
    """``spec.env`` and what the SDK needs to listen on ``spec.app_port`` of every address."""
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


def resolv_conf(settings: RuntimeSettings) -> Path:
    """The ``resolv.conf`` bound into containers on a per-Space network (written once, atomically)."""
    path = (settings.runtime_dir / "docker" / "resolv.conf").resolve()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(NO_DNS_RESOLV_CONF)
        tmp.replace(path)
    return path


def container_kwargs(
    settings: RuntimeSettings,
    spec: AppSpec,
    name: str,
    network: str,
    gpus: list[str],
    hub_cache: Path | None = None,
    agent: AgentLaunch | None = None,
) -> dict[str, Any]:
    """Arguments of ``containers.create`` for ``spec``: the whole sandbox, in one place."""
    flavor = spec.flavor
    cpus = min(float(flavor.cpu), float(os.cpu_count() or 1))
    size = settings.docker_tmpfs_size
    user_tmpfs = f"rw,nosuid,nodev,size={size},uid=1000,gid=1000,mode=0755"
    read_only = settings.docker_read_only and spec.sdk in ("gradio", "streamlit")
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
        "environment": app_env(spec),
        "labels": {
            f"{LABEL}.space": spec.space_id,
            f"{LABEL}.owner": owner_key(settings),
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
        "pids_limit": settings.docker_pids_limit,
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "init": True,
        "detach": True,
        "log_config": {"Type": "json-file", "Config": {"max-size": "10m", "max-file": "3"}},
    }
    interval = settings.docker_health_interval
    if interval > 0 and spec.sdk in ("gradio", "streamlit") and agent is None:  # python3 is there
        kwargs["healthcheck"] = {
            "test": ["CMD", "python3", "-c", HEALTH_PROBE.format(port=spec.app_port)],
            "interval": int(interval * 1e9),
            "timeout": int(min(10.0, interval) * 1e9),
            "retries": 3,
            "start_period": int(settings.start_timeout * 1e9),
        }
    if not settings.docker_network:
        # No egress on a per-Space network, so no name resolution either: fail lookups at once instead
        # of Docker's embedded DNS timing out after 10 s (Streamlit looks up its external IP at start).
        kwargs["volumes"] = {str(resolv_conf(settings)): {"bind": "/etc/resolv.conf", "mode": "ro"}}
    if agent is not None:
        kwargs["entrypoint"] = agent_command(
            [],
            preload=list(agent.preload),
            quiet_queue=agent.quiet_queue,
            stop_grace=agent.stop_grace,
            setup=agent.setup,
            health_port=spec.app_port if interval > 0 else 0,
            health_interval=interval,
            token=agent.token,
        )
        kwargs["init"] = False  # the agent is PID 1
        kwargs["command"] = list(agent.app_argv)
        kwargs.setdefault("volumes", {})[str(agent.files)] = {"bind": AGENT_DIR, "mode": "ro"}
    if gpus:
        kwargs["device_requests"] = [DeviceRequest(device_ids=list(gpus), capabilities=[["gpu"]])]
    if spec.storage is not None:  # the Space's persistent /data: a named volume (made by ensure_data_volume)
        kwargs.setdefault("volumes", {})[data_volume_name(spec.storage.volume)] = {"bind": DATA_MOUNT, "mode": "rw"}
    if hub_cache is not None:  # the Space's cache view (hubpath.cache_view): the relay writes it, the app reads
        kwargs.setdefault("volumes", {})[str(hub_cache)] = {"bind": str(hub_cache), "mode": "ro"}
    return kwargs


def data_volume_name(volume: str) -> str:
    return f"spaceyard-data-{volume}"


def ensure_data_volume(client: Any, files: SpaceFiles, spec: AppSpec) -> None:
    """The Space's ``/data`` as a named Docker volume bound to its size-limited loop mount on this host
    (:mod:`..loopvolumes`; the Docker daemon must run on the platform's machine), owned by the app's uid."""
    if spec.storage is None:
        return
    source = files.volumes.ensure(spec.storage, APP_UID)
    name = data_volume_name(spec.storage.volume)
    try:
        client.volumes.get(name)
    except docker.errors.NotFound:
        client.volumes.create(
            name=name,
            driver="local",
            driver_opts={"type": "none", "o": "bind", "device": str(source)},
            labels={f"{LABEL}.space": spec.space_id, f"{LABEL}.volume": spec.storage.volume},
        )


def remove_data_volume(client: Any, volume: str) -> None:
    with contextlib.suppress(docker.errors.NotFound):
        client.volumes.get(data_volume_name(volume)).remove(force=True)
