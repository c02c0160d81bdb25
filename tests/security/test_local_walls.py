"""The local runtime's walls, tried by a hostile Space deployed through the real server.

The prober (``spaces/prober``) tries to read the platform's files, other Spaces' sources and secrets,
every process's environment, to reach the platform's and the machine's services, listens on every
interface and leaves children that call ``setsid``; a victim Space with a secret runs beside it. Each
attempt must find nothing; what is left must die with the app; hitting the memory limit must be a
``RUNTIME_ERROR`` that says so.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from gradio_client import Client, handle_file

from tests.support import ADMIN_TOKEN, Server, git, push, read_sse, start_server, working_copy

pytestmark = [
    pytest.mark.slow,
]


@pytest.fixture(autouse=True)
def _root() -> None:
    """The walls need root (bubblewrap, setpriv, cgroups): without it this is a failure, never a skip."""
    if os.geteuid() != 0:
        pytest.fail("the sandbox needs root: run the tests as root, as .ci/test does")


HERE = Path(__file__).resolve().parent
PROBER, VICTIM = "admin/prober", "admin/victim"
VICTIM_SECRET = "victim-secret-5b1e0c"
SENSITIVE = (
    "secret.key",
    "spaceyard.db",
    "repos",
    "victim source",
    "logs",
    "etc shadow",
    "platform port",
    "redis",
    "postgres",
    "docker socket",
)
"""What the prober (spaces/prober) tries to reach of the platform and other Spaces: each must fail."""
MEMORY_SCALE = 0.04
"""cpu-basic's 16 GiB x 0.04 = 0.64 GiB: room for Gradio, not for the prober's meal."""


@pytest.fixture(scope="module")
def server(shared_env_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    from tests.conftest import free_port

    srv = start_server(
        tmp_path_factory.mktemp("walls-data"),
        free_port(),
        shared_env_dir,
        {"SPACEYARD_LOCAL_MEMORY_SCALE": str(MEMORY_SCALE), "SPACEYARD_IDLE_CHECK_INTERVAL": "0.2"},
    )
    yield srv
    srv.stop()


def deploy(server: Server, tmp: Path, space_id: str, sample: Path) -> None:
    server.create_space(space_id, sdk="gradio")
    wc = working_copy(tmp, sample)
    push(server, wc, space_id)
    server.wait_stage(space_id, {"RUNNING"}, sha=git(wc, "rev-parse", "HEAD").stdout.strip())


@pytest.fixture(scope="module")
def spaces(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Server:
    server.create_space(VICTIM, sdk="gradio")
    r = server.api("POST", f"/api/spaces/{VICTIM}/secrets", json={"key": "VICTIM_SECRET", "value": VICTIM_SECRET})
    assert r.status_code == 200, r.text
    wc = working_copy(tmp_path_factory.mktemp("victim"), HERE / "spaces" / "victim")
    push(server, wc, VICTIM)
    deploy(server, tmp_path_factory.mktemp("prober"), PROBER, HERE / "spaces" / "prober")
    server.wait_stage(VICTIM, {"RUNNING"}, sha=git(wc, "rev-parse", "HEAD").stdout.strip())
    return server


def probe(server: Server) -> dict[str, Any]:
    # A first plain request wakes the Space if it sleeps (gradio_client's own timeouts are short).
    assert httpx.get(f"{server.url}/apps/{PROBER}/config", timeout=180).status_code == 200
    client = Client(f"{server.url}/apps/{PROBER}/", verbose=False)
    result: dict[str, Any] = json.loads(client.predict(str(server.port), api_name="/probe"))
    return result


def uid_processes(uid: int) -> list[int]:
    """Host processes running as ``uid`` (real uid)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            status = Path(f"/proc/{entry}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("Uid:") and int(line.split()[1]) == uid:
                found.append(int(entry))
    return found


def host_listeners(uid: int) -> list[str]:
    """LISTEN sockets in the host's network namespace owned by ``uid``."""
    out = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and int(fields[7]) == uid:
                out.append(fields[1])
    return out


def run_log(server: Server, space_id: str) -> str:
    return "\n".join(read_sse(f"{server.url}/api/spaces/{space_id}/logs/run"))


def test_the_prober_finds_nothing_of_the_platform_or_other_spaces(spaces: Server) -> None:
    server = spaces
    found = probe(server)
    results = {r["what"]: r for r in found["results"]}
    # It runs as its own unprivileged user: not root, not the platform's user, no supplementary groups.
    assert found["uid"] not in (0, os.getuid()) and found["gid"] != 0 and found["groups"] in ([], [found["gid"]])
    for what in SENSITIVE:
        assert not results[what]["ok"], results[what]
    # What it can list of DATA_DIR is the skeleton of its own mounts, nothing of anyone else.
    for what in ("data dir", "sources", "runtime dir"):
        listed = results[what].get("got", "")
        for other in ("victim", "secret.key", "spaceyard.db", "repos", "queue", "logs", "envs"):
            assert other not in listed, (what, listed)
    # Its /proc shows only its own processes: no environment holds the platform's token or the victim's secret.
    environs = "\n".join(found["environs"].values())
    for needle in (ADMIN_TOKEN, "SPACEYARD_", VICTIM_SECRET):
        assert needle not in environs
    assert max(found["pids"]) < 1000 and len(found["pids"]) < 50, found["pids"]
    assert not any(k.startswith("SPACEYARD_") for k in found["own_env"])
    assert found["own_env"]["SPACE_ID"] == PROBER and "VICTIM_SECRET" not in found["own_env"]
    assert found["home_writable"]["ok"], found["home_writable"]


def test_it_listens_nowhere_but_inside_its_own_network(spaces: Server) -> None:
    server = spaces
    uid = probe(server)["uid"]
    # The prober listens on 0.0.0.0:7861 (and Gradio's reload server on 0.0.0.0:7887) inside its own network
    # namespace; in the host's, nothing of its user listens anywhere.
    assert host_listeners(uid) == []
    inside = [p for p in uid_processes(uid) if Path(f"/proc/{p}/net/tcp").exists()]
    assert inside, "the prober runs"
    ports = {  # the app's own network (the warm parent, also of its user, has another one: nothing listens there)
        int(line.split()[1].split(":")[1], 16)
        for pid in inside
        for line in Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]
        if line.split()[3] == "0A"
    }
    assert {7860, 7861} <= ports
    # The gateway still reaches the app, and no Space's log shows the reload server's bind error.
    assert httpx.get(f"{server.url}/apps/{PROBER}/", timeout=30).status_code == 200
    for space_id in (PROBER, VICTIM):
        log = run_log(server, space_id)
        assert "address already in use" not in log and "Errno 98" not in log, log


def test_the_walled_app_still_works_end_to_end(spaces: Server, tmp_path: Path) -> None:
    """Through the gateway: a Gradio call (queue + SSE, gradio_client), a file upload and download, reaching
    the app inside its own network namespace. (Websockets: Gradio's environment here has no websocket
    library for uvicorn; a Streamlit Space's websocket through the walls is tests/e2e/test_other_sdks.py.)"""
    server = spaces
    probe(server)  # awake
    client = Client(f"{server.url}/apps/{PROBER}/", verbose=False, download_files=str(tmp_path / "dl"))
    sent = tmp_path / "upload.bin"
    sent.write_bytes(os.urandom(300_000))
    got = Path(client.predict(handle_file(str(sent)), api_name="/reverse"))
    assert got.read_bytes() == sent.read_bytes()[::-1]


def test_sleep_ends_every_process_of_the_app_and_a_fork_wakes_it_as_walled(spaces: Server) -> None:
    server = spaces
    before = probe(server)
    uid = before["uid"]
    assert server.api("POST", f"/api/spaces/{PROBER}/sleeptime", json={"seconds": 1}).status_code == 200
    server.wait_stage(PROBER, {"SLEEPING"}, timeout=60)
    assert server.api("POST", f"/api/spaces/{PROBER}/sleeptime", json={"seconds": 3600}).status_code == 200
    # Asleep, the Space keeps only its warm parent: the app and its setsid grandchildren are gone.
    deadline = time.monotonic() + 10
    while len(uid_processes(uid)) > 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(uid_processes(uid)) <= 1, uid_processes(uid)
    after = probe(server)  # the visit wakes it, forked from the warm parent inside the same walls
    assert "Fork: from the warm parent" in run_log(server, PROBER)
    assert after["uid"] == uid and after["pids"] != [] and max(after["pids"]) < 1000
    results = {r["what"]: r for r in after["results"]}
    for what in ("secret.key", "spaceyard.db", "victim source", "platform port", "redis", "postgres"):
        assert not results[what]["ok"], results[what]
    assert VICTIM_SECRET not in "\n".join(after["environs"].values())
    assert host_listeners(uid) == []


def test_running_out_of_memory_is_a_runtime_error_that_says_so(spaces: Server) -> None:
    server = spaces
    uid = probe(server)["uid"]
    client = Client(f"{server.url}/apps/{PROBER}/", verbose=False)
    with pytest.raises(Exception):  # noqa: B017 (the app dies mid-call)
        client.predict("4000", api_name="/eat")
    rt = server.wait_stage(PROBER, {"RUNTIME_ERROR"}, timeout=60)
    limit = f"{16 * MEMORY_SCALE:.2f}".rstrip("0")
    assert f"out of memory (limit {limit} GiB of flavor cpu-basic)" in rt["errorMessage"], rt
    # The crashed app's children are gone too; only the Space's warm parent may remain.
    deadline = time.monotonic() + 10
    while len(uid_processes(uid)) > 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(uid_processes(uid)) <= 1
    # The victim next door kept running.
    assert server.wait_stage(VICTIM, {"RUNNING"}, timeout=5)


def test_delete_leaves_no_process_behind(spaces: Server) -> None:
    server = spaces
    found = probe(server) if server.runtime(PROBER)["stage"] == "RUNNING" else None
    uid = found["uid"] if found else None
    if uid is None:  # after the memory test: restart it to have processes to end
        assert server.api("POST", f"/api/spaces/{PROBER}/restart").status_code == 200
        server.wait_stage(PROBER, {"RUNNING"}, timeout=180)
        uid = probe(server)["uid"]
    assert uid_processes(uid)
    r = server.api("DELETE", "/api/repos/delete", json={"type": "space", "name": "prober", "organization": "admin"})
    assert r.status_code == 200, r.text
    deadline = time.monotonic() + 15
    while uid_processes(uid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert uid_processes(uid) == []


def test_a_sigkilled_platform_leaves_no_app_or_warm_parent_and_restarts_clean(
    shared_env_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from spaceyard_runtime.sandbox import space_uid
    from tests.conftest import free_port

    data, port = tmp_path_factory.mktemp("killed-data"), free_port()
    server = start_server(data, port, shared_env_dir)
    try:
        deploy(server, tmp_path_factory.mktemp("killed"), "admin/killed", HERE / "spaces" / "victim")
        uid = space_uid("admin/killed")
        deadline = time.monotonic() + 120  # the app and, once warmed, the Space's warm parent
        while len(uid_processes(uid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(uid_processes(uid)) >= 2
        server.proc.kill()  # SIGKILL: no shutdown code runs
        server.proc.wait()
        deadline = time.monotonic() + 15
        while uid_processes(uid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert uid_processes(uid) == []  # --die-with-parent took the boxes with it
    finally:
        server.stop()
    again = start_server(data, port, shared_env_dir)
    try:
        assert again.runtime("admin/killed")["stage"] in ("SLEEPING", "RUNNING", "APP_STARTING")
        assert httpx.get(f"{again.url}/apps/admin/killed/config", timeout=180).status_code == 200
        assert len(uid_processes(uid)) >= 1  # one app again, not a second copy beside an orphan
    finally:
        again.stop()
    deadline = time.monotonic() + 15
    while uid_processes(uid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert uid_processes(uid) == []  # and a clean stop leaves nothing either
