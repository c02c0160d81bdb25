"""Short-lived CAS credentials: Xet access tokens (scoped to one Space, read or write) and signed
xorb download URLs (scoped to one xorb's byte range). Both are Fernet tokens (authenticated
encryption with the platform's secret key), so the CAS keeps no token table and a token cannot be
forged, widened or moved to another Space.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from cryptography.fernet import InvalidToken

from ..crypto import SecretBox

PREFIX = "xet_"
MAX_TOKEN_LEN = 4096


@dataclass(frozen=True)
class XetGrant:
    scope: str  # the Space's primary key
    write: bool
    expires: int


def issue(box: SecretBox, scope: str, write: bool, ttl: int) -> tuple[str, XetGrant]:
    grant = XetGrant(scope, write, int(time.time()) + ttl)
    token = PREFIX + box.encrypt(json.dumps({"k": "cas", "s": scope, "w": write, "e": grant.expires}))
    return token, grant


def verify(box: SecretBox, authorization: str | None) -> XetGrant | None:
    """The grant of a ``Bearer xet_...`` header, or None if it is missing, forged or expired."""
    if not authorization or len(authorization) > MAX_TOKEN_LEN:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.startswith(PREFIX):
        return None
    try:
        claims = json.loads(box.decrypt(token[len(PREFIX) :].strip()))
    except (InvalidToken, ValueError):
        return None
    if not isinstance(claims, dict) or claims.get("k") != "cas" or int(claims.get("e", 0)) < time.time():
        return None
    return XetGrant(str(claims["s"]), bool(claims["w"]), int(claims["e"]))


def sign_range(box: SecretBox, xorb_hex: str, start: int, end: int, ttl: int) -> str:
    """A token for ``GET`` of bytes ``start..end`` (inclusive) of one xorb."""
    return box.encrypt(json.dumps({"k": "xorb", "x": xorb_hex, "a": start, "b": end, "e": int(time.time()) + ttl}))


def signed_range(box: SecretBox, token: str, xorb_hex: str) -> tuple[int, int] | None:
    if len(token) > MAX_TOKEN_LEN:
        return None
    try:
        claims = json.loads(box.decrypt(token))
    except (InvalidToken, ValueError):
        return None
    if not isinstance(claims, dict) or claims.get("k") != "xorb" or claims.get("x") != xorb_hex:
        return None
    if int(claims.get("e", 0)) < time.time():
        return None
    return int(claims["a"]), int(claims["b"])
