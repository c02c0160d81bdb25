"""Fast checks of the Hub-inside-a-Space pieces: the relay's allow-list, the README keys
(``preload_from_hub``, ``models``/``datasets``), the shared store's bounds and the root-side install of
preloaded files into a (hostile) Space's HOME."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from spaceyard_builder.errors import ConfigError
from spaceyard_builder.hubstore import HubStore, file_key
from spaceyard_builder.preload import HUB_DIR, Entry, parse
from spaceyard_platform.hubrelay import HubRelay, allowed
from spaceyard_platform.settings import Settings
from spaceyard_platform.spacelinks import linked_repos
from spaceyard_runtime import hubcache


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/models/alice/m"),
        ("GET", "/api/models/alice/m/revision/main"),
        ("GET", "/api/datasets/alice/d/tree/main/sub"),
        ("HEAD", "/alice/m/resolve/main/weights.json"),
        ("GET", "/datasets/alice/d/resolve/0123/train.csv"),
        ("POST", "/api/datasets/alice/d/paths-info/main"),
        ("GET", "/api/models/alice/m/xet-read-token/main"),
        ("GET", "/xet-cas/v1/reconstructions/abc"),
        ("GET", "/api/whoami-v2"),
    ],
)
def test_the_relay_passes_the_hubs_read_endpoints(method: str, path: str) -> None:
    assert allowed(method, path)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/repos/create"),
        ("DELETE", "/api/repos/delete"),
        ("POST", "/api/models/alice/m/commit/main"),
        ("POST", "/api/models/alice/m/preupload/main"),
        ("GET", "/api/models/alice/m/xet-write-token/main"),
        ("POST", "/xet-cas/v1/xorbs/default/abc"),
        ("GET", "/api/spaces/alice/s/logs/run"),
        ("GET", "/api/spaces/alice/s/secrets"),
        ("GET", "/api/spaces/alice/s/variables"),
        ("GET", "/metrics"),
        ("GET", "/spaces/alice/s"),
        ("GET", "/apps/alice/s/"),
        ("GET", "/login"),
        ("GET", "/alice/m.git/info/refs"),
        ("POST", "/alice/m.git/git-receive-pack"),
        ("PUT", "/alice/m/resolve/main/x"),
    ],
)
def test_the_relay_refuses_everything_else(method: str, path: str) -> None:
    assert not allowed(method, path)


def test_preload_entries_are_the_hubs_format() -> None:
    sha = "a" * 40
    assert parse(["alice/m", "alice/m config.json,*.bin", f"datasets/alice/d train.csv {sha}"]) == [
        Entry("model", "alice/m"),
        Entry("model", "alice/m", ("config.json", "*.bin")),
        Entry("dataset", "alice/d", ("train.csv",), sha),
    ]
    for bad in ("", "not-a-repo", "alice/m a b c", "alice/m x main", "alice/m ../../etc/passwd", "../x/y"):
        with pytest.raises(ConfigError):
            parse([bad])
    with pytest.raises(ConfigError):
        parse(["alice/m"] * 33)


def test_models_and_datasets_keys() -> None:
    assert linked_repos({"models": "alice/m", "datasets": ["alice/d", "bad", {"x": 1}, "alice/d"]}) == {
        "models": ["alice/m"],
        "datasets": ["alice/d"],
    }
    assert linked_repos({}) == {"models": [], "datasets": []}
    assert len(linked_repos({"models": [f"o/m{i}" for i in range(500)]})["models"]) == 50


def test_the_store_keeps_one_copy_and_evicts_the_least_recently_used_unlinked(tmp_path: Path) -> None:
    store = HubStore(tmp_path / "hubcache", limit=250)
    keys = [file_key("model", "alice/m", "a" * 40, f"f{i}") for i in range(3)]
    objs = [store.put(k, [bytes([i]) * 100]) for i, k in enumerate(keys)]
    again = store.put(file_key("model", "bob/copy", "b" * 40, "f0"), [b"\0" * 100])
    assert again == objs[0] and oct(objs[0].stat().st_mode & 0o777) == "0o444"
    store.link(objs[0], tmp_path / "build" / "blob")  # in use by a build: never evicted
    os.utime(objs[1], (1, 1))  # the oldest unlinked one goes first
    assert store.lookup(keys[2]) == objs[2]
    assert store.evict() == 1
    assert not objs[1].exists() and objs[0].exists() and objs[2].exists()
    assert store.lookup(keys[1]) is None
    stats = store.stats()
    assert (stats.objects, stats.bytes, stats.hits, stats.misses, stats.evictions) == (2, 200, 1, 1, 1)


def test_install_never_follows_what_the_space_planted(tmp_path: Path) -> None:
    app = tmp_path / "app"
    blobs = app / HUB_DIR / "models--alice--m" / "blobs"
    blobs.mkdir(parents=True)
    (blobs / "e1").write_bytes(b"weights")
    (blobs / "e1").chmod(0o444)
    snap = app / HUB_DIR / "models--alice--m" / "snapshots" / ("c" * 40)
    snap.mkdir(parents=True)
    (snap / "w.json").symlink_to("../../blobs/e1")
    home = tmp_path / "home"
    (home / ".cache" / "huggingface").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (home / ".cache" / "huggingface" / "hub").symlink_to(outside)  # the Space planted a link
    assert hubcache.install(app, home, None) == 0
    assert list(outside.iterdir()) == []
    (home / ".cache" / "huggingface" / "hub").unlink()
    assert hubcache.install(app, home, None) == 1  # the blob (and the snapshot link)
    assert hubcache.install(app, home, None) == 0  # a wake: all there already
    linked = home / ".cache" / "huggingface" / "hub" / "models--alice--m"
    assert (linked / "snapshots" / ("c" * 40) / "w.json").read_bytes() == b"weights"
    assert (linked / "blobs" / "e1").stat().st_ino == (blobs / "e1").stat().st_ino


async def test_the_relay_bounds_connections_and_bodies_and_passes_no_cookie(tmp_path: Path) -> None:
    gate = asyncio.Event()
    seen: list[dict[str, Any]] = []

    async def control_plane(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(dict(scope))
        await gate.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    relay = HubRelay(control_plane, Settings(data_dir=tmp_path, hub_relay_max_connections=2))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    sock.setblocking(False)
    listener = await relay.serve(sock, "alice/space")
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    headers = {"cookie": "spaceyard_session=stolen", "x-forwarded-for": "1.2.3.4", "authorization": "Bearer t"}
    try:
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=10) as client:
            held = [asyncio.create_task(client.get("/api/models/alice/m")) for _ in range(2)]
            while len(seen) < 2:
                await asyncio.sleep(0.01)
            assert (await client.get("/api/models/alice/m")).status_code == 503  # a third connection: refused
            gate.set()
            assert [(await t).status_code for t in held] == [200, 200]
            big = await client.post("/api/models/alice/m/paths-info/main", content=b"x" * (2 << 20))
            assert big.status_code == 413
        passed = {k.decode() for k, _ in seen[0]["headers"]}
        assert "cookie" not in passed and "x-forwarded-for" not in passed and "authorization" in passed
        assert seen[0]["spaceyard.relay"] is True
    finally:
        listener.close()


async def test_the_shared_relay_answers_only_space_tokens_and_bounds_each_client(tmp_path: Path) -> None:
    """The relay every Space shares (the Kubernetes Service): no anonymous request, no user's token."""
    gate = asyncio.Event()
    seen: list[str] = []

    async def control_plane(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["path"])
        if scope["path"].endswith("/slow"):
            await gate.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    asked: list[str] = []

    def space_token(value: str) -> bool:
        asked.append(value)
        return value == "hf_sy_space_good"

    relay = HubRelay(control_plane, Settings(data_dir=tmp_path, hub_relay_max_connections=2), space_token=space_token)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    sock.setblocking(False)
    listener = await relay.serve_shared(sock)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    try:
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            anonymous = await client.get("/api/models/alice/m")
            assert anonymous.status_code == 401 and anonymous.headers["x-error-code"] == "Unauthorized"
            user = await client.get("/api/models/alice/m", headers={"authorization": "Bearer hf_alice_write"})
            assert user.status_code == 401
            good = {"authorization": "Bearer hf_sy_space_good"}
            assert (await client.get("/api/models/alice/m", headers=good)).status_code == 200
            write = await client.post("/api/repos/create", headers=good, json={})
            assert write.status_code == 403  # the allow-list first: a write never reaches the token check
            assert seen == ["/api/models/alice/m"] and "hf_alice_write" in asked
            held = [asyncio.create_task(client.get("/api/models/alice/m/tree/main/slow", headers=good)) for _ in "ab"]
            while len(seen) < 3:
                await asyncio.sleep(0.01)
            third = await client.get("/api/models/alice/m", headers=good)
            assert third.status_code == 429, "one client address has at most 2 requests in flight"
            gate.set()
            assert [(await t).status_code for t in held] == [200, 200]
            assert (await client.get("/api/models/alice/m", headers=good)).status_code == 200
    finally:
        listener.close()


async def test_a_relay_without_a_token_check_refuses_to_serve_every_space(tmp_path: Path) -> None:
    async def control_plane(scope: Scope, receive: Receive, send: Send) -> None:
        raise AssertionError("never reached")

    with socket.socket() as sock, pytest.raises(RuntimeError, match="Space token"):
        await HubRelay(control_plane, Settings(data_dir=tmp_path)).serve_shared(sock)
