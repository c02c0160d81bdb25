"""Hostile and careless input against a real ``spaceyard up``: each case gets a clear 4xx in the Hub's
error shape (status + ``X-Error-Code``/``X-Error-Message``), costs nothing, and loses nothing.

The server here runs with small limits (head read time, slow connections per address, git body) so
that the limits themselves are exercised; everything else is the default configuration.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from tests.conftest import free_port
from tests.support import SAMPLES, Server, commit_all, git, push, read_sse, start_server, working_copy

HEAD_TIMEOUT = 2
PER_ADDRESS = 4
GIT_BODY = 512 * 1024
SECRET_VALUE = "s3cr3t-value-that-must-never-rest-in-the-queue-7f1c"


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory, shared_env_dir: Path) -> Iterator[Server]:
    server = start_server(
        tmp_path_factory.mktemp("hardened"),
        free_port(),
        shared_env_dir,
        {
            "SPACEYARD_HEADER_TIMEOUT": str(HEAD_TIMEOUT),
            "SPACEYARD_MAX_PENDING_PER_ADDRESS": str(PER_ADDRESS),
            "SPACEYARD_MAX_GIT_BODY": str(GIT_BODY),
        },
    )
    yield server
    server.stop()


def hub_error(r: httpx.Response, status: int, code: str | None = None, says: str = "") -> None:
    """The Hub's error shape: status, X-Error-Code (when the Hub has one), a message saying what is wrong."""
    assert r.status_code == status, (r.status_code, r.text)
    if code is not None:
        assert r.headers.get("x-error-code") == code, r.headers
    message = r.headers.get("x-error-message", "")
    assert message, r.headers
    assert says.lower() in (message + r.text).lower(), (message, r.text)


def commit_files(srv: Server, space_id: str, files: dict[str, bytes]) -> str:
    lines = [{"key": "header", "value": {"summary": "files"}}]
    lines += [
        {"key": "file", "value": {"path": p, "content": base64.b64encode(c).decode(), "encoding": "base64"}}
        for p, c in files.items()
    ]
    r = srv.api(
        "POST",
        f"/api/spaces/{space_id}/commit/main",
        content="\n".join(json.dumps(line) for line in lines),
        headers={"content-type": "application/x-ndjson"},
    )
    assert r.status_code == 200, r.text
    return str(r.json()["commitOid"])


def static_space(srv: Server, space_id: str, extra: dict[str, bytes] | None = None) -> str:
    srv.create_space(space_id, sdk="static")
    files = {p.name: p.read_bytes() for p in (SAMPLES / "hello-static").iterdir()}
    return commit_files(srv, space_id, {**files, **(extra or {})})


def files_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


# ------------------------------------------------------------------------------ git argument injection
def test_revision_injection_reaches_no_git_option(srv: Server) -> None:
    sha = static_space(srv, "admin/inject")
    srv.wait_stage("admin/inject", {"RUNNING"}, sha=sha)  # the build's own files are written before we look
    before = files_under(srv.data_dir)
    for path in (
        "/spaces/admin/inject/commits/--output=x.txt",
        "/spaces/admin/inject/tree/--output=y.txt",
        "/spaces/admin/inject/blob/--output=z.txt/index.html",
    ):
        r = srv.api("GET", path)
        assert r.status_code == 404, (path, r.status_code, r.text[:200])
    for path in (
        "/api/spaces/admin/inject/revision/--output=x.txt",
        "/api/spaces/admin/inject/tree/--output=x.txt",
        "/api/spaces/admin/inject/revision/HEAD~1",
        "/api/spaces/admin/inject/revision/main..main",
        "/api/spaces/admin/inject/revision/main%0A",
        "/spaces/admin/inject/resolve/--output=x.txt/index.html",
    ):
        hub_error(srv.api("GET", path), 404, "RevisionNotFound", says="invalid rev id")
    r = srv.api("POST", "/api/spaces/admin/inject/paths-info/--output=x.txt", data={"paths": ["index.html"]})
    hub_error(r, 404, "RevisionNotFound")
    # Nothing was written anywhere the server can write: not its working directory, not DATA_DIR.
    assert files_under(srv.data_dir) - before <= {p for p in files_under(srv.data_dir) if p.startswith("logs")}
    assert not any(name.endswith(("x.txt", "y.txt", "z.txt")) for name in files_under(srv.data_dir))
    # A real revision still works.
    assert srv.api("GET", "/api/spaces/admin/inject/revision/main").status_code == 200


# ------------------------------------------------------------------------------------ pushed trees
def _raw_git(repo: Path, *args: str, data: bytes | None = None) -> str:
    out = subprocess.run(["git", "--git-dir", str(repo), *args], input=data, capture_output=True, check=True)
    return out.stdout.decode().strip()


def test_push_with_duplicate_tree_entries_is_refused(srv: Server, tmp_path: Path) -> None:
    """The CVE-2025-4517 shape: a symlink and a directory of one name. fsck refuses the push itself."""
    srv.create_space("admin/dupes", sdk="static")
    repo = tmp_path / "dupes.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(repo)], check=True)
    outside = srv.data_dir / "pwned"
    blob = _raw_git(repo, "hash-object", "-w", "--stdin", data=b"owned")
    link = _raw_git(repo, "hash-object", "-w", "--stdin", data=str(srv.data_dir).encode())
    index = _raw_git(repo, "hash-object", "-w", "--stdin", data=b"<p>hi</p>")
    sub = _raw_git(repo, "mktree", data=f"100644 blob {blob}\tpwned\n".encode())
    tree = _raw_git(
        repo,
        "mktree",
        "--missing",
        data=f"120000 blob {link}\tesc\n040000 tree {sub}\tesc\n100644 blob {index}\tindex.html\n".encode(),
    )
    commit = _raw_git(repo, "commit-tree", "-m", "evil", tree)
    _raw_git(repo, "update-ref", "refs/heads/main", commit)
    proc = subprocess.run(
        ["git", "--git-dir", str(repo), "push", srv.git_url("admin/dupes"), "main"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode != 0
    assert "duplicate" in proc.stderr.lower() or "fsck" in proc.stderr.lower(), proc.stderr
    assert not outside.exists()
    assert srv.api("GET", "/api/spaces/admin/dupes/revision/main").json()["sha"] is None


def test_symlinks_outside_the_commit_are_kept_never_followed(srv: Server, tmp_path: Path) -> None:
    """Absolute links and long '..' chains build fine (kept as links, like the Hub), write nothing outside."""
    srv.create_space("admin/links", sdk="static")
    wc = working_copy(tmp_path, "hello-static")
    os.symlink("/etc/passwd", wc / "abs-link")
    deep = wc / ("d" * 200) / ("e" * 200) / ("f" * 200)
    deep.mkdir(parents=True)
    os.symlink("../../../../../../../../../../../../" + "x" * 200, deep / "chain")
    os.symlink(str(srv.data_dir), wc / "datadir")
    sha = commit_all(wc, "links")
    before = files_under(srv.data_dir / "repos")
    push(srv, wc, "admin/links")
    rt = srv.wait_stage("admin/links", {"RUNNING"}, sha=sha, timeout=120)
    assert "internal" not in str(rt.get("errorMessage", ""))
    export = srv.data_dir / "sources" / "admin--links" / sha
    assert os.readlink(export / "abs-link") == "/etc/passwd"
    assert os.readlink(export / "datadir") == str(srv.data_dir)
    assert files_under(srv.data_dir / "repos") - before <= {
        p for p in files_under(srv.data_dir / "repos") if p.startswith("admin/links.git")
    }
    # The static server does not follow them either.
    assert srv.app_get("admin/links", "/abs-link").status_code == 404
    # The API lists them as files and returns the link text, never the target's content.
    r = srv.api("GET", "/spaces/admin/links/resolve/main/abs-link")
    assert r.status_code == 200 and r.content == b"/etc/passwd"


def test_readme_symlink_outside_is_a_config_error(srv: Server, tmp_path: Path) -> None:
    srv.create_space("admin/readme-link", sdk="static")
    wc = working_copy(tmp_path, "hello-static")
    (wc / "README.md").unlink()
    os.symlink("/etc/passwd", wc / "README.md")
    sha = commit_all(wc, "readme link")
    push(srv, wc, "admin/readme-link")
    rt = srv.wait_stage("admin/readme-link", {"CONFIG_ERROR"}, sha=sha, timeout=120)
    assert "symlink" in rt["errorMessage"] and "root:" not in rt["errorMessage"]


def test_submodule_is_reported_not_a_zero_byte_file(srv: Server, tmp_path: Path) -> None:
    srv.create_space("admin/submod", sdk="static")
    wc = working_copy(tmp_path, "hello-static")
    head = git(wc, "rev-parse", "HEAD").stdout.strip()
    git(wc, "update-index", "--add", "--cacheinfo", f"160000,{head},vendor/lib")
    git(wc, "commit", "-q", "-m", "submodule")
    sha = git(wc, "rev-parse", "HEAD").stdout.strip()
    push(srv, wc, "admin/submod")
    srv.wait_stage("admin/submod", {"RUNNING"}, sha=sha, timeout=120)
    tree = srv.api("GET", "/api/spaces/admin/submod/tree/main/vendor").json()
    assert all(entry["path"] != "vendor/lib" for entry in tree)
    siblings = [s["rfilename"] for s in srv.api("GET", "/api/spaces/admin/submod").json()["siblings"]]
    assert "vendor/lib" not in siblings
    r = srv.api("GET", "/spaces/admin/submod/resolve/main/vendor/lib")
    hub_error(r, 400, says="submodule")
    logs = read_sse(f"{srv.url}/api/spaces/admin/submod/logs/build", headers={"Authorization": f"Bearer {srv.token}"})
    assert any("vendor/lib is a git submodule" in line for line in logs), logs


def test_export_ignore_does_not_hide_files_from_the_build(srv: Server, tmp_path: Path) -> None:
    srv.create_space("admin/exportignore", sdk="static")
    wc = working_copy(tmp_path, "hello-static")
    (wc / ".gitattributes").write_text("index.html export-ignore\nstyle.css export-subst\n")
    (wc / "style.css").write_text("/* $Format:%H$ */\n")
    sha = commit_all(wc, "attributes")
    push(srv, wc, "admin/exportignore")
    srv.wait_stage("admin/exportignore", {"RUNNING"}, sha=sha, timeout=120)
    css = srv.app_get("admin/exportignore", "/style.css")
    assert css.status_code == 200 and "$Format:%H$" in css.text  # as the API and a clone see it


# ----------------------------------------------------------------------------------------- paths
def test_nul_and_odd_file_names(srv: Server, tmp_path: Path) -> None:
    names = {"naïve – 文件.txt": b"unicode", 'quote"d.txt': b"quoted", "semi;colon\\back.txt": b"semi"}
    static_space(srv, "admin/paths", names)
    for path in (
        "/spaces/admin/paths/resolve/main/a%00b",
        "/api/spaces/admin/paths/tree/main/a%00b",
        "/spaces/admin/paths/blob/main/a%00b",
        "/spaces/admin/paths/tree/main/a%00b",
    ):
        r = srv.api("GET", path)
        assert r.status_code == 400, (path, r.status_code)
        assert "NUL" in r.headers["x-error-message"]
    hub_error(srv.api("GET", "/api/spaces/admin/paths/tree/main/..%2F..%2Fetc"), 400, says="invalid path")
    for name, content in names.items():
        r = srv.api("GET", f"/spaces/admin/paths/resolve/main/{quote(name)}")
        assert r.status_code == 200 and r.content == content
        disposition = r.headers["content-disposition"]
        assert f"filename*=UTF-8''{quote(name, safe='')}" in disposition
        fallback = disposition.split('filename="', 1)[1].split('"', 1)[0]
        assert '"' not in fallback and fallback.isascii()
        head = httpx.head(f"{srv.url}/spaces/admin/paths/resolve/main/{quote(name)}", timeout=10)
        assert head.status_code == 200 and head.headers["content-length"] == str(len(content))
    # A commit with a bad path loses nothing: the branch does not move.
    before = srv.api("GET", "/api/spaces/admin/paths/revision/main").json()["sha"]
    for bad in ("a/../../x", ".git/config", "x\u0000y", "/", "a//b/./c"):
        lines = [{"key": "header", "value": {"summary": "bad"}}, {"key": "file", "value": {"path": bad, "content": ""}}]
        r = srv.api(
            "POST",
            "/api/spaces/admin/paths/commit/main",
            content="\n".join(json.dumps(line) for line in lines),
            headers={"content-type": "application/x-ndjson"},
        )
        hub_error(r, 400, says="path")
    assert srv.api("GET", "/api/spaces/admin/paths/revision/main").json()["sha"] == before


def test_malformed_bodies_are_400(srv: Server) -> None:
    srv.create_space("admin/bodies", sdk="static")
    ndjson = {"content-type": "application/x-ndjson"}
    for path, body, headers in (
        ("/api/spaces/admin/bodies/commit/main", b"{not json\n", ndjson),
        ("/api/spaces/admin/bodies/commit/main", b"[1, 2]\n", ndjson),
        ("/api/spaces/admin/bodies/preupload/main", b"[]", {"content-type": "application/json"}),
        ("/api/spaces/admin/bodies/preupload/main", b'{"files": [{"path": "a", "size": "x"}]}', {}),
        ("/api/spaces/admin/bodies/paths-info/main", b"{", {"content-type": "application/json"}),
        ("/spaces/admin/bodies.git/info/lfs/objects/batch", b"nope", {}),
        ("/api/validate-yaml", b'{"content": 5}', {}),
    ):
        r = srv.api("POST", path, content=body, headers=headers)
        assert r.status_code == 400, (path, body, r.status_code, r.text)
        assert r.headers.get("x-error-message")


# ------------------------------------------------------------------------------------------ YAML
ALIAS_BOMB = "a: &a [lol,lol,lol,lol,lol,lol,lol,lol,lol]\n" + "".join(
    f"{n}: &{n} [{','.join([f'*{p}'] * 9)}]\n" for p, n in zip("abcdef", "bcdefg", strict=True)
)


def test_readme_alias_bomb_is_refused_and_costs_nothing(srv: Server) -> None:
    assert len(ALIAS_BOMB) < 450  # 7 levels: 9**7 = 4.8 million strings once expanded
    srv.create_space("admin/bomb", sdk="static")
    readme = f"---\nsdk: static\ntitle: boom\n{ALIAS_BOMB}---\n# hi\n".encode()
    sha = commit_files(srv, "admin/bomb", {"README.md": readme, "index.html": b"<p>hi</p>"})
    rt = srv.wait_stage("admin/bomb", {"CONFIG_ERROR"}, sha=sha, timeout=60)
    assert "alias" in rt["errorMessage"]
    info = srv.api("GET", "/api/spaces/admin/bomb")
    assert info.status_code == 200 and len(info.content) < 64 * 1024
    assert srv.api("GET", "/spaces").status_code == 200  # the explore page renders
    r = srv.api("POST", "/api/validate-yaml", json={"content": f"---\n{ALIAS_BOMB}---\n"})
    assert r.status_code == 400 and "alias" in r.json()["errors"][0]["message"]
    deep = "---\nx: " + "[" * 5000 + "]" * 5000 + "\n---\n"
    r = srv.api("POST", "/api/validate-yaml", json={"content": deep})
    assert r.status_code == 400 and "nested" in r.json()["errors"][0]["message"]
    r = srv.api("POST", "/api/validate-yaml", json={"content": "---\nsdk: gradio\ndate: 2024-01-01\n---\n"})
    assert r.status_code == 200


def test_validate_yaml_body_is_capped(srv: Server) -> None:
    big = json.dumps({"content": "---\na: " + "x" * (2 * 1024 * 1024) + "\n---\n"})
    r = srv.api("POST", "/api/validate-yaml", token=None, content=big, headers={"content-type": "application/json"})
    hub_error(r, 413, "PayloadTooLarge", says="SPACEYARD_MAX_API_BODY")

    def chunks() -> Iterator[bytes]:  # no Content-Length: the cap applies while reading
        yield b'{"content": "'
        for _ in range(40):
            yield b"y" * 65536
        yield b'"}'

    r = httpx.post(f"{srv.url}/api/validate-yaml", content=chunks(), timeout=30)
    hub_error(r, 413, "PayloadTooLarge")


# ---------------------------------------------------------------------------------------- limits
def _raw(srv: Server, data: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    sock.sendall(data)
    return sock


def _status(sock: socket.socket) -> int:
    head = b""
    while b"\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            break
        head += chunk
    return int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/1.1 ") else 0


def test_oversized_request_heads_get_431(srv: Server) -> None:
    r = httpx.get(f"{srv.url}/api/health", headers={"x-big": "a" * (100 * 1024)}, timeout=10)
    hub_error(r, 431, says="SPACEYARD_MAX_HEADER_BYTES")
    # A 20 MB header, sent piece by piece: refused once past the limit, not held in memory.
    sock = _raw(srv, b"GET /api/health HTTP/1.1\r\nHost: x\r\nX-Big: ")
    sent = 0
    with pytest.raises(OSError):  # the server closes the connection: sending fails well before 20 MB
        while sent < 20 * 1024 * 1024:
            sock.sendall(b"a" * 65536)
            sent += 65536
    assert sent < 20 * 1024 * 1024
    sock.close()
    assert httpx.get(f"{srv.url}/api/health", timeout=10).status_code == 200


def test_slow_heads_time_out_and_are_bounded_per_address(srv: Server) -> None:
    slow = [_raw(srv, b"GET /api/health HTTP/1.1\r\nHost: x\r\n") for _ in range(PER_ADDRESS)]
    extra = _raw(srv, b"GET /api/health HTTP/1.1\r\n")
    assert _status(extra) == 429
    extra.close()
    # Each slow client is answered 408 after the head read time, and its slot is free again.
    for sock in slow:
        assert _status(sock) == 408
        sock.close()
    assert httpx.get(f"{srv.url}/api/health", timeout=10).status_code == 200
    # A client that is not slow is not affected by the limits, on kept-alive connections too.
    with httpx.Client(base_url=srv.url, timeout=10) as client:
        for _ in range(PER_ADDRESS * 3):
            assert client.get("/api/health").status_code == 200
        time.sleep(HEAD_TIMEOUT / 2)
        assert client.get("/api/health").status_code == 200


def _response(sock: socket.socket) -> tuple[int, bytes]:
    """One whole response (with Content-Length) from a kept-alive raw connection: status, body."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(
        next(v for k, _, v in (line.partition(b": ") for line in head.split(b"\r\n")) if k.lower() == b"content-length")
    )
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, body
        body += chunk
    return int(head.split(b" ", 2)[1]), body


def test_head_time_limit_is_per_head_on_kept_alive_connections(srv: Server) -> None:
    """One head timer per connection (limits.py): a later head on the same connection gets its own full
    time (not what is left of an earlier head's), and a head that stalls still gets 408."""
    request = b"GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n"
    with socket.create_connection(("127.0.0.1", srv.port), timeout=15) as sock:
        sock.sendall(request)
        assert _response(sock)[0] == 200
        time.sleep(HEAD_TIMEOUT * 0.75)  # the connection's timer was armed by the first head
        sock.sendall(request[:20])
        time.sleep(HEAD_TIMEOUT * 0.5)  # past the first timer's deadline, within this head's own
        sock.sendall(request[20:])
        assert _response(sock)[0] == 200
        sock.sendall(request[:20])  # and this one never completes
        assert _status(sock) == 408


def test_git_push_over_the_body_limit_is_refused_and_loses_nothing(srv: Server, tmp_path: Path) -> None:
    srv.create_space("admin/bigpush", sdk="static")
    wc = working_copy(tmp_path, "hello-static")
    first = git(wc, "rev-parse", "HEAD").stdout.strip()
    push(srv, wc, "admin/bigpush")
    (wc / "noise.bin").write_bytes(os.urandom(2 * GIT_BODY))
    commit_all(wc, "big")
    proc = push(srv, wc, "admin/bigpush", check=False)
    assert proc.returncode != 0 and "413" in proc.stderr, proc.stderr
    sha = srv.api("GET", "/api/spaces/admin/bigpush/revision/main").json()["sha"]
    assert sha == first


def test_app_traffic_is_not_capped_like_the_api(srv: Server) -> None:
    static_space(srv, "admin/appbody")
    srv.wait_stage("admin/appbody", {"RUNNING"}, timeout=120)
    body = b"z" * (2 * 1024 * 1024)  # over SPACEYARD_MAX_API_BODY
    sub = "admin-appbody"
    r = httpx.post(f"{srv.url}/", content=body, headers={"Host": f"{sub}.localhost:{srv.port}"}, timeout=30)
    assert r.status_code != 413, r.text


# ----------------------------------------------------------------------------------------- names
def test_names_are_checked_whole_and_addresses_never_collide(srv: Server) -> None:
    def create(owner: str, name: str) -> httpx.Response:
        body = {"name": name, "organization": owner, "type": "space", "sdk": "static"}
        return srv.api("POST", "/api/repos/create", json=body)

    for bad in ("demo\n", "-demo", "de--mo", "a..b", "x.git", "a" * 97, "naïve", "a/b", ""):
        r = create("admin", bad)
        assert r.status_code in (400, 422), (bad, r.status_code)
    assert create("team-ml", "demo").status_code == 200
    hub_error(create("team", "ml-demo"), 400, says="team-ml-demo")
    hub_error(create("team_ml", "demo"), 400, says="already used by team-ml/demo")
    assert create("admin", "caps").status_code == 200
    r = create("admin", "Caps")
    assert r.status_code == 409 and "admin/caps" in r.text
    info = srv.api("GET", "/api/spaces/team-ml/demo").json()
    assert info["subdomain"] == "team-ml-demo"
    assert not (srv.data_dir / "repos" / "admin" / "demo\n.git").exists()
    # Renaming onto another Space's address is refused too.
    assert create("admin", "mover").status_code == 200
    r = srv.api("POST", "/api/repos/move", json={"fromRepo": "admin/mover", "toRepo": "team/ml-demo", "type": "space"})
    hub_error(r, 400, says="team-ml-demo")


def test_secret_and_variable_keys(srv: Server) -> None:
    srv.create_space("admin/keys", sdk="static")
    for bad in ("A\n", "1ABC", "A-B", "A B", "", "K" * 200):
        r = srv.api("POST", "/api/spaces/admin/keys/secrets", json={"key": bad, "value": "v"})
        assert r.status_code in (400, 422), (bad, r.status_code)
    assert srv.api("POST", "/api/spaces/admin/keys/secrets", json={"key": "TOKEN", "value": "v"}).status_code == 200
    hub_error(srv.api("POST", "/api/spaces/admin/keys/secrets", json={"key": "Token", "value": "v"}), 400, says="TOKEN")
    hub_error(
        srv.api("POST", "/api/spaces/admin/keys/variables", json={"key": "token", "value": "v"}), 400, says="TOKEN"
    )
    assert srv.api("POST", "/api/spaces/admin/keys/variables", json={"key": "MODE", "value": "v"}).status_code == 200
    hub_error(srv.api("POST", "/api/spaces/admin/keys/secrets", json={"key": "MODE", "value": "v"}), 400, says="MODE")
    hub_error(srv.api("POST", "/api/spaces/admin/keys/variables", json={"key": "mode", "value": "v"}), 400, says="MODE")
    assert srv.api("POST", "/api/spaces/admin/keys/secrets", json={"key": "TOKEN", "value": "w"}).status_code == 200


# --------------------------------------------------------------------------------- secrets at rest
def test_build_secrets_never_rest_in_the_queue_and_data_dir_is_private(srv: Server) -> None:
    from spaceyard_builder.settings import BuilderSettings
    from spaceyard_platform.buildsecrets import DatabaseSecretSource

    space = srv.create_space("admin/dockersecret", sdk="docker", secrets=[{"key": "API_KEY", "value": SECRET_VALUE}])
    files = {p.name: p.read_bytes() for p in (SAMPLES / "hello-docker").iterdir()}
    sha = commit_files(srv, "admin/dockersecret", files)
    srv.wait_stage("admin/dockersecret", {"BUILD_ERROR", "RUNNING", "APP_STARTING"}, sha=sha, timeout=300)
    for path in srv.data_dir.rglob("*"):
        if path.is_file() and not path.is_symlink():
            assert SECRET_VALUE.encode() not in path.read_bytes(), path
    # The worker reads them by reference, from the database, with the platform's key.
    source = DatabaseSecretSource(BuilderSettings(data_dir=srv.data_dir))
    assert source.secrets(space["id"]) == {"API_KEY": SECRET_VALUE}

    def mode(p: Path) -> int:
        return stat.S_IMODE(p.stat().st_mode)

    assert mode(srv.data_dir) == 0o700
    for name in ("spaceyard.db", "secret.key", "worker.log", "queue/broker.db", "queue/results.db"):
        assert mode(srv.data_dir / name) == 0o600, name
    logs = [p for p in (srv.data_dir / "logs").rglob("*.jsonl")]
    assert logs and all(mode(p) == 0o600 for p in logs)
    for name in ("repos", "logs", "queue"):
        assert mode(srv.data_dir / name) == 0o700, name


# ----------------------------------------------------------------------------------------- metrics
def test_metrics_never_name_private_spaces(srv: Server, tmp_path: Path) -> None:
    static_space(srv, "admin/public-metrics")
    static_space(srv, "admin/hidden-metrics-name")
    srv.api("PUT", "/api/spaces/admin/hidden-metrics-name/settings", json={"private": True})
    for space in ("admin/public-metrics", "admin/hidden-metrics-name"):
        srv.wait_stage(space, {"RUNNING"}, timeout=120)
        srv.app_get(space, "/", headers={"Authorization": f"Bearer {srv.token}"})
    text = httpx.get(f"{srv.url}/metrics", timeout=10).text
    assert 'space="admin/public-metrics"' in text
    assert "hidden-metrics-name" not in text
    assert 'space="(private)"' in text


def test_metrics_token_protects_the_full_view(tmp_path: Path, shared_env_dir: Path) -> None:
    server = start_server(tmp_path / "m", free_port(), shared_env_dir, {"SPACEYARD_METRICS_TOKEN": "scrape-me"})
    try:
        hub_error(httpx.get(f"{server.url}/metrics", timeout=10), 401, says="SPACEYARD_METRICS_TOKEN")
        wrong = httpx.get(f"{server.url}/metrics", headers={"Authorization": "Bearer nope"}, timeout=10)
        assert wrong.status_code == 401
        ok = httpx.get(f"{server.url}/metrics", headers={"Authorization": "Bearer scrape-me"}, timeout=10)
        assert ok.status_code == 200 and "spaceyard_awake_spaces" in ok.text
    finally:
        server.stop()
