"""The Runtime contract: how the platform runs one version of a Space.

A *runtime* turns an :class:`AppSpec` (what was built, how to run it) into a live app reachable at an
:class:`Endpoint`, and takes it away again. The platform owns the lifecycle; a runtime only executes it:

* :meth:`Runtime.start` launches the app and returns an :class:`AppHandle` at once (the app may not be
  ready yet). It must not block on readiness.
* :meth:`Runtime.wait_ready` returns when the app answers HTTP on its endpoint, polling at most every
  ``readiness_interval`` (50 ms by default, never exponential backoff). It raises
  :class:`~spaceyard_runtime.errors.AppCrashed` with the exit code and the last log lines if the app dies
  first, and :class:`~spaceyard_runtime.errors.AppStartTimeout` past ``timeout``.
* :meth:`Runtime.stop` ends the app and frees everything it held (process, container, pod); it is
  idempotent and never raises for an app that is already gone.
* :meth:`Runtime.poll` says whether the app still runs, without side effects.
* :meth:`Runtime.suspend` / :meth:`Runtime.resume` are sleep and wake. Default: stop, then start a new
  app from the same spec. Backends that can keep something cheaper around override them (Docker keeps
  the stopped container, Kubernetes scales to zero, the local runtime forks from a warm parent).
  Sleep has two depths: *light* (``Capabilities.light_sleep``: a warm parent is kept and the wake is a
  fork; :meth:`Runtime.sleep_cost` says what it costs) and *deep* (:meth:`Runtime.deep_sleep`: nothing is
  kept, the wake is a cold start).
* :meth:`Runtime.purge` removes a deleted Space's files; :meth:`Runtime.delete_volume` its persistent
  ``/data`` (:class:`StorageSpec`), which every start of the Space otherwise finds as it was left.
* :meth:`Runtime.get_state` / :meth:`Runtime.load_state` persist what is needed to re-attach to a
  running app after the platform restarts (a JSON-able dict).

Every line the app prints (stdout and stderr) goes to the ``log`` sink given to ``start``/``resume``,
after a first line of the runtime's own: the Hub's startup banner
(:func:`~spaceyard_runtime.output.startup_banner`, ``===== Application Startup at <UTC time> =====``).
Runtimes never see platform credentials: ``AppSpec.env`` is the whole environment the app gets
beyond what the backend itself must set.

Where backends legitimately differ, :attr:`Runtime.capabilities` says so (:class:`Capabilities`); the
contract suite (``tests/runtime/contract``) checks every runtime against this docstring and reads only
those flags, never a backend's name.
"""

from __future__ import annotations

import abc
import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .hubpath import HubPath

LogSink = Callable[[str], None]
"""Receives one line of app output at a time, without the trailing newline."""


@dataclass(frozen=True)
class Flavor:
    """A hardware flavor (``cpu-basic``, ``t4-small``...) as the operator's flavors file defines it."""

    name: str
    pretty_name: str = ""
    cpu: float = 2.0
    memory_mib: int = 16384
    gpus: int = 0
    accelerator: str | None = None
    node_pool: str | None = None
    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: tuple[Mapping[str, str], ...] = ()
    unit_cost_usd: float = 0.0


@dataclass(frozen=True)
class StorageSpec:
    """A Space's persistent storage: a directory at ``/data`` that outlives the app (restarts, sleeps,
    rebuilds, redeploys, a platform restart) and is refused past ``size_bytes`` (``ENOSPC`` in the app).

    ``volume`` names it for good (the Space's database id, so a renamed Space keeps it); it is deleted
    only by :meth:`Runtime.delete_volume` (the Space or its storage deleted)."""

    volume: str
    size_bytes: int
    tier: str = "small"


@dataclass(frozen=True)
class AppSpec:
    """Everything needed to run one built version of a Space."""

    space_id: str
    """``owner/name``."""
    revision: str
    """The git commit being served."""
    sdk: str
    """``gradio``, ``streamlit``, ``docker`` or ``static``."""
    artifact: str
    """What the builder produced: a Python environment directory (local engine) or an image id."""
    app_file: str = "app.py"
    app_dir: Path | None = None
    """Checkout of ``revision`` (local engine); ``None`` when the code is inside the image."""
    app_port: int = 7860
    """Port the app listens on inside its sandbox (containers); local apps get a free port."""
    env: Mapping[str, str] = field(default_factory=dict)
    """Variables, secrets and the Hub's ``SPACE_*`` variables, already merged by the platform."""
    flavor: Flavor = field(default_factory=lambda: Flavor(name="cpu-basic"))
    preload_modules: tuple[str, ...] = ()
    """Heavy modules a warm parent may import ahead of time (fast wake)."""
    slug: str = ""
    """The Space's name in the local and Docker runtimes (``runtime/spaces/<slug>``, ``spaceyard-<slug>``),
    given by the platform (``spaceyard_platform.names.runtime_slug``)."""
    source_folder: str = ""
    """The folder holding all exported commits of the Space (``sources/<folder>``), given by the platform
    (``spaceyard_platform.names.space_folder``); a warm parent may see all of it when ``app_dir`` is in it."""
    storage: StorageSpec | None = None
    """Persistent ``/data``, if the Space has storage."""

    def __post_init__(self) -> None:
        """The one derivation of these names in the runtime package, for specs not made by the platform
        (tests, benchmarks): the same rules as the platform's naming module, which it may not import."""
        if not self.slug:
            object.__setattr__(self, "slug", self.space_id.replace("/", "-").replace("_", "-").lower())
        if not self.source_folder:
            object.__setattr__(self, "source_folder", self.space_id.replace("/", "--"))


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    netns: str | None = None
    """The app listens inside its own network namespace (local sandbox): connect through
    :func:`spaceyard_runtime.netns.connect` with this token. ``None``: an ordinary address."""

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


class AppState(enum.Enum):
    STARTING = "starting"
    RUNNING = "running"
    EXITED = "exited"
    PENDING = "pending"
    """Waiting for capacity (Kubernetes: pod unschedulable). Never counts as idle."""


@dataclass
class AppStatus:
    state: AppState
    exit_code: int | None = None
    message: str = ""


@dataclass
class AppHandle:
    """A started app. ``backend_id`` is the backend's own name for it (pid, container id, deployment)."""

    spec: AppSpec
    endpoint: Endpoint
    backend_id: str
    started_at: float
    start_mode: str = "cold"
    """How it was started: ``cold`` or ``fork`` (local fast wake), ``reuse`` (docker)."""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Capabilities:
    """What a runtime does where the contract allows a choice. The defaults are the plainest backend."""

    reattach: bool = False
    """``load_state`` re-attaches to an app that outlived the platform process (a container, a pod): the
    handle it returns serves, and the app's new output reaches the new ``log`` sink. ``False``: it returns
    ``None`` and what the previous process left running is ended (the platform starts a new app)."""
    restarts_crashed_apps: bool = False
    """Once ready, an app that exits is restarted by the backend itself (Docker's restart policy, the
    kubelet) and serves again. ``False``: ``poll`` reports ``EXITED`` with the app's exit code."""
    wakes_in_place: bool = False
    """``resume`` starts the same backend object again (the stopped container, the scaled-down
    Deployment): the new handle has the suspended one's ``backend_id``. ``False``: a new app."""
    survives_restart: bool = False
    """Apps outlive the platform process and are re-attached, not ended, across its restart (Kubernetes:
    the Deployments keep serving while the platform pod is replaced). The lifecycle then leaves them
    running when it stops and, at start, re-attaches each Space that was serving with ``load_state``
    (no restart, no cold start); a Space whose app is gone comes back ``SLEEPING``. Needs ``reattach``.
    ``False``: a stopping platform removes its apps and every Space comes back ``SLEEPING``."""
    light_sleep: bool = False
    """``suspend`` keeps a *warm parent* of the app (its SDK imported, no app running) and ``resume`` forks
    the app from it: the resumed handle's ``start_mode`` is ``fork``. A light sleeper costs the memory
    :meth:`Runtime.sleep_cost` reports, within the runtime's ``light_sleep_memory_mib`` budget (least
    recently suspended handles are deepened first); :meth:`Runtime.deep_sleep` frees it. ``False``: a
    suspended app keeps at most what costs no memory (a stopped container, a Deployment at 0 replicas)."""
    endpoint_delay: float = 0.0
    """Seconds the endpoint may still refuse connections after ``wait_ready`` returned (Kubernetes:
    kube-proxy routes the Service to a pod only once the kubelet saw it ready). 0: it answers at once."""


class Runtime(abc.ABC):
    """Base class of every runtime backend. See the module docstring for the contract."""

    name: str = "abstract"
    hub: HubPath | None = None
    """The platform's read-only Hub relay, if attached (:mod:`spaceyard_runtime.hubpath`)."""

    def attach_hub(self, hub: HubPath) -> None:
        """Serve ``hub`` to the apps where they can reach it (backends that can). Default: keep it."""
        self.hub = hub

    @property
    def capabilities(self) -> Capabilities:
        """Where this backend differs within the contract (:class:`Capabilities`). Default: the plainest."""
        return Capabilities()

    @classmethod
    def start_warnings(cls, settings: Any) -> list[str]:
        """What the operator must know at start about this backend's isolation with these settings
        (``RuntimeSettings``); printed by ``spaceyard up``. Default: nothing."""
        return []

    @abc.abstractmethod
    async def start(self, spec: AppSpec, log: LogSink) -> AppHandle: ...

    @abc.abstractmethod
    async def wait_ready(self, handle: AppHandle, timeout: float) -> None: ...

    @abc.abstractmethod
    async def stop(self, handle: AppHandle, grace: float = 5.0) -> None: ...

    @abc.abstractmethod
    async def poll(self, handle: AppHandle) -> AppStatus: ...

    async def end_previous(self) -> None:
        """End what a previous platform process on the same state left running (it was killed before it
        could stop its apps). The lifecycle calls it once at start, before anything runs; unless the backend
        ``survives_restart``, it re-attaches nothing, so every Space starts again from ``SLEEPING``. Default:
        nothing is left (the local runtime
        ends its leftovers when it is made; the Kubernetes controller converges pods to the desired state)."""

    async def suspend(self, handle: AppHandle) -> None:
        """Sleep: free the app's CPU and memory. Default: stop it."""
        await self.stop(handle)

    async def resume(self, handle: AppHandle, log: LogSink) -> AppHandle:
        """Wake: run the same spec again, as fast as the backend can. Default: a fresh start."""
        return await self.start(handle.spec, log)

    async def deep_sleep(self, handle: AppHandle) -> None:
        """Deep sleep a suspended ``handle``: free everything :meth:`suspend` kept for a fast wake (the warm
        parent, the container, the pod), so the sleeping Space costs nothing but its disk. The lifecycle
        calls it once the Space has slept ``deep_sleep_after`` seconds; a runtime may also deepen its own
        light sleepers to stay within its memory budget. :meth:`resume` of a deepened handle still works
        and is a cold start. Idempotent; never raises for what is already gone. Default: nothing (this
        backend's :meth:`suspend` keeps nothing that costs memory)."""

    async def sleep_cost(self, handle: AppHandle) -> int | None:
        """Bytes of memory the suspended ``handle`` still holds (the warm parent's private memory, PSS where
        the backend can read it): 0 once deep asleep, ``None`` if the backend cannot tell. Default: 0."""
        return 0

    async def prewarm(self, spec: AppSpec) -> bool:
        """Optionally prepare what makes this spec's next start fast (a warm parent). ``True`` if it did."""
        return False

    async def remove(self, handle: AppHandle) -> None:
        """Forget the app for good (Space deleted or version replaced). Default: stop it."""
        await self.stop(handle)

    async def forget(self, space_id: str) -> None:
        """The Space is deleted: end whatever was kept for it beyond its apps (warm parents). Default: nothing."""

    def unavailable(self, flavor: Flavor) -> str | None:
        """Why this backend cannot give an app ``flavor`` (shown to users, who are then refused it), or
        ``None`` if it can. Default: flavors with GPUs are refused (only a backend that schedules onto GPU
        nodes, Kubernetes, offers them; it answers ``SCHEDULING`` with the reason while none is free)."""
        if flavor.gpus:
            what = f"{flavor.gpus} GPU{'s' if flavor.gpus > 1 else ''}" + (
                f" ({flavor.accelerator})" if flavor.accelerator else ""
            )
            return f"{flavor.name} needs {what}, and the {self.name} runtime of this deployment has no GPU"
        return None

    async def purge(self, space_id: str, slug: str) -> None:
        """The Space is deleted for good (after :meth:`forget`): remove the files the runtime kept for it
        (``HOME``, ``TMPDIR``; ``slug`` as in its specs), so a later Space of the same name starts empty.
        Default: nothing."""

    async def delete_volume(self, volume: str) -> None:
        """Delete a Space's persistent storage (:class:`StorageSpec`) and everything in it; idempotent.
        Default: nothing (a backend without storage)."""

    async def volume_usage(self, volume: str) -> int | None:
        """Bytes used in a Space's persistent storage, ``None`` if unknown or absent."""
        return None

    def get_state(self, handle: AppHandle) -> dict[str, Any]:
        return {"backend_id": handle.backend_id, "host": handle.endpoint.host, "port": handle.endpoint.port}

    async def load_state(self, spec: AppSpec, state: dict[str, Any], log: LogSink) -> AppHandle | None:
        """Re-attach to an app that survived a platform restart; ``None`` if it is gone."""
        return None

    async def aclose(self) -> None:
        """Release backend-wide resources (warm parents, API clients) at shutdown."""
