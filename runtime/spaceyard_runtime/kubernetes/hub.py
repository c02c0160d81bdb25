"""The Hub relay for Kubernetes apps: one listener in the platform pod, behind a Service of its own.

The platform process (which runs :class:`~.runtime.KubernetesRuntime`) listens on
``kubernetes_hub_relay_port`` of all its pod's addresses and serves the platform's relay there for every
Space at once (:meth:`~spaceyard_runtime.hubpath.HubPath.serve_shared`: Space tokens only, connections
bounded per client address). The chart puts a Service (``kubernetes_hub_relay_service``, in the platform
namespace) in front of that port, and each Space's NetworkPolicy allows egress to exactly that port of the
platform pods (:func:`.objects.make_network_policy`). Apps get ``HF_ENDPOINT=http://<ClusterIP>:<port>``:
the Service's ClusterIP rather than its DNS name, so the Hub answers in a pod whatever its DNS (the ClusterIP
stays while the Service exists; the chart keeps it across upgrades).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any

from ..errors import AppStartError
from ..hubpath import HubListener, HubPath, endpoint
from ..settings import RuntimeSettings
from .clients import KubeApi


class KubernetesHubListener:
    def __init__(self, hub: HubPath, settings: RuntimeSettings, api_client: Any) -> None:
        assert settings.kubernetes_hub_relay_port is not None
        self.hub, self.port = hub, settings.kubernetes_hub_relay_port
        self.service = settings.kubernetes_hub_relay_service
        self.api = KubeApi(api_client, settings.kubernetes_platform_namespace)
        self._listener: HubListener | None = None
        self._url: str | None = None
        self._lock = asyncio.Lock()

    async def endpoint(self) -> str:
        """``HF_ENDPOINT`` for every Space's app, serving the relay first if it is not yet."""
        async with self._lock:
            if self._listener is None:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    sock.bind(("0.0.0.0", self.port))
                    sock.listen(256)
                    sock.setblocking(False)
                    self._listener = await self.hub.serve_shared(sock)
                except OSError as exc:
                    sock.close()
                    raise AppStartError(f"could not serve the Hub relay on port {self.port}: {exc}") from exc
            if self._url is None:
                service = await asyncio.to_thread(self.api.get, "Service", self.service)
                cluster_ip = ((service or {}).get("spec") or {}).get("clusterIP")
                if not cluster_ip or cluster_ip == "None":
                    raise AppStartError(
                        f"the Hub relay's Service {self.api.namespace}/{self.service} is missing or has no ClusterIP"
                    )
                self._url = endpoint(str(cluster_ip), self.port)
            return self._url

    def close(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(Exception):
                self._listener.close()
            self._listener = None


__all__ = ["KubernetesHubListener"]
