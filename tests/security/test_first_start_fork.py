"""A fresh Gradio Space's first start, through the real server: a fork from a warm parent warmed on the SDK layer
while the Space's first build ran, which sees nothing a cold start of the same app does not.

The prober (``spaces/prober``, no requirements of its own: its environment is the SDK layer) is pushed to a
new Space: its first start must be a fork. Then an app-only commit is pushed while it runs: that version
starts cold (the Space's warm parent serves the first one). Both versions probe their walls (the platform's
files, other Spaces, every process's environment, the platform's services) and must find the same: nothing.
A Space whose requirements leave the layer (``tomlkit`` at another version than the SDK's) must start cold
and work.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from gradio_client import Client

from tests.conftest import free_port
from tests.security.test_local_walls import SENSITIVE
from tests.support import ADMIN_TOKEN, Server, git, push, read_sse, start_server, working_copy

pytestmark = [pytest.mark.slow]

HERE = Path(__file__).resolve().parent
PROBER = "admin/h18first-prober"
PER_START = ("PORT", "GRADIO_SERVER_PORT")
"""Variables whose value is the start's own (its port)."""


@pytest.fixture(autouse=True)
def _root() -> None:
    """The walls need root (bubblewrap, setpriv, cgroups): without it this is a failure, never a skip."""
    if os.geteuid() != 0:
        pytest.fail("the sandbox needs root: run the tests as root, as .ci/test does")


@pytest.fixture(scope="module")
def server(shared_env_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Its own server on the shared environments (the SDK layer is there, as on a machine that built it once)."""
    srv = start_server(tmp_path_factory.mktemp("first-start-data"), free_port(), shared_env_dir)
    yield srv
    srv.stop()


def deploy(server: Server, wc: Path, space_id: str) -> str:
    push(server, wc, space_id)
    sha = git(wc, "rev-parse", "HEAD").stdout.strip()
    server.wait_stage(space_id, {"RUNNING"}, sha=sha)
    return sha


def run_log(server: Server, space_id: str) -> str:
    return "\n".join(read_sse(f"{server.url}/api/spaces/{space_id}/logs/run", quiet=1.0))


def probe(server: Server) -> dict[str, Any]:
    assert httpx.get(f"{server.url}/apps/{PROBER}/config", timeout=180).status_code == 200
    client = Client(f"{server.url}/apps/{PROBER}/", verbose=False)
    result: dict[str, Any] = json.loads(client.predict(str(server.port), api_name="/probe"))
    return result


def test_a_fresh_space_forks_its_first_start_and_sees_what_a_cold_start_sees(server: Server, tmp_path: Path) -> None:
    server.create_space(PROBER, sdk="gradio")
    wc = working_copy(tmp_path / "prober", HERE / "spaces" / "prober")
    deploy(server, wc, PROBER)
    first = run_log(server, PROBER)
    assert "Fork: from the warm parent" in first and "Cold start" not in first, first
    forked = probe(server)

    (wc / "app.py").write_text((wc / "app.py").read_text() + "\n# app-only change\n")
    git(wc, "commit", "-q", "-am", "app only")
    deploy(server, wc, PROBER)
    second = run_log(server, PROBER)
    assert "Cold start" in second, second  # the warm parent still serves the first version
    cold = probe(server)

    for found in (forked, cold):
        results = {r["what"]: r for r in found["results"]}
        for what in SENSITIVE:
            assert not results[what]["ok"], results[what]
        environs = "\n".join(found["environs"].values())
        for needle in (ADMIN_TOKEN, "SPACEYARD_"):
            assert needle not in environs
        assert not any(k.startswith("SPACEYARD_") for k in found["own_env"])
    # The same walls either way: every attempt fares the same, the same user, the same environment.
    assert {r["what"]: r["ok"] for r in forked["results"]} == {r["what"]: r["ok"] for r in cold["results"]}
    for what in ("data dir", "sources", "runtime dir", "root home"):
        a = next(r for r in forked["results"] if r["what"] == what)
        b = next(r for r in cold["results"] if r["what"] == what)
        assert a.get("got") == b.get("got"), (what, a, b)  # nothing more to list from the fork
    assert (forked["uid"], forked["gid"], forked["groups"]) == (cold["uid"], cold["gid"], cold["groups"])

    def comparable(found: dict[str, Any]) -> dict[str, str]:  # each version runs in its own commit's folder
        return {k: v.replace(found["cwd"], "<commit>") for k, v in found["own_env"].items() if k not in PER_START}

    assert comparable(forked) == comparable(cold)


def test_a_space_whose_requirements_leave_the_sdk_layer_starts_cold_and_works(server: Server, tmp_path: Path) -> None:
    space_id = "admin/h18first-pinned"
    server.create_space(space_id, sdk="gradio")
    wc = working_copy(tmp_path / "pinned", "hello-gradio")
    (wc / "requirements.txt").write_text("tomlkit==0.13.3\n")  # the SDK's set has tomlkit 0.14.0
    git(wc, "add", "-A")
    git(wc, "commit", "-q", "-m", "pin tomlkit")
    deploy(server, wc, space_id)
    log = run_log(server, space_id)
    assert "Cold start" in log and "no warm parent yet for this environment" in log, log
    with httpx.Client(timeout=60) as c:
        event = c.post(f"{server.url}/apps/{space_id}/gradio_api/call/greet", json={"data": ["pinned"]})
        assert event.status_code == 200, event.text
        answer = c.get(f"{server.url}/apps/{space_id}/gradio_api/call/greet/{event.json()['event_id']}")
    assert "pinned" in answer.text.split("data: ")[-1]
