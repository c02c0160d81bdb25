"""No default route in a Space container after a start the runtime did not make itself.

Docker gives a container a new network namespace, with a default route, at every start: the runtime
deletes that route after its own starts (:func:`.network.strip_default_route`), but the engine also
starts containers on its own: the restart policy after a crash (``sdk: docker`` images, or a container
whose agent died) and, when dockerd itself restarts, every container that was running. Such a
container would keep its default route for good and reach, through the host, every other Space's bridge
and whatever the host routes to. :class:`RouteGuard` follows the engine's ``start`` events of this
platform's containers (its owner label) and deletes the route of each as the event arrives, and sweeps
the running ones each time it (re)connects to the engine. What remains is the moment between the
container's start and the deletion (milliseconds), the same as at the runtime's own starts
(``docs/docker.md``).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import Any

import docker
import docker.errors

from ..settings import RuntimeSettings
from .containers import LABEL, owner_key
from .network import strip_default_route

log = logging.getLogger("spaceyard.runtime.docker")


class RouteGuard:
    """A daemon thread with its own engine connection; :meth:`start` once, :meth:`close` at the end."""

    def __init__(self, settings: RuntimeSettings) -> None:
        self.settings = settings
        self.label = f"{LABEL}.owner={owner_key(settings)}"
        self._stopped = threading.Event()
        self._events: Any = None
        self._thread: threading.Thread | None = None
        self.checked = 0  # containers whose default route the guard deleted (or found absent)

    def start(self) -> None:
        if self._thread is None:
            self._stopped.clear()
            self._thread = threading.Thread(target=self._run, name="spaceyard-route-guard", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stopped.is_set():
            try:
                client = docker.DockerClient(base_url=self.settings.docker_url, version="auto", timeout=None)
                try:
                    self._events = client.events(
                        decode=True, filters={"type": "container", "event": "start", "label": self.label}
                    )
                    self._sweep(client)  # what started while no one was following
                    for event in self._events:
                        if self._stopped.is_set():
                            break
                        self._strip(client, str(event.get("id", "")))
                finally:
                    client.close()
            except Exception as exc:  # the engine went away (restarting?): follow again when it is back
                if not self._stopped.is_set():
                    log.debug("route guard lost the Docker engine: %s", exc)
            self._stopped.wait(1.0)

    def _sweep(self, client: docker.DockerClient) -> None:
        for container in client.api.containers(filters={"label": self.label, "status": "running"}):
            self._strip(client, str(container["Id"]))

    def _strip(self, client: docker.DockerClient, container_id: str) -> None:
        if not container_id:
            return
        with contextlib.suppress(docker.errors.APIError):  # gone meanwhile
            error = strip_default_route(client, container_id)
            if error:
                log.warning("could not remove the default route of container %s: %s", container_id[:12], error)
            else:
                self.checked += 1

    def close(self) -> None:
        self._stopped.set()
        events = self._events
        if events is not None:
            with contextlib.suppress(Exception):
                events.close()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None


__all__ = ["RouteGuard"]
