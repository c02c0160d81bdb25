"""The web pages in a real browser (Debian's headless Chromium) against a real ``spaceyard up``.

One story, in order: sign in; create a Space with the form; push the Gradio sample with git and watch
the stage badge and the build log move to RUNNING without a reload; use the app inside the iframe;
browse files and logs; change a secret and see the app restart with it; embed the app in another
website, and see that refused for a Space with ``disable_embedding: true``; private Spaces are 404
to visitors who are signed out. Screenshots land in ``test-artifacts/screenshots/``.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.support import Server, commit_all, git, push, working_copy
from tests.web.conftest import OtherOrigin

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SPACE = "admin/web-hello"
NOEMBED = "admin/web-noembed"
PRIVATE = "admin/web-private"
BROKEN = "admin/web-broken"
SCRATCH = "admin/web-scratch"
BUILD_TIMEOUT = 180_000


def app_origin(server: Server, space_id: str) -> str:
    return f"http://{space_id.lower().replace('/', '-')}.localhost:{server.port}"


def greet_in(frame_owner: Page, selector: str, name: str) -> str:
    """Type a name into the Gradio app inside the iframe ``selector``, click Greet, return the answer."""
    app = frame_owner.frame_locator(selector)
    app.get_by_label("Name").fill(name)
    app.get_by_role("button", name="Greet").click()
    greeting = app.get_by_label("Greeting")
    expect(greeting).to_have_value(re.compile(rf"^Hello {name}! "), timeout=30_000)
    return greeting.input_value()


@pytest.fixture(scope="module")
def hello_wc(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return working_copy(tmp_path_factory.mktemp("web-hello"), "hello-gradio")


@pytest.fixture(scope="module")
def created(signed_in: BrowserContext, base_url: str, server: Server, hello_wc: Path) -> str:
    """Create SPACE with the New Space form, push the sample with git, and follow the page to RUNNING."""
    page = signed_in.new_page()
    page.goto(f"{base_url}/new-space")
    page.get_by_label("Owner").select_option("admin")
    page.get_by_label("Space name").fill("web-hello")
    page.get_by_label("Gradio").check()
    page.get_by_label("Public").check()
    page.get_by_label("Hardware").select_option("cpu-basic")
    page.get_by_role("button", name="Create Space").click()
    page.wait_for_url(f"{base_url}/spaces/{SPACE}")

    # the empty Space tells how to push, and offers the starter files
    started = page.locator("#getting-started")
    expect(started).to_contain_text(f"git clone {base_url}/spaces/{SPACE}")
    expect(started).to_contain_text("upload_folder")
    expect(started).to_contain_text("import gradio as gr")
    expect(page.locator("#stage")).to_have_text("NO_APP_FILE")
    expect(page.locator("#app")).to_have_count(0)

    # remember every stage the badge shows, and that the page is never reloaded
    page.evaluate(
        """() => {
            window.__sameDocument = true;
            window.__stages = [document.getElementById('stage').textContent];
            new MutationObserver(() => window.__stages.push(document.getElementById('stage').textContent))
                .observe(document.getElementById('stage'), {childList: true, characterData: true, subtree: true});
        }"""
    )
    push(server, hello_wc, SPACE)
    expect(page.locator("#build-log")).to_contain_text("Build Queued", timeout=BUILD_TIMEOUT)
    expect(page.locator("#build-log")).to_contain_text("Commit SHA")
    expect(page.locator("#stage")).to_have_text("RUNNING", timeout=BUILD_TIMEOUT)
    frame = page.locator("iframe#app")
    expect(frame).to_have_attribute("src", f"{app_origin(server, SPACE)}/")
    expect(page.locator("#build-panel")).to_be_hidden()
    # the README's card replaced the placeholder title without a reload
    expect(page.locator(".space-header .title")).to_have_text("Hello Gradio")
    assert page.evaluate("window.__sameDocument") is True
    stages = page.evaluate("window.__stages")
    # the badge followed the Space live (with a warm Gradio parent the build and start may both take
    # less than a poll, so the stages in between are not always seen)
    assert stages[0] == "NO_APP_FILE" and stages[-1] == "RUNNING", stages
    page.close()
    return SPACE


def test_sign_in_makes_a_server_side_session_and_sign_out_ends_it(
    browser: Browser, base_url: str, server: Server
) -> None:
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{base_url}/spaces")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Sign in").click()
    page.get_by_label("Access token").fill("sy_not_a_token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("not valid")
    page.get_by_label("Access token").fill(server.token)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base_url}/spaces")
    expect(page.locator(".topnav .who")).to_have_text("admin")

    cookie = next(c for c in context.cookies() if c["name"] == "spaceyard_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    assert cookie["value"] != server.token  # a session id, not the token
    # the session (not a token) identifies the user to the API from this browser
    who = page.evaluate("fetch('/api/whoami-v2').then(r => r.json())")
    assert who["name"] == "admin"
    # a POST with the cookie but without the CSRF token is not signed in
    status = page.evaluate(
        """() => fetch('/api/repos/create', {method: 'POST', headers: {'Content-Type': 'application/json'},
             body: JSON.stringify({name: 'csrf-probe', type: 'space', sdk: 'gradio'})}).then(r => r.status)"""
    )
    assert status == 401
    # ... and a sign-out form posted from elsewhere without the token is refused
    refused = page.evaluate(
        "fetch('/logout', {method: 'POST', body: new URLSearchParams({csrf_token: 'forged'})}).then(r => r.status)"
    )
    assert refused == 403
    expect(page.locator(".topnav .who")).to_have_text("admin")

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("navigation", name="Main").get_by_role("link", name="Sign in")).to_be_visible()
    assert not [c for c in context.cookies() if c["name"] == "spaceyard_session"]
    # the old session id is gone from the server too
    context.add_cookies(
        [{"name": cookie["name"], "value": cookie["value"], "domain": cookie["domain"], "path": cookie["path"]}]
    )
    assert page.evaluate("fetch('/api/whoami-v2').then(r => r.status)") == 401
    context.close()


def test_the_gradio_app_answers_inside_the_iframe(page: Page, base_url: str, server: Server, created: str) -> None:
    page.goto(f"{base_url}/spaces/{created}")
    expect(page.locator("#stage")).to_have_text("RUNNING")
    expect(page.locator("iframe#app")).to_have_attribute("src", f"{app_origin(server, created)}/")
    assert greet_in(page, "iframe#app", "Browser") == "Hello Browser! (v1)"


def test_query_string_goes_through_to_the_app(page: Page, base_url: str, server: Server, created: str) -> None:
    page.goto(f"{base_url}/spaces/{created}?__theme=dark")
    expect(page.locator("iframe#app")).to_have_attribute("src", f"{app_origin(server, created)}/?__theme=dark")
    body = page.frame_locator("iframe#app").locator("body")
    expect(body).to_have_class(re.compile(r"\bdark\b"), timeout=30_000)


def test_files_tab_browses_the_repository(page: Page, base_url: str, created: str) -> None:
    page.goto(f"{base_url}/spaces/{created}")
    page.get_by_role("link", name="Files").click()
    tree = page.locator("table.tree")
    for name in ("README.md", "app.py", "requirements.txt"):
        expect(tree.get_by_role("link", name=name, exact=True)).to_be_visible()
    tree.get_by_role("link", name="app.py").click()
    expect(page.locator("#blob")).to_contain_text("def greet(name: str) -> str:")
    page.get_by_role("link", name="History").click()
    expect(page.locator("ol.commits")).to_contain_text("Initial commit")
    page.locator("ol.commits a.commit-link").first.click()
    expect(page).to_have_url(re.compile(r"/commit/[0-9a-f]{40}$"))
    expect(page.locator(".diff-file-head").filter(has_text="app.py")).to_contain_text("added")
    expect(page.locator("table.diff").first).to_be_visible()
    page.get_by_role("link", name="Browse files").click()
    expect(page).to_have_url(re.compile(r"/tree/[0-9a-f]{40}$"))
    expect(page.locator("table.tree")).to_contain_text("app.py")


def test_logs_tab_streams_build_and_container_logs(page: Page, base_url: str, created: str) -> None:
    page.goto(f"{base_url}/spaces/{created}/logs")
    build = page.locator("#build-log")
    expect(build).to_contain_text("Build Queued")
    expect(build.locator(".line time").first).to_have_text(re.compile(r"^\d\d:\d\d:\d\d$"))
    page.get_by_role("button", name="Container").click()
    run = page.locator("#run-log")
    expect(run).to_be_visible()
    expect(build).to_be_hidden()
    expect(run).to_contain_text("hello-gradio v1 starting")


def test_a_new_secret_restarts_the_app_with_it(page: Page, base_url: str, server: Server, created: str) -> None:
    page.goto(f"{base_url}/spaces/{created}/settings")
    expect(page.get_by_role("heading", name="Secrets")).to_be_visible()
    page.get_by_label("Name").first.fill("HELLO_VERSION")
    page.locator("#secret-value").fill("from-a-secret")
    page.get_by_role("button", name="Save secret").click()
    expect(page.locator("#settings-status")).to_contain_text("Secret HELLO_VERSION saved")
    expect(page.locator("#secrets-list")).to_contain_text("HELLO_VERSION")
    assert "from-a-secret" not in page.content()  # values are write-only
    # the same form posted without the session's CSRF token (as another site or an app could) is refused
    forged = page.evaluate(
        """url => fetch(url, {method: 'POST', body: new URLSearchParams({key: 'EVIL', value: 'x'})})
            .then(r => r.status)""",
        f"/spaces/{created}/settings/secrets",
    )
    assert forged == 403
    assert "EVIL" not in server.api("GET", f"/api/spaces/{created}/secrets").json()

    # the container log of the new start, live: the page reconnects when the stage settles
    page.goto(f"{base_url}/spaces/{created}/logs")
    page.get_by_role("button", name="Container").click()
    expect(page.locator("#run-log")).to_contain_text("hello-gradio from-a-secret starting", timeout=BUILD_TIMEOUT)
    expect(page.locator("#stage")).to_have_text("RUNNING")

    page.goto(f"{base_url}/spaces/{created}")
    assert greet_in(page, "iframe#app", "Secret") == "Hello Secret! (from-a-secret)"


@pytest.fixture(scope="module")
def noembed(server: Server, hello_wc: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A second Space whose README sets ``disable_embedding: true``."""
    src = tmp_path_factory.mktemp("noembed-src") / "noembed"
    shutil.copytree(hello_wc, src, ignore=shutil.ignore_patterns(".git"))
    readme = src / "README.md"
    text = readme.read_text().replace("title: Hello Gradio", "title: Not Embeddable")
    readme.write_text(
        text.replace("pinned: false", "pinned: false\ndisable_embedding: true\nheader: mini\nfullWidth: false")
    )
    wc = working_copy(tmp_path_factory.mktemp("noembed-wc"), src)
    server.create_space(NOEMBED, sdk="gradio")
    push(server, wc, NOEMBED)
    server.wait_stage(NOEMBED, {"RUNNING"}, sha=git(wc, "rev-parse", "HEAD").stdout.strip())
    return NOEMBED


def test_embedding_in_another_website(
    browser: Browser, server: Server, created: str, noembed: str, other_origin: OtherOrigin
) -> None:
    allowed, refused = app_origin(server, created), app_origin(server, noembed)
    other_origin.pages["/blog.html"] = (
        "<!doctype html><title>Someone's blog</title><h1>My favourite demo</h1>"
        f'<iframe id="allowed" src="{allowed}/" width="900" height="600"></iframe>'
        f'<iframe id="refused" src="{refused}/" width="900" height="600"></iframe>'
    )
    context = browser.new_context()  # a visitor of the other website: not signed in to Spaceyard
    page = context.new_page()
    with page.expect_console_message(lambda m: "frame-ancestors" in m.text and refused in m.text) as blocked:
        page.goto(other_origin.url("/blog.html"))
    assert "blocked" in blocked.value.text
    # the embeddable app works inside the other website
    assert greet_in(page, "#allowed", "Embedder").startswith("Hello Embedder! ")
    # the other one never loaded: Chromium shows its own error page in that frame
    expect(page.frame_locator("#allowed").locator("gradio-app")).to_have_count(1)
    expect(page.frame_locator("#refused").locator("gradio-app")).to_have_count(0)
    assert not any(f.url.startswith(refused) for f in page.frames)
    context.close()


def test_embed_dialog(page: Page, base_url: str, server: Server, created: str, noembed: str) -> None:
    page.goto(f"{base_url}/spaces/{created}")
    page.get_by_role("button", name="Embed this Space").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    origin = app_origin(server, created)
    expect(dialog.locator("#embed-iframe")).to_have_value(re.compile(re.escape(f'<iframe src="{origin}/"')))
    expect(dialog.locator("#embed-wc")).to_have_value(re.compile(re.escape(f'<gradio-app src="{origin}/">')))
    expect(dialog.locator("#embed-url")).to_have_value(f"{origin}/")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()

    # a Space that refuses embedding explains why, and still runs in Spaceyard's own page
    page.goto(f"{base_url}/spaces/{noembed}")
    page.get_by_role("button", name="Embed this Space").click()
    expect(page.locator("#embed-disabled")).to_contain_text("disable_embedding")
    expect(page.locator("#embed-iframe")).to_have_count(0)
    page.keyboard.press("Escape")
    assert greet_in(page, "iframe#app", "Home").startswith("Hello Home! ")


def test_private_space_is_404_when_signed_out(browser: Browser, page: Page, base_url: str, server: Server) -> None:
    server.create_space(PRIVATE, sdk="gradio", private=True)
    owner_view = page.goto(f"{base_url}/spaces/{PRIVATE}")
    assert owner_view is not None and owner_view.status == 200
    expect(page.locator(".space-header")).to_contain_text("Private")

    context = browser.new_context()
    anonymous = context.new_page()
    response = anonymous.goto(f"{base_url}/spaces/{PRIVATE}")
    assert response is not None and response.status == 404
    expect(anonymous.get_by_role("heading", level=1)).to_have_text("404 — not found")
    for path in ("/tree/main", "/logs", "/settings"):
        r = anonymous.goto(f"{base_url}/spaces/{PRIVATE}{path}")
        assert r is not None and r.status == 404
    anonymous.goto(f"{base_url}/spaces?q=web-private")
    expect(anonymous.locator("ul.cards")).to_have_count(0)
    context.close()


def test_explore_search_filter_and_screenshots(
    browser: Browser, page: Page, base_url: str, created: str, noembed: str, screenshots: Path
) -> None:
    page.goto(f"{base_url}/spaces")
    card = page.locator(f'a.card-link[href="/spaces/{created}"]')
    expect(card).to_have_accessible_name("Hello Gradio by admin")
    expect(card).to_contain_text("Greets you, and streams a countdown.")
    expect(card).to_contain_text("RUNNING")
    expect(card).to_contain_text("gradio")
    page.screenshot(path=str(screenshots / "explore.png"))

    page.get_by_label("Search", exact=True).fill("embeddable")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("ul.cards > li")).to_have_count(1)
    expect(page.locator("ul.cards")).to_contain_text("Not Embeddable")
    page.goto(f"{base_url}/spaces?sdk=static")  # other tests may have made static Spaces: only those show
    expect(page.locator(f'a.card-link[href="/spaces/{created}"]')).to_have_count(0)
    for sdk_label in page.locator("ul.cards .sdk").all_inner_texts():
        assert sdk_label.strip() == "static"
    page.goto(f"{base_url}/spaces?owner=admin&sdk=gradio")
    expect(page.locator(f'a.card-link[href="/spaces/{created}"]')).to_be_visible()

    page.goto(f"{base_url}/spaces/{created}")
    expect(page.frame_locator("iframe#app").get_by_role("button", name="Greet")).to_be_visible()
    page.screenshot(path=str(screenshots / "space.png"))
    page.goto(f"{base_url}/spaces/{created}/settings")
    page.screenshot(path=str(screenshots / "settings.png"), full_page=True)

    # a phone: nothing wider than the screen
    phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    small = phone.new_page()
    for path in ("/spaces", f"/spaces/{created}", f"/spaces/{created}/logs"):
        small.goto(f"{base_url}{path}")
        assert small.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"), path
    small.goto(f"{base_url}/spaces")
    small.screenshot(path=str(screenshots / "explore-phone.png"))
    phone.close()


def test_mini_header_and_fixed_width_from_the_card(page: Page, base_url: str, noembed: str, screenshots: Path) -> None:
    page.goto(f"{base_url}/spaces/{noembed}")
    expect(page.locator("body")).to_have_class(re.compile(r"\bmini\b"))
    expect(page.locator("#app-area")).to_have_class(re.compile(r"\bcontained\b"))
    expect(page.locator(".topbar")).to_be_hidden()
    expect(page.locator(".space-header .title")).to_have_text("Not Embeddable")
    expect(page.get_by_role("button", name="Embed this Space")).to_be_visible()
    expect(page.frame_locator("iframe#app").get_by_role("button", name="Greet")).to_be_visible()
    page.screenshot(path=str(screenshots / "space-mini-header.png"))


def test_a_failed_build_shows_its_reason_and_log_instead_of_a_blank_frame(
    page: Page, base_url: str, server: Server, tmp_path_factory: pytest.TempPathFactory, screenshots: Path
) -> None:
    server.create_space(BROKEN, sdk="gradio")
    wc = working_copy(tmp_path_factory.mktemp("broken"), "hello-gradio")
    readme = wc / "README.md"
    readme.write_text(readme.read_text().replace("sdk: gradio", "sdk: [gradio"))
    commit_all(wc, "a broken card")
    page.goto(f"{base_url}/spaces/{BROKEN}")
    expect(page.locator("#getting-started")).to_be_visible()
    push(server, wc, BROKEN)
    expect(page.locator("#stage")).to_have_text("CONFIG_ERROR", timeout=BUILD_TIMEOUT)
    expect(page.locator("#stage")).to_have_class(re.compile("stage-error"))
    expect(page.locator("#reason")).to_contain_text("not valid YAML")
    expect(page.locator("#build-log")).to_contain_text("Build Queued")
    expect(page.locator("#getting-started")).to_be_hidden()
    expect(page.locator("#app")).to_have_count(0)
    page.screenshot(path=str(screenshots / "space-config-error.png"))


def test_settings_variables_visibility_and_delete(browser: Browser, page: Page, base_url: str, server: Server) -> None:
    server.create_space(SCRATCH, sdk="static", private=True)
    page.goto(f"{base_url}/spaces/{SCRATCH}/settings")
    page.locator("#var-key").fill("GREETING")
    page.locator("#var-value").fill("bonjour")
    page.get_by_role("button", name="Save variable").click()
    expect(page.locator("#variables-list")).to_contain_text("GREETING = bonjour")
    assert server.api("GET", f"/api/spaces/{SCRATCH}/variables").json()["GREETING"]["value"] == "bonjour"

    anonymous = browser.new_context()
    visitor = anonymous.new_page()
    assert (r := visitor.goto(f"{base_url}/spaces/{SCRATCH}")) is not None and r.status == 404
    page.get_by_label("Public").check()
    page.get_by_role("button", name="Change visibility").click()
    expect(page.get_by_text("This Space is public")).to_be_visible()
    assert (r := visitor.goto(f"{base_url}/spaces/{SCRATCH}")) is not None and r.status == 200
    expect(visitor.get_by_role("link", name="Settings")).to_have_count(0)  # owners only
    anonymous.close()

    page.locator("#confirm-name").fill("not-the-name")
    page.get_by_role("button", name="Delete this Space").click()
    expect(page.locator("#settings-status")).to_contain_text("Type the Space's name")
    assert server.api("GET", f"/api/spaces/{SCRATCH}").status_code == 200
    page.locator("#confirm-name").fill("web-scratch")
    page.get_by_role("button", name="Delete this Space").click()
    page.wait_for_url(f"{base_url}/spaces")
    assert server.api("GET", f"/api/spaces/{SCRATCH}").status_code == 404


def test_duplicate_from_settings_builds_the_copy(page: Page, base_url: str, server: Server, created: str) -> None:
    page.goto(f"{base_url}/spaces/{created}/settings")
    page.get_by_label("New Space (owner/name)").fill("admin/web-hello-copy")
    page.get_by_role("button", name="Duplicate").click()
    page.wait_for_url(f"{base_url}/spaces/admin/web-hello-copy")
    expect(page.locator("#stage")).to_have_text("RUNNING", timeout=BUILD_TIMEOUT)
    expect(page.locator("iframe#app")).to_have_attribute("src", f"{app_origin(server, 'admin/web-hello-copy')}/")
    assert greet_in(page, "iframe#app", "Copy").startswith("Hello Copy! ")


def test_explore_pages_through_many_spaces(page: Page, base_url: str, server: Server) -> None:
    for i in range(25):
        server.create_space(f"admin/web-page-{i:02d}", sdk="static")
    page.goto(f"{base_url}/spaces?q=web-page")
    expect(page.locator("ul.cards > li")).to_have_count(24)
    pager = page.get_by_role("navigation", name="Pages")
    expect(pager).to_contain_text("Page 1 of 2")
    pager.get_by_role("link", name="Next").click()
    expect(page).to_have_url(f"{base_url}/spaces?q=web-page&page=2")
    expect(page.locator("ul.cards > li")).to_have_count(1)
    expect(page.locator("ul.cards")).to_contain_text("web-page-00")  # the oldest comes last
    page.get_by_role("navigation", name="Pages").get_by_role("link", name="Previous").click()
    expect(page.locator("ul.cards > li")).to_have_count(24)


def test_pause_restart_and_sleep_time_from_settings(page: Page, base_url: str, server: Server, noembed: str) -> None:
    page.goto(f"{base_url}/spaces/{noembed}/settings")
    page.get_by_label("Sleep after").fill("3600")
    page.get_by_role("button", name="Set sleep time").click()
    expect(page.locator("#settings-status")).to_have_text("Sleep time saved")
    assert server.runtime(noembed)["gcTimeout"] == 3600

    page.get_by_role("button", name="Pause").click()
    expect(page.locator("#stage")).to_have_text("PAUSED")  # the badge follows without a reload
    expect(page.locator("[data-stage-text]")).to_have_text("PAUSED")
    assert server.runtime(noembed)["stage"] == "PAUSED"

    page.get_by_role("button", name="Restart", exact=True).click()
    expect(page.locator("#stage")).to_have_text("RUNNING", timeout=BUILD_TIMEOUT)
    page.goto(f"{base_url}/spaces/{noembed}")
    assert greet_in(page, "iframe#app", "Again").startswith("Hello Again! ")


def test_settings_offer_only_hardware_this_deployment_has_and_manage_storage(
    page: Page, base_url: str, server: Server
) -> None:
    space = "admin/web-storage"
    server.create_space(space)  # nothing pushed: nothing to restart
    page.goto(f"{base_url}/spaces/{space}/settings")
    gpu = page.locator('#flavor option[value="t4-small"]')
    expect(gpu).to_be_disabled()
    expect(gpu).to_contain_text("not available here")
    expect(page.locator('#flavor option[value="cpu-upgrade"]')).to_be_enabled()
    expect(page.locator("[data-storage]")).to_contain_text("No persistent storage")

    page.locator("#storage-tier").select_option("small")
    page.get_by_role("button", name="Add storage").click()
    expect(page.locator("[data-storage]")).to_contain_text("tier small")
    expect(page.locator("[data-storage-used]")).not_to_contain_text("…")  # asked the API for the use
    assert server.runtime(space)["storage"] == "small"

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete storage").click()
    expect(page.locator("[data-storage]")).to_contain_text("No persistent storage")
    assert server.runtime(space)["storage"] is None
    assert (
        server.api(
            "DELETE", "/api/repos/delete", json={"name": "web-storage", "organization": "admin", "type": "space"}
        ).status_code
        == 200
    )
