"""The Hub inside a Space: how a runtime gives an app a path to the platform's read-only Hub relay.

:class:`HubPath` is the contract between the platform (which implements it: the relay,
``spaceyard_platform.hubrelay``) and the runtimes (which call it), given to a runtime with
:meth:`spaceyard_runtime.api.Runtime.attach_hub`:

* :attr:`HubPath.port` is the port the runtime listens on for the app (inside the app's own network
  namespace on the local runtime, on the Space network's gateway address on Docker);
* :meth:`HubPath.serve` takes a listening socket the runtime made where the app can reach it, and
  serves the relay on it until the returned :class:`HubListener` is closed. The relay answers only the
  Hub's read endpoints (repository info, trees, file downloads, Xet reads), with the credentials the
  request carries (the Space's own read-only ``HF_TOKEN``), never the platform's pages, other Spaces'
  apps or any write; at most a bounded number of connections per listener;
* :meth:`HubPath.serve_shared` serves the relay on one socket for the apps of *every* Space (a cluster's
  Service in front of the platform pods): there it answers only requests that carry a Space's own
  read-only token (no anonymous request, no user's token), and bounds connections per client address.

A runtime that serves the relay sets ``HF_ENDPOINT`` in the app's environment to the relay's address as
the app sees it (``http://127.0.0.1:PORT`` inside a local box); without one, ``HF_ENDPOINT`` stays what
the platform put in ``AppSpec.env`` (its public URL, or the in-cluster Service on Kubernetes).
"""

from __future__ import annotations

import abc
import socket
from pathlib import Path

DEFAULT_PORT = 7850
"""Where the relay listens inside a Space's box (beside the app's 7860)."""
VIEWS = "hubviews"
"""``RUNTIME_DIR/hubviews/<slug>``: the Spaces' cache views (:func:`cache_view`)."""


class HubListener(abc.ABC):
    @abc.abstractmethod
    def close(self) -> None:
        """Stop accepting, end the open connections. Idempotent."""


class HubPath(abc.ABC):
    port: int = DEFAULT_PORT

    @abc.abstractmethod
    async def serve(self, sock: socket.socket, space_id: str, cache: Path | None = None) -> HubListener:
        """Serve the relay on ``sock`` (bound and listening, non-blocking) for the app of ``space_id``;
        ``cache``: the Space's cache view (:func:`cache_view`), which the relay fills."""

    @abc.abstractmethod
    async def serve_shared(self, sock: socket.socket) -> HubListener:
        """Serve the relay on ``sock`` (bound and listening, non-blocking) for the apps of every Space."""


def cache_view(runtime_dir: Path, slug: str) -> Path:
    """The Space's ``HF_HUB_CACHE`` as the platform sees it (made here: root's, 0755). The runtime shows it
    to the app read-only at the same path; only the relay writes it (``spaceyard_platform.hubfill``)."""
    view = runtime_dir / VIEWS / slug
    view.mkdir(mode=0o755, parents=True, exist_ok=True)
    return view


def app_env(view: Path) -> dict[str, str]:
    """What an app with a cache view gets: ``HF_HUB_CACHE`` there, and time for the relay to fill it (the
    ``HEAD`` of a file not yet in the shared store waits while the platform fetches it)."""
    return {"HF_HUB_CACHE": str(view), "HF_HUB_ETAG_TIMEOUT": "600"}


def endpoint(host: str, port: int) -> str:
    return f"http://{host}:{port}"


__all__ = ["DEFAULT_PORT", "VIEWS", "HubListener", "HubPath", "app_env", "cache_view", "endpoint"]
