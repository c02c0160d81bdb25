"""The header rules on their own (the proxy tests cover them end to end)."""

from __future__ import annotations

from spaceyard_platform.gateway import headers as hdr


def test_response_headers_replace_but_keep_cookies_and_policies() -> None:
    raw = [
        (b"Content-Type", b"text/html"),
        (b"Set-Cookie", b"app=1"),
        (b"Cross-Origin-Opener-Policy", b"unsafe-none"),
        (b"Content-Security-Policy", b"default-src 'self'; frame-ancestors 'none'"),
        (b"X-Frame-Options", b"DENY"),
        (b"Transfer-Encoding", b"chunked"),
    ]
    extra = [
        *hdr.route_headers({"cross-origin-opener-policy": "same-origin"}, True, "http://hub.example"),
        (b"set-cookie", b"platform=2"),
    ]
    out = hdr.response_headers(raw, extra, disable_embedding=True)
    assert (b"content-type", b"text/html") in out
    assert (b"set-cookie", b"app=1") in out and (b"set-cookie", b"platform=2") in out
    assert [v for n, v in out if n == b"cross-origin-opener-policy"] == [b"same-origin"]
    assert (b"content-security-policy", b"default-src 'self'") in out
    assert (b"content-security-policy", b"frame-ancestors 'self' http://hub.example") in out
    assert not any(n in (b"x-frame-options", b"transfer-encoding") for n, _ in out)


def test_request_headers_strip_platform_credentials() -> None:
    """For every Space, public or private: no token, no platform cookie reaches the app."""
    raw = [
        (b"host", b"a-b.localhost:8000"),
        (b"authorization", b"Bearer platform"),
        (b"x-hf-authorization", b"Bearer platform"),
        (
            b"cookie",
            b"spaceyard_session=s; theme=dark; spaceyard_app_access=a; spaceyard_login_csrf=c; spaceyard_version=v",
        ),
        (b"connection", b"keep-alive, x-secret"),
        (b"x-secret", b"1"),
        (b"accept", b"*/*"),
    ]
    assert hdr.filter_request_headers(raw) == [(b"cookie", b"theme=dark"), (b"accept", b"*/*")]
    only_platform = [(b"cookie", b"spaceyard_session=s")]
    assert hdr.filter_request_headers(only_platform) == []  # no empty Cookie header either
    assert hdr.bearer(b"Bearer  tok ") == "tok" and hdr.bearer(b"tok") == "tok" and hdr.bearer(None) is None


def test_app_cookies_are_host_only_on_the_app_origin_and_dropped_on_the_path_form() -> None:
    raw = [
        (b"Set-Cookie", b"a=1; Domain=localhost; Path=/; HttpOnly"),
        (b"Set-Cookie", b"b=2;domain=.example.com;Secure"),
        (b"Set-Cookie", b"spaceyard_session=evil; Path=/"),
        (b"Set-Cookie", b"spaceyard_app_access=forged"),
        (b"Set-Cookie", b"c=3; Path=/x"),
        (b"Clear-Site-Data", b'"cookies"'),
    ]
    own = hdr.response_headers(raw, [], disable_embedding=False)
    assert [v for n, v in own if n == b"set-cookie"] == [b"a=1; Path=/; HttpOnly", b"b=2;Secure", b"c=3; Path=/x"]
    assert (b"content-security-policy", b"sandbox") not in own
    stamp = (b"set-cookie", b"spaceyard_version=7; Path=/apps/o/n; HttpOnly; SameSite=Lax")
    path = hdr.response_headers(raw, [stamp], disable_embedding=False, path_form=True)
    assert [v for n, v in path if n == b"set-cookie"] == [stamp[1]]  # the gateway's own stamp only
    assert not any(n == b"clear-site-data" for n, _ in path)
    assert (b"content-security-policy", b"sandbox") in path
