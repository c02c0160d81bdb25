"""Cookie-less Gradio follow-ups straddling a redeploy reach the version that holds their state: a two-step
call (as curl makes it: the POST reaches the old version, the GET that reads its result comes after the
swap) and a queue session (``POST queue/join`` naming a ``session_hash``, then ``GET queue/data``, a
second join of the same session, its heartbeat); new calls and new sessions go to the new version."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from .conftest import Faulty
from .helpers import pushed_gradio, repush


def _answer(body: str) -> list[object]:
    return [json.loads(line[6:]) for line in body.splitlines() if line.startswith("data: [")]


def _completed(body: str) -> list[object]:
    """Outputs of the ``process_completed`` messages of a ``queue/data`` stream."""
    out: list[object] = []
    for line in body.splitlines():
        if line.startswith("data: "):
            msg: dict[str, Any] = json.loads(line[6:])
            if msg.get("msg") == "process_completed":
                out.append(msg["output"]["data"][0])
    return out


def _fn_index(app: str, api_name: str) -> int:
    config = httpx.get(f"{app}/config", timeout=30).json()
    return next(i for i, dep in enumerate(config["dependencies"]) if dep.get("api_name") == api_name)


def test_cookieless_follow_ups_reach_the_version_holding_their_state(
    faulty: Callable[..., Faulty], tmp_path: Path
) -> None:
    f = faulty(SPACEYARD_TEST_BUILD_SECONDS="0", SPACEYARD_VERSION_GRACE="60")
    srv = f.start()
    wc, v1 = pushed_gradio(srv, tmp_path, "admin/swap-state")
    srv.wait_stage("admin/swap-state", {"RUNNING"}, sha=v1, timeout=120)
    app = f"{srv.url}/apps/admin/swap-state"
    base = f"{app}/gradio_api/call/greet"
    greet = _fn_index(app, "greet")

    def join(session: str, name: str) -> httpx.Response:
        body = {"data": [name], "fn_index": greet, "session_hash": session, "event_data": None, "trigger_id": None}
        return httpx.post(f"{app}/gradio_api/queue/join", json=body, timeout=30)

    # no client keeps cookies between these requests
    event = httpx.post(base, json={"data": ["old"]}, timeout=30).json()["event_id"]
    assert join("sess-old", "queue-old").status_code == 200

    v2 = repush(srv, wc, "admin/swap-state", "v2")
    srv.wait_stage("admin/swap-state", {"RUNNING"}, sha=v2, timeout=120)
    late = httpx.get(f"{base}/{event}", timeout=30)
    assert late.status_code == 200 and _answer(late.text) == [["Hello old! (v1)"]], late.text
    # the session's results are read after the swap, from the version that took its join
    data = httpx.get(f"{app}/gradio_api/queue/data", params={"session_hash": "sess-old"}, timeout=30)
    assert data.status_code == 200 and _completed(data.text) == ["Hello queue-old! (v1)"], data.text
    # the same session goes on where its state lives, even for a new join after the swap
    assert join("sess-old", "again").status_code == 200
    again = httpx.get(f"{app}/gradio_api/queue/data", params={"session_hash": "sess-old"}, timeout=30)
    assert _completed(again.text) == ["Hello again! (v1)"], again.text

    fresh = httpx.post(base, json={"data": ["new"]}, timeout=30).json()["event_id"]
    assert _answer(httpx.get(f"{base}/{fresh}", timeout=30).text) == [["Hello new! (v2)"]]
    assert join("sess-new", "queue-new").status_code == 200
    new = httpx.get(f"{app}/gradio_api/queue/data", params={"session_hash": "sess-new"}, timeout=30)
    assert _completed(new.text) == ["Hello queue-new! (v2)"], new.text
