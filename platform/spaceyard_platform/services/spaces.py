"""Creating Spaces and the rules their names, keys and settings follow (the API's ``create_repo`` and the
web's New Space form both call :func:`create_space`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from spaceyard_builder.spaceconfig import SDKS as SDKS  # the one list (the pages import it from here)

from .. import hardware as hardware_check
from .. import names
from ..auth import Principal, can_write_namespace
from ..db.models import Space, SpaceSecret, SpaceVariable
from ..errors import BadRequest, Conflict, Forbidden, Unauthorized
from .lookup import find_space

if TYPE_CHECKING:
    from ..deps import Services


class KeyValue(BaseModel):
    """A secret or variable as given: key, value and an optional description."""

    key: str
    value: str = ""
    description: str | None = None


def validate_name(name: str) -> None:
    names.check_repo_name(name)


def validate_key(key: str) -> None:
    names.check_env_key(key)


def validate_keys(keys: list[str]) -> None:
    """Keys given together (a new Space's secrets and variables): valid, and distinct ignoring case."""
    seen: dict[str, str] = {}
    for key in keys:
        validate_key(key)
        other = seen.setdefault(key.lower(), key)
        if other != key or keys.count(key) > 1:
            raise BadRequest(f"Duplicate key {key!r}: secret and variable keys are unique, ignoring case")


def same_name(session: Session, owner: str, name: str) -> Space | None:
    """The Space whose id equals ``owner/name`` ignoring case, if any."""
    return session.scalar(
        select(Space).where(func.lower(Space.owner) == names.fold(owner), func.lower(Space.name) == names.fold(name))
    )


def claim_label(session: Session, owner: str, name: str, *, current: Space | None = None) -> str:
    """The subdomain ``owner/name`` gets; Conflict if the id exists in another case, BadRequest if another
    Space already serves on its address (``names`` module docstring)."""
    names.check_owner(owner)
    names.check_repo_name(name)
    clash = same_name(session, owner, name)
    if clash is not None and clash is not current:
        raise Conflict(f"You already created this space repo: {clash.space_id} (names ignore case)")
    label = names.hub_label(owner, name)
    if current is not None and names.fold(current.space_id) == names.fold(f"{owner}/{name}"):
        return current.app_label
    holder = session.scalar(select(Space).where(Space.subdomain == label))
    if holder is not None and holder is not current:
        raise BadRequest(names.subdomain_conflict_message(f"{owner}/{name}", label, holder.space_id))
    return label


def check_sleep_time(seconds: int) -> None:
    if seconds != -1 and seconds < 1:
        raise BadRequest("Sleep time must be a whole number of seconds >= 1, or -1 to never sleep")


def check_deep_sleep_after(seconds: int) -> None:
    if seconds < -1:
        raise BadRequest("Deep sleep after must be a whole number of seconds >= 0, or -1 to never sleep deeply")


def create_space(
    svc: Services,
    session: Session,
    principal: Principal | None,
    owner: str,
    name: str,
    *,
    sdk: str,
    private: bool = False,
    hardware: str | None = None,
    sleep_time: int | None = None,
    secrets: list[KeyValue] | None = None,
    variables: list[KeyValue] | None = None,
    init_repo: bool = True,
) -> Space:
    """Create a Space row and (unless ``init_repo`` is false) its bare repository; the caller commits.
    The row's stage is the column default (``NO_APP_FILE``): only the deployer writes stages."""
    if principal is None:
        raise Unauthorized("Authentication required to create a Space")
    names.check_owner(owner)
    if not can_write_namespace(session, principal, owner):
        raise Forbidden(f"You don't have the rights to create a Space in {owner!r}")
    validate_name(name)
    if sdk not in SDKS:
        raise BadRequest(f"Invalid sdk {sdk!r}: must be one of {', '.join(SDKS)}")
    hardware = hardware or "cpu-basic"
    if hardware not in svc.flavors:
        raise BadRequest(f"Invalid hardware flavor {hardware!r}. Valid flavors: {', '.join(svc.flavors)}")
    hardware_check.check_available(svc, hardware)
    if sleep_time is not None:
        check_sleep_time(sleep_time)
    if find_space(session, owner, name) is not None:
        raise Conflict("You already created this space repo")
    label = claim_label(session, owner, name)
    validate_keys([kv.key for kv in (secrets or []) + (variables or [])])
    now = datetime.now(UTC)
    space = Space(
        owner=owner,
        name=name,
        sdk=sdk,
        private=private,
        hardware=hardware,
        sleep_time=sleep_time,
        card_data={},
        subdomain=label,
        created_at=now,
        updated_at=now,
    )
    session.add(space)
    try:
        session.flush()
    except IntegrityError as exc:  # created concurrently: same id or same address
        raise Conflict(f"Cannot create {owner}/{name}: another conflicting operation is in progress") from exc
    for kv in secrets or []:
        session.add(
            SpaceSecret(
                space_pk=space.id,
                key=kv.key,
                value_encrypted=svc.secretbox.encrypt(kv.value),
                description=kv.description,
                updated_at=now,
            )
        )
    for kv in variables or []:
        session.add(
            SpaceVariable(space_pk=space.id, key=kv.key, value=kv.value, description=kv.description, updated_at=now)
        )
    if init_repo:
        svc.repos.init(owner, name)
    return space
