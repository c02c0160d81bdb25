"""The storage calls of the API and the Settings tab (what they mean: :mod:`spaceyard_platform.storage`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from ..auth import Principal
from ..db.models import Space
from ..errors import BadRequest
from ..settings import Settings
from ..storage import DEFAULT_TIER, MOUNT, spec_of
from .lookup import readable_space, writable_space
from .space_settings import apply_env_change

if TYPE_CHECKING:
    from ..deps import Services


def _check_tier(settings: Settings, space: Space, tier: str) -> None:
    tiers = settings.storage_tiers
    if tier not in tiers:
        raise BadRequest(f"Invalid storage tier {tier!r}. Valid tiers: {', '.join(tiers)}")
    if space.sdk == "static":
        raise BadRequest("Static Spaces have no persistent storage (they run no app)")
    current = space.storage_tier
    if current and current in tiers and tiers[tier] < tiers[current]:
        raise BadRequest(
            f"Persistent storage cannot be downgraded from {current!r} to {tier!r}: delete it first (its data is lost)"
        )


async def _apply(svc: Services, session: Session, space: Space) -> None:
    session.commit()
    await apply_env_change(svc, space)
    session.refresh(space)


async def request_storage(
    svc: Services, session: Session, principal: Principal | None, owner: str, name: str, tier: str
) -> Space:
    space = writable_space(session, principal, owner, name)
    _check_tier(svc.settings, space, tier)
    if space.storage_tier != tier:
        space.storage_tier = tier
        await _apply(svc, session, space)
    return space


async def delete_storage(svc: Services, session: Session, principal: Principal | None, owner: str, name: str) -> Space:
    """Drop the Space's storage and every byte in it (the Space restarts without ``/data``)."""
    space = writable_space(session, principal, owner, name)
    if not space.storage_tier:
        raise BadRequest(f"spaces/{space.space_id} has no persistent storage")
    space.storage_tier = None
    space.volumes = None
    await _apply(svc, session, space)
    await svc.deployer.runtime.delete_volume(space.id)
    return space


def _check_volumes(volumes: list[dict[str, Any]]) -> None:
    mounts = [str(v.get("mountPath", "")) for v in volumes]
    if len(set(mounts)) != len(mounts):
        raise BadRequest("Each volume needs its own mountPath")
    for v in volumes:
        kind, mount = v.get("type"), str(v.get("mountPath", ""))
        if kind in ("model", "dataset", "space"):
            raise BadRequest(
                f"{kind} volumes (read-only repository mounts) are not supported by Spaceyard; a bucket mounted "
                f"at {MOUNT} is the Space's persistent storage"
            )
        if kind != "bucket":
            raise BadRequest(f"Invalid volume type {kind!r}: expected bucket, model, dataset or space")
        if not str(v.get("source") or "").strip():
            raise BadRequest("A volume needs a source")
        if mount != MOUNT:
            raise BadRequest(f"Spaceyard mounts a Space's bucket at {MOUNT} only, not at {mount!r}")
        if v.get("path"):
            raise BadRequest("Mounting a subfolder of a bucket (path) is not supported by Spaceyard")


async def set_volumes(
    svc: Services, session: Session, principal: Principal | None, owner: str, name: str, volumes: list[dict[str, Any]]
) -> Space:
    """``set_space_volumes``: one bucket at ``/data`` gives the Space its storage; ``[]`` removes it."""
    space = writable_space(session, principal, owner, name)
    if space.sdk == "static":
        raise BadRequest("Volumes are not supported on static Spaces")
    _check_volumes(volumes)
    if not volumes:
        if space.storage_tier:
            return await delete_storage(svc, session, principal, owner, name)
        return space
    space.volumes = [dict(v) for v in volumes]
    tier = space.storage_tier or DEFAULT_TIER
    _check_tier(svc.settings, space, tier)
    space.storage_tier = tier
    await _apply(svc, session, space)
    return space


async def delete_volumes(svc: Services, session: Session, principal: Principal | None, owner: str, name: str) -> Space:
    space = writable_space(session, principal, owner, name)
    if not space.storage_tier:
        raise BadRequest(f"spaces/{space.space_id} has no volumes")
    return await delete_storage(svc, session, principal, owner, name)


async def describe(
    svc: Services, session: Session, principal: Principal | None, owner: str, name: str
) -> dict[str, Any]:
    """Tier, size and use of the Space's storage (readers see it; the page shows it)."""
    space = readable_space(session, principal, owner, name)
    spec = spec_of(svc.settings, space)
    used = await svc.deployer.runtime.volume_usage(space.id) if spec else None
    return {
        "tier": space.storage_tier,
        "mountPath": MOUNT if spec else None,
        "sizeBytes": spec.size_bytes if spec else None,
        "usedBytes": used,
        "tiers": dict(svc.settings.storage_tiers),
        "volumes": space.volumes,
    }
