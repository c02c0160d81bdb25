"""The gateway's walls between apps and the platform, against a real uvicorn and a real upstream.

The path form redirects browser navigations to the app's own origin and sandboxes everything it
serves; the platform's responses refuse framing; private apps in browsers go through the sign-in hop
(ticket -> access cookie), whose cookie works only for the Space it names and only from the app's
own origin or for navigations. ``tests/security`` proves the same in Chromium with a hostile Space.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from spaceyard_platform.gateway.access import ACCESS_COOKIE, AUTH_PATH, AppAccess

from .conftest import GatewayServer, Upstream

NAVIGATE = {"Sec-Fetch-Mode": "navigate", "Sec-Fetch-Site": "none", "Accept": "text/html"}


def echoed(resp: httpx.Response) -> dict[str, str]:
    return {k.lower(): v for k, v in resp.json()["headers"]}


class Authorizer:
    def can_read(self, space_id: str, token: str | None, session: str | None) -> bool:
        return token == "good-token"

    def can_read_grant(self, space_id: str, session_ref: str) -> bool:
        return session_ref == "owner-session"


@pytest.fixture
def access(gateway: GatewayServer) -> Iterator[AppAccess]:
    access = AppAccess(b"k" * 44, secure_origin=True)
    gateway.configure(authorizer=Authorizer(), access=access)
    yield access
    gateway.without_access()


def test_path_form_redirects_navigations_to_the_apps_origin(gateway: GatewayServer, upstream: Upstream) -> None:
    gateway.add("Olga/Path_App", upstream.endpoint)
    r = httpx.get(f"{gateway.url}/apps/Olga/Path_App/headers/a%2Fb?x=1&y=%20", headers=NAVIGATE)
    assert r.status_code == 302
    assert r.headers["location"] == f"http://olga-path-app.localhost:{gateway.port}/headers/a%2Fb?x=1&y=%20"
    # without the slash, and for a Space that does not exist (the redirect tells nothing)
    r = httpx.get(f"{gateway.url}/apps/Olga/Path_App", headers=NAVIGATE)
    assert r.headers["location"] == f"http://olga-path-app.localhost:{gateway.port}/"
    assert httpx.get(f"{gateway.url}/apps/nobody/none/", headers=NAVIGATE).status_code == 302
    # nothing can be injected into the redirect through the path
    r = httpx.get(f"{gateway.url}/apps/a%0d%0aSet-Cookie:%20x=1/b/", headers=NAVIGATE)
    assert r.status_code == 404 and "set-cookie" not in r.headers


def test_path_form_is_sandboxed_and_sets_no_cookie(gateway: GatewayServer, upstream: Upstream, tmp_path: Path) -> None:
    gateway.add("olga/sandboxed", upstream.endpoint, version="b1")
    r = httpx.get(f"{gateway.url}/apps/olga/sandboxed/headers", headers={"Accept": "text/html"})
    assert r.status_code == 200  # not a navigation (no Sec-Fetch-Mode): served, but inert in a browser
    assert "sandbox" in r.headers.get_list("content-security-policy")
    assert [c for c in r.headers.get_list("set-cookie") if not c.startswith("spaceyard_version=")] == []
    for missing in ("/apps/olga/nothing/x", "/apps/olga/sandboxed"):  # gateway pages and redirects too
        assert "sandbox" in httpx.get(gateway.url + missing).headers.get_list("content-security-policy")
    (tmp_path / "index.html").write_text("<script>document.cookie</script>")
    gateway.add("olga/static", None, static_root=tmp_path, disable_embedding=True)
    policies = httpx.get(f"{gateway.url}/apps/olga/static/").headers.get_list("content-security-policy")
    assert "sandbox" in policies and any(p.startswith("frame-ancestors") for p in policies)
    # on the app's own origin: no sandbox
    own = httpx.get(f"{gateway.url}/headers", headers={"Host": gateway.host("olga-sandboxed")})
    assert "sandbox" not in own.headers.get_list("content-security-policy")


def test_platform_pages_refuse_to_be_framed(gateway: GatewayServer) -> None:
    r = httpx.get(f"{gateway.url}/")
    assert r.headers["content-security-policy"] == "frame-ancestors 'self'"
    assert r.headers["x-frame-options"] == "SAMEORIGIN"


def test_private_app_navigation_hops_through_the_platform(
    gateway: GatewayServer, upstream: Upstream, access: AppAccess
) -> None:
    gateway.add("olga/secret", upstream.endpoint, private=True)
    host = gateway.host("olga-secret")
    for label in ("olga-secret", "olga-unknown"):  # an unknown Space hops the same way
        r = httpx.get(f"{gateway.url}/x/y?q=1", headers={"Host": gateway.host(label), **NAVIGATE})
        assert r.status_code == 302
        location = urlsplit(r.headers["location"])
        assert f"{location.scheme}://{location.netloc}" == gateway.settings.resolved_public_url
        assert location.path == "/auth/apps"
        assert parse_qs(location.query) == {"space": [label], "next": ["/x/y?q=1"]}
    # API calls without access: 404 as before, no hop
    assert httpx.get(f"{gateway.url}/headers", headers={"Host": host}).status_code == 404

    ticket = access.issue_ticket("olga/secret", "owner-session")
    r = httpx.get(f"{gateway.url}{AUTH_PATH}", params={"ticket": ticket, "next": "/headers"}, headers={"Host": host})
    assert r.status_code == 303 and r.headers["location"] == f"{AUTH_PATH}?next=%2Fheaders"
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(f"{ACCESS_COOKIE}=")
    for attribute in ("HttpOnly", "Secure", "SameSite=None", "Partitioned", "Path=/"):
        assert attribute in cookie
    assert "domain" not in cookie.lower()
    value = cookie.split(";")[0].split("=", 1)[1]
    jar = {"Cookie": f"{ACCESS_COOKIE}={value}; theme=dark", "Host": host}
    check = httpx.get(f"{gateway.url}{AUTH_PATH}", params={"next": "/headers"}, headers=jar)
    assert check.status_code == 303 and check.headers["location"] == "/headers"
    ok = httpx.get(f"{gateway.url}/headers", headers={**jar, "Sec-Fetch-Site": "same-origin"})
    assert ok.status_code == 200 and echoed(ok)["cookie"] == "theme=dark"  # the access cookie stays here

    # replayed, forged, for another Space, or a cookie presented as a ticket: refused
    for bad in (ticket, ticket[:-2] + "AA", access.issue_ticket("olga/other", "owner-session"), value):
        r = httpx.get(f"{gateway.url}{AUTH_PATH}", params={"ticket": bad}, headers={"Host": host})
        assert r.status_code == 403 and "set-cookie" not in r.headers
    # the cookie of another Space, a session that lost access, another origin calling: no access
    other = AppAccess(b"k" * 44, secure_origin=True)
    for forged in (
        other.cookie_value(access.redeem_ticket(access.issue_ticket("olga/other", "owner-session"), "olga/other")),  # type: ignore[arg-type]
        other.cookie_value(access.redeem_ticket(access.issue_ticket("olga/secret", "gone"), "olga/secret")),  # type: ignore[arg-type]
    ):
        r = httpx.get(f"{gateway.url}/headers", headers={"Host": host, "Cookie": f"{ACCESS_COOKIE}={forged}"})
        assert r.status_code == 404
    cross = httpx.get(
        f"{gateway.url}/headers", headers={**jar, "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "cors"}
    )
    assert cross.status_code == 404
    sibling = httpx.post(f"{gateway.url}/headers", headers={**jar, "Origin": f"http://{gateway.host('evil-app')}"})
    assert sibling.status_code == 404
    framed = httpx.get(
        f"{gateway.url}/headers", headers={**jar, "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"}
    )
    assert framed.status_code == 200  # the Space page's frame is a cross-site navigation
    # the cookie is not accepted on the path form (the platform's origin)
    assert httpx.get(f"{gateway.url}/apps/olga/secret/headers", headers={"Cookie": jar["Cookie"]}).status_code == 404


def test_sign_in_check_does_not_loop_when_the_cookie_was_refused(
    gateway: GatewayServer, upstream: Upstream, access: AppAccess
) -> None:
    gateway.add("olga/blocked", upstream.endpoint, private=True)
    r = httpx.get(
        f"{gateway.url}{AUTH_PATH}", params={"next": "//evil.example/x"}, headers={"Host": gateway.host("olga-blocked")}
    )
    assert r.status_code == 403 and "tab of its own" in r.json()["error"]
    assert "evil.example" not in r.text


def test_over_https_platform_cookies_are_host_prefixed_so_no_app_can_plant_them() -> None:
    """``__Host-`` cookies cannot be set with a ``Domain`` or from another host: an app on a sibling
    subdomain cannot fixate the session or the sign-in form's CSRF cookie."""
    from starlette.responses import Response

    from spaceyard_platform.gateway import headers as hdr
    from spaceyard_platform.sessions import login_csrf_cookie, session_cookie_name, set_session_cookie
    from spaceyard_platform.settings import Settings

    https = Settings(public_url="https://hub.example.com", apps_domain="spaces.example.com")
    assert session_cookie_name(https) == "__Host-spaceyard_session"
    assert login_csrf_cookie(https) == ("__Host-spaceyard_login_csrf", "/")
    response = Response()
    set_session_cookie(response, https, "raw")
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("__Host-spaceyard_session=raw;")
    assert "Secure" in cookie and "Path=/" in cookie and "domain" not in cookie.lower()
    local = Settings(port=8000)
    assert session_cookie_name(local) == "spaceyard_session" and login_csrf_cookie(local)[1] == "/login"
    # and the gateway strips both forms before any app
    raw = [(b"cookie", b"__Host-spaceyard_session=s; __Host-spaceyard_login_csrf=c; app=1")]
    assert hdr.filter_request_headers(raw) == [(b"cookie", b"app=1")]
