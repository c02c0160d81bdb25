"""The pages a Hub user reaches every day, at desktop and phone width (390 px), in Chromium.

File view with line numbers, Raw and Download; a Space file that is HTML with a script is shown as
text, never run on the platform's origin; clone instructions on a non-empty Space; explore sorted by
name or recency, with SDK and hardware badges; the Space header's hardware label and the app's own
full-screen link; the tab row fits a phone (nothing clipped, "Embed" reachable). Screenshots land in
``test-artifacts/screenshots/`` (the README's come from there, quantized).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, ViewportSize, expect

from tests.support import Server, commit_all, push, working_copy

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SPACE = "admin/web-daily"
EVIL = '<html><body><script>window.parent.__pwned = 1; document.title = "pwned"</script>hi</body></html>\n'
WIDTHS: dict[str, ViewportSize] = {"desktop": {"width": 1280, "height": 860}, "phone": {"width": 390, "height": 844}}


@pytest.fixture(scope="module")
def daily(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Path:
    server.create_space(SPACE, sdk="gradio")
    wc = working_copy(tmp_path_factory.mktemp("daily"), "hello-gradio")
    (wc / "evil.html").write_text(EVIL)
    sha = commit_all(wc, "add a page")
    push(server, wc, SPACE)
    server.wait_stage(SPACE, {"RUNNING"}, sha=sha)
    return wc


@pytest.fixture(scope="module", params=list(WIDTHS))
def ctx(request: pytest.FixtureRequest, browser: Browser, base_url: str, server: Server) -> Iterator[BrowserContext]:
    context = browser.new_context(viewport=WIDTHS[request.param], accept_downloads=True)
    context.set_default_timeout(30_000)
    page = context.new_page()
    page.goto(f"{base_url}/login")
    page.get_by_label("Access token").fill(server.token)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base_url}/")
    page.close()
    context.width_name = request.param  # type: ignore[attr-defined]
    yield context
    context.close()


def shot(page: Page, screenshots: Path, ctx: BrowserContext, name: str) -> None:
    page.screenshot(path=str(screenshots / f"{name}-{ctx.width_name}.png"))  # type: ignore[attr-defined]


def test_file_view_has_line_numbers_raw_and_download(
    daily: Path, ctx: BrowserContext, base_url: str, screenshots: Path
) -> None:
    page = ctx.new_page()
    page.goto(f"{base_url}/spaces/{SPACE}/blob/main/app.py")
    source = (daily / "app.py").read_text().split("\n")
    lines = page.locator("#blob .line")
    expect(lines).to_have_count(len(source) - (1 if source[-1] == "" else 0))
    expect(page.locator("#L3")).to_have_text(source[2])
    number = page.evaluate("() => getComputedStyle(document.getElementById('L3'), '::before').content")
    assert number not in ("none", "normal", ""), number
    shot(page, screenshots, ctx, "file")
    raw = page.locator("#raw-link")
    expect(raw).to_have_attribute("href", f"/spaces/{SPACE}/raw/main/app.py")
    with page.expect_download() as dl:
        page.locator("#download-link").click()
    assert dl.value.suggested_filename == "app.py"
    assert Path(dl.value.path()).read_text() == (daily / "app.py").read_text()
    raw.click()
    page.wait_for_url(f"{base_url}/spaces/{SPACE}/raw/main/app.py")
    assert page.locator("body").inner_text().startswith(source[0])
    page.close()


def test_a_space_html_file_is_shown_as_text_not_run(daily: Path, ctx: BrowserContext, base_url: str) -> None:
    page = ctx.new_page()
    resp = page.goto(f"{base_url}/spaces/{SPACE}/raw/main/evil.html")
    assert resp is not None and resp.status == 200
    assert resp.headers["content-type"].startswith("text/plain")
    assert resp.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in resp.headers["content-security-policy"]
    assert page.title() != "pwned" and "<script>" in page.locator("body").inner_text()
    page.close()
    # signed out, a private Space's files are not there at all
    anon = httpx.get(f"{base_url}/spaces/admin/no-such-space/raw/main/app.py", timeout=10)
    assert anon.status_code == 404


def test_clone_instructions_on_a_space_with_files(daily: Path, ctx: BrowserContext, base_url: str) -> None:
    page = ctx.new_page()
    page.goto(f"{base_url}/spaces/{SPACE}/tree/main")
    page.locator("#clone summary").click()
    expect(page.locator("#clone")).to_contain_text(f"git clone {base_url}/spaces/{SPACE}")
    page.close()


def test_header_has_hardware_and_full_screen_link_and_tabs_fit(
    daily: Path, ctx: BrowserContext, base_url: str, server: Server, screenshots: Path
) -> None:
    page = ctx.new_page()
    page.goto(f"{base_url}/spaces/{SPACE}")
    expect(page.locator("#hardware-badge")).to_have_text("cpu-basic")
    expect(page.locator("#sdk-badge")).to_have_text("gradio")
    link = page.locator("#fullscreen-link")
    expect(link).to_have_attribute("href", f"http://admin-web-daily.localhost:{server.port}/")
    width = page.viewport_size["width"] if page.viewport_size else 1280
    for item in page.locator(".tabs a, .tabs button").all():
        expect(item).to_be_visible()
        box = item.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width + 0.5, (item, box)
    assert page.evaluate("() => { const t = document.querySelector('.tabs'); return t.scrollWidth <= t.clientWidth }")
    shot(page, screenshots, ctx, "space-header")
    page.get_by_role("button", name="Embed").click()
    expect(page.locator("#embed-dialog")).to_be_visible()
    page.close()


def test_explore_sorts_and_shows_badges(
    daily: Path, ctx: BrowserContext, base_url: str, server: Server, screenshots: Path
) -> None:
    for name in ("web-sort-b", "web-sort-a"):
        if server.api("GET", f"/api/spaces/admin/{name}").status_code == 404:
            server.create_space(f"admin/{name}", sdk="static")
    page = ctx.new_page()
    page.goto(f"{base_url}/spaces?q=web-sort&sort=name")
    titles = page.locator(".card-title").all_inner_texts()
    assert titles == ["web-sort-a", "web-sort-b"], titles
    page.goto(f"{base_url}/spaces?q=web-sort")
    expect(page.get_by_label("Sort", exact=True)).to_have_value("recent")
    recent = page.locator(".card-title").all_inner_texts()
    assert set(recent) == {"web-sort-a", "web-sort-b"}
    page.get_by_label("Sort", exact=True).select_option("name")
    page.get_by_role("button", name="Apply").click()
    page.wait_for_url("**sort=name**")
    assert page.locator(".card-title").all_inner_texts() == ["web-sort-a", "web-sort-b"]
    page.goto(f"{base_url}/spaces?q=web-daily")
    card = page.locator(".card").first
    expect(card.locator('[data-badge="sdk"]')).to_have_text("gradio")
    expect(card.locator('[data-badge="hardware"]')).to_have_text("cpu-basic")
    expect(card.locator(".card-desc")).to_have_text("Greets you, and streams a countdown.")
    page.goto(f"{base_url}/spaces")
    shot(page, screenshots, ctx, "explore")
    page.close()
