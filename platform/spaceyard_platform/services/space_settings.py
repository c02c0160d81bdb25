"""Space settings as plain functions, shared by the Hub API and the web Settings tab.

Every function takes ``(svc, session, principal, owner, name, ...)``, checks access itself (404 for
Spaces the caller cannot see, 401/403 for writes it may not make), commits the session, and applies
the change to the running app: a changed secret or variable restarts a Space that has a version to
serve (Docker Spaces are rebuilt, since they also see both at build time); a paused Space keeps its
pause and picks the new values up when it is restarted. Secret values are encrypted with the
platform's :class:`~spaceyard_platform.crypto.SecretBox` and never returned.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..auth import Principal
from ..db.models import Space, SpaceSecret, SpaceVariable
from ..errors import BadRequest, Conflict, NotFound
from ..timestamps import iso
from .lookup import find_space, readable_space, writable_space
from .spaces import KeyValue, check_sleep_time, create_space, validate_key, validate_name

if TYPE_CHECKING:
    from ..deps import Services


def _now() -> datetime:
    return datetime.now(UTC)


def check_key_free(session: Session, space: Space, key: str, kind: type[SpaceSecret] | type[SpaceVariable]) -> None:
    """A secret or variable key: valid, and not another key of this Space in another case or of the other
    kind (both become one environment); replacing the same key of the same kind is fine."""
    validate_key(key)
    for model in (SpaceSecret, SpaceVariable):
        for existing in session.scalars(select(model.key).where(model.space_pk == space.id)):
            if existing.lower() == key.lower() and not (model is kind and existing == key):
                what = "secret" if model is SpaceSecret else "variable"
                raise BadRequest(f"Key {key!r} clashes with the {what} {existing!r}: keys are unique, ignoring case")


async def apply_env_change(svc: Services, space: Space) -> None:
    """Restart (or, for Docker, rebuild) a Space after its secrets or variables changed."""
    if space.paused or space.stage == "PAUSED":
        return
    state = svc.deployer.states.get(space.id)
    if state is None or state.serving is None:
        return
    if space.sdk == "docker" and space.head_sha:
        await svc.deployer.request_build(space.id, space.head_sha)
    else:
        await svc.deployer.restart(space.id)


# ---------------------------------------------------------------------------------------- secrets
def list_secrets(session: Session, principal: Principal | None, owner: str, name: str) -> dict[str, dict[str, Any]]:
    """``{KEY: {"description", "updatedAt"}}`` — never the values. Owners only."""
    space = writable_space(session, principal, owner, name)
    rows = session.scalars(select(SpaceSecret).where(SpaceSecret.space_pk == space.id).order_by(SpaceSecret.key))
    return {r.key: {"key": r.key, "description": r.description, "updatedAt": iso(r.updated_at)} for r in rows}


async def set_secret(
    svc: Services,
    session: Session,
    principal: Principal | None,
    owner: str,
    name: str,
    key: str,
    value: str,
    description: str | None = None,
) -> None:
    """Add or replace a secret, then restart the Space with it."""
    space = writable_space(session, principal, owner, name)
    check_key_free(session, space, key, SpaceSecret)
    row = session.scalar(select(SpaceSecret).where(SpaceSecret.space_pk == space.id, SpaceSecret.key == key))
    if row is None:
        row = SpaceSecret(space_pk=space.id, key=key, value_encrypted="")
        session.add(row)
    row.value_encrypted = svc.secretbox.encrypt(value)
    if description is not None:
        row.description = description
    row.updated_at = _now()
    session.commit()
    await apply_env_change(svc, space)


async def delete_secret(
    svc: Services, session: Session, principal: Principal | None, owner: str, name: str, key: str
) -> None:
    space = writable_space(session, principal, owner, name)
    row = session.scalar(select(SpaceSecret).where(SpaceSecret.space_pk == space.id, SpaceSecret.key == key))
    if row is None:
        return
    session.delete(row)
    session.commit()
    await apply_env_change(svc, space)


# -------------------------------------------------------------------------------------- variables
def variables_of(session: Session, space: Space) -> dict[str, dict[str, Any]]:
    rows = session.scalars(select(SpaceVariable).where(SpaceVariable.space_pk == space.id).order_by(SpaceVariable.key))
    return {
        r.key: {"key": r.key, "value": r.value, "description": r.description, "updatedAt": iso(r.updated_at)}
        for r in rows
    }


def list_variables(session: Session, principal: Principal | None, owner: str, name: str) -> dict[str, dict[str, Any]]:
    """``{KEY: {"value", "description", "updatedAt"}}``; anyone who can see the Space can read them."""
    return variables_of(session, readable_space(session, principal, owner, name))


async def set_variable(
    svc: Services,
    session: Session,
    principal: Principal | None,
    owner: str,
    name: str,
    key: str,
    value: str,
    description: str | None = None,
) -> dict[str, dict[str, Any]]:
    """Add or replace a variable, restart the Space with it; returns all variables."""
    space = writable_space(session, principal, owner, name)
    check_key_free(session, space, key, SpaceVariable)
    row = session.scalar(select(SpaceVariable).where(SpaceVariable.space_pk == space.id, SpaceVariable.key == key))
    if row is None:
        row = SpaceVariable(space_pk=space.id, key=key)
        session.add(row)
    row.value = value
    if description is not None:
        row.description = description
    row.updated_at = _now()
    session.commit()
    await apply_env_change(svc, space)
    return variables_of(session, space)


async def delete_variable(
    svc: Services, session: Session, principal: Principal | None, owner: str, name: str, key: str
) -> dict[str, dict[str, Any]]:
    space = writable_space(session, principal, owner, name)
    row = session.scalar(select(SpaceVariable).where(SpaceVariable.space_pk == space.id, SpaceVariable.key == key))
    if row is not None:
        session.delete(row)
        session.commit()
        await apply_env_change(svc, space)
    return variables_of(session, space)


# --------------------------------------------------------------------------- hardware, visibility
def check_flavor(svc: Services, flavor: str) -> None:
    if flavor not in svc.flavors:
        raise BadRequest(f"Invalid hardware flavor {flavor!r}. Valid flavors: {', '.join(svc.flavors)}")


async def set_hardware(
    svc: Services,
    session: Session,
    principal: Principal | None,
    owner: str,
    name: str,
    flavor: str,
    sleep_time: int | None = None,
) -> Space:
    """Move a Space to another flavor; a running Space restarts on it at once."""
    space = writable_space(session, principal, owner, name)
    check_flavor(svc, flavor)
    if sleep_time is not None:
        check_sleep_time(sleep_time)
        space.sleep_time = sleep_time
    changed = space.hardware != flavor
    space.hardware = flavor
    session.commit()
    if changed and space.sdk != "static":
        await apply_env_change(svc, space)
        session.refresh(space)
    return space


def set_visibility(
    svc: Services, session: Session, principal: Principal | None, owner: str, name: str, private: bool
) -> Space:
    """Make a Space private or public; the gateway applies it to the next request."""
    space = writable_space(session, principal, owner, name)
    space.private = private
    space.updated_at = _now()
    session.commit()
    svc.deployer.refresh_route(space)
    return space


# -------------------------------------------------------------------------------------- duplicate
async def duplicate(
    svc: Services,
    session: Session,
    principal: Principal | None,
    owner: str,
    name: str,
    to_id: str,
    *,
    private: bool | None = None,
    hardware: str | None = None,
    sleep_time: int | None = None,
    secrets: list[KeyValue] | None = None,
    variables: list[KeyValue] | None = None,
) -> Space:
    """Copy a Space's repository and variables (not its secrets) to ``to_id`` and build the copy.

    ``variables`` given here override copied ones with the same key; ``secrets`` are the new Space's.
    """
    source = readable_space(session, principal, owner, name)
    new_owner, _, new_name = to_id.partition("/")
    validate_name(new_name)
    if find_space(session, new_owner, new_name) is not None:
        raise Conflict(f"{to_id} already exists")
    if not svc.repos.exists(source.owner, source.name):
        raise NotFound(f"spaces/{source.space_id} has no repository")
    merged = {
        k: KeyValue(key=k, value=v["value"], description=v["description"])
        for k, v in variables_of(session, source).items()
    }
    for kv in variables or []:
        merged[kv.key] = kv
    space = create_space(
        svc,
        session,
        principal,
        new_owner,
        new_name,
        sdk=source.sdk,
        private=source.private if private is None else private,
        hardware=hardware,
        sleep_time=sleep_time,
        secrets=secrets,
        variables=list(merged.values()),
        init_repo=False,
    )
    space.card_data = dict(source.card_data or {})
    space.duplicated_from = source.space_id
    svc.repos.copy(source.owner, source.name, new_owner, new_name)
    session.commit()
    svc.deployer.register(space)
    head = svc.repos.head(new_owner, new_name)
    if head:
        await svc.deployer.on_push(space.id, head, pusher=principal.name if principal else None)
        session.refresh(space)
    return space
