"""Per-Space networks on a real Docker engine: each on its own small subnet of the runtime's pool (so
there can be far more Spaces than the engine's ~30 default pools allow), none left behind by a failed
start or a killed platform, and a subnet given again never reaches the previous Space's Hub relay."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from pathlib import Path

import docker
import pytest

from spaceyard_runtime.api import AppSpec, Flavor
from spaceyard_runtime.docker import DockerRuntime
from spaceyard_runtime.docker.containers import owner_key
from spaceyard_runtime.docker.hub import DockerHubListeners
from spaceyard_runtime.docker.network import ensure_network, free_subnets, remove_unused_networks
from spaceyard_runtime.docker.routeguard import RouteGuard
from spaceyard_runtime.errors import AppStartError
from spaceyard_runtime.hubpath import HubListener, HubPath
from spaceyard_runtime.settings import RuntimeSettings
from tests.docker.conftest import eventually_no_default_route, routes

pytestmark = pytest.mark.docker


def spec(space_id: str, artifact: str = "spaceyard-test/none:missing") -> AppSpec:
    return AppSpec(
        space_id=space_id,
        revision="0" * 40,
        sdk="docker",
        artifact=artifact,
        app_file="app.py",
        app_port=7860,
        flavor=Flavor(name="cpu-basic", cpu=1.0, memory_mib=512),
    )


def ours(client: docker.DockerClient, settings: RuntimeSettings) -> dict[str, ipaddress.IPv4Network]:
    """This test's networks (its own owner key) and their subnets."""
    nets = client.api.networks(filters={"label": f"org.spaceyard.owner={owner_key(settings)}"})
    return {n["Name"]: ipaddress.IPv4Network(n["IPAM"]["Config"][0]["Subnet"]) for n in nets}


def test_free_subnets_skip_what_is_taken_and_stay_in_the_pool() -> None:
    settings = RuntimeSettings(docker_network_pool="10.9.0.0/26", docker_network_prefix=28)
    taken = [ipaddress.IPv4Network("10.9.0.16/28"), ipaddress.IPv4Network("10.9.0.48/30")]
    assert [str(s) for s in free_subnets(settings, taken)] == ["10.9.0.0/28", "10.9.0.32/28"]
    # a network wider than the pool (an operator's 10.0.0.0/8 bridge) takes all of it
    assert list(free_subnets(settings, [ipaddress.IPv4Network("10.0.0.0/8")])) == []


def test_more_spaces_than_the_default_pools_each_get_an_own_subnet_and_a_new_platform_removes_them(
    docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    settings = RuntimeSettings(runtime="docker", data_dir=tmp_path, docker_network_pool="10.213.0.0/20")
    other = RuntimeSettings(runtime="docker", data_dir=tmp_path / "other", docker_network_pool="10.213.0.0/20")
    try:
        for i in range(40):  # the engine's default pools give out about 30 networks, then refuse
            ensure_network(docker_client, settings, f"spaceyard-nettest-{tmp_path.name[-6:]}-{i}", spec(f"n/s{i}"))
        ensure_network(docker_client, other, f"spaceyard-nettest-{tmp_path.name[-6:]}-other", spec("n/other"))
        mine = ours(docker_client, settings)
        assert len(mine) == 40
        subnets = list(mine.values())
        pool = ipaddress.IPv4Network(settings.docker_network_pool)
        assert all(s.prefixlen == 28 and s.subnet_of(pool) for s in subnets)
        assert all(not a.overlaps(b) for i, a in enumerate(subnets) for b in subnets[i + 1 :])
        assert all(docker_client.networks.get(name).attrs["Internal"] for name in list(mine)[:3])
        # what a killed platform left (no container on them): the next one on this state removes them, only them
        assert remove_unused_networks(docker_client, settings) == 40
        assert ours(docker_client, settings) == {}
        assert len(ours(docker_client, other)) == 1
    finally:
        remove_unused_networks(docker_client, settings)
        remove_unused_networks(docker_client, other)


def test_a_pool_with_no_free_subnet_is_a_clear_start_error(docker_client: docker.DockerClient, tmp_path: Path) -> None:
    settings = RuntimeSettings(
        runtime="docker", data_dir=tmp_path, docker_network_pool="10.214.0.0/28", docker_network_prefix=28
    )
    try:
        ensure_network(docker_client, settings, f"spaceyard-full-{tmp_path.name[-6:]}-a", spec("n/a"))
        with pytest.raises(AppStartError, match=r"no free /28 subnet left in SPACEYARD_DOCKER_NETWORK_POOL"):
            ensure_network(docker_client, settings, f"spaceyard-full-{tmp_path.name[-6:]}-b", spec("n/b"))
    finally:
        remove_unused_networks(docker_client, settings)


def test_the_operators_one_network_for_every_space_is_not_a_small_subnet(
    docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    shared = f"spaceyard-shared-{tmp_path.name[-6:]}"
    settings = RuntimeSettings(runtime="docker", data_dir=tmp_path, docker_network=shared)
    try:
        ensure_network(docker_client, settings, shared, spec("n/one"))
        ensure_network(docker_client, settings, shared, spec("n/two"))  # exists: nothing to do
        subnet = ipaddress.IPv4Network(docker_client.networks.get(shared).attrs["IPAM"]["Config"][0]["Subnet"])
        assert subnet.prefixlen <= 24, "room for every Space's containers (Docker's own pools)"
    finally:
        docker_client.networks.get(shared).remove()


async def test_a_failed_first_start_leaves_no_network(docker_client: docker.DockerClient, tmp_path: Path) -> None:
    runtime = DockerRuntime(RuntimeSettings(runtime="docker", data_dir=tmp_path))
    try:
        with pytest.raises(AppStartError, match="image is missing"):
            await runtime.start(spec("nettest/failed-start"), lambda line: None)
        with pytest.raises(docker.errors.NotFound):
            docker_client.networks.get("spaceyard-nettest-failed-start")
    finally:
        await runtime.aclose()


class _Served(HubListener):
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def close(self) -> None:
        self.sock.close()


class RecordingHub(HubPath):
    """Which Space each listening socket serves (the relay itself is tested in test_hub_relay.py)."""

    def __init__(self) -> None:
        with socket.socket() as probe:  # a port free here; both Spaces' listeners use it, as the relay's port
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.served: dict[str, list[str]] = {}

    async def serve(self, sock: socket.socket, space_id: str, cache: Path | None = None) -> HubListener:
        self.served.setdefault(space_id, []).append(sock.getsockname()[0])
        return _Served(sock)

    async def serve_shared(self, sock: socket.socket) -> HubListener:
        raise NotImplementedError


async def test_a_subnet_given_again_never_reaches_the_previous_spaces_relay(
    docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    """Space A's network goes (its container was removed) and Space B's new network gets the same subnet and
    gateway address: B's apps must reach a relay serving B, not A's listener still bound there."""
    settings = RuntimeSettings(
        runtime="docker", data_dir=tmp_path, docker_network_pool="10.215.0.0/28", docker_network_prefix=28
    )
    hub = RecordingHub()
    listeners = DockerHubListeners(hub)
    a, b = f"spaceyard-relay-{tmp_path.name[-6:]}-a", f"spaceyard-relay-{tmp_path.name[-6:]}-b"
    try:
        ensure_network(docker_client, settings, a, spec("alice/a"))
        endpoint_a = await listeners.endpoint(docker_client, a, "alice/a")
        docker_client.networks.get(a).remove()  # e.g. removed behind the runtime's back
        ensure_network(docker_client, settings, b, spec("mallory/b"))
        endpoint_b = await listeners.endpoint(docker_client, b, "mallory/b")
        assert endpoint_a.rsplit(":", 1)[0] == endpoint_b.rsplit(":", 1)[0]  # the same gateway address
        assert not listeners.serves(a), "the removed network's listener is closed"
        assert hub.served == {"alice/a": ["10.215.0.1"], "mallory/b": ["10.215.0.1"]}
    finally:
        listeners.close()
        remove_unused_networks(docker_client, settings)


async def test_containers_the_engine_starts_by_itself_lose_their_default_route(
    docker_client: docker.DockerClient, base_image: str, tmp_path: Path
) -> None:
    """What dockerd does on its own (its restart brings back every container that ran; a restart policy
    after a crash) gives a container a default route: the guard's sweep and its start events remove it."""
    settings = RuntimeSettings(runtime="docker", data_dir=tmp_path, docker_network_pool="10.216.0.0/24")
    net = f"spaceyard-guard-{tmp_path.name[-6:]}"
    ensure_network(docker_client, settings, net, spec("guard/x"))
    guard = RouteGuard(settings)
    container = docker_client.containers.run(
        base_image, ["sleep", "120"], detach=True, network=net, labels={"org.spaceyard.owner": owner_key(settings)}
    )
    try:
        assert any(r.startswith("default") for r in routes(docker_client, container.id))  # Docker's doing
        guard.start()  # its sweep: the containers already running
        assert await eventually_no_default_route(docker_client, container.id)
        await asyncio.to_thread(container.restart, timeout=0)  # a start the runtime did not make
        assert await eventually_no_default_route(docker_client, container.id)
    finally:
        await asyncio.to_thread(guard.close)
        container.remove(force=True)
        remove_unused_networks(docker_client, settings)
