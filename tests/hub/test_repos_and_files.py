"""Repositories and files with the real huggingface_hub client: create/delete/move, info and listing,
tree, paths-info, downloads, and commits (upload_file, upload_folder, create_commit, LFS) that are
real git commits, visible to git clone and built like a push."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest
from huggingface_hub import (
    CommitOperationAdd,
    CommitOperationCopy,
    CommitOperationDelete,
    HfApi,
    RepoFile,
    RepoFolder,
    SpaceHardware,
)
from huggingface_hub import constants as hf_constants
from huggingface_hub.errors import (
    BadRequestError,
    EntryNotFoundError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from spaceyard_platform.settings import Settings
from tests.support import Server, git

SITE = "admin/files-site"
README = b"---\ntitle: Files\nemoji: \xf0\x9f\x93\x81\nsdk: static\n---\n# Files\n"


@pytest.fixture(scope="module")
def site(admin_api: HfApi, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A static Space filled with upload_folder; returns the commit."""
    folder = tmp_path_factory.mktemp("site")
    (folder / "README.md").write_bytes(README)
    (folder / "index.html").write_text("<h1>files</h1>")
    (folder / "assets").mkdir()
    (folder / "assets" / "a.css").write_text("a{}")
    (folder / "assets" / "deep").mkdir()
    (folder / "assets" / "deep" / "b.js").write_text("let b")
    admin_api.create_repo(SITE, repo_type="space", space_sdk="static")
    return admin_api.upload_folder(repo_id=SITE, repo_type="space", folder_path=folder).oid


def test_create_repo_with_every_space_option(server: Server, admin_api: HfApi) -> None:
    url = admin_api.create_repo(
        "admin/options",
        repo_type="space",
        space_sdk="gradio",
        private=True,
        space_hardware=SpaceHardware.CPU_UPGRADE,
        space_sleep_time=600,
        space_secrets=[{"key": "API_KEY", "value": "s3cr3t-value", "description": "a key"}],
        space_variables=[{"key": "MODEL", "value": "tiny"}],
    )
    assert url.repo_id == "admin/options" and url.repo_type == "space"
    info = admin_api.space_info("admin/options")
    assert info.private is True and info.sdk == "gradio"
    runtime = admin_api.get_space_runtime("admin/options")
    assert runtime.requested_hardware == "cpu-upgrade" and runtime.sleep_time == 600
    assert admin_api.get_space_variables("admin/options")["MODEL"].value == "tiny"
    secrets = admin_api.get_space_secrets("admin/options")
    assert secrets["API_KEY"].description == "a key"
    # the value is never returned, and it is encrypted at rest
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.token}"}) as c:
        assert "s3cr3t-value" not in c.get("/api/spaces/admin/options/secrets").text
        assert "s3cr3t-value" not in c.get("/api/spaces/admin/options").text
    assert b"s3cr3t-value" not in (server.data_dir / "spaceyard.db").read_bytes()
    # 409 without exist_ok, the same URL with it
    with pytest.raises(HfHubHTTPError) as exists:
        admin_api.create_repo("admin/options", repo_type="space", space_sdk="gradio")
    assert exists.value.response.status_code == 409
    again = admin_api.create_repo("admin/options", repo_type="space", space_sdk="gradio", exist_ok=True)
    assert again.repo_id == url.repo_id
    with pytest.raises(BadRequestError, match="cpu-basic"):
        admin_api.create_repo("admin/bad-hw", repo_type="space", space_sdk="gradio", space_hardware="quantum-xl")  # type: ignore[arg-type]


def test_move_and_delete(admin_api: HfApi, site: str) -> None:
    admin_api.create_repo("admin/to-move", repo_type="space", space_sdk="static")
    admin_api.upload_file(path_or_fileobj=README, path_in_repo="README.md", repo_id="admin/to-move", repo_type="space")
    admin_api.move_repo("admin/to-move", "admin/moved", repo_type="space")
    assert admin_api.list_repo_files("admin/moved", repo_type="space") == ["README.md"]
    with pytest.raises(RepositoryNotFoundError):
        admin_api.space_info("admin/to-move")
    admin_api.delete_repo("admin/moved", repo_type="space")
    with pytest.raises(RepositoryNotFoundError):
        admin_api.space_info("admin/moved")
    with pytest.raises(RepositoryNotFoundError):
        admin_api.delete_repo("admin/moved", repo_type="space")
    admin_api.delete_repo("admin/moved", repo_type="space", missing_ok=True)


def test_space_info_and_revision_info(admin_api: HfApi, site: str) -> None:
    info = admin_api.space_info(SITE)
    assert info.id == SITE and info.sha == site and info.sdk == "static" and info.private is False
    assert info.last_modified is not None and info.card_data is not None
    assert sorted(s.rfilename for s in info.siblings or []) == [
        "README.md",
        "assets/a.css",
        "assets/deep/b.js",
        "index.html",
    ]
    assert info.subdomain == "admin-files-site" and info.host and info.runtime is not None
    at = admin_api.space_info(SITE, revision=site, files_metadata=True, expand=None)
    assert at.sha == site and {s.rfilename: s.size for s in at.siblings or []}["index.html"] == 14
    assert admin_api.repo_info(SITE, repo_type="space", revision="main").sha == admin_api.space_info(SITE).sha
    with httpx.Client(base_url=admin_api.endpoint) as c:  # expand= is tolerated
        assert c.get(f"/api/spaces/{SITE}", params=[("expand", "sdk"), ("expand", "runtime")]).status_code == 200


def test_list_spaces_with_author_search_limit_and_link_pages(server: Server, admin_api: HfApi, site: str) -> None:
    for i in range(3):
        admin_api.create_repo(f"admin/listing-{i}", repo_type="space", space_sdk="static")
    found = [s.id for s in admin_api.list_spaces(author="admin", search="listing")]
    assert sorted(found) == ["admin/listing-0", "admin/listing-1", "admin/listing-2"]
    assert len(list(admin_api.list_spaces(search="listing", limit=2))) == 2
    first = httpx.get(f"{server.url}/api/spaces", params={"search": "listing", "limit": 2}, timeout=10)
    assert len(first.json()) == 2 and first.links["next"]["url"]
    rest = httpx.get(first.links["next"]["url"], timeout=10).json()
    assert {s["id"] for s in first.json() + rest} == set(found)


def test_tree_files_and_paths_info(admin_api: HfApi, site: str) -> None:
    assert sorted(admin_api.list_repo_files(SITE, repo_type="space")) == [
        "README.md",
        "assets/a.css",
        "assets/deep/b.js",
        "index.html",
    ]
    top = {e.path: e for e in admin_api.list_repo_tree(SITE, repo_type="space")}
    assert isinstance(top["assets"], RepoFolder) and isinstance(top["index.html"], RepoFile)
    assert top["index.html"].size == 14 and len(top["index.html"].blob_id) == 40
    sub = [e.path for e in admin_api.list_repo_tree(SITE, "assets", repo_type="space", recursive=True)]
    assert sub == ["assets/a.css", "assets/deep", "assets/deep/b.js"]
    expanded = list(admin_api.list_repo_tree(SITE, "assets/deep", repo_type="space", expand=True))
    assert isinstance(expanded[0], RepoFile) and expanded[0].last_commit and expanded[0].last_commit.oid == site
    infos = admin_api.get_paths_info(SITE, ["index.html", "assets", "missing.txt"], repo_type="space")
    assert {type(i).__name__: i.path for i in infos} == {"RepoFile": "index.html", "RepoFolder": "assets"}


def test_hf_hub_download(admin_api: HfApi, site: str, tmp_path: Path) -> None:
    path = admin_api.hf_hub_download(SITE, "assets/deep/b.js", repo_type="space", cache_dir=str(tmp_path))
    assert Path(path).read_text() == "let b" and site in path
    pinned = admin_api.hf_hub_download(SITE, "index.html", repo_type="space", revision=site, local_dir=tmp_path / "l")
    assert Path(pinned).read_text() == "<h1>files</h1>"
    snapshot = Path(admin_api.snapshot_download(SITE, repo_type="space", cache_dir=str(tmp_path / "snap")))
    assert (snapshot / "assets" / "deep" / "b.js").read_text() == "let b" and snapshot.name == site
    head = httpx.head(f"{admin_api.endpoint}/spaces/{SITE}/resolve/main/index.html", timeout=10)
    assert head.headers["x-repo-commit"] == site and head.headers["content-length"] == "14"
    (index,) = admin_api.get_paths_info(SITE, ["index.html"], repo_type="space")
    assert isinstance(index, RepoFile) and head.headers["etag"].strip('"') == index.blob_id


def test_names_that_look_like_routes(admin_api: HfApi, tmp_path: Path) -> None:
    admin_api.create_repo("admin/tree", repo_type="space", space_sdk="static")
    admin_api.upload_file(
        path_or_fileobj=b"x y", path_in_repo="dir with space/tree.txt", repo_id="admin/tree", repo_type="space"
    )
    assert admin_api.list_repo_files("admin/tree", repo_type="space") == ["dir with space/tree.txt"]
    assert [e.path for e in admin_api.list_repo_tree("admin/tree", "dir with space", repo_type="space")] == [
        "dir with space/tree.txt"
    ]
    got = admin_api.hf_hub_download("admin/tree", "dir with space/tree.txt", repo_type="space", cache_dir=str(tmp_path))
    assert Path(got).read_text() == "x y"


def test_errors_are_the_hubs(admin_api: HfApi, anon_api: HfApi, site: str, tmp_path: Path) -> None:
    with pytest.raises(RepositoryNotFoundError):
        anon_api.space_info("admin/does-not-exist")
    with pytest.raises(RevisionNotFoundError):
        admin_api.space_info(SITE, revision="no-such-branch")
    with pytest.raises(RevisionNotFoundError):
        admin_api.list_repo_files(SITE, repo_type="space", revision="0" * 40)
    with pytest.raises(EntryNotFoundError):
        admin_api.hf_hub_download(SITE, "nope.txt", repo_type="space", cache_dir=str(tmp_path))
    with pytest.raises(EntryNotFoundError):
        list(admin_api.list_repo_tree(SITE, "nope", repo_type="space"))
    with pytest.raises(HfHubHTTPError) as gone:
        admin_api.delete_file("nope.txt", SITE, repo_type="space")
    assert gone.value.response.status_code == 404


def test_commits_are_git_commits_and_build(server: Server, admin_api: HfApi, site: str, tmp_path: Path) -> None:
    one = admin_api.upload_file(
        path_or_fileobj=b"hello", path_in_repo="docs/hello.txt", repo_id=SITE, repo_type="space", commit_message="hi"
    )
    two = admin_api.create_commit(
        SITE,
        repo_type="space",
        operations=[
            CommitOperationAdd("docs/second.txt", b"2"),
            CommitOperationAdd("index.html", b"<h1>v2</h1>"),
            CommitOperationDelete("assets/deep/"),
            CommitOperationDelete("docs/hello.txt"),
            CommitOperationCopy("assets/a.css", "docs/a-copy.css"),
        ],
        commit_message="Second",
        commit_description="with a body",
        parent_commit=one.oid,
    )
    assert sorted(admin_api.list_repo_files(SITE, repo_type="space")) == [
        "README.md",
        "assets/a.css",
        "docs/a-copy.css",
        "docs/second.txt",
        "index.html",
    ]
    # a stale parent_commit is refused (compare-and-swap), nothing changes
    with pytest.raises(HfHubHTTPError) as stale:
        admin_api.create_commit(
            SITE,
            repo_type="space",
            operations=[CommitOperationAdd("late.txt", b"late")],
            commit_message="late",
            parent_commit=one.oid,
        )
    assert stale.value.response.status_code == 412
    # git sees exactly these commits, with their messages and authors
    git(tmp_path, "clone", "-q", server.git_url(SITE, token=None), "wc")
    wc = tmp_path / "wc"
    log = git(wc, "log", "--format=%H|%an|%s|%b%x00").stdout.split("\0")
    assert log[0].strip() == f"{two.oid}|admin|Second|with a body"
    assert log[1].strip() == f"{one.oid}|admin|hi|"
    assert (wc / "index.html").read_text() == "<h1>v2</h1>" and not (wc / "assets" / "deep").exists()
    # and the commit was built and is served, like a push
    server.wait_stage(SITE, {"RUNNING"}, sha=two.oid)
    assert server.app_get(SITE, "/").text == "<h1>v2</h1>"
    # an unchanged file makes no commit (the client compares the blob ids preupload returned)
    same = admin_api.upload_file(path_or_fileobj=b"2", path_in_repo="docs/second.txt", repo_id=SITE, repo_type="space")
    assert same.oid == two.oid


def test_large_files_through_lfs_with_xet_disabled(
    server: Server, admin_api: HfApi, site: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = tmp_path / "weights.bin"
    big.write_bytes(os.urandom(Settings.model_fields["inline_upload_limit"].default + 1024))
    # With hf_xet installed (the default) large files go through Xet (tests/hub/test_xet.py);
    # HF_HUB_DISABLE_XET=1 keeps the client on the LFS batch API (basic transfer)
    monkeypatch.setattr(hf_constants, "HF_HUB_DISABLE_XET", True)
    info = admin_api.upload_file(path_or_fileobj=str(big), path_in_repo="weights.bin", repo_id=SITE, repo_type="space")
    files = {e.path: e for e in admin_api.list_repo_tree(SITE, repo_type="space")}
    assert isinstance(files["weights.bin"], RepoFile) and files["weights.bin"].size == big.stat().st_size
    got = admin_api.hf_hub_download(SITE, "weights.bin", repo_type="space", cache_dir=str(tmp_path / "c"))
    assert Path(got).read_bytes() == big.read_bytes()
    # stored as an ordinary git blob: a clone has the content, not an LFS pointer
    git(tmp_path, "clone", "-q", server.git_url(SITE, token=None), "wc")
    assert (tmp_path / "wc" / "weights.bin").stat().st_size == big.stat().st_size
    assert info.oid == git(tmp_path / "wc", "rev-parse", "HEAD").stdout.strip()
