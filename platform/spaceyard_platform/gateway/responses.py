"""Small ASGI response helpers of the gateway: header lookup, redirects, header-adding ``send`` wrappers."""

from __future__ import annotations

from urllib.parse import quote

from . import access as acc
from .asgi import Message, Scope, Send

PLATFORM_FRAMING: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", b"frame-ancestors 'self'"),
    (b"x-frame-options", b"SAMEORIGIN"),
)
"""Added to every response of the platform itself: no app (nor any other site) may frame its pages."""


def header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


def is_navigation(scope: Scope) -> bool:
    """A browser loading a page (or a frame): GET, wants HTML, and says it navigates when it can."""
    if scope["method"] != "GET":
        return False
    accept = header(scope, b"accept") or b""
    mode = header(scope, b"sec-fetch-mode")
    return b"text/html" in accept and (mode is None or mode == b"navigate")


async def redirect_to_slash(scope: Scope, send: Send) -> None:
    location = scope["path"] + "/"
    query = scope.get("query_string") or b""
    await redirect(send, 308, location.encode("utf-8") + (b"?" + query if query else b""))


async def redirect(send: Send, status: int, location: bytes, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    headers = [(b"location", location), (b"content-length", b"0"), (b"cache-control", b"no-store"), *(extra or [])]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b""})


def safe_next(target: str) -> str:
    """A path on the same origin (no scheme, host, or backslash tricks), not the sign-in path itself."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target or target.startswith(acc.AUTH_PATH):
        return "/"
    if any(ord(c) < 0x21 or ord(c) > 0x7E for c in target):
        return quote(target, safe="/?&=%:;@!$'()*+,-._~")
    return target


def platform_send(send: Send) -> Send:
    """The platform's own responses: :data:`PLATFORM_FRAMING` unless they set their own policy."""

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", []))
            names = {n.lower() for n, _ in headers}
            headers += [(n, v) for n, v in PLATFORM_FRAMING if n not in names]
            message = {**message, "headers": headers}
        await send(message)

    return wrapped


def with_headers(
    send: Send, extra: list[tuple[bytes, bytes]], *, drop: frozenset[bytes] = frozenset(), additive: bool = False
) -> Send:
    """``send`` adding ``extra`` (replacing headers of the same name unless ``additive``) and removing
    ``drop`` from responses the gateway did not build header by header (static files, pages)."""
    if not extra and not drop:
        return send
    names = drop | ({n for n, _ in extra} if not additive else set())

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = dict(message)
            kept = [(n, v) for n, v in message.get("headers", []) if n.lower() not in names]
            message["headers"] = kept + list(extra)
        await send(message)

    return wrapped
