"""Each Space's own internal bridge network, the container's address on it, and no default route.

This host's dockerd runs with ``--bridge=none --iptables=false`` (so no default bridge, no NAT and no
iptables isolation rules). ``--network host`` would let apps reach every loopback service of the platform
(Redis, PostgreSQL, the gateway), so it is never used. Instead each Space gets its own *internal*
user-defined bridge network ``spaceyard-<slug>`` (or the operator's ``docker_network``), on its own small
subnet of ``docker_network_pool`` (a /28 of 10.210.0.0/16 by default: 4096 Spaces, where the engine's
default pools give out about 30 networks); the gateway
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
import ipaddress
import subprocess
import threading
from collections.abc import Iterator
from typing import Any

import docker
import docker.errors
import docker.types

from ..api import AppSpec
from ..errors import AppStartError
from ..settings import RuntimeSettings
from .containers import LABEL, owner_key


def network_name(settings: RuntimeSettings, slug: str) -> str:
    """The network of the Space whose specs have ``slug``."""
    return settings.docker_network or f"spaceyard-{slug}"


_allocating = threading.Lock()  # one subnet choice + create at a time in this process


def ensure_network(client: docker.DockerClient, settings: RuntimeSettings, name: str, spec: AppSpec) -> None:
    """Create the Space's internal bridge ``name`` unless it exists, on a free subnet of
    ``docker_network_pool`` (the engine's default pools hold only about 30 networks)."""
    with contextlib.suppress(docker.errors.NotFound):
        client.networks.get(name)
        return
    labels = {f"{LABEL}.space": spec.space_id, f"{LABEL}.managed": "1", f"{LABEL}.owner": owner_key(settings)}
    if settings.docker_network:  # the operator's one network for every Space: Docker's own (larger) pools
        try:
            client.networks.create(name, driver="bridge", internal=True, check_duplicate=True, labels=labels)
        except docker.errors.APIError as exc:
            if exc.status_code != 409:  # created meanwhile by a concurrent start
                raise
        return
    with _allocating:
        taken = used_subnets(client)
        for subnet in free_subnets(settings, taken):
            gateway = str(next(subnet.hosts()))  # named, so it is in the network's IPAM config (the Hub relay)
            ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=str(subnet), gateway=gateway)])
            try:
                client.networks.create(
                    name, driver="bridge", internal=True, check_duplicate=True, ipam=ipam, labels=labels
                )
                return
            except docker.errors.APIError as exc:
                if exc.status_code == 409:  # created meanwhile by a concurrent start (another process)
                    return
                if "overlap" not in str(exc.explanation or exc).lower():
                    raise
                # taken meanwhile by another engine client: try the next one
    raise AppStartError(
        f"no free /{settings.docker_network_prefix} subnet left in SPACEYARD_DOCKER_NETWORK_POOL "
        f"{settings.docker_network_pool} for the Space's network ({len(taken)} networks on this engine)"
    )


def used_subnets(client: docker.DockerClient) -> list[ipaddress.IPv4Network]:
    """The IPv4 subnets of every network on the engine (any owner)."""
    subnets = []
    for net in client.api.networks():
        for config in (net.get("IPAM") or {}).get("Config") or []:
            with contextlib.suppress(ValueError, KeyError, TypeError):
                subnet = ipaddress.ip_network(config["Subnet"], strict=False)
                if isinstance(subnet, ipaddress.IPv4Network):
                    subnets.append(subnet)
    return subnets


def free_subnets(settings: RuntimeSettings, taken: list[ipaddress.IPv4Network]) -> Iterator[ipaddress.IPv4Network]:
    """The pool's subnets that overlap none of ``taken``, lowest first."""
    pool = ipaddress.IPv4Network(settings.docker_network_pool)
    inside = [t for t in taken if t.overlaps(pool)]
    for subnet in pool.subnets(new_prefix=settings.docker_network_prefix):
        if not any(subnet.overlaps(t) for t in inside):
            yield subnet


def remove_network_if_unused(client: docker.DockerClient, settings: RuntimeSettings, name: str) -> bool:
    """Remove a per-Space network this runtime created once no container is on it; whether it is gone."""
    if settings.docker_network:
        return False
    try:
        net = client.networks.get(name)
        if net.attrs.get("Labels", {}).get(f"{LABEL}.managed") == "1" and not net.attrs.get("Containers"):
            net.remove()
            return True
    except docker.errors.NotFound:
        return True
    except docker.errors.APIError:
        pass
    return False


def remove_unused_networks(client: docker.DockerClient, settings: RuntimeSettings) -> int:
    """Remove this platform's per-Space networks that no container is on (left by a killed platform, or
    by containers removed behind its back); how many were removed."""
    removed = 0
    label = f"{LABEL}.owner={owner_key(settings)}"
    for net in client.api.networks(filters={"label": [f"{LABEL}.managed=1", label]}):
        with contextlib.suppress(docker.errors.APIError):
            if not client.api.inspect_network(net["Id"]).get("Containers"):
                client.api.remove_network(net["Id"])
                removed += 1
    return removed


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
