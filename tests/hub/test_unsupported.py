"""What Spaceyard does not implement answers clearly: every entry of ``api/unsupported.py`` (the data the
table in docs/hub-api.md is rendered from) is called on each of its endpoints and methods, and through
the real huggingface_hub client, which must raise its own error carrying Spaceyard's message."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from huggingface_hub import HfApi
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

from spaceyard_platform.api.unsupported import DOC_BEGIN, DOC_END, UNSUPPORTED, Unsupported, markdown_table
from tests.hub.conftest import Users, hf
from tests.support import ROOT, Server

SPACE = "hubalice/unsupported"
VALUES = {"owner": "hubalice", "name": "unsupported", "user": "hubalice", "org": "hubacme", "rest:path": "x/y"}

# One real client call per entry (keyed by feature): the client must surface Spaceyard's message.
CLIENT: dict[str, Callable[[HfApi], Any]] = {
    "Discussions and pull requests": lambda api: list(api.get_repo_discussions(SPACE, repo_type="space")),
    "Likes": lambda api: list(api.list_repo_likers(SPACE, repo_type="space")),
    "Dev Mode": lambda api: api.enable_space_dev_mode(SPACE),
    "Persistent storage and volumes": lambda api: api.set_space_volumes(SPACE, volumes=[]),
    "Space templates": lambda api: api.list_space_templates(),
    "Semantic search": lambda api: list(api.search_spaces("demo")),
    "ZeroGPU": lambda api: api.get_zero_gpu_quota(),
    "Squashing history": lambda api: api.super_squash_history(SPACE, repo_type="space"),
    "LFS file management": lambda api: list(api.list_lfs_files(SPACE, repo_type="space")),
    "Gated repositories": lambda api: list(api.list_pending_access_requests(SPACE, repo_type="space")),
    "Kernel repositories": lambda api: api.kernel_info("hubalice/some-kernel"),
    "Buckets": lambda api: list(api.list_buckets("hubalice")),
    "Collections": lambda api: list(api.list_collections(owner="hubalice")),
    "Jobs": lambda api: list(api.list_jobs(namespace="hubalice")),
    "Webhooks": lambda api: api.list_webhooks(),
    "Storage usage of repositories": lambda api: list(api.list_user_repos()),
    "Papers": lambda api: list(api.list_daily_papers()),
    "Profiles, followers and members": lambda api: api.get_user_overview("hubalice"),
}


@pytest.fixture(scope="module")
def space(server: Server, users: Users) -> str:
    hf(server, users.alice).create_repo(SPACE, repo_type="space", space_sdk="static")
    return SPACE


def concrete(path: str) -> str:
    return re.sub(r"\{([a-z:]+)\}", lambda m: VALUES[m.group(1)], path)


def test_the_doc_table_is_generated_from_the_data() -> None:
    doc = (ROOT / "docs" / "hub-api.md").read_text()
    assert DOC_BEGIN in doc and DOC_END in doc, "docs/hub-api.md lost its generated table markers"
    block = doc.split(DOC_BEGIN, 1)[1].split(DOC_END, 1)[0].strip()
    assert block == markdown_table(), "regenerate the table: python -c 'from spaceyard_platform.api.unsupported ...'"
    assert set(CLIENT) == {e.feature for e in UNSUPPORTED}, "every entry needs a client call in this test"


@pytest.mark.parametrize("entry", UNSUPPORTED, ids=lambda e: e.feature)
def test_each_endpoint_answers_with_the_hubs_error_shape(
    server: Server, users: Users, space: str, entry: Unsupported
) -> None:
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {users.alice}"}, timeout=30) as c:
        for path in entry.paths:
            for method in entry.methods:
                r = c.request(method, concrete(path))
                where = f"{method} {concrete(path)}"
                assert r.status_code == entry.status, f"{where}: {r.status_code} {r.text}"
                assert r.headers["x-error-message"] == entry.text, where
                assert r.headers["x-error-code"] == ("RepoNotFound" if entry.status == 404 else "NotSupported"), where
                if method != "HEAD":
                    assert r.json() == {"error": entry.text}, where
        # anonymous callers get the same answer (nothing to authenticate for)
        method, example = entry.example
        r = httpx.request(method, server.url + example.format(space=space), timeout=30)
        assert r.status_code == entry.status and r.headers["x-error-message"] == entry.text


@pytest.mark.parametrize("entry", UNSUPPORTED, ids=lambda e: e.feature)
def test_the_client_raises_with_spaceyards_message(
    server: Server, users: Users, space: str, entry: Unsupported, tmp_path: Path
) -> None:
    api = HfApi(endpoint=server.url, token=users.alice)
    expected = RepositoryNotFoundError if entry.status == 404 else HfHubHTTPError
    with pytest.raises(expected) as raised:
        CLIENT[entry.feature](api)
    assert entry.text in str(raised.value), str(raised.value)
    assert "check your connection" not in str(raised.value)
    assert raised.value.response is not None and raised.value.response.status_code == entry.status


def test_unknown_api_paths_say_so(server: Server) -> None:
    r = httpx.get(f"{server.url}/api/no-such-thing/here", timeout=30)
    assert r.status_code == 404 and "no endpoint GET /api/no-such-thing/here" in r.headers["x-error-message"]
    assert r.json()["error"].startswith("Spaceyard has no endpoint")
    # supported endpoints are not shadowed by the unsupported ones
    assert httpx.get(f"{server.url}/api/spaces/{SPACE}", timeout=30).status_code in (200, 404)
    assert httpx.get(f"{server.url}/api/spaces/hardware", timeout=30).status_code == 200


def test_auth_check(server: Server, users: Users, space: str) -> None:
    hf(server, users.alice).auth_check(SPACE, repo_type="space")
    hf(server, users.alice).auth_check(SPACE, repo_type="space", write=True)
    hf(server, users.bob).auth_check(SPACE, repo_type="space")  # public: anyone may read
    with pytest.raises(HfHubHTTPError) as denied:
        hf(server, users.bob).auth_check(SPACE, repo_type="space", write=True)
    assert denied.value.response.status_code == 403
    with pytest.raises(RepositoryNotFoundError):
        hf(server, users.bob).auth_check("hubalice/does-not-exist", repo_type="space")
