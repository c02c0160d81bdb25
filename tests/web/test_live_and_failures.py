"""Stage changes appear live on every page, and a failure page explains itself without host paths.

* a Space that crashes at start (RUNTIME_ERROR): its page shows the reason and the app's own output
  (not the build log), with the app's paths as a Hub Space shows them (``/home/user/app``) — nothing
  of this machine's DATA_DIR, environments folder or interpreter, in the page, the runtime JSON or
  the log streams;
* an uninstallable requirement (BUILD_ERROR): the page shows the build log and the reason;
* a factory rebuild started from Settings shows its new stage at once, then RUNNING, with no reload;
  the explore page's card badge follows the same Space.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, expect

from tests.support import Server, commit_all, push, read_sse, working_copy

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CRASH = "admin/web-crash"
BADREQ = "admin/web-badreq"
STATIC = "admin/web-live-static"

CRASH_APP = """import gradio as gr

print("crash-marker: the app is starting", flush=True)
raise RuntimeError("crash-marker: MODEL_ID is not set")
"""


def host_paths(server: Server) -> list[str]:
    return [str(server.data_dir.resolve()), server.env["SPACEYARD_ENV_DIR"], sys.base_prefix]


def assert_no_host_paths(server: Server, text: str) -> None:
    for path in host_paths(server):
        assert path not in text, f"{path} leaked:\n{text}"


@pytest.fixture(scope="module")
def crashed(server: Server, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    server.create_space(CRASH)
    wc = working_copy(tmp_path_factory.mktemp("crash"), "hello-gradio")
    (wc / "app.py").write_text(CRASH_APP)
    sha = commit_all(wc, "crash at start")
    push(server, wc, CRASH)
    return server.wait_stage(CRASH, {"RUNTIME_ERROR"}, sha=sha)


def test_runtime_error_page_shows_the_apps_output_without_host_paths(
    crashed: dict[str, object], server: Server, signed_in: BrowserContext, base_url: str, screenshots: Path
) -> None:
    assert "crash-marker: MODEL_ID is not set" in str(crashed["errorMessage"])
    assert_no_host_paths(server, str(crashed))
    page = signed_in.new_page()
    page.goto(f"{base_url}/spaces/{CRASH}")
    expect(page.locator("#stage")).to_have_text("RUNTIME_ERROR")
    expect(page.locator("#reason")).to_contain_text("crash-marker: MODEL_ID is not set")
    expect(page.locator("#build-log-section")).to_be_hidden()
    run_log = page.locator("#run-log")
    expect(run_log).to_be_visible()
    expect(run_log).to_contain_text("crash-marker: the app is starting")
    expect(run_log).to_contain_text('File "/home/user/app/app.py"')
    page.screenshot(path=str(screenshots / "runtime-error.png"))
    assert_no_host_paths(server, page.content())
    page.close()
    for kind in ("run", "build"):
        lines = read_sse(
            f"{server.url}/api/spaces/{CRASH}/logs/{kind}", headers={"Authorization": f"Bearer {server.token}"}
        )
        assert lines, kind
        assert_no_host_paths(server, "\n".join(lines))


def test_build_error_page_shows_the_build_log(
    server: Server, signed_in: BrowserContext, base_url: str, tmp_path: Path
) -> None:
    server.create_space(BADREQ)
    wc = working_copy(tmp_path, "hello-gradio")
    (wc / "requirements.txt").write_text("spaceyard-no-such-package-4242==1.0\n")
    sha = commit_all(wc, "bad requirement")
    push(server, wc, BADREQ)
    rt = server.wait_stage(BADREQ, {"BUILD_ERROR"}, sha=sha, timeout=300)
    page = signed_in.new_page()
    page.goto(f"{base_url}/spaces/{BADREQ}")
    expect(page.locator("#stage")).to_have_text("BUILD_ERROR")
    expect(page.locator("#reason")).to_contain_text("spaceyard-no-such-package-4242")
    expect(page.locator("#run-log-section")).to_be_hidden()
    expect(page.locator("#build-log")).to_contain_text("requirements.txt")
    assert_no_host_paths(server, page.content() + str(rt))
    page.close()


def test_factory_rebuild_shows_its_stage_live_on_settings_and_explore(
    server: Server, signed_in: BrowserContext, base_url: str, tmp_path: Path
) -> None:
    server.create_space(STATIC, sdk="static")
    wc = working_copy(tmp_path, "hello-static")
    push(server, wc, STATIC)
    server.wait_stage(STATIC, {"RUNNING"})
    settings = signed_in.new_page()
    explore = signed_in.new_page()
    settings.goto(f"{base_url}/spaces/{STATIC}/settings")
    explore.goto(f"{base_url}/spaces?q=web-live-static")
    card_stage = explore.locator(f'[data-live-stage="{STATIC}"]')
    expect(card_stage).to_have_text("RUNNING")
    watch = """() => {
        window.__same = true;
        window.__seen = [];
        const el = document.getElementById('stage');
        new MutationObserver(() => window.__seen.push(el.textContent))
            .observe(el, {childList: true, characterData: true, subtree: true});
    }"""
    settings.evaluate(watch)
    explore.evaluate("() => { window.__same = true; }")
    settings.on("dialog", lambda d: d.accept())
    settings.get_by_role("button", name="Factory rebuild").click()
    expect(settings.locator("#settings-status")).to_contain_text("Factory rebuild started")
    settings.wait_for_function("() => window.__seen.some(s => s !== 'RUNNING')", timeout=10_000)
    expect(settings.locator("#stage")).to_have_text("RUNNING", timeout=60_000)
    seen = settings.evaluate("() => window.__seen")
    assert any(s in ("BUILDING", "RUNNING_BUILDING") for s in seen), seen
    expect(settings.locator("[data-stage-text]")).to_have_text("RUNNING")
    assert settings.evaluate("() => window.__same") is True  # never reloaded
    with explore.expect_request(lambda r: r.url.endswith(f"/api/spaces/{STATIC}/runtime"), timeout=20_000):
        pass  # the card keeps asking for its Space's stage
    expect(card_stage).to_have_text("RUNNING")
    assert explore.evaluate("() => window.__same") is True
    settings.close()
    explore.close()
