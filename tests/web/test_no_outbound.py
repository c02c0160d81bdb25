"""An app page calls no host outside the deployment (Chromium's request log), unless the app does.

Gradio's front end, on a top-level page of an app with ``SPACE_ID`` set, asks
``https://huggingface.co/api/spaces/OWNER/NAME``, the author's avatar and Google Fonts; the embed
snippet used to load ``gradio.js`` from a public CDN. Here a real ``spaceyard up`` runs the Gradio
sample, and Chromium opens it top-level on its own origin, inside the Space page, and embedded as a
``<gradio-app>`` in another website: every request (and websocket) of every page goes to the
deployment, the app renders and answers, and its server side still sees its ``SPACE_ID``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Frame, FrameLocator, Locator, Page, expect

from tests.support import Server, git, push, working_copy
from tests.web.conftest import OtherOrigin

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SPACE = "admin/offline-hello"
LOCAL_HOSTS = re.compile(r"(localhost|[a-z0-9-]+\.localhost|127\.0\.0\.1)")


def app_origin(server: Server) -> str:
    return f"http://{SPACE.replace('/', '-')}.localhost:{server.port}"


@pytest.fixture(scope="module")
def deployed(server: Server, tmp_path_factory: pytest.TempPathFactory) -> str:
    wc = working_copy(tmp_path_factory.mktemp("offline-hello"), "hello-gradio")
    server.create_space(SPACE, sdk="gradio")
    push(server, wc, SPACE)
    server.wait_stage(SPACE, {"RUNNING"}, sha=git(wc, "rev-parse", "HEAD").stdout.strip())
    return SPACE


class RequestLog:
    """Every URL a browser context asks for: requests (documents, scripts, fetches, fonts) and websockets."""

    def __init__(self, context: BrowserContext) -> None:
        self.urls: list[str] = []
        context.on("request", lambda r: self.urls.append(r.url))
        context.on("page", self._watch)

    def _watch(self, page: Page) -> None:
        page.on("websocket", lambda ws: self.urls.append(ws.url))

    def outside(self) -> list[str]:
        out = []
        for url in self.urls:
            parts = urlsplit(url)
            if parts.scheme in ("data", "blob", "about"):
                continue
            if not LOCAL_HOSTS.fullmatch(parts.hostname or ""):
                out.append(url)
        return out


@pytest.fixture
def visitor(browser: Browser) -> Iterator[tuple[BrowserContext, RequestLog]]:
    """A visitor who is not signed in, with every request recorded."""
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    context.set_default_timeout(30_000)
    log = RequestLog(context)
    yield context, log
    context.close()


def greet(app: Page | Frame | FrameLocator | Locator, name: str) -> None:
    app.get_by_label("Name").fill(name)
    app.get_by_role("button", name="Greet").click()
    expect(app.get_by_label("Greeting")).to_have_value(re.compile(rf"^Hello {name}! "), timeout=30_000)


def test_app_page_top_level_calls_only_the_deployment(
    visitor: tuple[BrowserContext, RequestLog], server: Server, deployed: str
) -> None:
    context, log = visitor
    page = context.new_page()
    page.goto(f"{app_origin(server)}/")
    greet(page, "Offline")
    page.wait_for_load_state("networkidle")
    assert len(log.urls) > 5, log.urls  # the log saw the page's own requests
    assert log.outside() == [], log.outside()
    # the front end got no Space id, so it drew no Hub badge (the call, avatars and fonts are gone) ...
    assert page.evaluate("window.gradio_config.space_id") is None
    assert page.evaluate("window.self === window.top")
    # ... while the app's server side still knows it runs as SPACE (its /config is not rewritten)
    config = httpx.get(f"http://127.0.0.1:{server.port}/apps/{SPACE}/config", timeout=30).json()
    assert config["space_id"] == SPACE
    # and no font comes from elsewhere: the page's fonts were served by the app (Gradio's local fonts)
    fonts = [u for u in log.urls if re.search(r"\.(woff2?|ttf|otf)(\?|$)", u)]
    assert all(u.startswith(app_origin(server)) for u in fonts), fonts


def test_space_page_with_the_app_calls_only_the_deployment(
    visitor: tuple[BrowserContext, RequestLog], server: Server, deployed: str
) -> None:
    context, log = visitor
    page = context.new_page()
    page.goto(f"http://localhost:{server.port}/spaces/{SPACE}")
    greet(page.frame_locator("iframe#app"), "Framed")
    page.wait_for_load_state("networkidle")
    assert any(u.startswith(app_origin(server)) for u in log.urls)
    assert log.outside() == [], log.outside()


def test_embed_snippet_loads_the_component_from_the_deployment(
    visitor: tuple[BrowserContext, RequestLog],
    browser: Browser,
    server: Server,
    deployed: str,
    other_origin: OtherOrigin,
) -> None:
    context, log = visitor
    page = context.new_page()
    page.goto(f"http://localhost:{server.port}/spaces/{SPACE}")
    page.get_by_role("button", name="Embed this Space").click()
    snippet = page.locator("#embed-wc").input_value()
    scripts = re.findall(r'<script type="module" src="([^"]+)"', snippet)
    assert scripts == [f"{app_origin(server)}/__spaceyard/gradio.js"], snippet
    assert f'<gradio-app src="{app_origin(server)}/">' in snippet

    # another website pastes the snippet: the app renders in it and answers, all from the deployment
    other_origin.pages["/embed.html"] = f"<!doctype html><title>A blog</title><h1>Try it</h1>{snippet}"
    page.goto(other_origin.url("/embed.html"))
    greet(page.locator("gradio-app"), "Embedded")
    page.wait_for_load_state("networkidle")
    assert log.outside() == [], log.outside()
    assert any(u.startswith(f"{app_origin(server)}/assets/index-") for u in log.urls), log.urls
