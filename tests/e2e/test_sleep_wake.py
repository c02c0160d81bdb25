"""Sleep on idle and wake on the next visit, through the real server, gateway and local runtime."""

from __future__ import annotations

import concurrent.futures
import os
import re
import time
from pathlib import Path

import httpx
import pytest

from tests.support import Server, git, push, read_sse, working_copy

pytestmark = pytest.mark.slow
SPACE = "admin/sleepy"


def app_pids(server: Server, space_id: str) -> list[int]:
    """Processes running in one of the Space's exported commits (a forked app keeps its warm parent's
    /proc/PID/environ, so the working directory is what identifies it in both start modes)."""
    root = str(server.data_dir / "sources" / space_id.replace("/", "--")) + "/"
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cwd = os.readlink(f"/proc/{entry}/cwd")
        except OSError:
            continue
        if (cwd + "/").startswith(root):
            pids.append(int(entry))
    return pids


def wakes(server: Server, space_id: str) -> float:
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith("spaceyard_wakes_total{") and f'space="{space_id}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


@pytest.fixture(scope="module")
def sleepy(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Path:
    server.create_space(SPACE, sdk="gradio")
    wc = working_copy(tmp_path_factory.mktemp("sleepy"), "hello-gradio")
    push(server, wc, SPACE)
    server.wait_stage(SPACE, {"RUNNING"}, sha=git(wc, "rev-parse", "HEAD").stdout.strip())
    return wc


def set_sleep_time(server: Server, seconds: int) -> dict[str, object]:
    r = server.api("POST", f"/api/spaces/{SPACE}/sleeptime", json={"seconds": seconds})
    assert r.status_code == 200, r.text
    return dict(r.json())


def greet(server: Server, name: str) -> str:
    with httpx.Client(timeout=60) as c:
        event = c.post(f"{server.url}/apps/{SPACE}/gradio_api/call/greet", json={"data": [name]})
        assert event.status_code == 200, event.text
        stream = c.get(f"{server.url}/apps/{SPACE}/gradio_api/call/greet/{event.json()['event_id']}")
        return stream.text.split("data: ")[-1].strip()


def test_sleep_time_is_validated_and_reported(server: Server, sleepy: Path) -> None:
    assert server.api("POST", f"/api/spaces/{SPACE}/sleeptime", json={"seconds": 0}).status_code == 400
    assert server.api("POST", f"/api/spaces/{SPACE}/sleeptime", json={"seconds": 5}, token=None).status_code in (
        401,
        404,
    )
    assert set_sleep_time(server, -1)["gcTimeout"] == -1
    assert set_sleep_time(server, 3600)["gcTimeout"] == 3600


def test_idle_space_sleeps_and_its_process_is_gone(server: Server, sleepy: Path) -> None:
    assert app_pids(server, SPACE), "the app runs before it sleeps"
    set_sleep_time(server, 1)
    server.wait_stage(SPACE, {"SLEEPING"}, timeout=30)
    deadline = time.monotonic() + 10
    while app_pids(server, SPACE) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert app_pids(server, SPACE) == []
    assert server.runtime(SPACE)["hardware"]["current"] is None


def test_a_visit_wakes_it_and_gets_the_right_answer(server: Server, sleepy: Path) -> None:
    set_sleep_time(server, 1)
    server.wait_stage(SPACE, {"SLEEPING"}, timeout=30)
    set_sleep_time(server, 3600)
    assert greet(server, "sleeper") == '["Hello sleeper! (v1)"]'
    assert server.runtime(SPACE)["stage"] == "RUNNING"
    run_log = "\n".join(read_sse(f"{server.url}/api/spaces/{SPACE}/logs/run"))
    assert "Fork: from the warm parent" in run_log  # woken by forking the warm parent, and says so


def warm_parents(server: Server, slug: str) -> list[int]:
    """The Space's warm parent processes (the zygote script, in the Space's HOME)."""
    home = str(server.data_dir.resolve() / "runtime" / "spaces" / slug / "home")
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            cwd = os.readlink(f"/proc/{entry}/cwd")
        except OSError:
            continue
        if b"zygote.py" in cmdline and cwd == home and b"bwrap" not in cmdline.split(b"\0")[0]:
            found.append(int(entry))
    return found


def test_deep_sleep_ends_the_warm_parent_and_the_next_wake_is_cold(server: Server, sleepy: Path) -> None:
    url = f"/api/spaces/{SPACE}/deepsleeptime"
    assert server.api("POST", url, json={"seconds": -2}).status_code == 400
    assert server.api("POST", url, json={"seconds": 0}, token=None).status_code in (401, 404)
    set_sleep_time(server, 1)
    server.wait_stage(SPACE, {"SLEEPING"}, timeout=30)
    assert server.runtime(SPACE)["spaceyardSleep"] == "light"
    assert warm_parents(server, "admin-sleepy"), "a light sleeper keeps its warm parent"
    r = server.api("POST", url, json={"seconds": 0})  # deep at once: from the next idle check
    assert r.status_code == 200 and r.json()["spaceyardDeepSleepAfter"] == 0, r.text
    deadline = time.monotonic() + 30
    while server.runtime(SPACE)["spaceyardSleep"] != "deep" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert server.runtime(SPACE)["spaceyardSleep"] == "deep" and server.runtime(SPACE)["stage"] == "SLEEPING"
    while warm_parents(server, "admin-sleepy") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert warm_parents(server, "admin-sleepy") == []  # nothing kept
    r = server.api("POST", url, json={"seconds": None})  # back to the platform's default (an hour)
    assert r.status_code == 200 and r.json()["spaceyardDeepSleepAfter"] == 3600, r.text
    set_sleep_time(server, 3600)
    assert greet(server, "deep") == '["Hello deep! (v1)"]'
    assert server.runtime(SPACE)["spaceyardSleep"] is None
    run_log = "\n".join(read_sse(f"{server.url}/api/spaces/{SPACE}/logs/run"))
    assert "Cold start" in run_log and "Fork: from the warm parent" not in run_log  # this wake's log only


def test_fifty_concurrent_first_requests_cause_one_wake(server: Server, sleepy: Path) -> None:
    set_sleep_time(server, 1)
    server.wait_stage(SPACE, {"SLEEPING"}, timeout=30)
    set_sleep_time(server, 3600)
    before = wakes(server, SPACE)

    def visit(i: int) -> int:
        return server.app_get(SPACE, "/config").status_code

    with concurrent.futures.ThreadPoolExecutor(max_workers=50) as pool:
        statuses = list(pool.map(visit, range(50)))
    assert statuses == [200] * 50
    assert wakes(server, SPACE) - before == 1
    metrics = httpx.get(f"{server.url}/metrics", timeout=10).text
    assert re.search(r'spaceyard_wake_duration_seconds_count\{space="admin/sleepy"\} [1-9]', metrics)
    for phase in ("start", "ready"):  # the wake's phases, each observed once per wake
        assert re.search(rf'spaceyard_wake_phase_seconds_count\{{mode="[a-z_-]+",phase="{phase}"\}} [1-9]', metrics)


def test_a_paused_space_stays_paused(server: Server, sleepy: Path) -> None:
    r = server.api("POST", f"/api/spaces/{SPACE}/pause")
    assert r.status_code == 200 and r.json()["stage"] == "PAUSED"
    visit = server.app_get(SPACE, "/", headers={"Accept": "text/html"})
    assert visit.status_code == 503 and "paused" in visit.text.lower()
    assert server.runtime(SPACE)["stage"] == "PAUSED"
    assert app_pids(server, SPACE) == []
    r = server.api("POST", f"/api/spaces/{SPACE}/restart")
    assert r.status_code == 200
    server.wait_stage(SPACE, {"RUNNING"}, timeout=120)
    assert greet(server, "back") == '["Hello back! (v1)"]'
