"""An app that hangs at start does not hold its Space: a fixing push, a pause and a delete act at once
(the hanging start is cancelled and its process stopped); and the awake gauge counts what runs."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from .helpers import greet, pushed_gradio, repush


def _awake(srv) -> float:  # type: ignore[no-untyped-def]
    text = httpx.get(f"{srv.url}/metrics", timeout=10).text
    found = re.search(r"^spaceyard_awake_spaces (\S+)$", text, re.M)
    assert found, text[:500]
    return float(found.group(1))


def test_a_fixing_push_does_not_wait_for_a_hanging_start(faulty, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    f = faulty(SPACEYARD_TEST_BUILD_SECONDS="0")
    srv = f.start()
    wc, hang = pushed_gradio(srv, tmp_path, "admin/hangs", start_delay=3600)
    srv.wait_stage("admin/hangs", {"APP_STARTING"}, sha=hang, timeout=120)
    fixed = repush(srv, wc, "admin/hangs", "v2")
    # well before the 300 s start timeout of the hanging version
    srv.wait_stage("admin/hangs", {"RUNNING"}, sha=fixed, timeout=150)
    assert greet(srv, "admin/hangs") == "Hello x! (v2)"
    assert _awake(srv) == 1


def test_pause_and_delete_do_not_wait_for_a_hanging_start(faulty, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    f = faulty(SPACEYARD_TEST_BUILD_SECONDS="0")
    srv = f.start()
    _, sha = pushed_gradio(srv, tmp_path, "admin/paused", start_delay=3600)
    srv.wait_stage("admin/paused", {"APP_STARTING"}, sha=sha, timeout=120)
    r = srv.api("POST", "/api/spaces/admin/paused/pause")
    assert r.status_code == 200, r.text
    assert srv.runtime("admin/paused")["stage"] == "PAUSED"

    wc2, sha2 = pushed_gradio(srv, tmp_path / "second", "admin/deleted", start_delay=3600)
    srv.wait_stage("admin/deleted", {"APP_STARTING"}, sha=sha2, timeout=120)
    r = srv.api("DELETE", "/api/repos/delete", json={"type": "space", "name": "deleted", "organization": "admin"})
    assert r.status_code == 200, r.text
    assert srv.api("GET", "/api/spaces/admin/deleted/runtime").status_code == 404
    assert not (f.data / "sources" / "admin--deleted").exists()  # its exported commits are gone too
    assert _awake(srv) == 0  # nothing runs; the faulty fixture then checks no process is left


def test_the_awake_gauge_counts_running_apps_never_below_zero(faulty, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    f = faulty(SPACEYARD_TEST_BUILD_SECONDS="0")
    srv = f.start()
    _, sha = pushed_gradio(srv, tmp_path, "admin/gauge")
    srv.wait_stage("admin/gauge", {"RUNNING"}, sha=sha, timeout=120)
    assert _awake(srv) == 1  # a deploy counts (only wakes used to)
    assert srv.api("POST", "/api/spaces/admin/gauge/sleeptime", json={"seconds": 1}).status_code == 200
    srv.wait_stage("admin/gauge", {"SLEEPING"}, timeout=60)
    assert _awake(srv) == 0  # used to be -1
    assert srv.api("POST", "/api/spaces/admin/gauge/sleeptime", json={"seconds": 3600}).status_code == 200
    assert greet(srv, "admin/gauge") == "Hello x! (v1)"  # the visit wakes it
    assert _awake(srv) == 1
