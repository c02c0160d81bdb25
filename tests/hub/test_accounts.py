"""Accounts and access with the real huggingface_hub client: whoami, namespaces (users and
organizations), read/write tokens, private Spaces — on the API, over git and through the gateway."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from huggingface_hub import HfApi
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

from tests.hub.conftest import Users, hf
from tests.support import Server, git

PRIVATE = "hubalice/private-site"
PUBLIC = "hubacme/public-site"


@pytest.fixture(scope="module")
def sites(server: Server, users: Users) -> dict[str, str]:
    """A private static Space of hubalice and a public one of her organization, both serving."""
    alice = hf(server, users.alice)
    shas = {}
    for repo_id, private in ((PRIVATE, True), (PUBLIC, False)):
        alice.create_repo(repo_id, repo_type="space", space_sdk="static", private=private)
        readme = b"---\ntitle: Site\nsdk: static\n---\n"
        index = f"<h1>{repo_id}</h1>".encode()
        alice.upload_file(path_or_fileobj=readme, path_in_repo="README.md", repo_id=repo_id, repo_type="space")
        info = alice.upload_file(path_or_fileobj=index, path_in_repo="index.html", repo_id=repo_id, repo_type="space")
        shas[repo_id] = info.oid
    for repo_id, sha in shas.items():
        server.wait_stage(repo_id, {"RUNNING"}, sha=sha)
    return shas


def test_whoami_for_users_organizations_and_token_roles(server: Server, users: Users) -> None:
    me = hf(server, users.alice).whoami()
    assert me["name"] == "hubalice" and me["type"] == "user"
    assert [o["name"] for o in me["orgs"]] == ["hubacme"]
    assert me["auth"]["accessToken"]["role"] == "write"
    assert hf(server, users.alice_read).whoami()["auth"]["accessToken"]["role"] == "read"
    assert hf(server, users.carol_read).whoami()["name"] == "hubcarol"
    with pytest.raises(HfHubHTTPError) as bad:
        hf(server, "sy_not_a_token").whoami()
    assert bad.value.response.status_code == 401 and "Invalid user token" in str(bad.value)


def test_who_may_create_where(server: Server, users: Users, anon_api: HfApi) -> None:
    alice, bob = hf(server, users.alice), hf(server, users.bob)
    assert alice.create_repo("hubacme/org-made", repo_type="space", space_sdk="gradio").repo_id == "hubacme/org-made"
    # bob is not in hubacme; a read token creates nothing; nobody creates without a token
    with pytest.raises(HfHubHTTPError) as forbidden:
        bob.create_repo("hubacme/intruder", repo_type="space", space_sdk="gradio")
    assert forbidden.value.response.status_code == 403
    with pytest.raises(HfHubHTTPError) as read_only:
        hf(server, users.alice_read).create_repo("hubalice/ro", repo_type="space", space_sdk="gradio")
    assert read_only.value.response.status_code == 403
    with pytest.raises(HfHubHTTPError) as anonymous:
        anon_api.create_repo("hubalice/anon", repo_type="space", space_sdk="gradio")
    assert anonymous.value.response.status_code == 401


def test_private_space_is_404_on_the_api_to_everyone_without_access(
    server: Server, users: Users, anon_api: HfApi, sites: dict[str, str]
) -> None:
    for outsider in (anon_api, hf(server, users.bob), hf(server, users.carol_read)):
        with pytest.raises(RepositoryNotFoundError):
            outsider.space_info(PRIVATE)
        with pytest.raises(RepositoryNotFoundError):
            outsider.list_repo_files(PRIVATE, repo_type="space")
        with pytest.raises(RepositoryNotFoundError):
            outsider.hf_hub_download(PRIVATE, "index.html", repo_type="space", cache_dir=str(server.data_dir / "c"))
        assert PRIVATE not in [s.id for s in outsider.list_spaces(author="hubalice")]
    # the owner sees it with either token; the organization's public Space is public
    assert hf(server, users.alice_read).space_info(PRIVATE).private is True
    assert PRIVATE in [s.id for s in hf(server, users.alice).list_spaces(author="hubalice")]
    assert anon_api.space_info(PUBLIC).private is False


def test_writes_need_a_write_token_of_the_owner(
    server: Server, users: Users, anon_api: HfApi, sites: dict[str, str]
) -> None:
    def upload(api: HfApi) -> None:
        api.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id=PUBLIC, repo_type="space")

    with pytest.raises(HfHubHTTPError) as anonymous:
        upload(anon_api)
    assert anonymous.value.response.status_code == 401
    for wrong in (hf(server, users.bob), hf(server, users.alice_read)):
        with pytest.raises(HfHubHTTPError) as exc:
            upload(wrong)
        assert exc.value.response.status_code == 403
        with pytest.raises(HfHubHTTPError) as exc:
            wrong.add_space_variable(PUBLIC, "X", "1")
        assert exc.value.response.status_code == 403
    with pytest.raises(RepositoryNotFoundError):  # bob cannot even see alice's private Space
        hf(server, users.bob).delete_repo(PRIVATE, repo_type="space")


def test_git_clone_and_push_of_a_private_space(
    server: Server, users: Users, sites: dict[str, str], tmp_path: Path
) -> None:
    anon = git(tmp_path, "clone", "-q", server.git_url(PRIVATE, token=None), "anon", check=False)
    assert anon.returncode != 0
    bob = git(tmp_path, "clone", "-q", server.git_url(PRIVATE, users.bob, "hubbob"), "bob", check=False)
    assert bob.returncode != 0 and "not found" in bob.stderr.lower()
    git(tmp_path, "clone", "-q", server.git_url(PRIVATE, users.alice_read, "hubalice"), "alice")
    wc = tmp_path / "alice"
    assert (wc / "index.html").read_text() == f"<h1>{PRIVATE}</h1>"
    (wc / "more.txt").write_text("more")
    git(wc, "add", "-A")
    git(wc, "commit", "-q", "-m", "more")
    refused = git(wc, "push", "-q", "origin", "main", check=False)  # a read token cannot push
    assert refused.returncode != 0
    git(wc, "push", "-q", server.git_url(PRIVATE, users.alice, "hubalice"), "main")
    assert "more.txt" in hf(server, users.alice).list_repo_files(PRIVATE, repo_type="space")
    # bob pushing to the public organization Space is refused too
    git(tmp_path, "clone", "-q", server.git_url(PUBLIC, token=None), "pub")
    (tmp_path / "pub" / "b.txt").write_text("b")
    git(tmp_path / "pub", "add", "-A")
    git(tmp_path / "pub", "commit", "-q", "-m", "b")
    assert git(
        tmp_path / "pub", "push", "-q", server.git_url(PUBLIC, users.bob, "hubbob"), "main", check=False
    ).returncode


def test_gateway_hides_a_private_space_unless_the_token_may_read_it(
    server: Server, users: Users, sites: dict[str, str]
) -> None:
    url = f"{server.url}/apps/{PRIVATE}/"
    assert httpx.get(url, timeout=30).status_code == 404
    for token in (users.bob, users.carol_read):
        assert httpx.get(url, headers={"x-hf-authorization": f"Bearer {token}"}, timeout=30).status_code == 404
    ok = httpx.get(url, headers={"x-hf-authorization": f"Bearer {users.alice_read}"}, timeout=30)
    assert ok.status_code == 200 and PRIVATE in ok.text
    assert server.app_get(PUBLIC, "/").status_code == 200


def test_organization_roles(server: Server, users: Users, anon_api: HfApi) -> None:
    alice, dave = hf(server, users.alice), hf(server, users.dave)
    alice.create_repo("hubacme/internal", repo_type="space", space_sdk="gradio", private=True)
    assert dave.space_info("hubacme/internal").private is True  # a read member sees private org Spaces
    with pytest.raises(HfHubHTTPError) as exc:  # ... but cannot write there, even with a write token
        dave.add_space_variable("hubacme/internal", "X", "1")
    assert exc.value.response.status_code == 403
    with pytest.raises(HfHubHTTPError) as exc:
        dave.create_repo("hubacme/daves", repo_type="space", space_sdk="gradio")
    assert exc.value.response.status_code == 403
    assert dave.create_repo("hubdave/own", repo_type="space", space_sdk="gradio").repo_id == "hubdave/own"
    for outsider in (anon_api, hf(server, users.bob)):
        with pytest.raises(RepositoryNotFoundError):
            outsider.space_info("hubacme/internal")


def test_hf_cli_login_and_whoami(server: Server, users: Users, tmp_path: Path) -> None:
    """What a user types: `hf auth login` stores the token (validated through whoami-v2), then it is used."""
    hf_cli = Path(sys.executable).parent / "hf"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "SPACEYARD_"))}
    env.update({"HF_ENDPOINT": server.url, "HF_HOME": str(tmp_path / "hf-home"), "NO_COLOR": "1"})

    def run(*args: str) -> str:
        out = subprocess.run([str(hf_cli), *args], env=env, capture_output=True, text=True, timeout=60, check=False)
        assert out.returncode == 0, out.stderr
        return out.stdout + out.stderr

    assert "Login successful" in run("auth", "login", "--token", users.alice)
    assert (tmp_path / "hf-home" / "token").read_text().strip() == users.alice
    assert "hubalice" in run("auth", "whoami")
