"""Hardware honesty: only flavors this deployment can provide are offered, and asking for another is refused.

The runtime says what it cannot give (``Runtime.unavailable``: a GPU flavor on the local or Docker
runtime). ``GET /api/spaces/hardware`` lists only what can be chosen (``?all=true`` adds the others
with ``available: false`` and the reason); the Settings tab shows them disabled with the reason;
creating, duplicating or moving a Space to one answers 400 with it. A Space already on such a flavor
(flavors file or runtime changed since) is not started on something else: its start fails with the
reason (``RUNTIME_ERROR``), never a silent ``current: t4-small`` on a CPU. Kubernetes offers GPU flavors
and shows ``SCHEDULING`` with the scheduler's reason while no GPU node is free.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import BadRequest

if TYPE_CHECKING:
    from .deps import Services


def unavailable(svc: Services, name: str) -> str | None:
    flavor = svc.flavors.get(name)
    if flavor is None:
        return None
    return svc.deployer.runtime.unavailable(flavor)


def check_available(svc: Services, name: str) -> None:
    reason = unavailable(svc, name)
    if reason is not None:
        offered = [n for n in svc.flavors if unavailable(svc, n) is None]
        raise BadRequest(
            f"Hardware {name!r} is not available on this deployment: {reason}. Available: {', '.join(offered)}"
        )


def for_page(request: Any, name: str) -> str | None:
    """``flavor_unavailable(request, name)`` in templates: the reason a flavor is not offered, or ``None``."""
    services: Services = request.app.state.services
    return unavailable(services, name)
