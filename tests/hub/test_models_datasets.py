"""Model and dataset repositories with the real huggingface_hub client, the real ``hf`` CLI and real
git + git-lfs, against one live server whose inline upload limit is small (so a few kilobytes already
travel through Xet or LFS, as 50 MB weights would on a default server).

And the abuse cases: a private model is invisible to another user's token and to anonymous callers (info,
listing, download, clone), another user cannot write, names are unique per kind ignoring case.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from huggingface_hub import HfApi, hf_hub_download, snapshot_download
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

from tests.conftest import free_port
from tests.hub.conftest import cli_token
from tests.support import Server, git, start_server

pytestmark = pytest.mark.timeout(600)

HF = Path(sys.executable).parent / "hf"
CARD = """---
license: apache-2.0
library_name: sklearn
tags:
- tabular-classification
- tiny
---
# Tiny iris model

A model card: this text is what the model page renders.
"""
DATA_CARD = "---\nlicense: other\nlicense_name: acme-data-1.0\n---\n# Flowers\n"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def blob(seed: str, size: int) -> bytes:
    out = bytearray()
    while len(out) < size:
        out += hashlib.sha256(f"{seed}{len(out)}".encode()).digest()
    return bytes(out[:size])


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Models and datasets are never built: no build worker, no Python environments."""
    srv = start_server(
        tmp_path_factory.mktemp("models-data"),
        free_port(),
        tmp_path_factory.mktemp("models-envs"),
        extra_env={"SPACEYARD_INLINE_UPLOAD_LIMIT": "4096", "SPACEYARD_EMBEDDED_WORKER": "false"},
    )
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def tokens(hub: Server) -> dict[str, str]:
    return {"alice": cli_token(hub, "modalice", "write"), "bob": cli_token(hub, "modbob", "write")}


def api(hub: Server, token: str | bool) -> HfApi:
    return HfApi(endpoint=hub.url, token=token)


def cli(hub: Server, home: Path, token: str, *args: str, **extra: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "SPACEYARD_"))}
    env.update({"HF_ENDPOINT": hub.url, "HF_TOKEN": token, "HF_HOME": str(home), "NO_COLOR": "1", **extra})
    proc = subprocess.run([str(HF), *args], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr + hub.tail_log()
    return proc.stdout


def test_model_create_upload_info_list_download(hub: Server, tokens: dict[str, str], tmp_path: Path) -> None:
    alice = api(hub, tokens["alice"])
    url = alice.create_repo("modalice/tiny-iris", repo_type="model")
    assert url.repo_id == "modalice/tiny-iris" and url.repo_type == "model"
    assert alice.create_repo("modalice/tiny-iris", exist_ok=True).repo_id == "modalice/tiny-iris"
    alice.upload_file(path_or_fileobj=CARD.encode(), path_in_repo="README.md", repo_id="modalice/tiny-iris")
    weights = blob("weights", 96 * 1024)  # above the inline limit: the default client sends it through Xet
    info = alice.upload_file(path_or_fileobj=weights, path_in_repo="model.bin", repo_id="modalice/tiny-iris")
    assert info.oid
    # The real hf CLI, with Xet turned off: the LFS batch protocol.
    extra = blob("extra", 48 * 1024)
    (tmp_path / "extra.bin").write_bytes(extra)
    cli(hub, tmp_path / "home", tokens["alice"], "upload", "modalice/tiny-iris", str(tmp_path / "extra.bin"),
        "onnx/extra.bin", HF_HUB_DISABLE_XET="1")  # fmt: skip

    model = api(hub, False).model_info("modalice/tiny-iris", files_metadata=True)
    assert model.card_data is not None and model.card_data.license == "apache-2.0"
    assert model.library_name == "sklearn" and model.private is False
    assert {"tabular-classification", "tiny", "license:apache-2.0"} <= set(model.tags or [])
    sizes = {s.rfilename: s.size for s in model.siblings or []}
    assert sizes == {"README.md": len(CARD.encode()), "model.bin": len(weights), "onnx/extra.bin": len(extra)}
    assert model.sha == alice.list_repo_commits("modalice/tiny-iris")[0].commit_id
    tree = {f.path for f in alice.list_repo_tree("modalice/tiny-iris", recursive=True)}
    assert tree == {"README.md", "model.bin", "onnx", "onnx/extra.bin"}

    found = [m.id for m in api(hub, False).list_models(author="modalice", search="iris")]
    assert found == ["modalice/tiny-iris"]
    assert list(api(hub, False).list_models(author="modalice", search="nothing-like-this")) == []
    assert list(api(hub, False).list_models(author="modbob")) == []

    # Downloads: snapshot (every file), one file (the Xet path, as hf_hub_download takes by default).
    snap = Path(snapshot_download("modalice/tiny-iris", endpoint=hub.url, token=False, cache_dir=tmp_path / "c1"))
    assert (snap / "model.bin").read_bytes() == weights and (snap / "onnx/extra.bin").read_bytes() == extra
    assert (snap / "README.md").read_text() == CARD
    one = hf_hub_download("modalice/tiny-iris", "model.bin", endpoint=hub.url, token=False, cache_dir=tmp_path / "c2")
    assert Path(one).read_bytes() == weights
    head = httpx.head(f"{hub.url}/modalice/tiny-iris/resolve/main/model.bin")
    assert head.status_code == 200 and "x-xet-hash" in head.headers  # it went up (and comes down) through Xet

    listing = cli(hub, tmp_path / "home", tokens["alice"], "models", "ls", "--author", "modalice", "--search", "iris",
                  "--format", "json")  # fmt: skip
    assert [m["id"] for m in json.loads(listing)] == ["modalice/tiny-iris"]


def test_private_model_is_invisible_to_others(hub: Server, tokens: dict[str, str], tmp_path: Path) -> None:
    alice, bob, anon = api(hub, tokens["alice"]), api(hub, tokens["bob"]), api(hub, False)
    alice.create_repo("modalice/secret-weights", private=True)
    alice.upload_file(path_or_fileobj=b"secret" * 2000, path_in_repo="w.bin", repo_id="modalice/secret-weights")
    alice.upload_file(path_or_fileobj=b"---\nlicense: mit\n---\n", path_in_repo="README.md",
                      repo_id="modalice/secret-weights")  # fmt: skip
    assert alice.model_info("modalice/secret-weights").private is True
    for other in (bob, anon):
        with pytest.raises(RepositoryNotFoundError):
            other.model_info("modalice/secret-weights")
        with pytest.raises(RepositoryNotFoundError):
            other.list_repo_files("modalice/secret-weights")
        assert "modalice/secret-weights" not in [m.id for m in other.list_models(author="modalice")]
    assert "modalice/secret-weights" in [m.id for m in alice.list_models(author="modalice")]
    for token in (tokens["bob"], False):
        with pytest.raises(RepositoryNotFoundError):
            hf_hub_download("modalice/secret-weights", "w.bin", endpoint=hub.url, token=token, cache_dir=tmp_path)
    bare = httpx.get(f"{hub.url}/modalice/secret-weights/resolve/main/w.bin")
    assert bare.status_code == 404 and b"secretsecret" not in bare.content
    clone = git(tmp_path, "clone", f"http://modbob:{tokens['bob']}@127.0.0.1:{hub.port}/modalice/secret-weights",
                "stolen", check=False)  # fmt: skip
    assert clone.returncode != 0 and not (tmp_path / "stolen" / "w.bin").exists()
    # Knowing the private file's sha256 does not let another user commit it into a model of theirs.
    bob.create_repo("modbob/thief")
    lines = [
        {"key": "header", "value": {"summary": "take it"}},
        {
            "key": "lfsFile",
            "value": {"path": "w.bin", "algo": "sha256", "oid": sha256(b"secret" * 2000), "size": 12000},
        },
    ]
    stolen_commit = httpx.post(
        f"{hub.url}/api/models/modbob/thief/commit/main",
        content="".join(json.dumps(line) + "\n" for line in lines),
        headers={"authorization": f"Bearer {tokens['bob']}", "content-type": "application/x-ndjson"},
    )
    assert stolen_commit.status_code == 400 and "was not uploaded" in stolen_commit.headers["x-error-message"]
    assert bob.list_repo_files("modbob/thief") == []
    # Another user cannot write to, delete or move a model they can read.
    alice.create_repo("modalice/public-weights")
    with pytest.raises(HfHubHTTPError) as denied:
        bob.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id="modalice/public-weights")
    assert denied.value.response.status_code == 403
    with pytest.raises(HfHubHTTPError):
        bob.delete_repo("modalice/public-weights")
    assert alice.model_info("modalice/public-weights").id == "modalice/public-weights"


def test_names_kinds_delete_and_move(hub: Server, tokens: dict[str, str], tmp_path: Path) -> None:
    alice = api(hub, tokens["alice"])
    alice.create_repo("modalice/Shared-Name")
    with pytest.raises(HfHubHTTPError) as clash:  # one model per name, ignoring case
        alice.create_repo("modalice/shared-name")
    assert clash.value.response.status_code == 409
    # A dataset and a Space may share a model's name, as on the Hub.
    alice.create_repo("modalice/Shared-Name", repo_type="dataset")
    alice.create_repo("modalice/Shared-Name", repo_type="space", space_sdk="static")
    auth = {"authorization": f"Bearer {tokens['alice']}"}
    for body in ({"name": "bad..name"}, {"name": "x", "organization": "spaces"}, {"name": "x", "type": "kernel"}):
        bad = httpx.post(f"{hub.url}/api/repos/create", json=body, headers=auth)
        assert bad.status_code == 400 and bad.headers["x-error-message"], body
    alice.move_repo("modalice/Shared-Name", "modalice/renamed")
    assert alice.model_info("modalice/renamed").id == "modalice/renamed"
    assert alice.dataset_info("modalice/Shared-Name").id == "modalice/Shared-Name"  # the dataset did not move
    with pytest.raises(RepositoryNotFoundError):
        alice.model_info("modalice/Shared-Name")
    alice.delete_repo("modalice/renamed")
    with pytest.raises(RepositoryNotFoundError):
        alice.model_info("modalice/renamed")
    assert alice.space_info("modalice/Shared-Name").id == "modalice/Shared-Name"
    # A Hub-style id without an owner (from_pretrained("gpt2")) is a clear "not found", not a crash.
    with pytest.raises(RepositoryNotFoundError, match="OWNER/NAME"):
        alice.model_info("gpt2")
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("gpt2", "config.json", endpoint=hub.url, token=False, cache_dir=tmp_path)


def test_dataset_upload_info_resolve(hub: Server, tokens: dict[str, str], tmp_path: Path) -> None:
    alice = api(hub, tokens["alice"])
    alice.create_repo("modalice/flowers", repo_type="dataset")
    folder = tmp_path / "flowers"
    (folder / "data").mkdir(parents=True)
    csv = "sepal_length,species\n" + "".join(f"{i / 10},setosa\n" for i in range(2000))
    (folder / "data" / "train.csv").write_text(csv)
    (folder / "README.md").write_text(DATA_CARD)
    alice.upload_folder(folder_path=folder, repo_id="modalice/flowers", repo_type="dataset")
    info = api(hub, False).dataset_info("modalice/flowers")
    assert info.card_data is not None and info.card_data.license == "other"
    assert getattr(info.card_data, "license_name", None) == "acme-data-1.0"
    assert {s.rfilename for s in info.siblings or []} == {"README.md", "data/train.csv"}
    path = hf_hub_download("modalice/flowers", "data/train.csv", repo_type="dataset", endpoint=hub.url, token=False,
                           cache_dir=tmp_path / "c")  # fmt: skip
    assert Path(path).read_text() == csv
    raw = httpx.get(f"{hub.url}/datasets/modalice/flowers/resolve/main/data/train.csv")
    assert raw.status_code == 200 and raw.text == csv
    assert httpx.get(f"{hub.url}/modalice/flowers/resolve/main/data/train.csv").status_code == 404  # not a model
    assert [d.id for d in api(hub, False).list_datasets(search="flow")] == ["modalice/flowers"]
    listing = cli(hub, tmp_path / "home", tokens["alice"], "datasets", "ls", "--search", "flowers", "--format", "json")
    assert [d["id"] for d in json.loads(listing)] == ["modalice/flowers"]


def test_git_push_model_with_lfs(hub: Server, tokens: dict[str, str], tmp_path: Path) -> None:
    alice = api(hub, tokens["alice"])
    alice.create_repo("modalice/pushed")
    remote = f"http://modalice:{tokens['alice']}@127.0.0.1:{hub.port}/modalice/pushed"
    wc = tmp_path / "wc"
    git(tmp_path, "clone", "-q", remote, "wc")
    git(wc, "lfs", "install", "--local")
    git(wc, "lfs", "track", "*.onnx")
    weights = blob("onnx", 300 * 1024)
    (wc / "model.onnx").write_bytes(weights)
    (wc / "README.md").write_text("---\nlicense: bsd-3-clause\n---\n# Pushed\n")
    git(wc, "add", "-A")
    git(wc, "commit", "-q", "-m", "weights")
    git(wc, "push", "-q", "origin", "main")
    sha = git(wc, "rev-parse", "HEAD").stdout.strip()
    assert git(wc, "lfs", "ls-files").stdout.split()[-1] == "model.onnx"
    model = alice.model_info("modalice/pushed", files_metadata=True)
    assert model.sha == sha and model.card_data is not None and model.card_data.license == "bsd-3-clause"
    lfs = {s.rfilename: s.lfs for s in model.siblings or []}["model.onnx"]
    assert lfs is not None and lfs.sha256 == sha256(weights)
    path = hf_hub_download("modalice/pushed", "model.onnx", endpoint=hub.url, token=False, cache_dir=tmp_path / "c")
    assert Path(path).read_bytes() == weights
    fresh = git(tmp_path, "clone", "-q", f"http://127.0.0.1:{hub.port}/modalice/pushed", "fresh")
    assert fresh.returncode == 0 and (tmp_path / "fresh" / "model.onnx").read_bytes() == weights
