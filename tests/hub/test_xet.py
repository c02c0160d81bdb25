"""Large files with the default client: huggingface_hub 2.4.0 + hf_xet (no HF_HUB_DISABLE_XET) against
the live server's Xet CAS, and what a hostile client may try against it.

Each client run is a separate process with its own ``HF_HOME`` (so its own Xet chunk cache), as a user
on another machine would be: deduplication between them can only come from the server.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import lz4.frame
import pytest
from gradio_client import Client

from spaceyard_platform.xet import formats, hashing
from tests.hub.conftest import Users
from tests.support import Server

pytestmark = pytest.mark.timeout(1200)

HF = Path(sys.executable).parent / "hf"
BIG = 200_000_000


# ------------------------------------------------------------------------------------------- helpers
def client_env(server: Server, home: Path, token: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "SPACEYARD_"))}
    env.update({"HF_ENDPOINT": server.url, "HF_TOKEN": token, "HF_HOME": str(home), "NO_COLOR": "1"})
    return env


def run_py(server: Server, home: Path, token: str, code: str, *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", code, *args],
        env=client_env(server, home, token),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-4000:] + "\n" + server.tail_log()
    return proc.stdout.strip().splitlines()[-1]


PREAMBLE = """
import hashlib, json, sys
from huggingface_hub import HfApi, constants, hf_hub_download, snapshot_download
from huggingface_hub import get_hf_file_metadata, hf_hub_url
from huggingface_hub.utils._runtime import is_xet_available
assert is_xet_available() and not constants.HF_HUB_DISABLE_XET, "the default client must use Xet"
def sha(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            h.update(block)
    return h.hexdigest()
api = HfApi()
"""

UPLOAD_FILE = (
    PREAMBLE
    + """
info = api.upload_file(path_or_fileobj=sys.argv[1], path_in_repo=sys.argv[2], repo_id=sys.argv[3], repo_type="space")
print(info.oid)
"""
)

UPLOAD_FOLDER = (
    PREAMBLE
    + """
info = api.upload_folder(folder_path=sys.argv[1], repo_id=sys.argv[2], repo_type="space")
print(info.oid)
"""
)

DOWNLOAD = (
    PREAMBLE
    + """
meta = get_hf_file_metadata(hf_hub_url(sys.argv[1], sys.argv[2], repo_type="space"))
path = hf_hub_download(sys.argv[1], sys.argv[2], repo_type="space")
print(json.dumps({"xet": meta.xet_file_data is not None, "sha256": sha(path)}))
"""
)

SNAPSHOT = (
    PREAMBLE
    + """
import os
root = snapshot_download(sys.argv[1], repo_type="space")
print(json.dumps({"sha256": sha(os.path.join(root, sys.argv[2])), "files": sorted(os.listdir(root))}))
"""
)


STATIC_README = "---\ntitle: Weights\nsdk: static\napp_file: index.html\n---\n"


def stored(server: Server) -> int:
    """Bytes the CAS holds in xorbs (the deduplicated content)."""
    total = 0
    for dirpath, _dirs, names in os.walk(server.data_dir / "xet" / "xorbs"):
        total += sum((Path(dirpath) / n).stat().st_size for n in names)
    return total


def wait_running(server: Server, space: str, sha: str) -> None:
    try:
        server.wait_stage(space, {"RUNNING"}, sha=sha, timeout=900)
    except AssertionError as exc:
        worker = server.data_dir / "worker.log"
        tail = worker.read_text()[-4000:] if worker.exists() else "(no worker.log)"
        raise AssertionError(f"{exc}\n--- worker.log ---\n{tail}") from None


def write_random(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    with path.open("wb") as f:
        left = size
        while left:
            block = os.urandom(min(left, 1 << 23))
            f.write(block)
            digest.update(block)
            left -= len(block)
    return digest.hexdigest()


def sha_of_stream(response: httpx.Response) -> str:
    digest = hashlib.sha256()
    for block in response.iter_bytes(1 << 20):
        digest.update(block)
    return digest.hexdigest()


def xet_token(server: Server, space_id: str, token: str, mode: str = "read") -> dict[str, Any]:
    r = server.api("GET", f"/api/spaces/{space_id}/xet-{mode}-token/main", token=token)
    assert r.status_code == 200, r.text
    return dict(r.json())


def cas(server: Server, method: str, path: str, xet: str | None, **kw: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {xet}"} if xet else {}
    headers.update(kw.pop("headers", {}))
    return httpx.request(method, f"{server.url}/xet-cas{path}", headers=headers, timeout=60, **kw)


# ------------------------------------------------------------------------------------ the 200 MB file
@dataclass
class Big:
    path: Path
    sha256: str
    space: str
    commit: str
    stored_after: int


@pytest.fixture(scope="module")
def big(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Big:
    """A 200 MB file uploaded with upload_file (the default client: Xet) to a static Space."""
    work = tmp_path_factory.mktemp("xet-big")
    path = work / "weights.bin"
    digest = write_random(path, BIG)
    space = "admin/xet-big"
    server.create_space(space, sdk="static")
    site = work / "site"
    site.mkdir()
    (site / "index.html").write_text("<!doctype html><title>weights</title><a href='weights.bin'>weights</a>\n")
    (site / "README.md").write_text(STATIC_README)
    run_py(server, work / "home-up", server.token, UPLOAD_FOLDER, str(site), space)
    before = stored(server)
    commit = run_py(server, work / "home-up", server.token, UPLOAD_FILE, str(path), "weights.bin", space)
    return Big(path, digest, space, commit, stored(server) - before)


def test_upload_file_goes_through_xet_and_downloads_match(server: Server, big: Big, tmp_path: Path) -> None:
    # The content went to the CAS (not the LFS batch API), once.
    assert BIG <= big.stored_after < BIG * 1.01
    lfs_object = server.data_dir / "lfs" / "objects" / big.sha256[:2] / big.sha256[2:4] / big.sha256
    assert not lfs_object.exists()  # no third copy: the CAS keeps the chunks, git the committed blob

    got = json.loads(run_py(server, tmp_path / "home-dl", server.token, DOWNLOAD, big.space, "weights.bin"))
    assert got == {"xet": True, "sha256": big.sha256}  # hf_hub_download went through Xet

    snap = json.loads(run_py(server, tmp_path / "home-snap", server.token, SNAPSHOT, big.space, "weights.bin"))
    assert snap["sha256"] == big.sha256 and "index.html" in snap["files"]

    # Plain HTTP (curl, browsers, clients without hf_xet) gets the same bytes from /resolve.
    with httpx.stream("GET", f"{server.url}/spaces/{big.space}/resolve/main/weights.bin", timeout=120) as r:
        assert r.status_code == 200
        assert sha_of_stream(r) == big.sha256


def test_the_build_and_the_app_serve_the_uploaded_file(server: Server, big: Big) -> None:
    wait_running(server, big.space, big.commit)
    with httpx.stream("GET", f"{server.url}/apps/{big.space}/weights.bin", timeout=120) as r:
        assert r.status_code == 200, r.read()[:300]
        assert int(r.headers["content-length"]) == BIG
        assert sha_of_stream(r) == big.sha256


def test_upload_folder_and_hf_upload_dedup_against_the_first_upload(
    server: Server, big: Big, users: Users, tmp_path: Path
) -> None:
    # upload_folder to another Space, from another "machine" (fresh HF_HOME): the server's global
    # deduplication answers, so almost nothing is transferred or stored again.
    folder = tmp_path / "folder"
    (folder / "models").mkdir(parents=True)
    os.link(big.path, folder / "models" / "weights.bin")
    (folder / "index.html").write_text("<!doctype html><p>folder</p>\n")
    server.create_space("admin/xet-folder", sdk="static")
    before = stored(server)
    run_py(server, tmp_path / "home-folder", server.token, UPLOAD_FOLDER, str(folder), "admin/xet-folder")
    assert stored(server) - before < BIG // 100
    got = json.loads(
        run_py(server, tmp_path / "home-dl", server.token, DOWNLOAD, "admin/xet-folder", "models/weights.bin")
    )
    assert got == {"xet": True, "sha256": big.sha256}

    # The hf CLI, as alice, into her own Space.
    space = "hubalice/xet-cli"
    server.create_space(space, sdk="static")
    env = client_env(server, tmp_path / "home-cli", users.alice)
    proc = subprocess.run(
        [str(HF), "upload", space, str(big.path), "big/weights.bin", "--repo-type", "space"],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"/spaces/{space}" in proc.stdout
    assert stored(server) - before < BIG // 50
    with httpx.stream("GET", f"{server.url}/spaces/{space}/resolve/main/big/weights.bin", timeout=120) as r:
        assert r.status_code == 200 and sha_of_stream(r) == big.sha256


# ------------------------------------------------------------------------------ shared content, Gradio
GRADIO_APP = """
import hashlib
import gradio as gr

def digest() -> str:
    h = hashlib.sha256()
    with open("data.bin", "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()

with gr.Blocks() as demo:
    out = gr.Textbox()
    gr.Button("sha256").click(digest, None, out, api_name="digest")

demo.launch()
"""
GRADIO_README = "---\ntitle: Data\nsdk: gradio\nsdk_version: 6.31.0\napp_file: app.py\n---\n"


def test_files_sharing_most_content_are_stored_once(server: Server, users: Users, tmp_path: Path) -> None:
    size = 60_000_000  # above the inline limit (50 MiB): smaller files are committed inline, not through Xet
    a = tmp_path / "a" / "data.bin"
    a.parent.mkdir()
    write_random(a, size)
    original = a.read_bytes()
    # b: a with 2 MB inserted in the middle and its last 2 MB replaced (95% shared, shifted).
    edited = original[: size // 2] + os.urandom(2_000_000) + original[size // 2 : -2_000_000] + os.urandom(2_000_000)
    b = tmp_path / "b" / "data.bin"
    b.parent.mkdir()
    b.write_bytes(edited)
    b_sha = hashlib.sha256(edited).hexdigest()
    del original, edited

    server.create_space("hubalice/xet-a", sdk="static")
    start = stored(server)
    run_py(server, tmp_path / "home-a", users.alice, UPLOAD_FILE, str(a), "data.bin", "hubalice/xet-a")
    after_a = stored(server) - start
    assert after_a >= size

    # b goes to a Gradio Space of another user, uploaded from another machine.
    space = "hubbob/xet-b"
    server.create_space(space, sdk="gradio")
    (b.parent / "app.py").write_text(GRADIO_APP)
    (b.parent / "README.md").write_text(GRADIO_README)
    commit = run_py(server, tmp_path / "home-b", users.bob, UPLOAD_FOLDER, str(b.parent), space)
    after_b = stored(server) - start - after_a
    # Only the new bytes (4 MB, plus the chunks cut around them) are stored again.
    assert after_b < 0.25 * size, (after_a, after_b)

    # The Gradio app reads the file from its build and reports its sha256.
    wait_running(server, space, commit)
    client = Client(f"{server.url}/apps/{space}/", verbose=False)
    assert client.predict(api_name="/digest") == b_sha

    got = json.loads(run_py(server, tmp_path / "home-dl", users.bob, DOWNLOAD, space, "data.bin"))
    assert got == {"xet": True, "sha256": b_sha}


# ------------------------------------------------------------------------------------ tokens, abuse
def xorb_body(chunks: list[bytes]) -> tuple[bytes, bytes, list[tuple[bytes, int]]]:
    """A serialized xorb (uncompressed chunks) and its hash, as a client would build it."""
    body = b""
    meta = []
    for data in chunks:
        body += bytes([0]) + len(data).to_bytes(3, "little") + bytes([0]) + len(data).to_bytes(3, "little") + data
        meta.append((hashing.chunk_hash(data), len(data)))
    return body, hashing.xorb_hash(meta), meta


def shard_body(xorb: bytes, meta: list[tuple[bytes, int]], verification: bytes | None = None) -> tuple[bytes, bytes]:
    file_hash = hashing.file_hash(meta)
    total = sum(n for _, n in meta)
    out = formats.SHARD_TAG + struct.pack("<QQ", 2, 0)
    out += file_hash + struct.pack("<II", formats.FLAG_VERIFICATION, 1) + bytes(8)
    out += xorb + struct.pack("<IIII", 0, total, 0, len(meta))
    out += (verification or hashing.verification_hash([h for h, _ in meta])) + bytes(16)
    out += formats.BOOKEND + bytes(16) + formats.BOOKEND + bytes(16)
    return out, file_hash


def test_xet_tokens_are_short_lived_scoped_and_checked(server: Server, users: Users) -> None:
    server.create_space("hubalice/xet-tokens", sdk="static")
    server.create_space("hubbob/xet-other", sdk="static")
    space = "hubalice/xet-tokens"

    # Hub side: who may get which token.
    assert server.api("GET", f"/api/spaces/{space}/xet-write-token/main", token=None).status_code == 401
    assert server.api("GET", f"/api/spaces/{space}/xet-write-token/main", token=users.alice_read).status_code == 403
    assert server.api("GET", f"/api/spaces/{space}/xet-write-token/main", token=users.bob).status_code == 403
    r = server.api("GET", f"/api/spaces/{space}/xet-write-token/nope", token=users.alice)
    assert r.status_code == 404 and r.headers["x-error-code"] == "RevisionNotFound"
    write = xet_token(server, space, users.alice, "write")
    assert write["casUrl"] == f"{server.url}/xet-cas"
    assert 0 < write["exp"] - time.time() <= 900
    read = xet_token(server, space, users.bob, "read")  # public Space: anyone may read
    other = xet_token(server, "hubbob/xet-other", users.bob, "write")

    chunks = [os.urandom(70_000), os.urandom(33_000)]
    body, xorb, meta = xorb_body(chunks)
    path = f"/v1/xorbs/default/{hashing.to_hex(xorb)}"
    # No token, a forged one, a read token: refused; nothing stored.
    assert cas(server, "POST", path, None, content=body).status_code == 401
    assert cas(server, "POST", path, "xet_" + "A" * 120, content=body).status_code == 401
    assert cas(server, "POST", path, users.alice, content=body).status_code == 401  # a Hub token is not a CAS token
    r = cas(server, "POST", path, read["accessToken"], content=body)
    assert r.status_code == 403 and "read-only" in r.headers["x-error-message"]
    assert cas(server, "HEAD", path, read["accessToken"]).status_code == 404
    # A body that does not hash to its URL is refused.
    r = cas(server, "POST", path, write["accessToken"], content=body[:-1] + b"x")
    assert r.status_code == 400 and "hash to" in r.headers["x-error-message"]
    r = cas(server, "POST", path, write["accessToken"], content=b"\x07garbage")
    assert r.status_code == 400
    r = cas(server, "POST", path, write["accessToken"], content=body)
    assert r.status_code == 200 and r.json() == {"was_inserted": True}
    assert cas(server, "POST", path, write["accessToken"], content=body).json() == {"was_inserted": False}
    assert int(cas(server, "HEAD", path, read["accessToken"]).headers["content-length"]) == len(body)

    # Shards: a wrong verification hash (claiming chunks one does not know) or a missing xorb is refused.
    bad, _ = shard_body(xorb, meta, verification=bytes(32))
    r = cas(server, "POST", "/v1/shards", write["accessToken"], content=bad)
    assert r.status_code == 400 and "verification" in r.headers["x-error-message"]
    missing, _ = shard_body(bytes(range(32)), meta)
    assert cas(server, "POST", "/v1/shards", write["accessToken"], content=missing).status_code == 400
    good, file_hash = shard_body(xorb, meta)
    assert cas(server, "POST", "/v1/shards", read["accessToken"], content=good).status_code == 403
    r = cas(server, "POST", "/v1/shards", write["accessToken"], content=good)
    assert r.status_code == 200, r.text

    # Reconstruction: the file is readable with alice's Space's tokens, not with another Space's.
    file_id = hashing.to_hex(file_hash)
    assert cas(server, "GET", f"/v2/reconstructions/{file_id}", other["accessToken"]).status_code == 404
    r = cas(
        server, "GET", f"/v2/reconstructions/{file_id}", read["accessToken"], headers={"Range": "bytes=80000-90000"}
    )
    assert r.status_code == 200, r.text
    rec = r.json()
    assert [t["range"] for t in rec["terms"]] == [{"start": 1, "end": 2}]  # only the chunk holding the range
    assert rec["offset_into_first_range"] == 80_000 - 70_000
    (fetch,) = rec["xorbs"][hashing.to_hex(xorb)]
    byte_range = fetch["ranges"][0]["bytes"]
    got = httpx.get(fetch["url"], headers={"Range": f"bytes={byte_range['start']}-{byte_range['end']}"}, timeout=30)
    assert got.status_code == 206
    assert got.content[8:] == chunks[1]  # one chunk header, then the raw chunk
    # The signed URL serves only its range, and cannot be altered.
    assert httpx.get(fetch["url"], headers={"Range": "bytes=0-100"}, timeout=30).status_code == 403
    assert httpx.get(fetch["url"][:-6] + "AAAAAA", timeout=30).status_code == 403
    r = cas(server, "GET", f"/v1/reconstructions/{file_id}", read["accessToken"], headers={"Range": "bytes=200000-"})
    assert r.status_code == 416

    # Bob cannot commit alice's Xet upload into his Space by naming its sha256.
    sha = hashlib.sha256(b"".join(chunks)).hexdigest()
    ndjson = "\n".join(
        json.dumps(line)
        for line in (
            {"key": "header", "value": {"summary": "steal"}},
            {"key": "lfsFile", "value": {"path": "stolen.bin", "algo": "sha256", "oid": sha, "size": 103_000}},
        )
    )
    r = server.api(
        "POST",
        "/api/spaces/hubbob/xet-other/commit/main",
        token=users.bob,
        content=ndjson,
        headers={"Content-Type": "application/x-ndjson"},
    )
    assert r.status_code == 400 and "not uploaded" in r.headers["x-error-message"]


def test_global_dedup_answer_hides_chunk_hashes(server: Server, users: Users) -> None:
    space = "hubalice/xet-dedup"
    server.create_space(space, sdk="static")
    write = xet_token(server, space, users.alice, "write")
    chunks = [os.urandom(50_000) for _ in range(3)]
    body, xorb, meta = xorb_body(chunks)
    assert cas(
        server, "POST", f"/v1/xorbs/default/{hashing.to_hex(xorb)}", write["accessToken"], content=body
    ).is_success
    shard, _ = shard_body(xorb, meta)
    assert cas(server, "POST", "/v1/shards", write["accessToken"], content=shard).is_success

    reader = xet_token(server, "hubbob/xet-other", users.bob, "read")
    r = cas(server, "GET", f"/v1/chunks/default-merkledb/{hashing.to_hex(meta[0][0])}", reader["accessToken"])
    assert r.status_code == 200
    answer = r.content
    # Header, an empty file section, one xorb with its 3 chunks, the bookend, lookup tables, footer.
    assert answer[:32] == formats.SHARD_TAG
    footer = answer[-200:]
    key = footer[72:104]
    assert key != bytes(32)
    assert xorb in answer
    for h, _ in meta:
        assert h not in answer  # raw chunk hashes never leave the server
        assert hashing_keyed(h, key) in answer
    unknown = hashing.to_hex(hashing.chunk_hash(b"never uploaded"))
    assert cas(server, "GET", f"/v1/chunks/default-merkledb/{unknown}", reader["accessToken"]).status_code == 404
    assert cas(server, "GET", f"/v1/chunks/default-merkledb/{unknown}", None).status_code == 401


def hashing_keyed(h: bytes, key: bytes) -> bytes:
    from blake3 import blake3

    return blake3(h, key=key).digest()


def test_chunks_compressed_by_the_client_are_decoded(server: Server, users: Users) -> None:
    """LZ4 and byte-grouped LZ4 chunks (what hf_xet sends for compressible data) round-trip."""
    space = "hubalice/xet-lz4"
    server.create_space(space, sdk="static")
    write = xet_token(server, space, users.alice, "write")
    plain = bytes(range(256)) * 200
    grouped_src = struct.pack("<12800f", *[float(i % 97) for i in range(12800)])
    groups = [grouped_src[i::4] for i in range(4)]
    body = b""
    meta = []
    for scheme, data, payload in (
        (1, plain, lz4.frame.compress(plain)),
        (2, grouped_src, lz4.frame.compress(b"".join(groups))),
    ):
        body += bytes([0]) + len(payload).to_bytes(3, "little") + bytes([scheme]) + len(data).to_bytes(3, "little")
        body += payload
        meta.append((hashing.chunk_hash(data), len(data)))
    xorb = hashing.xorb_hash(meta)
    r = cas(server, "POST", f"/v1/xorbs/default/{hashing.to_hex(xorb)}", write["accessToken"], content=body)
    assert r.status_code == 200, r.text
