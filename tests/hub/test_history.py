"""History and refs with the real huggingface_hub client and the hf CLI through a real server:
list_repo_commits (with its Link pages), list_repo_refs, branches and tags, revisions by branch, tag or
sha, commits to a branch, and what a read-only or anonymous caller may not do."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from huggingface_hub.errors import BadRequestError, HfHubHTTPError, RevisionNotFoundError

from tests.hub.conftest import Users, hf
from tests.support import Server, commit_all, git

SPACE = "hubalice/history"
README = "---\ntitle: History\nsdk: static\n---\n"
MANY = 57  # more than one page of 50


@pytest.fixture(scope="module")
def shas(server: Server, users: Users, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """A static Space with MANY + 1 commits pushed with git; returns the shas, oldest first."""
    api = hf(server, users.alice)
    api.create_repo(SPACE, repo_type="space", space_sdk="static")
    wc = tmp_path_factory.mktemp("history")
    git(wc, "init", "-q", "-b", "main")
    (wc / "README.md").write_text(README)
    (wc / "index.html").write_text("<p>0</p>")
    made = [commit_all(wc, "first commit")]
    for i in range(1, MANY + 1):
        (wc / "index.html").write_text(f"<p>{i}</p>")
        made.append(commit_all(wc, f"change {i}"))
    url = server.git_url(SPACE, users.alice, user="hubalice")
    git(wc, "push", "-q", url, "main")
    server.wait_stage(SPACE, {"RUNNING"}, sha=made[-1])
    return made


def test_list_repo_commits_follows_every_page(server: Server, users: Users, shas: list[str]) -> None:
    api = hf(server, users.alice)
    commits = api.list_repo_commits(SPACE, repo_type="space")
    assert [c.commit_id for c in commits] == shas[::-1]
    assert commits[0].title == f"change {MANY}" and commits[-1].title == "first commit"
    assert commits[0].authors == ["Test"] and commits[0].created_at.tzinfo is not None
    # the pages themselves: 50 and a Link to the rest, with the total
    first = httpx.get(f"{server.url}/api/spaces/{SPACE}/commits/main", timeout=30)
    assert len(first.json()) == 50 and first.headers["x-total-count"] == str(MANY + 1)
    rest = httpx.get(first.links["next"]["url"], timeout=30)
    assert len(rest.json()) == MANY + 1 - 50 and "next" not in rest.links
    # from an older revision (a sha), and a missing revision is the client's RevisionNotFoundError
    older = api.list_repo_commits(SPACE, repo_type="space", revision=shas[2])
    assert [c.commit_id for c in older] == shas[2::-1]
    with pytest.raises(RevisionNotFoundError):
        api.list_repo_commits(SPACE, repo_type="space", revision="no-such-branch")


def test_branches_and_tags_through_the_client(server: Server, users: Users, shas: list[str], tmp_path: Path) -> None:
    api = hf(server, users.alice)
    refs = api.list_repo_refs(SPACE, repo_type="space")
    assert [(b.name, b.ref, b.target_commit) for b in refs.branches] == [("main", "refs/heads/main", shas[-1])]
    assert refs.tags == [] and refs.converts == []
    # a branch from an old commit; commit to it; main does not move and is not rebuilt from it
    api.create_branch(SPACE, repo_type="space", branch="dev", revision=shas[3])
    with pytest.raises(HfHubHTTPError) as exists:
        api.create_branch(SPACE, repo_type="space", branch="dev")
    assert exists.value.response.status_code == 409
    api.create_branch(SPACE, repo_type="space", branch="dev", exist_ok=True)
    info = api.upload_file(
        path_or_fileobj=b"only on dev", path_in_repo="dev.txt", repo_id=SPACE, repo_type="space", revision="dev"
    )
    branches = {b.name: b.target_commit for b in api.list_repo_refs(SPACE, repo_type="space").branches}
    assert branches == {"main": shas[-1], "dev": info.oid}
    assert "dev.txt" in api.list_repo_files(SPACE, repo_type="space", revision="dev")
    assert "dev.txt" not in api.list_repo_files(SPACE, repo_type="space")
    assert [c.commit_id for c in api.list_repo_commits(SPACE, repo_type="space", revision="dev")][1] == shas[3]
    assert server.runtime(SPACE)["sha"] == shas[-1]
    # a branch name with a slash, quoted by the client
    api.create_branch(SPACE, repo_type="space", branch="feature/x", revision="dev")
    assert api.space_info(SPACE, revision="feature/x").sha == info.oid
    # tags: lightweight and annotated, on a sha or a branch; revision= a tag everywhere
    api.create_tag(SPACE, repo_type="space", tag="v1", revision=shas[1])
    api.create_tag(SPACE, repo_type="space", tag="v2", revision="dev", tag_message="second release")
    tags = {t.name: t.target_commit for t in api.list_repo_refs(SPACE, repo_type="space").tags}
    assert tags == {"v1": shas[1], "v2": info.oid}
    got = api.hf_hub_download(SPACE, "index.html", repo_type="space", revision="v1", cache_dir=str(tmp_path))
    assert Path(got).read_text() == "<p>1</p>"
    assert api.space_info(SPACE, revision="v1").sha == shas[1]
    assert api.list_repo_tree(SPACE, repo_type="space", revision="v2") is not None
    assert "dev.txt" in api.list_repo_files(SPACE, repo_type="space", revision="v2")
    (readme,) = api.get_paths_info(SPACE, ["README.md"], repo_type="space", revision=shas[0][:12])
    assert readme.path == "README.md"
    with pytest.raises(HfHubHTTPError) as dup:
        api.create_tag(SPACE, repo_type="space", tag="v1")
    assert dup.value.response.status_code == 409
    api.create_tag(SPACE, repo_type="space", tag="v1", exist_ok=True)
    # a tag is not a branch: commits to it are refused
    with pytest.raises(RevisionNotFoundError):
        api.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id=SPACE, repo_type="space", revision="v1")
    # git sees the same refs
    ls = git(tmp_path, "ls-remote", server.git_url(SPACE, users.alice, user="hubalice")).stdout
    assert f"{info.oid}\trefs/heads/dev" in ls and "refs/tags/v2" in ls and f"{shas[1]}\trefs/tags/v1" in ls
    # delete
    api.delete_tag(SPACE, repo_type="space", tag="v2")
    api.delete_branch(SPACE, repo_type="space", branch="feature/x")
    refs = api.list_repo_refs(SPACE, repo_type="space")
    assert {b.name for b in refs.branches} == {"main", "dev"} and {t.name for t in refs.tags} == {"v1"}
    with pytest.raises(RevisionNotFoundError):
        api.delete_tag(SPACE, repo_type="space", tag="v2")


def test_bad_ref_requests_are_refused(server: Server, users: Users, shas: list[str]) -> None:
    api = hf(server, users.alice)
    with pytest.raises(BadRequestError, match="main branch cannot be deleted"):
        api.delete_branch(SPACE, repo_type="space", branch="main")
    for bad in ("a..b", "-x", "bad name", "x.lock", "refs/heads/y", "a~1"):
        with pytest.raises((BadRequestError, RevisionNotFoundError)):
            api.create_branch(SPACE, repo_type="space", branch=bad)
        with pytest.raises((BadRequestError, RevisionNotFoundError)):
            api.create_tag(SPACE, repo_type="space", tag=bad)
    with pytest.raises(RevisionNotFoundError):
        api.create_branch(SPACE, repo_type="space", branch="from-nowhere", revision="not-a-rev")
    with pytest.raises(RevisionNotFoundError):
        api.create_branch(SPACE, repo_type="space", branch="opt", revision="--output=/tmp/x")
    names = {b.name for b in api.list_repo_refs(SPACE, repo_type="space").branches}
    assert not names & {"a..b", "-x", "from-nowhere", "opt"}
    # read token: 403; anonymous: 401; another user's Space: 403 — refs stay as they were
    for token, status in ((users.alice_read, 403), (False, 401), (users.bob, 403)):
        other = hf(server, token)
        with pytest.raises(HfHubHTTPError) as denied:
            other.create_branch(SPACE, repo_type="space", branch="intruder")
        assert denied.value.response.status_code == status
        with pytest.raises(HfHubHTTPError) as denied:
            other.delete_branch(SPACE, repo_type="space", branch="main")
        assert denied.value.response.status_code == status
        with pytest.raises(HfHubHTTPError) as denied:
            other.create_tag(SPACE, repo_type="space", tag="intruder")
        assert denied.value.response.status_code == status
    # reading refs and history of a public Space needs no token
    assert hf(server, False).list_repo_refs(SPACE, repo_type="space").branches
    assert "intruder" not in {b.name for b in api.list_repo_refs(SPACE, repo_type="space").branches}


def test_hf_cli_branch_and_tag_commands(server: Server, users: Users, shas: list[str]) -> None:
    hf_cli = str(Path(sys.executable).parent / "hf")
    env = {**server.env, "HF_ENDPOINT": server.url, "HF_TOKEN": users.alice, "NO_COLOR": "1"}

    def run(*args: str) -> str:
        proc = subprocess.run(
            [hf_cli, "repos", *args, "--type", "space"], env=env, capture_output=True, text=True, timeout=120
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout

    run("branch", "create", SPACE, "cli-branch", "--revision", shas[5])
    run("tag", "create", SPACE, "cli-tag", "-m", "from the cli", "--revision", "cli-branch")
    listed = run("tag", "list", SPACE, "--json")
    assert "cli-tag" in json.dumps(json.loads(listed))
    api = hf(server, users.alice)
    refs = api.list_repo_refs(SPACE, repo_type="space")
    assert {b.name: b.target_commit for b in refs.branches}["cli-branch"] == shas[5]
    assert {t.name: t.target_commit for t in refs.tags}["cli-tag"] == shas[5]
    run("tag", "delete", SPACE, "cli-tag", "--yes")
    run("branch", "delete", SPACE, "cli-branch")
    refs = api.list_repo_refs(SPACE, repo_type="space")
    assert "cli-branch" not in {b.name for b in refs.branches} and "cli-tag" not in {t.name for t in refs.tags}


def test_commit_links_printed_by_the_client_open_the_commit_page(server: Server, users: Users, shas: list[str]) -> None:
    api = hf(server, users.alice)
    info = api.upload_file(
        path_or_fileobj=b"<p>linked</p>", path_in_repo="index.html", repo_id=SPACE, repo_type="space"
    )
    assert info.commit_url == f"{server.url}/spaces/{SPACE}/commit/{info.oid}"
    page = httpx.get(info.commit_url, headers={"Accept": "text/html"}, timeout=30)
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert info.oid in page.text and "Upload index.html" in page.text
    assert "&lt;p&gt;linked&lt;/p&gt;" in page.text and f"&lt;p&gt;{MANY}&lt;/p&gt;" in page.text  # the diff
    history = httpx.get(f"{server.url}/spaces/{SPACE}/commits/main", timeout=30)
    assert history.status_code == 200 and f"/spaces/{SPACE}/commit/{info.oid}" in history.text
    missing = httpx.get(f"{server.url}/spaces/{SPACE}/commit/{'0' * 40}", timeout=30)
    assert missing.status_code == 404


def test_list_repo_tree_pages_and_expand(server: Server, users: Users, tmp_path: Path) -> None:
    """More entries than one expanded page (100) holds: the client follows the Link pages."""
    space = "hubalice/many-files"
    api = hf(server, users.alice)
    api.create_repo(space, repo_type="space", space_sdk="static")
    wc = tmp_path / "many"
    (wc / "d").mkdir(parents=True)
    git(wc, "init", "-q", "-b", "main")
    (wc / "README.md").write_text(README)
    for i in range(130):
        (wc / "d" / f"f{i:03}.txt").write_text(str(i))
    sha = commit_all(wc, "many files")
    git(wc, "push", "-q", server.git_url(space, users.alice, user="hubalice"), "main")
    entries = list(api.list_repo_tree(space, "d", repo_type="space", expand=True))
    assert [e.path for e in entries] == [f"d/f{i:03}.txt" for i in range(130)]
    assert all(e.last_commit is not None and e.last_commit.oid == sha for e in entries)
    first = httpx.get(f"{server.url}/api/spaces/{space}/tree/main/d", params={"expand": "true"}, timeout=30)
    assert len(first.json()) == 100 and first.links["next"]["url"]
    assert len(list(api.list_repo_tree(space, repo_type="space", recursive=True))) == 132
    infos = api.get_paths_info(space, ["d", "d/f007.txt", "README.md", "d/nope"], repo_type="space", expand=True)
    assert [(type(i).__name__, i.path) for i in infos] == [
        ("RepoFolder", "d"),
        ("RepoFile", "d/f007.txt"),
        ("RepoFile", "README.md"),
    ]
    assert all(i.last_commit is not None for i in infos)


def test_hostile_commit_messages_are_data(server: Server, users: Users, tmp_path: Path) -> None:
    space = "hubalice/hostile-history"
    api = hf(server, users.alice)
    api.create_repo(space, repo_type="space", space_sdk="static")
    wc = tmp_path / "hostile"
    wc.mkdir()
    git(wc, "init", "-q", "-b", "main")
    (wc / "README.md").write_text(README)
    git(wc, "add", "-A")
    title = "<script>alert(1)</script> \x1e%x00 sep"
    git(wc, "commit", "-q", "-m", title, "-m", "body <b>bold</b>")
    (wc / "x.txt").write_text("<img src=x onerror=alert(1)>\n")
    sha = commit_all(wc, "second")
    git(wc, "push", "-q", server.git_url(space, users.alice, user="hubalice"), "main")
    commits = api.list_repo_commits(space, repo_type="space")
    assert [c.title for c in commits] == ["second", title] and commits[1].message == "body <b>bold</b>"
    first = commits[1].commit_id
    page = httpx.get(f"{server.url}/spaces/{space}/commit/{first}", timeout=30).text
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    page = httpx.get(f"{server.url}/spaces/{space}/commit/{sha}", timeout=30).text
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    history = httpx.get(f"{server.url}/spaces/{space}/commits/main", timeout=30).text
    assert "<script>alert(1)" not in history
