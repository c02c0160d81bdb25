"""A two-step Gradio call without cookies (as curl makes it) straddling a redeploy: the POST reaches the old
version, the GET that reads its result comes after the swap and still reaches the version that holds the
event; new calls go to the new version."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from .helpers import pushed_gradio, repush


def _answer(body: str) -> list[object]:
    return [json.loads(line[6:]) for line in body.splitlines() if line.startswith("data: [")]


def test_a_cookieless_follow_up_reaches_the_version_holding_its_event(faulty, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    f = faulty(SPACEYARD_TEST_BUILD_SECONDS="0", SPACEYARD_VERSION_GRACE="60")
    srv = f.start()
    wc, v1 = pushed_gradio(srv, tmp_path, "admin/swap-state")
    srv.wait_stage("admin/swap-state", {"RUNNING"}, sha=v1, timeout=120)
    base = f"{srv.url}/apps/admin/swap-state/gradio_api/call/greet"
    # no client keeps cookies between these requests
    event = httpx.post(base, json={"data": ["old"]}, timeout=30).json()["event_id"]

    v2 = repush(srv, wc, "admin/swap-state", "v2")
    srv.wait_stage("admin/swap-state", {"RUNNING"}, sha=v2, timeout=120)
    late = httpx.get(f"{base}/{event}", timeout=30)
    assert late.status_code == 200 and _answer(late.text) == [["Hello old! (v1)"]], late.text

    fresh = httpx.post(base, json={"data": ["new"]}, timeout=30).json()["event_id"]
    assert _answer(httpx.get(f"{base}/{fresh}", timeout=30).text) == [["Hello new! (v2)"]]
