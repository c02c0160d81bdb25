"""Each Space's own internal bridge network, the container's address on it, and no default route.

This host's dockerd runs with ``--bridge=none --iptables=false`` (so no default bridge, no NAT and no
iptables isolation rules). ``--network host`` would let apps reach every loopback service of the platform
(Redis, PostgreSQL, the gateway), so it is never used. Instead each Space gets its own *internal*
user-defined bridge network ``spaceyard-<slug>`` (or the operator's ``docker_network``); the gateway
reaches the app at the container's address on that bridge, no port is published. Without iptables,
``internal`` alone does not isolate anything (Docker still installs a default route), so after every
start the runtime deletes the default route inside the container's network namespace (``nsenter -n ip
route del default``). What that achieves and what it does not is documented in ``docs/docker.md``; in
short: a Space can reach nothing outside its own bridge subnet (no internet, no other Space, no host
loopback service), except host services that listen on all addresses (0.0.0.0), which answer on the
bridge's gateway address. With no egress there is no name resolution either: containers on a per-Space
network get a ``resolv.conf`` that fails lookups at once (:func:`.containers.resolv_conf`).

Every function here blocks (Docker API calls): run them in a thread.
"""

from __future__ import annotations

import contextlib
import subprocess
from typing import Any

import docker
import docker.errors

from ..api import AppSpec
from ..errors import AppStartError
from ..settings import RuntimeSettings
from .containers import LABEL


def network_name(settings: RuntimeSettings, spec: AppSpec) -> str:
    return settings.docker_network or f"spaceyard-{spec.slug}"


def ensure_network(client: docker.DockerClient, name: str, spec: AppSpec) -> None:
    """Create the Space's internal bridge ``name`` unless it exists."""
    try:
        client.networks.get(name)
        return
    except docker.errors.NotFound:
        pass
    try:
        client.networks.create(
            name,
            driver="bridge",
            internal=True,
            check_duplicate=True,
            labels={f"{LABEL}.space": spec.space_id, f"{LABEL}.managed": "1"},
        )
    except docker.errors.APIError as exc:
        if exc.status_code != 409:  # created meanwhile by a concurrent start
            raise


def remove_network_if_unused(client: docker.DockerClient, settings: RuntimeSettings, name: str) -> None:
    """Remove a per-Space network this runtime created once no container is on it."""
    if settings.docker_network:
        return
    with contextlib.suppress(docker.errors.APIError):
        net = client.networks.get(name)
        if net.attrs.get("Labels", {}).get(f"{LABEL}.managed") == "1" and not net.attrs.get("Containers"):
            net.remove()


def first_address(attrs: dict[str, Any]) -> str:
    """The container's address on any of its networks ("" if none), from ``inspect_container``."""
    nets = attrs["NetworkSettings"].get("Networks") or {}
    return str(next((n.get("IPAddress") for n in nets.values() if n.get("IPAddress")), ""))


def address(client: docker.DockerClient, container_id: str, network: str) -> str:
    """The container's address on ``network``; "" if it already exited (``wait_ready`` reports that)."""
    attrs = client.api.inspect_container(container_id)
    nets = attrs["NetworkSettings"]["Networks"] or {}
    ip = (nets.get(network) or {}).get("IPAddress") or first_address(attrs)
    if not ip:
        if not attrs["State"].get("Running"):
            return ""  # it already exited: wait_ready reports the crash with its output
        raise AppStartError(f"the container has no address on network {network}")
    return str(ip)


def strip_default_route(client: docker.DockerClient, container_id: str) -> str:
    """Delete the default route in the running container's network namespace; the error, or ""."""
    pid = client.api.inspect_container(container_id)["State"].get("Pid") or 0
    if not pid:
        return ""
    proc = subprocess.run(
        ["nsenter", "-t", str(pid), "-n", "ip", "route", "del", "default"],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0 and "No such process" not in proc.stderr:
        return proc.stderr.strip()
    return ""
