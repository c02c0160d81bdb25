"""Header rules of the gateway: what is forwarded to apps and what visitors get back.

Everything works on ASGI's raw ``(bytes, bytes)`` header pairs with lowercase names (ASGI servers
lowercase request header names; response names from apps are lowercased here), so nothing is parsed
more than once per request.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from ..sessions import SESSION_COOKIE as SESSION_COOKIE  # one definition, with the platform's sessions

PLATFORM_COOKIES: frozenset[bytes] = frozenset(
    {
        b"spaceyard_session",
        b"__Host-spaceyard_session",
        b"spaceyard_login_csrf",
        b"__Host-spaceyard_login_csrf",
        b"spaceyard_app_access",
        b"spaceyard_version",
    }
)
"""Cookies of the platform and the gateway: never forwarded to an app, never set by one."""
_COOKIE_MARKER = b"spaceyard_"  # in every name above

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
"""Used for the access decision, then dropped for every Space, public or private."""

_WS_HANDSHAKE: frozenset[bytes] = frozenset(
    {b"sec-websocket-key", b"sec-websocket-version", b"sec-websocket-extensions", b"sec-websocket-protocol"}
)

_RESPONSE_DROP: frozenset[bytes] = HOP_BY_HOP | {b"x-frame-options", b"date", b"server"}
"""Also dropped: the app's ``Date`` and ``Server`` (the ASGI server adds its own, as nginx does)."""

PATH_FORM_DROP: frozenset[bytes] = frozenset({b"set-cookie", b"clear-site-data"})
"""On the path form (the platform's origin) an app may neither set cookies nor clear the platform's."""
_RESPONSE_DROP_PATH_FORM = _RESPONSE_DROP | PATH_FORM_DROP

SANDBOX: tuple[bytes, bytes] = (b"content-security-policy", b"sandbox")
"""Every response on the path form: a document gets an opaque origin with no scripts, forms, popups
or plugins, so nothing an app serves there runs as the platform. API clients ignore it."""


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


def strip_cookies(cookie_header: bytes, names: frozenset[bytes] = PLATFORM_COOKIES) -> bytes:
    """The ``Cookie`` header without the cookies ``names`` (empty when nothing else is left)."""
    kept = [
        part.strip()
        for part in cookie_header.split(b";")
        if part.strip() and part.strip().partition(b"=")[0] not in names
    ]
    return b"; ".join(kept)


def filter_request_headers(
    headers: Sequence[tuple[bytes, bytes]], *, websocket: bool = False
) -> list[tuple[bytes, bytes]]:
    """Request headers to forward: no hop-by-hop, no forwarding headers, no credentials.

    ``Authorization``, ``x-hf-authorization`` and the platform's cookies (:data:`PLATFORM_COOKIES`)
    are dropped for every Space: they are Spaceyard credentials, already used for the access decision.
    The caller adds Host and the ``X-Forwarded-*`` set.
    """
    drop = _REQUEST_DROP
    out: list[tuple[bytes, bytes]] = []
    listed = False
    for name, value in headers:
        if name in drop or name in _CREDENTIALS:
            if name == b"connection":
                listed = True
            continue
        if name == b"cookie" and _COOKIE_MARKER in value:
            value = strip_cookies(value)
            if not value:
                continue
        out.append((name, value))
    extra_drop: set[bytes] = set()
    if listed:
        extra_drop |= connection_listed(headers)
    if websocket:
        extra_drop |= _WS_HANDSHAKE
    if extra_drop:
        out = [(n, v) for n, v in out if n not in extra_drop]
    return out


def upstream_request_headers(
    headers: Sequence[tuple[bytes, bytes]], *, websocket: bool = False
) -> list[tuple[str, str]]:
    """:func:`filter_request_headers` as ``str`` pairs (for aiohttp)."""
    return [(n.decode("latin-1"), v.decode("latin-1")) for n, v in filter_request_headers(headers, websocket=websocket)]


def host_only_cookie(set_cookie: bytes) -> bytes | None:
    """An app's ``Set-Cookie`` on its own origin: without ``Domain`` (so it stays on the app's host and
    reaches neither the platform nor sibling apps); ``None`` for a cookie named like a platform one."""
    first, _, attributes = set_cookie.partition(b";")
    if first.partition(b"=")[0].strip() in PLATFORM_COOKIES:
        return None
    if b"domain" not in attributes.lower():
        return set_cookie
    kept = [a for a in attributes.split(b";") if a.strip().partition(b"=")[0].strip().lower() != b"domain"]
    return b";".join([first, *kept])


def response_headers(
    raw: Iterable[tuple[bytes, bytes]],
    extra: list[tuple[bytes, bytes]],
    *,
    disable_embedding: bool,
    path_form: bool = False,
) -> list[tuple[bytes, bytes]]:
    """Response headers for the visitor: hop-by-hop and ``X-Frame-Options`` removed, Space headers added.

    Embedding is the Space's choice, not the app's: an app's ``X-Frame-Options`` and CSP
    ``frame-ancestors`` never apply. ``extra`` (from :func:`route_headers`) carries the Space's
    ``custom_headers`` and, with ``disable_embedding``, the platform's ``frame-ancestors`` policy.
    Cookies: on the path form (the platform's origin) the app's ``Set-Cookie`` and ``Clear-Site-Data``
    are dropped and :data:`SANDBOX` is added; on the app's own origin cookies are made host-only.
    """
    out: list[tuple[bytes, bytes]] = []
    listed: frozenset[bytes] | None = None
    drop = _RESPONSE_DROP_PATH_FORM if path_form else _RESPONSE_DROP
    for name, value in raw:
        lname = name.lower()
        if lname in drop:
            if lname == b"connection":
                listed = connection_listed([(lname, value)]) | (listed or frozenset())
            continue
        if lname == b"set-cookie":
            cookie = host_only_cookie(value)
            if cookie is None:
                continue
            value = cookie
        elif lname == b"content-security-policy" and b"frame-ancestors" in value.lower():
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
    if path_form:
        out.append(SANDBOX)
    return out


_ADDITIVE: frozenset[bytes] = frozenset({b"content-security-policy", b"set-cookie"})
"""Headers the platform adds next to the app's own instead of replacing them."""


def _without_frame_ancestors(csp: bytes) -> bytes:
    parts = [p.strip() for p in csp.split(b";")]
    return b"; ".join(p for p in parts if p and not p.lower().startswith(b"frame-ancestors"))


def route_headers(custom: Mapping[str, str], disable_embedding: bool, public_url: str) -> list[tuple[bytes, bytes]]:
    """The headers a Space adds to every response (computed once per route object, then cached)."""
    extra = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in custom.items()]
    if disable_embedding:
        extra.append((b"content-security-policy", f"frame-ancestors 'self' {public_url}".encode("latin-1")))
    return extra
