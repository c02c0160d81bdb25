"""A browser opening a sleeping Space: held up to a second, then a page that reloads itself until the
app answers (the wake goes on meanwhile); API clients are held until the app is ready."""

from __future__ import annotations

import time

import httpx

from tests.gateway.conftest import GatewayServer, Upstream
from tests.gateway.test_proxy import Waker

BROWSER = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8", "Sec-Fetch-Mode": "navigate"}


def test_navigation_gets_a_self_reloading_page_then_the_app(gateway: GatewayServer, upstream: Upstream) -> None:
    waker = Waker(gateway.routes, upstream.endpoint, delay=2.5)
    gateway.configure(waker=waker)
    gateway.add("wendy/slow-wake", None)
    started = time.monotonic()
    # browsers navigate on the app's own origin (the path form redirects them there)
    browser = {**BROWSER, "Host": gateway.host("wendy-slow-wake")}
    first = httpx.get(f"{gateway.url}/headers", headers=browser, timeout=30)
    assert first.status_code == 503 and first.headers["retry-after"] == "1"
    assert '<meta http-equiv="refresh" content="1">' in first.text and "waking up" in first.text
    assert time.monotonic() - started < 2.5  # answered before the wake finished
    deadline = time.monotonic() + 10
    while True:  # what the page's reload does
        again = httpx.get(f"{gateway.url}/headers", headers=browser, timeout=30)
        if again.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert again.status_code == 200
    assert waker.calls == 1  # the reloads joined the one wake


def test_api_clients_are_held_until_ready(gateway: GatewayServer, upstream: Upstream) -> None:
    gateway.configure(waker=Waker(gateway.routes, upstream.endpoint, delay=1.5))
    gateway.add("wendy/api-wake", None)
    r = httpx.get(f"{gateway.url}/apps/wendy/api-wake/headers", headers={"Accept": "application/json"}, timeout=30)
    assert r.status_code == 200
