"""Identity: ``GET /api/whoami-v2`` as the Hub answers it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from sqlalchemy import select

from ..db.models import Membership, User
from ..deps import PrincipalDep, SessionDep
from ..errors import Unauthorized

router = APIRouter(prefix="/api")


@router.get("/whoami-v2")
def whoami(session: SessionDep, principal: PrincipalDep) -> Any:
    if principal is None:
        raise Unauthorized("Invalid credentials in Authorization header")
    orgs = session.execute(
        select(User, Membership.role)
        .join(Membership, Membership.org_id == User.id)
        .where(Membership.user_id == principal.user_id)
    ).all()
    return {
        "type": "user",
        "id": principal.user_id,
        "name": principal.name,
        "fullname": principal.name,
        "isPro": False,
        "canPay": False,
        "orgs": [
            {"type": "org", "id": o.id, "name": o.name, "fullname": o.fullname or o.name, "roleInOrg": role}
            for o, role in orgs
        ],
        "auth": {
            "type": "access_token",
            "accessToken": {"displayName": principal.token_name or "token", "role": principal.role},
        },
    }
