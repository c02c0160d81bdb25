"""The Hub relay for Docker apps: a listener on the gateway address of each Space network.

A Space container reaches nothing outside its network's subnet (``network.py``: no default route), but
the network's gateway address is the host's own end of that bridge: :class:`DockerHubListeners` makes one
listening socket per network there, served by the platform's relay (:class:`~.hubpath.HubPath`), and the
app gets ``HF_ENDPOINT=http://<gateway>:<port>``. Only the containers of that network reach it; what
they may read is still decided by the Space's own read-only token.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from pathlib import Path
from typing import Any

from ..errors import AppStartError
from ..hubpath import HubListener, HubPath, endpoint


class DockerHubListeners:
    def __init__(self, hub: HubPath) -> None:
        self.hub = hub
        self._listeners: dict[str, tuple[str, HubListener]] = {}
        self._lock = asyncio.Lock()

    async def endpoint(self, client: Any, network: str, space_id: str, cache: Path | None = None) -> str:
        """``HF_ENDPOINT`` for an app on ``network`` (which must exist), serving the relay there if needed."""
        async with self._lock:
            attrs = (await asyncio.to_thread(client.networks.get, network)).attrs
            configs = (attrs.get("IPAM") or {}).get("Config") or []
            gateway = next((str(c["Gateway"]) for c in configs if c.get("Gateway") and ":" not in c["Gateway"]), "")
            if not gateway:
                raise AppStartError(f"the Docker network {network} has no IPv4 gateway for the Hub relay")
            known = self._listeners.get(network)
            if known is not None and known[0] == gateway:
                return endpoint(gateway, self.hub.port)
            if known is not None:
                known[1].close()
            for other, (address, _) in list(self._listeners.items()):
                if address == gateway:  # a removed network's subnet, given to this one: never serve it as that Space
                    self.forget(other)
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((gateway, self.hub.port))
                sock.listen(64)
                sock.setblocking(False)
                listener = await self.hub.serve(sock, space_id, cache)
            except OSError as exc:
                sock.close()
                raise AppStartError(f"could not serve the Hub relay on {gateway}:{self.hub.port}: {exc}") from exc
            self._listeners[network] = (gateway, listener)
            return endpoint(gateway, self.hub.port)

    def serves(self, network: str) -> bool:
        """Whether the relay already listens on ``network``'s gateway (a running container's network keeps
        its gateway address)."""
        return network in self._listeners

    def forget(self, network: str) -> None:
        known = self._listeners.pop(network, None)
        if known is not None:
            known[1].close()

    def close(self) -> None:
        for network in list(self._listeners):
            with contextlib.suppress(Exception):
                self.forget(network)


__all__ = ["DockerHubListeners"]
