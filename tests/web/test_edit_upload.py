"""Edit a file and upload files in the browser: each is one real commit (the Hub commit API), built
like a push. An edit made on a page that has gone stale is refused (no lost update); an upload whose
folder climbs out of the tree is refused with the API's message; visitors who are signed out are
sent to sign in."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from playwright.sync_api import BrowserContext, expect

from tests.support import Server, git, push, working_copy

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SPACE = "admin/web-edit"


@pytest.fixture(scope="module")
def edited_space(server: Server, tmp_path_factory: pytest.TempPathFactory) -> str:
    server.create_space(SPACE, sdk="static")
    wc = working_copy(tmp_path_factory.mktemp("edit"), "hello-static")
    push(server, wc, SPACE)
    server.wait_stage(SPACE, {"RUNNING"})
    return str(server.runtime(SPACE)["sha"])


def head(server: Server) -> str:
    return str(server.runtime(SPACE)["sha"])


def raw(server: Server, path: str) -> httpx.Response:
    return server.api("GET", f"/spaces/{SPACE}/raw/main/{path}")


def test_edit_a_file_in_the_browser_is_a_commit(
    edited_space: str, server: Server, signed_in: BrowserContext, base_url: str
) -> None:
    page = signed_in.new_page()
    page.goto(f"{base_url}/spaces/{SPACE}/blob/main/index.html")
    page.locator("#edit-link").click()
    page.wait_for_url(f"{base_url}/spaces/{SPACE}/edit/main/index.html")
    text = page.locator("#edit-text").input_value()
    page.locator("#edit-text").fill(text.replace("</body>", "<p>edited in the browser</p></body>"))
    page.locator("#commit-summary").fill("Edit from the browser")
    page.get_by_role("button", name="Commit changes to main").click()
    page.wait_for_url(f"{base_url}/spaces/{SPACE}/blob/main/index.html")
    expect(page.locator("#blob")).to_contain_text("edited in the browser")
    assert head(server) != edited_space
    bare = server.data_dir / "repos" / "admin" / "web-edit.git"
    assert git(bare, "log", "-1", "--format=%s", "main").stdout.strip() == "Edit from the browser"
    server.wait_stage(SPACE, {"RUNNING"}, sha=head(server))
    assert "edited in the browser" in server.app_get(SPACE, "/").text  # built and served like a push
    page.close()


def test_a_stale_edit_is_refused(edited_space: str, server: Server, signed_in: BrowserContext, base_url: str) -> None:
    page = signed_in.new_page()
    page.goto(f"{base_url}/spaces/{SPACE}/edit/main/style.css")
    before = raw(server, "style.css").text
    # someone else commits meanwhile
    from huggingface_hub import HfApi

    HfApi(endpoint=server.url, token=server.token).upload_file(
        path_or_fileobj=b"/* changed elsewhere */\n", path_in_repo="style.css", repo_id=SPACE, repo_type="space"
    )
    page.locator("#edit-text").fill(before + "\n/* mine */\n")
    page.get_by_role("button", name="Commit changes to main").click()
    expect(page.locator("#commit-status")).to_contain_text("A commit has happened since")
    assert raw(server, "style.css").text == "/* changed elsewhere */\n"
    page.close()


def test_upload_files_into_a_folder(
    edited_space: str, server: Server, signed_in: BrowserContext, base_url: str, tmp_path: Path
) -> None:
    picked = tmp_path / "notes.txt"
    picked.write_bytes("uploaded ✓\n".encode())
    page = signed_in.new_page()
    page.goto(f"{base_url}/spaces/{SPACE}/tree/main")
    page.locator("#upload-link").click()
    page.locator("#upload-folder").fill("docs")
    page.locator("#upload-files").set_input_files(str(picked))
    page.get_by_role("button", name="Commit to main").click()
    page.wait_for_url(f"{base_url}/spaces/{SPACE}/tree/main")
    assert raw(server, "docs/notes.txt").text == "uploaded ✓\n"

    # a folder that climbs out of the repository is refused, and nothing is committed
    before = head(server)
    page.goto(f"{base_url}/spaces/{SPACE}/upload/main")
    page.locator("#upload-folder").fill("../../outside")
    page.locator("#upload-files").set_input_files(str(picked))
    page.get_by_role("button", name="Commit to main").click()
    expect(page.locator("#commit-status")).to_be_visible()
    assert head(server) == before
    page.close()


def test_signed_out_visitors_cannot_edit(edited_space: str, base_url: str) -> None:
    r = httpx.get(f"{base_url}/spaces/{SPACE}/edit/main/index.html", follow_redirects=False, timeout=10)
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    r = httpx.get(f"{base_url}/spaces/{SPACE}/upload/main", follow_redirects=False, timeout=10)
    assert r.status_code == 303
