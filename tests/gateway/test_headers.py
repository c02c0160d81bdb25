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
    raw = [
        (b"host", b"a-b.localhost:8000"),
        (b"authorization", b"Bearer platform"),
        (b"x-hf-authorization", b"Bearer platform"),
        (b"cookie", b"spaceyard_session=s; theme=dark"),
        (b"connection", b"keep-alive, x-secret"),
        (b"x-secret", b"1"),
        (b"accept", b"*/*"),
    ]
    private = hdr.filter_request_headers(raw, strip_credentials=True)
    assert private == [(b"cookie", b"theme=dark"), (b"accept", b"*/*")]
    public = dict(hdr.filter_request_headers(raw, strip_credentials=False))
    assert public[b"authorization"] == b"Bearer platform"
    assert hdr.bearer(b"Bearer  tok ") == "tok" and hdr.bearer(b"tok") == "tok" and hdr.bearer(None) is None
