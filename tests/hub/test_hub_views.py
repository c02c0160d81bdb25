"""Run-time downloads in the shared bounded store, seen by the real ``huggingface_hub`` client.

Three Spaces' relay listeners (each with its own cache view, as the runtimes serve them) in front of a small
Hub-like control plane that answers ``/resolve/`` by token. The real ``hf_hub_download`` with
``HF_HUB_CACHE`` = the Space's view: two Spaces that download the same file get one object of the store
(the same inode in both views) and the client writes nothing in the view (a hit: no lock, no tag, no
temporary file); a Space whose token may not read the repository gets nothing in its view; past the store's
size limit the least recently used file is released from the views and removed, and a new download fills
it again. The walls that make a view read-only to its app are the runtimes' (tests/e2e/test_hub_in_space.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from huggingface_hub import hf_hub_download
from huggingface_hub.errors import RepositoryNotFoundError
from starlette.types import Receive, Scope, Send

from spaceyard_builder.hubstore import HubStore
from spaceyard_platform.hubfill import parse
from spaceyard_platform.hubrelay import HubRelay
from spaceyard_platform.settings import Settings
from spaceyard_runtime.hubpath import HubListener, cache_view

COMMIT = "c0ffee" + "0" * 34
FILES = {"alice/m": {"w.bin": b"w" * 1000}, "datasets/pub/d": {"sub/x.csv": b"x" * 1000}}
READS = {"tok-a": {"alice/m", "datasets/pub/d"}, "tok-b": {"alice/m", "datasets/pub/d"}, "tok-c": {"datasets/pub/d"}}


async def hub(scope: Scope, receive: Receive, send: Send) -> None:
    """``HEAD|GET /<repo>/resolve/<rev>/<path>`` as the Hub answers it, for the tokens in READS."""
    assert scope["type"] == "http"
    token = dict(scope["headers"]).get(b"authorization", b"").decode().removeprefix("Bearer ")
    repo, _, rest = scope["path"].lstrip("/").partition("/resolve/")
    content = FILES.get(repo, {}).get(rest.partition("/")[2])
    if content is None or repo not in READS.get(token, set()):
        headers = [(b"x-error-code", b"RepoNotFound"), (b"content-length", b"0")]
        await send({"type": "http.response.start", "status": 404, "headers": headers})
        await send({"type": "http.response.body", "body": b""})
        return
    etag = f'"{hashlib.sha256(content).hexdigest()}"'.encode()
    headers = [(b"x-repo-commit", COMMIT.encode()), (b"etag", etag), (b"content-length", str(len(content)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else content})


@dataclass
class Space:
    url: str
    view: Path
    token: str
    listener: HubListener

    async def download(self, repo: str, filename: str, repo_type: str = "model") -> str:
        return await asyncio.to_thread(
            hf_hub_download,
            repo,
            filename,
            repo_type=repo_type,
            endpoint=self.url,
            token=self.token,
            cache_dir=self.view,
            etag_timeout=30,
        )


@pytest.fixture
async def spaces(tmp_path: Path) -> AsyncIterator[tuple[dict[str, Space], HubStore]]:
    settings = Settings(data_dir=tmp_path)
    store = HubStore(tmp_path / "hubcache", limit=1500)  # one and a half of the files
    relay = HubRelay(hub, settings, store=store)
    made: dict[str, Space] = {}
    for name, token in (("a", "tok-a"), ("b", "tok-b"), ("c", "tok-c")):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        sock.setblocking(False)
        view = cache_view(settings.runtime().runtime_dir, f"space-{name}")
        listener = await relay.serve(sock, f"o/{name}", view)
        made[name] = Space(f"http://127.0.0.1:{sock.getsockname()[1]}", view, token, listener)
    yield made, store
    for space in made.values():
        space.listener.close()


def objects(store: HubStore) -> list[Path]:
    return [p for p in store.objects.rglob("*") if p.is_file() and not p.name.startswith(".")]


async def test_two_spaces_share_one_copy_a_third_sees_nothing_and_the_limit_evicts(
    spaces: tuple[dict[str, Space], HubStore],
) -> None:
    by, store = spaces
    a, b, c = by["a"], by["b"], by["c"]
    first = await a.download("alice/m", "w.bin")
    assert Path(first) == a.view / "models--alice--m" / "snapshots" / COMMIT / "w.bin"
    assert Path(first).read_bytes() == FILES["alice/m"]["w.bin"]
    second = await b.download("alice/m", "w.bin")
    (obj,) = objects(store)
    inodes = {os.stat(p).st_ino for p in (first, second, obj)}
    assert len(inodes) == 1 and obj.stat().st_nlink == 3, "one copy: the store's, linked into both views"
    assert obj.stat().st_mode & 0o222 == 0
    for space in (a, b):  # a cache hit: the client itself wrote nothing (no lock, no tag, no temporary file)
        assert sorted(p.name for p in space.view.iterdir()) == ["models--alice--m"]
        folder = space.view / "models--alice--m"
        assert sorted(p.name for p in folder.iterdir()) == ["blobs", "refs", "snapshots"]
        assert (folder / "refs" / "main").read_text() == COMMIT, "the platform wrote the ref"
        assert not list(folder.glob("blobs/*.incomplete"))
    # the Space that may not read the model gets an error and nothing in its view
    with pytest.raises(RepositoryNotFoundError):
        await c.download("alice/m", "w.bin")
    assert list(c.view.iterdir()) == []
    # a revision by name gets its ref (what an offline start reads); a nested path its folders
    csv = await a.download("pub/d", "sub/x.csv", repo_type="dataset")
    assert Path(csv).read_bytes() == FILES["datasets/pub/d"]["sub/x.csv"]
    assert (a.view / "datasets--pub--d" / "refs" / "main").read_text() == COMMIT
    # 2000 bytes > 1500: the least recently used file (the model) left the store and both views
    (kept,) = objects(store)
    assert kept.stat().st_ino == os.stat(csv).st_ino
    assert not os.path.exists(first) and not os.path.exists(second), "released from the views"
    assert store.stats().evictions == 1 and store.stats().bytes <= 1500
    # the next download of it fills it again (and the dataset, now least recently used, goes)
    again = await b.download("alice/m", "w.bin")
    assert Path(again).read_bytes() == FILES["alice/m"]["w.bin"]
    assert store.stats().evictions == 2 and not os.path.exists(csv)


@pytest.mark.parametrize(
    ("raw", "parsed"),
    [
        ("/alice/m/resolve/main/w.bin", ("model", "alice/m", "main", "w.bin")),
        ("/datasets/pub/d/resolve/refs%2Fpr%2F1/a/b.csv", ("dataset", "pub/d", "refs/pr/1", "a/b.csv")),
        ("/spaces/o/s/resolve/refs/pr/1/x", ("space", "o/s", "refs/pr/1", "x")),
        ("/alice/m/resolve/main/a%2F..%2F..%2Fx", None),
        ("/alice/m/resolve/main/../x", None),
        ("/alice/m/resolve/main/a//x", None),
        ("/alice/m/resolve/..%2F..%2Fx/w.bin", None),
        ("/al%2Fice/m/resolve/main/w.bin", None),
        ("/alice/m/resolve/main", None),
        ("/api/models/alice/m", None),
    ],
)
def test_only_plain_repository_paths_are_filled(raw: str, parsed: tuple[str, str, str, str] | None) -> None:
    assert parse(raw) == parsed
