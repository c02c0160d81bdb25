"""Header rules of the gateway: what is forwarded to apps and what visitors get back.

Everything works on ASGI's raw ``(bytes, bytes)`` header pairs with lowercase names (ASGI servers
lowercase request header names; response names from apps are lowercased here), so nothing is parsed
more than once per request.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

SESSION_COOKIE = "spaceyard_session"

HOP_BY_HOP: frozenset[bytes] = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"trailers",
        b"transfer-encoding",
        b"upgrade",
    }
)
"""RFC 9110 §7.6.1 hop-by-hop fields (plus the ``Proxy-*`` family); ``Connection`` may list more."""

_REQUEST_DROP: frozenset[bytes] = HOP_BY_HOP | {
    b"host",
    b"expect",  # the ASGI server already answered ``100-continue``
    b"x-forwarded-for",
    b"x-forwarded-proto",
    b"x-forwarded-host",
    b"x-forwarded-prefix",
    b"x-forwarded-port",
    b"x-gradio-server",
    b"forwarded",
    b"x-real-ip",
}
"""Dropped from requests and set by the gateway itself (never trusted from the visitor)."""

_CREDENTIALS: frozenset[bytes] = frozenset({b"authorization", b"x-hf-authorization"})

_WS_HANDSHAKE: frozenset[bytes] = frozenset(
    {b"sec-websocket-key", b"sec-websocket-version", b"sec-websocket-extensions", b"sec-websocket-protocol"}
)

_SESSION_MARKER = SESSION_COOKIE.encode()

_RESPONSE_DROP: frozenset[bytes] = HOP_BY_HOP | {b"x-frame-options", b"date", b"server"}
"""Also dropped: the app's ``Date`` and ``Server`` (the ASGI server adds its own, as nginx does)."""


def connection_listed(headers: Iterable[tuple[bytes, bytes]]) -> frozenset[bytes]:
    """Names listed in ``Connection`` headers (hop-by-hop too), lowercased."""
    listed: set[bytes] = set()
    for name, value in headers:
        if name == b"connection":
            listed.update(token.strip().lower() for token in value.split(b","))
    return frozenset(listed)


def bearer(value: bytes | None) -> str | None:
    """The token of ``Bearer TOKEN`` (or a bare token, as some clients send in ``x-hf-authorization``)."""
    if not value:
        return None
    text = value.decode("latin-1").strip()
    if text[:7].lower() == "bearer ":
        text = text[7:].strip()
    return text or None


def cookie_value(cookie_header: bytes, name: str) -> str | None:
    for part in cookie_header.decode("latin-1").split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key == name:
            return value.strip().strip('"')
    return None


def strip_cookie(cookie_header: bytes, name: str) -> bytes:
    """The ``Cookie`` header without the cookie ``name`` (empty when nothing else is left)."""
    kept = [
        part.strip()
        for part in cookie_header.split(b";")
        if part.strip() and part.strip().partition(b"=")[0] != name.encode("latin-1")
    ]
    return b"; ".join(kept)


def filter_request_headers(
    headers: Sequence[tuple[bytes, bytes]],
    *,
    strip_credentials: bool,
    websocket: bool = False,
) -> list[tuple[bytes, bytes]]:
    """Request headers to forward: no hop-by-hop, no forwarding headers, no platform session cookie.

    ``strip_credentials`` also drops ``Authorization`` and ``x-hf-authorization`` (private Spaces: the
    token was a Spaceyard token used for access). The caller adds Host and the ``X-Forwarded-*`` set.
    """
    drop = _REQUEST_DROP
    out: list[tuple[bytes, bytes]] = []
    listed = False
    for name, value in headers:
        if name in drop:
            if name == b"connection":
                listed = True
            continue
        if name == b"cookie" and _SESSION_MARKER in value:
            value = strip_cookie(value, SESSION_COOKIE)
            if not value:
                continue
        out.append((name, value))
    extra_drop: set[bytes] = set()
    if listed:
        extra_drop |= connection_listed(headers)
    if strip_credentials:
        extra_drop |= _CREDENTIALS
    if websocket:
        extra_drop |= _WS_HANDSHAKE
    if extra_drop:
        out = [(n, v) for n, v in out if n not in extra_drop]
    return out


def upstream_request_headers(
    headers: Sequence[tuple[bytes, bytes]],
    *,
    strip_credentials: bool,
    websocket: bool = False,
) -> list[tuple[str, str]]:
    """:func:`filter_request_headers` as ``str`` pairs (for aiohttp)."""
    return [
        (n.decode("latin-1"), v.decode("latin-1"))
        for n, v in filter_request_headers(headers, strip_credentials=strip_credentials, websocket=websocket)
    ]


def response_headers(
    raw: Iterable[tuple[bytes, bytes]],
    extra: list[tuple[bytes, bytes]],
    *,
    disable_embedding: bool,
) -> list[tuple[bytes, bytes]]:
    """Response headers for the visitor: hop-by-hop and ``X-Frame-Options`` removed, Space headers added.

    Embedding is the Space's choice, not the app's: an app's ``X-Frame-Options`` and CSP
    ``frame-ancestors`` never apply. ``extra`` (from :func:`route_headers`) carries the Space's
    ``custom_headers`` and, with ``disable_embedding``, the platform's ``frame-ancestors`` policy.
    """
    out: list[tuple[bytes, bytes]] = []
    listed: frozenset[bytes] | None = None
    drop = _RESPONSE_DROP
    for name, value in raw:
        lname = name.lower()
        if lname in drop:
            if lname == b"connection":
                listed = connection_listed([(lname, value)]) | (listed or frozenset())
            continue
        if lname == b"content-security-policy" and b"frame-ancestors" in value.lower():
            value = _without_frame_ancestors(value)
            if not value:
                continue
        out.append((lname, value))
    if listed:
        out = [(n, v) for n, v in out if n not in listed]
    if extra:
        names = {n for n, _ in extra}
        out = [(n, v) for n, v in out if n not in names or n in _ADDITIVE]
        out.extend(extra)
    return out


_ADDITIVE: frozenset[bytes] = frozenset({b"content-security-policy", b"set-cookie"})
"""Headers the platform adds next to the app's own instead of replacing them."""


def _without_frame_ancestors(csp: bytes) -> bytes:
    parts = [p.strip() for p in csp.split(b";")]
    return b"; ".join(p for p in parts if p and not p.lower().startswith(b"frame-ancestors"))


def route_headers(custom: dict[str, str], disable_embedding: bool, public_url: str) -> list[tuple[bytes, bytes]]:
    """The headers a Space adds to every response (computed once per route object, then cached)."""
    extra = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in custom.items()]
    if disable_embedding:
        extra.append((b"content-security-policy", f"frame-ancestors 'self' {public_url}".encode("latin-1")))
    return extra
