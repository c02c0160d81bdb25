"""Properties of names, refs and paths: the checks agree with git (and the Hub's rules), and the real
server answers every generated input with the right 4xx, never a 5xx, and never lets two Spaces share
an address. Example counts are bounded so the file runs in well under a minute."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spaceyard_platform import gitsafe, names
from tests.conftest import free_port
from tests.support import Server, start_server

FAST = settings(max_examples=300, deadline=None)
SERVER = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

ref_chars = st.sampled_from(list("abcAZ09-_./@{}~^:?*[\\ \t\n\x00\x7fé") + ["lock", ".lock", "..", "//"])
ref_text = st.lists(ref_chars, min_size=0, max_size=12).map("".join)
name_text = st.text(alphabet=st.sampled_from(list("aZ09-_./\n é")), min_size=0, max_size=12) | st.sampled_from(
    ["demo", "a" * 96, "a" * 97, "x.git", "X.GIT", "a--b", "a..b", "-a", "a-", "_a_", "1"]
)
path_text = st.lists(
    st.sampled_from(["a", "b.txt", "..", ".", "", ".git", ".GIT", "é", "x\x00y", "sp ace", '"q"', "%2F"]),
    min_size=0,
    max_size=5,
).map("/".join)


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory, shared_env_dir: Path) -> Iterator[Server]:
    server = start_server(tmp_path_factory.mktemp("properties"), free_port(), shared_env_dir)
    server.create_space("admin/prop", sdk="static")
    lines = '{"key":"header","value":{"summary":"x"}}\n{"key":"file","value":{"path":"a/b.txt","content":"aGk="}}'
    r = server.api(
        "POST", "/api/spaces/admin/prop/commit/main", content=lines, headers={"content-type": "application/x-ndjson"}
    )
    assert r.status_code == 200, r.text
    yield server
    server.stop()


def git_accepts(ref: str) -> bool:
    proc = subprocess.run(["git", "check-ref-format", "--allow-onelevel", ref], capture_output=True, check=False)
    return proc.returncode == 0


# ------------------------------------------------------------------------------------- pure checks
@FAST
@given(ref_text)
def test_ref_names_agree_with_git(ref: str) -> None:
    ours = gitsafe.is_ref_name(ref)
    if ref.startswith("-") or "\x00" in ref or not ref:
        assert not ours  # git would read it as an option (or cannot be given it at all)
        return
    assert ours == (git_accepts(ref) and len(ref.encode()) <= gitsafe.MAX_REF_BYTES), ref


@FAST
@given(ref_text)
def test_a_checked_revision_is_never_an_option_or_a_range(rev: str) -> None:
    try:
        gitsafe.check_revision(rev)
    except gitsafe.InvalidRevision:
        return
    assert not rev.startswith("-")
    assert not any(token in rev for token in ("..", "^", "~", ":", "@{", "\n", " "))


@FAST
@given(name_text)
def test_names_follow_the_hub_rule_as_a_full_match(name: str) -> None:
    ok = names.is_repo_name(name)
    if ok:
        assert 1 <= len(name) <= 96 and name.isascii() and "\n" not in name
        assert name[0].isalnum() and name[-1].isalnum()
        assert "--" not in name and ".." not in name and not name.lower().endswith(".git")
        assert set(name) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


@FAST
@given(st.tuples(name_text, name_text))
def test_labels_are_dns_labels(pair: tuple[str, str]) -> None:
    owner, name = pair
    if not (names.is_repo_name(owner) and names.is_repo_name(name)):
        return
    for label in names.subdomain_candidates(owner, name):
        assert 1 <= len(label) <= 63
        assert set(label) <= set("abcdefghijklmnopqrstuvwxyz0123456789-")
    assert names.hub_label(owner, name) == names.hub_label(owner.upper(), name.upper())


@FAST
@given(path_text)
def test_checked_paths_stay_inside_the_tree(path: str) -> None:
    try:
        clean = gitsafe.check_repo_path(path)
    except gitsafe.InvalidPath:
        return
    parts = clean.split("/")
    assert all(p not in ("", ".", "..") and p.lower() != ".git" for p in parts)
    assert "\x00" not in clean and not clean.startswith("/")


# ---------------------------------------------------------------------------------- real server
@SERVER
@given(rev=ref_text)
def test_server_revisions(srv: Server, rev: str) -> None:
    quoted = quote(rev, safe="")
    for path in (f"/api/spaces/admin/prop/revision/{quoted}", f"/spaces/admin/prop/resolve/{quoted}/a/b.txt"):
        r = srv.api("GET", path)
        assert r.status_code in (200, 307, 400, 404), (rev, path, r.status_code)
        if r.status_code != 200:
            assert r.headers.get("x-error-message")
        elif path.startswith("/api"):
            assert gitsafe.is_ref_name(rev) or gitsafe.HEX_OBJECT.fullmatch(rev)
    page = srv.api("GET", f"/spaces/admin/prop/commits/{quoted}")
    assert page.status_code in (200, 307, 400, 404), (rev, page.status_code)


@SERVER
@given(path=path_text)
def test_server_paths(srv: Server, path: str) -> None:
    raw = quote(path, safe="/").replace(".", "%2E")  # clients would normalise a literal '..' away
    r = srv.api("GET", f"/spaces/admin/prop/resolve/main/{raw}")
    assert r.status_code in (200, 307, 400, 404), (path, r.status_code)
    if r.status_code == 200:
        assert gitsafe.check_repo_path(path) == "a/b.txt" and r.content == b"hi"
    tree = srv.api("GET", f"/api/spaces/admin/prop/tree/main/{raw}")
    assert tree.status_code in (200, 307, 400, 404), (path, tree.status_code)


@SERVER
@given(owner=name_text, name=name_text)
def test_server_names_and_unique_addresses(srv: Server, owner: str, name: str) -> None:
    r = srv.api(
        "POST", "/api/repos/create", json={"name": name, "organization": owner, "type": "space", "sdk": "static"}
    )
    assert r.status_code in (200, 400, 409, 422), (owner, name, r.status_code, r.text)
    if r.status_code == 200:
        assert names.is_repo_name(owner) and names.is_repo_name(name)
    spaces = httpx.get(f"{srv.url}/api/spaces", params={"limit": 1000}, timeout=30).json()
    labels = [s["subdomain"] for s in spaces]
    assert len(labels) == len(set(labels))
    ids = [s["id"].lower() for s in spaces]
    assert len(ids) == len(set(ids))
