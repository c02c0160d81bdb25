"""Running Spaces driven with the real clients: huggingface_hub's runtime, hardware, secrets,
variables, logs, pause/restart and duplicate calls, and gradio_client.Client("OWNER/NAME") with
HF_ENDPOINT set — public and private. One Gradio Space (the hello sample, which answers with its
HELLO_VERSION environment variable) is shared by the module; the rest are static Spaces."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from gradio_client import Client
from huggingface_hub import HfApi, SpaceHardware
from huggingface_hub.errors import BadRequestError, RepositoryNotFoundError

from tests.support import SAMPLES, Server

pytestmark = pytest.mark.slow
APP = "admin/hub-gradio"
SITE = "admin/hub-static"


@pytest.fixture(scope="module")
def app(server: Server, admin_api: HfApi) -> str:
    """The Gradio sample, created and uploaded with the client; returns the commit."""
    admin_api.create_repo(APP, repo_type="space", space_sdk="gradio")
    sha = admin_api.upload_folder(repo_id=APP, repo_type="space", folder_path=SAMPLES / "hello-gradio").oid
    runtime = admin_api.wait_for_space(APP, timeout=300)
    assert runtime.stage == "RUNNING", runtime.raw
    assert runtime.raw["sha"] == sha
    return sha


@pytest.fixture(scope="module")
def site(server: Server, admin_api: HfApi) -> str:
    admin_api.create_repo(SITE, repo_type="space", space_sdk="static", space_variables=[{"key": "V", "value": "1"}])
    admin_api.add_space_secret(SITE, "TOP_SECRET", "do-not-copy")
    readme = b"---\ntitle: Static\nsdk: static\n---\n"
    admin_api.upload_file(path_or_fileobj=readme, path_in_repo="README.md", repo_id=SITE, repo_type="space")
    sha = admin_api.upload_file(
        path_or_fileobj=b"<p>hi</p>", path_in_repo="index.html", repo_id=SITE, repo_type="space"
    )
    server.wait_stage(SITE, {"RUNNING"}, sha=sha.oid)
    return sha.oid


def greet(server: Server) -> str:
    return str(Client(f"{server.url}/apps/{APP}/", verbose=False).predict("World", api_name="/greet"))


def client_script(server: Server, tmp_path: Path, token: str | None) -> subprocess.CompletedProcess[str]:
    """What a user runs: HF_ENDPOINT (and HF_TOKEN) set, the unmodified clients, a Space by name."""
    script = (
        "import json, huggingface_hub\n"
        "from gradio_client import Client\n"
        f"client = Client({APP!r}, verbose=False)\n"
        "print(json.dumps({'src': client.src, 'answer': client.predict('World', api_name='/greet'),"
        f" 'whoami': huggingface_hub.whoami()['name'] if {token is not None} else None}}))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "SPACEYARD_"))}
    env.update({"HF_ENDPOINT": server.url, "HF_HOME": str(tmp_path / "hf-home"), "GRADIO_ANALYTICS_ENABLED": "False"})
    if token:
        env["HF_TOKEN"] = token
    return subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)


def test_gradio_client_finds_the_space_by_name(server: Server, app: str, tmp_path: Path) -> None:
    out = client_script(server, tmp_path, None)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["answer"] == "Hello World! (v1)"
    assert result["src"].rstrip("/").endswith(f"/apps/{APP}")


def test_private_space_with_gradio_client_and_a_token(
    server: Server, admin_api: HfApi, anon_api: HfApi, app: str, tmp_path: Path
) -> None:
    admin_api.update_repo_settings(APP, repo_type="space", private=True)
    try:
        with pytest.raises(RepositoryNotFoundError):
            anon_api.space_info(APP)
        refused = client_script(server, tmp_path, None)
        assert refused.returncode != 0
        ok = client_script(server, tmp_path, server.token)
        assert ok.returncode == 0, ok.stderr
        result = json.loads(ok.stdout.strip().splitlines()[-1])
        assert result == {"src": result["src"], "answer": "Hello World! (v1)", "whoami": "admin"}
    finally:
        admin_api.update_repo_settings(APP, repo_type="space", visibility="public")
    assert anon_api.space_info(APP).private is False


def test_changing_variables_and_secrets_restarts_with_the_new_values(
    server: Server, admin_api: HfApi, app: str
) -> None:
    variables = admin_api.add_space_variable(APP, "HELLO_VERSION", "from-variable", description="shown")
    assert variables["HELLO_VERSION"].value == "from-variable"
    assert admin_api.get_space_runtime(APP).stage == "RUNNING"
    assert greet(server) == "Hello World! (from-variable)"
    # keys are unique across variables and secrets, ignoring case: a clash is refused, nothing changes
    with pytest.raises(BadRequestError, match="clashes"):
        admin_api.add_space_secret(APP, "hello_version", "from-secret")
    assert admin_api.get_space_secrets(APP) == {}
    assert admin_api.delete_space_variable(APP, "HELLO_VERSION") == {}
    assert greet(server) == "Hello World! (v1)"
    admin_api.add_space_secret(APP, "HELLO_VERSION", "from-secret")
    assert greet(server) == "Hello World! (from-secret)"
    assert list(admin_api.get_space_secrets(APP)) == ["HELLO_VERSION"]
    admin_api.delete_space_secret(APP, "HELLO_VERSION")
    assert greet(server) == "Hello World! (v1)"
    assert "from-secret" not in "".join(admin_api.fetch_space_logs(APP, build=True))


def test_logs_follow_and_not(admin_api: HfApi, app: str) -> None:
    build = list(admin_api.fetch_space_logs(APP, build=True))
    assert any("Build Queued" in line for line in build)
    assert list(admin_api.fetch_space_logs(APP, build=True, follow=True)) == build  # a finished build ends
    # non-follow: what is there now, then it returns (the app's output reaches the log shortly after start)
    for _ in range(20):
        run = list(admin_api.fetch_space_logs(APP))
        if any("hello-gradio" in line and "starting" in line for line in run):
            break
    assert any("hello-gradio" in line and "starting" in line for line in run), run
    assert run[0].startswith("===== Application Startup")


def test_hardware_and_sleep_time(server: Server, admin_api: HfApi, app: str) -> None:
    offered = admin_api.list_spaces_hardware()
    assert offered[0].name == "cpu-basic" and "cpu-upgrade" in [h.name for h in offered]
    # hardware honesty: this machine's runtime has no GPU, so no GPU flavor is offered or accepted
    assert not [h.name for h in offered if h.accelerator is not None]
    every = server.api("GET", "/api/spaces/hardware?all=true").json()
    gpu = next(h for h in every if h["name"] == "t4-small")
    assert gpu["available"] is False and gpu["accelerator"]["quantity"] == "1"
    assert "t4-small needs 1 GPU" in gpu["unavailableReason"] and "no GPU" in gpu["unavailableReason"]
    with pytest.raises(BadRequestError, match="not available on this deployment: t4-small needs 1 GPU"):
        admin_api.request_space_hardware(APP, SpaceHardware.T4_SMALL)
    assert admin_api.get_space_runtime(APP).requested_hardware != "t4-small"
    with pytest.raises(BadRequestError, match="not available on this deployment"):
        admin_api.create_repo(
            "admin/gpu-wish", repo_type="space", space_sdk="gradio", space_hardware=SpaceHardware.T4_SMALL
        )
    with pytest.raises(BadRequestError, match="cpu-upgrade"):
        admin_api.request_space_hardware(APP, "quantum-xl")  # type: ignore[arg-type]
    runtime = admin_api.request_space_hardware(APP, SpaceHardware.CPU_UPGRADE, sleep_time=3600)
    assert runtime.requested_hardware == "cpu-upgrade" and runtime.sleep_time == 3600
    assert admin_api.set_space_sleep_time(APP, 7200).sleep_time == 7200
    assert admin_api.wait_for_space(APP, timeout=120).stage == "RUNNING"


def test_pause_stays_paused_until_restart(server: Server, admin_api: HfApi, app: str) -> None:
    assert admin_api.pause_space(APP).stage == "PAUSED"
    visit = server.app_get(APP, "/")
    assert visit.status_code == 503  # a visit does not wake a paused Space
    assert admin_api.get_space_runtime(APP).stage == "PAUSED"
    admin_api.restart_space(APP)
    assert admin_api.wait_for_space(APP, timeout=120).stage == "RUNNING"
    assert greet(server) == "Hello World! (v1)"


def test_factory_reboot_rebuilds(server: Server, admin_api: HfApi, site: str) -> None:
    assert admin_api.restart_space(SITE, factory_reboot=True).stage in ("BUILDING", "RUNNING_BUILDING")
    assert admin_api.wait_for_space(SITE, timeout=120).stage == "RUNNING"
    assert any("Build Queued" in line for line in admin_api.fetch_space_logs(SITE, build=True))
    assert server.app_get(SITE, "/").text == "<p>hi</p>"


def test_duplicate_copies_repo_and_variables_not_secrets(server: Server, admin_api: HfApi, site: str) -> None:
    url = admin_api.duplicate_repo(SITE, "admin/hub-static-copy", repo_type="space", private=True)
    assert url.repo_id == "admin/hub-static-copy"
    info = admin_api.space_info("admin/hub-static-copy")
    assert info.private is True and info.sha == site
    assert {k: v.value for k, v in admin_api.get_space_variables("admin/hub-static-copy").items()} == {"V": "1"}
    assert admin_api.get_space_secrets("admin/hub-static-copy") == {}
    assert admin_api.wait_for_space("admin/hub-static-copy", timeout=120).stage == "RUNNING"
    again = admin_api.duplicate_repo(SITE, "admin/hub-static-copy", repo_type="space", exist_ok=True)
    assert again.repo_id == "admin/hub-static-copy"
