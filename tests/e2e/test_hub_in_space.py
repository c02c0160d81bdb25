"""The Hub inside a Space, end to end on the local runtime in its default bwrap walls (no network but
its own loopback): a model (JSON weights + card) and a CSV dataset pushed with the real
``huggingface_hub``; Gradio Spaces that load them with the ordinary ``hf_hub_download`` calls at
``HF_ENDPOINT`` (the Hub relay inside the box) and answer predictions to ``gradio_client`` through the
gateway; the same from ``preload_from_hub`` with ``HF_HUB_OFFLINE=1``; a private model readable by its
owner's Space and not by another user's; the Space's token writes nothing and the relay serves no page,
no app, no write endpoint."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from gradio_client import Client
from huggingface_hub import CommitOperationAdd, HfApi
from huggingface_hub.errors import HfHubHTTPError

from tests.hub.conftest import cli_token
from tests.support import Server

pytestmark = pytest.mark.slow

KIND = os.environ.get("SPACEYARD_TEST_HUB_KIND", "")
"""Empty: model/dataset repos. ``space``: the same files in Space repos (for a platform without them)."""
MODEL, DATA, SECRET = "hsalice/tiny-model", "hsalice/tiny-data", "hsbob/secret-model"
MODEL_TYPE = KIND or "model"
DATA_TYPE = KIND or "dataset"
WEIGHTS = {"w": 3.0, "b": 0.5}
CSV = "x,y\n1,3.5\n2,6.5\n3,9.5\n"
DATASETS_REQUIREMENT = "datasets==5.2.0\n"
"""One Space also loads the dataset with ``datasets.load_dataset`` (its environment: Gradio + datasets)."""

APP = """
import json, csv, os, socket
import gradio as gr
from huggingface_hub import HfApi, hf_hub_download, snapshot_download

MODEL, DATA = {model!r}, {data!r}
MODEL_TYPE, DATA_TYPE = {model_type!r}, {data_type!r}
try:
    weights = json.load(open(hf_hub_download(MODEL, "weights.json", repo_type=MODEL_TYPE)))
    rows = list(csv.DictReader(open(hf_hub_download(DATA, "train.csv", repo_type=DATA_TYPE))))
    loaded = "ok"
except Exception as exc:
    weights, rows, loaded = None, [], f"{{type(exc).__name__}}: {{exc}}"[:300]


def predict(x: float) -> str:
    if weights is None:
        return "not loaded: " + loaded
    return f"{{weights['w'] * x + weights['b']:g}} ({{len(rows)}} rows)"


def attempt(fn):
    try:
        fn()
        return "allowed"
    except Exception as exc:
        return type(exc).__name__ + ": " + str(exc)[:200]


def probe(target: str) -> str:
    api = HfApi()
    relay = os.environ["HF_ENDPOINT"]
    out = {{"endpoint": relay, "token": os.environ.get("HF_TOKEN", "")}}
    sdk = {{"space_sdk": "static"}} if MODEL_TYPE == "space" else {{}}
    out["create_repo"] = attempt(lambda: api.create_repo(MODEL.split("/")[0] + "/evil", repo_type=MODEL_TYPE, **sdk))
    out["upload"] = attempt(lambda: api.upload_file(path_or_fileobj=b"x", path_in_repo="evil.txt",
                                                    repo_id=MODEL, repo_type=MODEL_TYPE))
    out["read_target"] = attempt(lambda: hf_hub_download(target, "weights.json", repo_type=MODEL_TYPE))
    import httpx
    for name, path in (("page", "/spaces/" + os.environ["SPACE_ID"]), ("metrics", "/metrics"),
                       ("app", "/apps/" + os.environ["SPACE_ID"] + "/"), ("logs", "/api/spaces/"
                       + os.environ["SPACE_ID"] + "/logs/run"), ("git", "/" + MODEL + ".git/info/refs")):
        out[name] = httpx.get(relay + path, headers={{"authorization": "Bearer " + os.environ["HF_TOKEN"]}}).status_code
    out["delete"] = httpx.delete(relay + "/api/repos/delete", headers={{"authorization": "Bearer "
                                 + os.environ["HF_TOKEN"]}}).status_code
    host, port = {platform!r}
    out["platform_direct"] = attempt(lambda: socket.create_connection((host, port), timeout=2).close())
    try:
        out["snapshot"] = sorted(os.listdir(snapshot_download(MODEL, repo_type=MODEL_TYPE)))
    except Exception as exc:
        out["snapshot"] = repr(exc)[:200]
    try:
        from datasets import load_dataset
    except ImportError:
        out["load_dataset"] = "not installed"
    else:
        out["load_dataset"] = attempt(lambda: out.update(rows=len(load_dataset(DATA, split="train"))))
    return json.dumps(out)


def fetch(request: str) -> str:
    req, cache = json.loads(request), os.environ.get("HF_HUB_CACHE", "")
    out = {{"cache": cache, "write_cache": attempt(lambda: open(os.path.join(cache, "planted"), "w").close())}}
    if "open" in req:
        out["open"] = attempt(lambda: open(req["open"], "rb").read())
        return json.dumps(out)
    try:
        out["path"] = hf_hub_download(req["repo"], req["file"], repo_type=req["type"])
        out["content"] = open(out["path"]).read()
    except Exception as exc:
        out["error"] = type(exc).__name__
    return json.dumps(out)


with gr.Blocks() as demo:
    x, y, t = gr.Number(), gr.Textbox(), gr.Textbox()
    gr.Button("p").click(predict, x, y, api_name="predict")
    gr.Button("q").click(probe, t, y, api_name="probe")
    gr.Button("f").click(fetch, t, y, api_name="fetch")
demo.launch()
"""


def readme(extra: str = "") -> str:
    return f"---\ntitle: Predict\nsdk: gradio\nsdk_version: 6.31.0\napp_file: app.py\n{extra}---\n"


@pytest.fixture(scope="module")
def tokens(server: Server) -> dict[str, str]:
    return {"alice": cli_token(server, "hsalice", "write"), "bob": cli_token(server, "hsbob", "write")}


def api(server: Server, token: str) -> HfApi:
    return HfApi(endpoint=server.url, token=token)


def app_source(server: Server, target: str, model: str = MODEL) -> str:
    return APP.format(
        model=model, data=DATA, model_type=MODEL_TYPE, data_type=DATA_TYPE, platform=("127.0.0.1", server.port)
    )


@pytest.fixture(scope="module")
def repos(server: Server, tokens: dict[str, str]) -> Iterator[None]:
    """hsalice's private model and public dataset; hsbob's private model."""
    alice, bob = api(server, tokens["alice"]), api(server, tokens["bob"])
    card = "---\nlicense: mit\ntags: [tabular-regression]\n---\n# tiny model\ny = w x + b\n"
    for hf, repo_id, kind, private, files in (
        (alice, MODEL, MODEL_TYPE, True, {"README.md": card, "weights.json": json.dumps(WEIGHTS)}),
        (alice, DATA, DATA_TYPE, False, {"README.md": "---\nlicense: cc0-1.0\n---\n", "train.csv": CSV}),
        (bob, SECRET, MODEL_TYPE, True, {"README.md": card, "weights.json": json.dumps({"w": 0, "b": 42})}),
    ):
        hf.create_repo(repo_id, repo_type=kind, private=private, space_sdk="static" if kind == "space" else None)
        for path, content in files.items():
            hf.upload_file(path_or_fileobj=content.encode(), path_in_repo=path, repo_id=repo_id, repo_type=kind)
    yield


def commit(hf: HfApi, space_id: str, readme_text: str, app: str, requirements: str = "") -> str:
    ops = [
        CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=readme_text.encode()),
        CommitOperationAdd(path_in_repo="app.py", path_or_fileobj=app.encode()),
    ]
    if requirements:
        ops.append(CommitOperationAdd(path_in_repo="requirements.txt", path_or_fileobj=requirements.encode()))
    return str(hf.create_commit(space_id, ops, commit_message="app", repo_type="space").oid)


def deploy(server: Server, hf: HfApi, space_id: str, target: str, requirements: str = "", card: str = "") -> Client:
    hf.create_repo(space_id, repo_type="space", space_sdk="gradio")
    sha = commit(hf, space_id, readme(card), app_source(server, target), requirements)
    server.wait_stage(space_id, {"RUNNING"}, sha=sha)
    return Client(f"{server.url}/apps/{space_id}/", verbose=False)


def test_a_space_loads_its_owners_private_model_and_a_dataset_and_cannot_write(
    server: Server, tokens: dict[str, str], repos: None
) -> None:
    uses = f"models:\n  - {MODEL}\ndatasets: {DATA}\n"
    client = deploy(server, api(server, tokens["alice"]), "hsalice/predict", SECRET, DATASETS_REQUIREMENT, uses)
    assert client.predict(2, api_name="/predict") == "6.5 (3 rows)"
    probe = json.loads(client.predict(SECRET, api_name="/probe"))
    assert probe["endpoint"] == "http://127.0.0.1:7850" and probe["token"].startswith("hf_sy_space_")
    # the Space's token writes nothing, and reads nothing of another owner's private repos
    assert "403" in probe["create_repo"], probe
    assert probe["upload"] != "allowed" and probe["read_target"].startswith("RepositoryNotFoundError"), probe
    # the relay is a door to the Hub's read endpoints only: no page, metrics, app, logs, git, delete
    for name in ("page", "metrics", "app", "logs", "git", "delete"):
        assert probe[name] == 403, (name, probe)
    # and the box reaches nothing else: not the platform's own port
    assert probe["platform_direct"] != "allowed", probe
    assert probe["snapshot"] == ["README.md", "weights.json"], probe
    # the README's models:/datasets: on the Space's page (linked) and in space_info, as on the Hub
    info = api(server, tokens["alice"]).space_info("hsalice/predict")
    assert (info.models, info.datasets) == ([MODEL], [DATA])
    page = httpx.get(f"{server.url}/spaces/hsalice/predict", timeout=10).text
    assert f'href="/{MODEL}"' in page and f'href="/datasets/{DATA}"' in page
    # datasets.load_dataset works unmodified too (the dataset's CSV, through the same relay)
    if DATA_TYPE == "dataset":
        assert probe["load_dataset"] == "allowed" and probe["rows"] == 3, probe


def test_another_users_space_cannot_read_the_private_model(server: Server, tokens: dict[str, str], repos: None) -> None:
    client = deploy(server, api(server, tokens["bob"]), "hsbob/thief", MODEL)
    assert client.predict(2, api_name="/predict").startswith("not loaded: RepositoryNotFoundError")
    probe = json.loads(client.predict(MODEL, api_name="/probe"))
    assert probe["read_target"].startswith("RepositoryNotFoundError"), probe
    # the same relay serves bob's own private model to his Space
    assert json.loads(client.predict(SECRET, api_name="/probe"))["read_target"] == "allowed"


def test_files_downloaded_at_run_time_are_stored_once_and_seen_only_where_readable(
    server: Server, tokens: dict[str, str], repos: None
) -> None:
    """Both Spaces download the public dataset's CSV at run time: one object of the shared store, linked
    into each Space's read-only cache view; bob's Space cannot read alice's private model, its view has
    no trace of it, and alice's view is not in its box."""
    alice = Client(f"{server.url}/apps/hsalice/predict/", verbose=False)
    bob = Client(f"{server.url}/apps/hsbob/thief/", verbose=False)

    def fetch(client: Client, **request: str) -> dict[str, str]:
        answer: dict[str, str] = json.loads(client.predict(json.dumps(request), api_name="/fetch"))
        return answer

    csv = {"repo": DATA, "file": "train.csv", "type": DATA_TYPE}
    a, b = fetch(alice, **csv), fetch(bob, **csv)
    assert a["content"] == b["content"] == CSV, (a, b)
    for seen in (a, b):
        assert seen["path"].startswith(seen["cache"] + "/"), seen
        assert seen["write_cache"] != "allowed", "the cache view is the platform's: the app only reads it"
    objects = [p for p in (server.data_dir / "hubcache" / "objects").rglob("*") if p.is_file()]
    (stored,) = [p for p in objects if p.read_bytes() == CSV.encode()]
    assert os.stat(a["path"]).st_ino == os.stat(b["path"]).st_ino == stored.stat().st_ino, "one copy"
    assert stored.stat().st_uid == 0 and stored.stat().st_mode & 0o222 == 0
    weights = {"repo": MODEL, "file": "weights.json", "type": MODEL_TYPE}
    own = fetch(alice, **weights)
    assert json.loads(own["content"]) == WEIGHTS
    assert fetch(bob, **weights)["error"] == "RepositoryNotFoundError"
    model_folder = f"{MODEL_TYPE}s--{MODEL.replace('/', '--')}"
    assert (Path(a["cache"]) / model_folder).is_dir() and not (Path(b["cache"]) / model_folder).exists()
    assert fetch(bob, open=own["path"])["open"].startswith("FileNotFoundError"), "alice's view is not in bob's box"


def test_deleting_the_space_revokes_its_token(server: Server, tokens: dict[str, str], repos: None) -> None:
    client = Client(f"{server.url}/apps/hsbob/thief/", verbose=False)
    token = json.loads(client.predict(SECRET, api_name="/probe"))["token"]
    me = api(server, token).whoami()
    assert me["name"] == "hsbob" and me["auth"]["accessToken"]["role"] == "space"
    # straight to the platform (no relay in the way), the token itself refuses every write
    with pytest.raises(HfHubHTTPError) as refused:
        api(server, token).create_repo("hsbob/evil", repo_type="space", space_sdk="static")
    assert refused.value.response.status_code == 403
    with pytest.raises(HfHubHTTPError) as refused:
        api(server, token).upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id=SECRET, repo_type=MODEL_TYPE)
    assert refused.value.response.status_code == 403
    # it never signs in to the web pages
    login = httpx.post(f"{server.url}/login", data={"token": token}, timeout=10)
    assert login.status_code in (400, 403), login.status_code
    api(server, tokens["bob"]).delete_repo("hsbob/thief", repo_type="space")
    assert httpx.get(f"{server.url}/api/whoami-v2", headers={"authorization": f"Bearer {token}"}).status_code == 401


def metric(server: Server, name: str) -> float:
    for line in httpx.get(f"{server.url}/metrics", timeout=10).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"no {name} at /metrics")


def test_preload_from_hub_fills_the_space_at_build_time(server: Server, tokens: dict[str, str], repos: None) -> None:
    """Offline (HF_HUB_OFFLINE=1): the app finds the files in its cache, put there at build time; the
    dataset both Spaces preload is stored once in the shared cache; an unreadable repository fails the build."""
    data = f"datasets/{DATA}" if DATA_TYPE == "dataset" else DATA
    bob = api(server, tokens["bob"])
    bob.create_repo("hsbob/preloaded", repo_type="space", space_sdk="gradio")
    bob.add_space_variable("hsbob/preloaded", "HF_HUB_OFFLINE", "1")
    stolen = readme(f"preload_from_hub:\n  - {MODEL} weights.json\n")
    sha = commit(bob, "hsbob/preloaded", stolen, app_source(server, SECRET))
    failed = server.wait_stage("hsbob/preloaded", {"BUILD_ERROR"}, sha=sha)
    assert f"preload_from_hub: model {MODEL} (revision main) was not found" in failed["errorMessage"], failed
    for space_id, hf, model in (
        ("hsbob/preloaded", bob, SECRET),
        ("hsalice/preloaded", api(server, tokens["alice"]), MODEL),
    ):
        if space_id == "hsalice/preloaded":
            hf.create_repo(space_id, repo_type="space", space_sdk="gradio")
            hf.add_space_variable(space_id, "HF_HUB_OFFLINE", "1")
        good = readme(f"preload_from_hub:\n  - {model} weights.json\n  - {data} train.csv\n")
        sha = commit(hf, space_id, good, app_source(server, SECRET, model))
        server.wait_stage(space_id, {"RUNNING"}, sha=sha)
        log = server.api("GET", f"/api/spaces/{space_id}/logs/build", timeout=10).text
        assert f"preload_from_hub: {data.removeprefix('datasets/') if DATA_TYPE != 'dataset' else data}" in log
    bobs = Client(f"{server.url}/apps/hsbob/preloaded/", verbose=False)
    assert bobs.predict(2, api_name="/predict") == "42 (3 rows)"
    alices = Client(f"{server.url}/apps/hsalice/preloaded/", verbose=False)
    assert alices.predict(2, api_name="/predict") == "6.5 (3 rows)"
    csv_copies = [
        p
        for p in (server.data_dir / "hubcache" / "objects").rglob("*")
        if p.is_file() and p.read_bytes() == CSV.encode()
    ]
    assert len(csv_copies) == 1 and csv_copies[0].stat().st_nlink >= 3  # the store + one link per Space's build
    assert csv_copies[0].stat().st_uid == 0 and csv_copies[0].stat().st_mode & 0o222 == 0
    assert metric(server, "spaceyard_hub_cache_hits_total") >= 1
    assert metric(server, "spaceyard_hub_cache_objects") >= 3
    assert metric(server, "spaceyard_hub_cache_limit_bytes") == 20 * 1024**3
