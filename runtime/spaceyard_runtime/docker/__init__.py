"""Docker runtime: every Space version is one container, run from the image the docker engine built.

Modules: :mod:`.containers` (what a container is: user, read-only root, limits, environment — the whole
sandbox in one place), :mod:`.network` (each Space's internal bridge, no default route, no DNS),
:mod:`.routeguard` (no default route after the engine's own starts either),
:mod:`.gpus` (which host GPU each container holds), :mod:`.logs` (output and exit followed from threads),
:mod:`.runtime` (the contract methods).

Lifecycle. ``start`` creates and starts the container and returns at once; ``wait_ready`` polls HTTP on
the container's address every ``readiness_interval`` and fails with :class:`AppCrashed` (exit code and
last log lines) if the container exits first. Once ready, Docker's own ``on-failure`` restart policy
(``docker_restart_retries`` times, doubling back-off from 100 ms) restarts a crashing app; ``poll``
reports ``EXITED`` with the last lines when it gives up. ``suspend`` stops the container and keeps it;
``resume`` starts the same container again (``start_mode="reuse"``, no rebuild, same container id).
``stop``/``remove`` delete the container. Output is followed with ``docker logs --follow`` in a thread
and handed line by line to the ``log`` sink on the event loop.
"""

from .gpus import GpuAllocator
from .runtime import DockerRuntime

__all__ = ["DockerRuntime", "GpuAllocator"]
