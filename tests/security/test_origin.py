"""App code never runs on the platform's origin: a hostile Gradio Space, a signed-in visitor, Chromium.

The probe Space (``spaces/origin_probe``) runs JavaScript on load that tries to act as its visitor:
call the platform's API with the visitor's session (read a private Space, make it public), read
``document.cookie``, toss a cookie with ``Domain=localhost`` and one named like the platform's session,
set the same from its responses, and frame the platform. Opened on the path form and on its own
origin, in its own tab and in the Space page's frame, it must find nothing, and the visitor's session
must come out unchanged. Private apps open for their owner through the sign-in hop, and for nobody
else; tickets cannot be forged, replayed, or used for another Space.
"""

# ruff: noqa: F811  (the browser fixtures of tests/web, imported, are parameters here)
from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Frame, Page, Route, expect

from tests.hub.conftest import cli_token
from tests.security.origin_support import PRIVATE_PROBE, PROBE, VICTIM, VICTIM_SECRET, app_origin, deploy, seen
from tests.support import Server
from tests.web.conftest import base_url, browser, playwright, signed_in  # noqa: F401 - fixtures

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PLATFORM_COOKIES = ("spaceyard_session", "spaceyard_app_access", "spaceyard_login_csrf")


@pytest.fixture(scope="module")
def deployed(server: Server) -> None:
    deploy(server)


@pytest.fixture
def page(signed_in: BrowserContext, deployed: None) -> Iterator[Page]:
    p = signed_in.new_page()
    yield p
    p.close()


def platform_cookies(context: BrowserContext) -> list[dict[str, Any]]:
    return [dict(c) for c in context.cookies() if c["domain"] in ("localhost", ".localhost")]


def findings(frame: Page | Frame) -> dict[str, Any]:
    frame.wait_for_function("() => window.__probe !== undefined", timeout=60_000)
    result: dict[str, Any] = frame.evaluate("() => window.__probe")
    return result


def assert_found_nothing(result: dict[str, Any], session: str, server: Server) -> None:
    # it ran on the app's own origin, never the platform's
    assert result["origin"] == app_origin(server, PROBE) or result["origin"] == app_origin(server, PRIVATE_PROBE)
    for key in ("cookie_before", "cookie_after", "cookie_final"):
        assert session not in result[key], key
        assert "spaceyard_app_access" not in result[key]
    # the platform's API, called with credentials: nothing readable, nothing done
    for key in ("whoami_platform", "private_info", "private_files", "make_public_json"):
        answer = result[key]
        assert "error" in answer, (key, answer)  # CORS: the answer never reaches the app's script
    assert "admin" not in result["whoami_relative"].get("body", "")  # the app's own origin: its own 404
    echo = result["echo"]["body"]
    for name in (*PLATFORM_COOKIES, session, "authorization"):
        assert name not in echo, name


def test_path_form_navigation_lands_on_the_apps_origin(page: Page, base_url: str, server: Server) -> None:
    response = page.goto(f"{base_url}/apps/{PROBE}/?probe=1&x=%20y")
    assert response is not None and response.ok
    assert page.url == f"{app_origin(server, PROBE)}/?probe=1&x=%20y"
    assert findings(page)["origin"] == app_origin(server, PROBE)


def test_the_probe_finds_nothing_on_its_own_origin(page: Page, signed_in: BrowserContext, server: Server) -> None:
    before = platform_cookies(signed_in)
    session = next(c["value"] for c in before if c["name"] == "spaceyard_session")
    page.goto(f"{app_origin(server, PROBE)}/")
    result = findings(page)
    assert_found_nothing(result, session, server)
    # its own cookies stay on its own host; nothing was tossed to the platform's
    assert platform_cookies(signed_in) == before
    app_host = app_origin(server, PROBE).split("//")[1].split(":")[0]
    tossed = [c for c in signed_in.cookies() if c["name"].startswith("tossed")]
    assert tossed and all(c["domain"] == app_host for c in tossed), tossed  # made host-only
    assert {c["name"] for c in signed_in.cookies(app_origin(server, PROBE))} >= {"probe_own"}
    # it could not frame the platform
    page.wait_for_timeout(500)
    assert not [f for f in page.frames if f.url.startswith(result["platform"])]
    # the visitor is still signed in as themselves, and the private Space is still private
    me = signed_in.request.get(f"{result['platform']}/api/whoami-v2")
    assert me.ok and me.json()["name"] == "admin"
    assert server.api("GET", f"/api/spaces/{VICTIM}").json()["private"] is True


def test_the_path_form_is_inert_in_a_browser_that_is_not_redirected(
    page: Page,
    signed_in: BrowserContext,
    base_url: str,
    server: Server,
) -> None:
    """Chromium sends ``Sec-Fetch-Mode: navigate`` for every document (tab, frame, ``<object>``), so
    it is always redirected. A browser that sends no Fetch Metadata gets the document itself: what
    the gateway answers it (fetched here without those headers) is rendered by Chromium at the
    platform's URL, and the ``sandbox`` policy leaves it an opaque origin where no script runs."""
    session = next(c["value"] for c in signed_in.cookies() if c["name"] == "spaceyard_session")

    def as_an_older_browser(route: Route) -> None:
        r = httpx.get(route.request.url, headers={"Accept": "text/html", "Cookie": f"spaceyard_session={session}"})
        headers = {k: v for k, v in r.headers.items() if k not in ("content-encoding", "content-length")}
        assert "sandbox" in r.headers.get_list("content-security-policy")
        assert [c for c in r.headers.get_list("set-cookie") if not c.startswith("spaceyard_version=")] == []
        route.fulfill(status=r.status_code, headers=headers, body=r.content)

    page.route(f"{base_url}/apps/**", as_an_older_browser)
    url = f"{base_url}/apps/{PROBE}/probe/page"
    page.goto(url)
    assert page.url == url
    expect(page.get_by_role("heading", name="probe")).to_be_visible()
    assert page.evaluate("() => self.origin") == "null"
    assert page.evaluate("() => window.__probeStarted === undefined")  # its script never ran
    cookie = page.evaluate("() => { try { return document.cookie; } catch (e) { return e.name; } }")
    assert cookie == "SecurityError"
    page.unroute(f"{base_url}/apps/**")


def test_the_app_works_in_the_space_page_frame(page: Page, base_url: str, server: Server) -> None:
    page.goto(f"{base_url}/spaces/{PROBE}")
    frame_el = page.locator("iframe#app")
    expect(frame_el).to_have_attribute("src", f"{app_origin(server, PROBE)}/")
    app = page.frame_locator("iframe#app")
    app.get_by_role("button", name="Whoami").click()
    seen_by_gradio = app.get_by_label("Seen")
    expect(seen_by_gradio).to_have_value(re.compile(r"^\{"), timeout=30_000)
    assert seen_by_gradio.input_value() == '{"authorization": null, "x-hf-authorization": null, "cookie": null}' or (
        "spaceyard" not in seen_by_gradio.input_value()
    )
    inner = next(f for f in page.frames if f.url.startswith(app_origin(server, PROBE)))
    assert findings(inner)["origin"] == app_origin(server, PROBE)


def test_a_private_app_opens_for_its_owner_through_the_sign_in_hop(
    page: Page,
    signed_in: BrowserContext,
    base_url: str,
    server: Server,
) -> None:
    origin = app_origin(server, PRIVATE_PROBE)
    hops: list[str] = []
    page.on("request", lambda r: hops.append(r.url) if r.is_navigation_request() else None)
    response = page.goto(f"{origin}/?after=hop")
    assert response is not None and response.ok
    assert page.url == f"{origin}/?after=hop"
    assert any(u.startswith(f"{base_url}/auth/apps?") for u in hops), hops
    session = next(c["value"] for c in signed_in.cookies() if c["name"] == "spaceyard_session")
    assert_found_nothing(findings(page), session, server)
    access = [c for c in signed_in.cookies(origin) if c["name"] == "spaceyard_app_access"]
    assert len(access) == 1 and access[0]["httpOnly"] and access[0]["domain"] == origin.split("//")[1].split(":")[0]
    # and inside the Space page, where the app's frame is a third party (partitioned cookie)
    page.goto(f"{base_url}/spaces/{PRIVATE_PROBE}")
    app = page.frame_locator("iframe#app")
    app.get_by_role("button", name="Whoami").click()
    expect(app.get_by_label("Seen")).to_have_value(re.compile(r"^\{"), timeout=30_000)
    # the access cookie never reached the app
    credentials = seen(server, PRIVATE_PROBE)["credentials"]
    assert not [c for c in credentials if any(n in c.get("cookie", "") for n in PLATFORM_COOKIES)], credentials


def test_a_private_app_is_404_to_others_in_the_browser(
    browser: Browser,
    base_url: str,
    server: Server,
    deployed: None,
) -> None:
    origin = app_origin(server, PRIVATE_PROBE)
    mallory_token = cli_token(server, "origin-mallory", "write")
    context = browser.new_context()
    try:
        page = context.new_page()
        # signed out: the hop asks to sign in on the platform
        page.goto(f"{origin}/")
        assert page.url.startswith(f"{base_url}/login?")
        page.get_by_label("Access token").fill(mallory_token)
        page.get_by_role("button", name="Sign in").click()
        # signed in as someone else: the same 404 as for a Space that does not exist
        page.wait_for_load_state()
        assert page.url.startswith(f"{base_url}/auth/apps?")
        expect(page.get_by_role("heading", level=1)).to_have_text("404 — not found")
        unknown = page.goto(f"{app_origin(server, 'admin/no-such-space')}/")
        assert unknown is not None and unknown.status == 404
        assert not [c for c in context.cookies() if c["name"] == "spaceyard_app_access"]
        # nor can she read the victim through its own origin or the path form
        for url in (f"{app_origin(server, VICTIM)}/", f"{base_url}/apps/{VICTIM}/"):
            r = page.goto(url)
            assert r is not None and r.status == 404 and VICTIM_SECRET not in page.content()
    finally:
        context.close()


def ticket_for(server: Server, session: str, label: str) -> tuple[str, str]:
    """Walk the platform's half of the hop with a session cookie; the ticket and the origin it is for."""
    r = httpx.get(
        f"{server.url}/auth/apps",
        params={"space": label, "next": "/"},
        headers={"Cookie": f"spaceyard_session={session}"},
        timeout=30,
    )
    assert r.status_code == 303, r.text
    target = urlsplit(r.headers["location"])
    return parse_qs(target.query)["ticket"][0], target.netloc


def test_tickets_are_single_use_signed_and_bound_to_their_space(
    signed_in: BrowserContext,
    server: Server,
    deployed: None,
) -> None:
    session = next(c["value"] for c in signed_in.cookies() if c["name"] == "spaceyard_session")
    ticket, host = ticket_for(server, session, "admin-origin-probe-private")
    assert host == f"admin-origin-probe-private.localhost:{server.port}"

    def redeem(value: str, space_host: str = host) -> httpx.Response:
        return httpx.get(
            f"{server.url}/__spaceyard/auth", params={"ticket": value, "next": "/"}, headers={"Host": space_host}
        )

    first = redeem(ticket)
    assert first.status_code == 303 and "spaceyard_app_access=" in first.headers["set-cookie"]
    assert redeem(ticket).status_code == 403  # replayed
    fresh, _ = ticket_for(server, session, "admin-origin-probe-private")
    body, _, mac = fresh.partition(".")
    forged = body[:-3] + ("AAA" if body[-3:] != "AAA" else "BBB") + "." + mac
    assert redeem(forged).status_code == 403
    assert redeem(fresh, f"admin-origin-victim.localhost:{server.port}").status_code == 403  # another Space
    assert redeem(fresh).status_code == 303  # the untouched one still works, once
    # signed out: no ticket, and the cookies it gave stop working at once
    cookie = first.headers["set-cookie"].split(";")[0]
    api = httpx.get(f"{server.url}/probe/echo", headers={"Host": host, "Cookie": cookie})
    assert api.status_code == 200 and "spaceyard_app_access" not in api.text
