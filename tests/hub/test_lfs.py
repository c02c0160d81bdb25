"""Git LFS end to end with the real git-lfs (Debian's) and huggingface_hub through a real server:
push a 20 MB tracked file -> the build checks out its real content -> the Gradio app reads it -> a fresh
clone (smudge), `git lfs fetch`, `/resolve/` (ranges, X-Linked-* headers) and hf_hub_download all give
the same sha256; tree, paths-info and repo_info carry the `lfs` block; locks. And the abuse cases:
knowing a sha256 is not enough to read another Space's file, uploads must match what they announce,
and action URLs are bound to their object and action."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import httpx
import pytest
from gradio_client import Client
from huggingface_hub import RepoFile

from tests.hub.conftest import Users, hf
from tests.support import Server, commit_all, git

pytestmark = pytest.mark.slow
SPACE = "hubalice/lfs-app"
SIZE = 20 * 1024 * 1024
APP = """import hashlib

import gradio as gr


def digest(name: str) -> str:
    with open(name, "rb") as f:
        data = f.read()
    return f"{hashlib.sha256(data).hexdigest()} {len(data)}"


with gr.Blocks() as demo:
    name = gr.Textbox()
    out = gr.Textbox()
    gr.Button("Digest").click(digest, name, out, api_name="digest")

demo.launch()
"""
README = "---\ntitle: LFS\nsdk: gradio\nsdk_version: 6.31.0\napp_file: app.py\n---\n"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def lfs_repo(path: Path) -> Path:
    """A working copy where git-lfs is installed (hooks and filters, whatever the machine's config)."""
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    git(path, "lfs", "install", "--local")
    git(path, "lfs", "track", "*.bin")
    return path


@pytest.fixture(scope="module")
def pushed(server: Server, users: Users, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A Gradio Space pushed with git-lfs; the first push of a tracked 20 MB file. Returns facts about it."""
    hf(server, users.alice).create_repo(SPACE, repo_type="space", space_sdk="gradio")
    wc = lfs_repo(tmp_path_factory.mktemp("lfs") / "wc")
    (wc / "README.md").write_text(README)
    (wc / "app.py").write_text(APP)
    (wc / "weights.bin").write_bytes(os.urandom(SIZE))
    sha = commit_all(wc, "weights through LFS")
    url = server.git_url(SPACE, users.alice, user="hubalice")
    out = git(wc, "push", url, "main")
    said = out.stdout + out.stderr
    assert "does not support the Git LFS locking API" not in said and "error" not in said.lower(), said
    oid = sha256(wc / "weights.bin")
    stored = server.data_dir / "lfs" / "objects" / oid[:2] / oid[2:4] / oid
    assert stored.stat().st_size == SIZE  # uploaded (and verified) by git-lfs's pre-push hook
    # what git keeps is a pointer: the server's repository has the pointer, not the 20 MB
    pointer = git(wc, "cat-file", "blob", f"{sha}:weights.bin").stdout
    assert pointer.startswith("version https://git-lfs.github.com/spec/v1") and len(pointer) < 200
    server.wait_stage(SPACE, {"RUNNING"}, sha=sha, timeout=300)
    return {"sha": sha, "oid": oid, "wc": str(wc), "url": url}


def test_the_app_reads_the_real_file(server: Server, pushed: dict[str, str]) -> None:
    client = Client(f"{server.url}/apps/{SPACE}/", verbose=False)
    assert client.predict("weights.bin", api_name="/digest") == f"{pushed['oid']} {SIZE}"


def test_fresh_clone_and_fetch_get_the_content(server: Server, pushed: dict[str, str], tmp_path: Path) -> None:
    clone = git(tmp_path, "clone", pushed["url"], "clone")
    assert clone.returncode == 0
    assert sha256(tmp_path / "clone" / "weights.bin") == pushed["oid"]
    # without smudging, then `git lfs pull`: the batch API's download action
    env_skip = {"GIT_LFS_SKIP_SMUDGE": "1"}
    os.environ.update(env_skip)
    try:
        git(tmp_path, "clone", "-q", pushed["url"], "lazy")
    finally:
        os.environ.pop("GIT_LFS_SKIP_SMUDGE")
    assert (tmp_path / "lazy" / "weights.bin").stat().st_size < 200
    git(tmp_path / "lazy", "lfs", "pull")
    assert sha256(tmp_path / "lazy" / "weights.bin") == pushed["oid"]
    # anonymous clone of a public Space: LFS downloads need no credentials either
    git(tmp_path, "clone", "-q", server.git_url(SPACE, token=None), "anon")
    assert sha256(tmp_path / "anon" / "weights.bin") == pushed["oid"]


def test_a_second_push_does_not_upload_again(server: Server, users: Users, pushed: dict[str, str]) -> None:
    wc = Path(pushed["wc"])
    (wc / "notes.txt").write_text("small change\n")
    sha = commit_all(wc, "a small change")
    stored = server.data_dir / "lfs" / "objects" / pushed["oid"][:2] / pushed["oid"][2:4] / pushed["oid"]
    before = stored.stat().st_mtime_ns
    git(wc, "push", pushed["url"], "main")
    assert stored.stat().st_mtime_ns == before  # the batch API said it is there: not sent again
    server.wait_stage(SPACE, {"RUNNING"}, sha=sha, timeout=300)
    client = Client(f"{server.url}/apps/{SPACE}/", verbose=False)
    assert client.predict("weights.bin", api_name="/digest") == f"{pushed['oid']} {SIZE}"


def test_resolve_serves_the_content_with_the_hubs_headers(
    server: Server, users: Users, pushed: dict[str, str], tmp_path: Path
) -> None:
    url = f"{server.url}/spaces/{SPACE}/resolve/main/weights.bin"
    head = httpx.head(url, timeout=30)
    assert head.status_code == 200
    assert head.headers["x-linked-size"] == str(SIZE) and head.headers["content-length"] == str(SIZE)
    assert head.headers["x-linked-etag"] == f'"{pushed["oid"]}"' == head.headers["etag"]
    assert len(head.headers["x-repo-commit"]) == 40 and head.headers["accept-ranges"] == "bytes"
    with httpx.stream("GET", url, timeout=60) as r:
        digest = hashlib.sha256()
        for chunk in r.iter_bytes():
            digest.update(chunk)
    assert digest.hexdigest() == pushed["oid"]
    data = (Path(pushed["wc"]) / "weights.bin").read_bytes()
    part = httpx.get(url, headers={"Range": "bytes=1000-1999"}, timeout=30)
    assert part.status_code == 206 and part.content == data[1000:2000]
    assert part.headers["content-range"] == f"bytes 1000-1999/{SIZE}"
    tail = httpx.get(url, headers={"Range": "bytes=-10"}, timeout=30)
    assert tail.status_code == 206 and tail.content == data[-10:]
    beyond = httpx.get(url, headers={"Range": f"bytes={SIZE}-"}, timeout=30)
    assert beyond.status_code == 416 and beyond.headers["content-range"] == f"bytes */{SIZE}"
    # a regular file supports ranges too
    small = httpx.get(f"{server.url}/spaces/{SPACE}/resolve/main/app.py", headers={"Range": "bytes=0-5"}, timeout=30)
    assert small.status_code == 206 and small.content == b"import"
    # the client: hf_hub_download checks what it gets against these headers
    api = hf(server, users.alice)
    got = api.hf_hub_download(SPACE, "weights.bin", repo_type="space", cache_dir=str(tmp_path / "cache"))
    assert sha256(Path(got)) == pushed["oid"]


def test_metadata_carries_the_lfs_block(server: Server, users: Users, pushed: dict[str, str]) -> None:
    api = hf(server, users.alice)
    files = {e.path: e for e in api.list_repo_tree(SPACE, repo_type="space")}
    weights = files["weights.bin"]
    assert isinstance(weights, RepoFile) and weights.size == SIZE and weights.lfs is not None
    assert weights.lfs.sha256 == pushed["oid"] and weights.lfs.size == SIZE and 100 < weights.lfs.pointer_size < 200
    assert isinstance(files["app.py"], RepoFile) and files["app.py"].lfs is None
    (info,) = api.get_paths_info(SPACE, ["weights.bin"], repo_type="space")
    assert isinstance(info, RepoFile) and info.lfs is not None and info.lfs.sha256 == pushed["oid"]
    assert info.blob_id == weights.blob_id and len(info.blob_id) == 40
    siblings = {s.rfilename: s for s in api.space_info(SPACE, files_metadata=True).siblings or []}
    assert siblings["weights.bin"].size == SIZE and siblings["weights.bin"].lfs is not None
    assert siblings["weights.bin"].lfs.sha256 == pushed["oid"] and siblings["weights.bin"].blob_id == info.blob_id
    assert (
        siblings["app.py"].size == len(APP.encode()) and siblings["app.py"].blob_id and siblings["app.py"].lfs is None
    )
    # the Files pages show the file's real size, and say it is in LFS
    files_page = httpx.get(f"{server.url}/spaces/{SPACE}/tree/main", timeout=30).text
    assert "LFS</span> 20.0 MB" in files_page
    blob_page = httpx.get(f"{server.url}/spaces/{SPACE}/blob/main/weights.bin", timeout=30).text
    assert "Stored with Git LFS (20.0 MB" in blob_page and pushed["oid"][:12] in blob_page


def test_locks(server: Server, users: Users, pushed: dict[str, str], tmp_path: Path) -> None:
    wc = Path(pushed["wc"])
    locked = git(wc, "lfs", "lock", "--remote", pushed["url"], "weights.bin")
    assert "Locked weights.bin" in locked.stdout, locked.stdout + locked.stderr
    listing = git(wc, "lfs", "locks", "--remote", pushed["url"]).stdout
    assert re.search(r"weights\.bin\s+hubalice\s+ID:", listing), listing
    again = git(wc, "lfs", "lock", "--remote", pushed["url"], "weights.bin", check=False)
    assert again.returncode != 0 and "already" in (again.stdout + again.stderr).lower()
    # somebody else with write access (the admin) cannot unlock it without --force
    admin_url = server.git_url(SPACE)
    other = git(wc, "lfs", "unlock", "--remote", admin_url, "weights.bin", check=False)
    assert other.returncode != 0 and "locked by hubalice" in other.stderr, other.stdout + other.stderr
    # a read-only token may list, not lock
    read_url = server.git_url(SPACE, users.alice_read, user="hubalice")
    assert "weights.bin" in git(wc, "lfs", "locks", "--remote", read_url).stdout
    denied = git(wc, "lfs", "lock", "--remote", read_url, "app.py", check=False)
    assert denied.returncode != 0
    git(wc, "lfs", "unlock", "--remote", pushed["url"], "weights.bin")
    assert "weights.bin" not in git(wc, "lfs", "locks", "--remote", pushed["url"]).stdout
    git(wc, "lfs", "lock", "--remote", pushed["url"], "app.py")
    git(wc, "lfs", "unlock", "--remote", admin_url, "app.py", "--force")
    assert git(wc, "lfs", "locks", "--remote", pushed["url"]).stdout.strip() == ""


def test_knowing_a_sha256_does_not_give_another_spaces_file(
    server: Server, users: Users, pushed: dict[str, str], tmp_path: Path
) -> None:
    """bob pushes a pointer to alice's object (he knows its sha256, not its content)."""
    thief = "hubbob/lfs-thief"
    bob = hf(server, users.bob)
    bob.create_repo(thief, repo_type="space", space_sdk="static")
    wc = lfs_repo(tmp_path / "thief")
    (wc / "README.md").write_text("---\nsdk: static\n---\n")
    (wc / "index.html").write_text("<p>hi</p>")
    (wc / "weights.bin").write_text(
        f"version https://git-lfs.github.com/spec/v1\noid sha256:{pushed['oid']}\nsize {SIZE}\n"
    )
    git(wc, "add", "-A")
    # `git add` cleaned the pointer as-is (it already is one); skip the pre-push hook: bob has no content to upload
    sha = commit_all(wc, "steal")
    git(wc, "push", "-q", "--no-verify", server.git_url(thief, users.bob, user="hubbob"), "main")
    runtime = server.wait_stage(thief, {"BUILD_ERROR", "RUNNING"}, sha=sha)
    assert runtime["stage"] == "BUILD_ERROR" and "weights.bin" in runtime.get("errorMessage", ""), runtime
    # /resolve/ gives the pointer, not alice's bytes; the batch API says the object does not exist
    got = httpx.get(f"{server.url}/spaces/{thief}/resolve/main/weights.bin", timeout=30)
    assert (
        got.status_code == 200
        and got.content.startswith(b"version https://git-lfs")
        and "x-linked-size" not in got.headers
    )
    batch = httpx.post(
        f"{server.url}/spaces/{thief}.git/info/lfs/objects/batch",
        json={"operation": "download", "objects": [{"oid": pushed["oid"], "size": SIZE}]},
        headers={"Accept": "application/vnd.git-lfs+json"},
        auth=("hubbob", users.bob),
        timeout=30,
    )
    assert batch.status_code == 200 and batch.json()["objects"][0]["error"]["code"] == 404
    # asking to upload it gets an upload action: the content has to be proven, not assumed
    up = httpx.post(
        f"{server.url}/spaces/{thief}.git/info/lfs/objects/batch",
        json={"operation": "upload", "objects": [{"oid": pushed["oid"], "size": SIZE}]},
        auth=("hubbob", users.bob),
        timeout=30,
    ).json()["objects"][0]
    assert "upload" in up["actions"]
    # uploading something else under that oid is refused, and the action URL works for nothing else
    href, verify = up["actions"]["upload"]["href"], up["actions"]["verify"]["href"]
    assert httpx.put(href, content=b"x" * 100, timeout=30).status_code == 400
    assert httpx.post(verify, json={"oid": pushed["oid"], "size": SIZE}, timeout=30).status_code == 404
    download = href.replace("/api/lfs-upload/", "/api/lfs/objects/")
    assert httpx.get(download, timeout=30).status_code == 403  # an upload token does not download
    tampered = href[:-6] + ("AAAAAA" if not href.endswith("AAAAAA") else "BBBBBB")
    assert httpx.put(tampered, content=b"x", timeout=30).status_code == 403
    # the Hub API's commit cannot name it either
    commit = httpx.post(
        f"{server.url}/api/spaces/{thief}/commit/main",
        content=(
            '{"key":"header","value":{"summary":"steal"}}\n'
            f'{{"key":"lfsFile","value":{{"path":"stolen.bin","algo":"sha256","oid":"{pushed["oid"]}","size":{SIZE}}}}}\n'
        ),
        headers={"Authorization": f"Bearer {users.bob}", "Content-Type": "application/x-ndjson"},
        timeout=30,
    )
    assert commit.status_code == 400 and "was not uploaded" in commit.headers["x-error-message"]


def test_batch_api_refuses_bad_requests(server: Server, users: Users, pushed: dict[str, str]) -> None:
    batch = f"{server.url}/spaces/{SPACE}.git/info/lfs/objects/batch"
    upload = {"operation": "upload", "objects": [{"oid": "a" * 64, "size": 1}]}
    anon = httpx.post(batch, json=upload, timeout=30)
    assert anon.status_code == 401 and anon.headers["www-authenticate"].startswith("Basic")
    assert anon.headers["content-type"].startswith("application/vnd.git-lfs+json") and anon.json()["message"]
    read = httpx.post(batch, json=upload, auth=("hubalice", users.alice_read), timeout=30)
    assert read.status_code == 403 and "x-error-message" in read.headers
    other = httpx.post(batch, json=upload, auth=("hubbob", users.bob), timeout=30)
    assert other.status_code == 403
    bad = httpx.post(
        batch,
        json={
            "operation": "upload",
            "objects": [{"oid": "../../etc/passwd", "size": 1}, {"oid": "b" * 64, "size": -1}],
        },
        auth=("hubalice", users.alice),
        timeout=30,
    )
    assert bad.status_code == 200 and [o["error"]["code"] for o in bad.json()["objects"]] == [422, 422]
    assert (
        httpx.post(batch, json={"operation": "delete"}, auth=("hubalice", users.alice), timeout=30).status_code == 422
    )
    tus = {"operation": "upload", "transfers": ["tus"], "objects": []}
    assert httpx.post(batch, json=tus, auth=("hubalice", users.alice), timeout=30).status_code == 422
    # a private Space: anonymous gets a challenge (so git retries with credentials), not a hint it exists
    private = "hubalice/lfs-private"
    hf(server, users.alice).create_repo(private, repo_type="space", space_sdk="static", private=True)
    hidden = httpx.post(
        f"{server.url}/spaces/{private}.git/info/lfs/objects/batch",
        json={"operation": "download", "objects": []},
        timeout=30,
    )
    assert hidden.status_code == 401
    stranger = httpx.post(
        f"{server.url}/spaces/{private}.git/info/lfs/objects/batch",
        json={"operation": "download", "objects": []},
        auth=("hubbob", users.bob),
        timeout=30,
    )
    assert stranger.status_code == 404


def test_private_space_push_and_clone_with_credentials(server: Server, users: Users, tmp_path: Path) -> None:
    private = "hubalice/lfs-private-push"
    hf(server, users.alice).create_repo(private, repo_type="space", space_sdk="static", private=True)
    wc = lfs_repo(tmp_path / "wc")
    (wc / "README.md").write_text("---\nsdk: static\n---\n")
    (wc / "index.html").write_text("<p>private</p>")
    (wc / "secret.bin").write_bytes(os.urandom(300_000))
    sha = commit_all(wc, "private weights")
    url = server.git_url(private, users.alice, user="hubalice")
    git(wc, "push", "-q", url, "main")
    server.wait_stage(private, {"RUNNING"}, sha=sha)
    git(tmp_path, "clone", "-q", url, "clone")
    assert sha256(tmp_path / "clone" / "secret.bin") == sha256(wc / "secret.bin")
    # the app (a static Space) serves the real content, through the gateway, to its owner
    got = server.app_get(private, "/secret.bin", headers={"Authorization": f"Bearer {users.alice}"})
    assert got.status_code == 200 and hashlib.sha256(got.content).hexdigest() == sha256(wc / "secret.bin")
    # nobody else gets it: not bob over git, not anonymous /resolve/
    refused = git(tmp_path, "clone", "-q", server.git_url(private, users.bob, user="hubbob"), "bob", check=False)
    assert refused.returncode != 0
    resolve = httpx.get(f"{server.url}/spaces/{private}/resolve/main/secret.bin", timeout=30)
    assert resolve.status_code == 404 and len(resolve.content) < 1000
