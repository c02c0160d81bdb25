"""Model and dataset pages in Chromium: the explore tabs, a model's card rendered with its license at the
top (raw HTML in the card stays text), the files tab and clone instructions, a dataset's page, and a
private model that is 404 to a signed-out visitor."""

from __future__ import annotations

import pytest
from huggingface_hub import HfApi
from playwright.sync_api import Browser, Page, expect

from tests.support import Server

pytestmark = [pytest.mark.browser]

MODEL = "admin/web-iris-model"
CARD = """---
license: apache-2.0
library_name: sklearn
---
# Iris classifier

Predicts the **species** of an iris.

<script>window.__cardScript = true</script>
"""


@pytest.fixture(scope="module")
def repos(server: Server) -> None:
    api = HfApi(endpoint=server.url, token=server.token)
    api.create_repo(MODEL, exist_ok=True)
    api.upload_file(path_or_fileobj=CARD.encode(), path_in_repo="README.md", repo_id=MODEL)
    api.upload_file(path_or_fileobj=b"\x00weights", path_in_repo="model.bin", repo_id=MODEL)
    api.create_repo("admin/web-flowers", repo_type="dataset", exist_ok=True)
    api.upload_file(path_or_fileobj=b"---\nlicense: cc-by-4.0\n---\n# Flowers\n", path_in_repo="README.md",
                    repo_id="admin/web-flowers", repo_type="dataset")  # fmt: skip
    api.create_repo("admin/web-secret-model", private=True, exist_ok=True)


def test_model_page_shows_the_license_card_files_and_clone(page: Page, base_url: str, repos: None) -> None:
    page.goto(f"{base_url}/models")
    tabs = page.get_by_role("navigation", name="Explore")
    expect(tabs.get_by_role("link", name="Models")).to_have_attribute("aria-current", "page")
    expect(tabs.get_by_role("link", name="Spaces")).to_be_visible()
    item = page.get_by_role("link", name=MODEL)
    expect(item).to_be_visible()
    expect(page.locator(".repo-item", has_text=MODEL).locator(".license")).to_have_text("apache-2.0")
    item.click()
    page.wait_for_url(f"{base_url}/{MODEL}")
    expect(page.locator("#license")).to_have_text("License: apache-2.0")
    card = page.locator("#card")
    expect(card.get_by_role("heading", name="Iris classifier")).to_be_visible()
    expect(card.locator("strong")).to_have_text("species")
    expect(card).not_to_contain_text("license: apache-2.0")  # the front matter is not part of the card
    expect(card).to_contain_text("<script>")  # raw HTML stays text
    assert page.evaluate("window.__cardScript === undefined")
    expect(page.locator("#clone-command")).to_have_text(f"git clone {base_url}/{MODEL}")
    page.get_by_role("link", name="Files").click()
    page.wait_for_url(f"{base_url}/{MODEL}/tree/main")
    page.get_by_role("link", name="model.bin").click()
    href = page.locator("#download-link").get_attribute("href") or ""
    assert href.startswith(f"/{MODEL}/resolve/main/model.bin")
    assert page.request.get(base_url + href).body() == b"\x00weights"


def test_dataset_tab_and_page(page: Page, base_url: str, repos: None) -> None:
    page.goto(f"{base_url}/spaces")
    page.get_by_role("navigation", name="Explore").get_by_role("link", name="Datasets").click()
    page.wait_for_url(f"{base_url}/datasets")
    page.get_by_role("link", name="admin/web-flowers").click()
    page.wait_for_url(f"{base_url}/datasets/admin/web-flowers")
    expect(page.locator("#license")).to_have_text("License: cc-by-4.0")
    expect(page.locator(".kind-label")).to_have_text("Dataset")


def test_private_model_is_404_when_signed_out(browser: Browser, base_url: str, repos: None) -> None:
    context = browser.new_context()
    try:
        visitor = context.new_page()
        response = visitor.goto(f"{base_url}/admin/web-secret-model")
        assert response is not None and response.status == 404
        visitor.goto(f"{base_url}/models")
        expect(visitor.get_by_role("link", name="admin/web-secret-model")).to_have_count(0)
    finally:
        context.close()
