"""Idle sleep never cuts work in flight: a silent request that outlasts the Space's sleep time gets its
answer (not a 502), and the Space sleeps once it has ended."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from tests.support import commit_all, push, working_copy

SLOW = """

def slow(seconds: float) -> str:
    time.sleep(seconds)
    return "done"


with demo:
    gr.Button("Slow").click(slow, gr.Number(visible=False), gr.Textbox(visible=False), api_name="slow")
"""


def test_a_request_longer_than_the_sleep_time_is_not_cut(faulty, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    f = faulty(SPACEYARD_TEST_BUILD_SECONDS="0")
    srv = f.start()
    srv.create_space("admin/busy")
    wc = working_copy(tmp_path, "hello-gradio")
    app = wc / "app.py"
    text = app.read_text()
    app.write_text(text.replace('\nif __name__ == "__main__":', SLOW + '\nif __name__ == "__main__":'))
    sha = commit_all(wc, "a slow endpoint")
    push(srv, wc, "admin/busy")
    srv.wait_stage("admin/busy", {"RUNNING"}, sha=sha, timeout=120)
    assert srv.api("POST", "/api/spaces/admin/busy/sleeptime", json={"seconds": 1}).status_code == 200

    base = f"{srv.url}/apps/admin/busy"
    with httpx.Client(timeout=60) as c:
        event = c.post(f"{base}/gradio_api/call/slow", json={"data": [6]}).json()["event_id"]
        r = c.get(f"{base}/gradio_api/call/slow/{event}")  # silent for 6 s: 6 sleep times
    assert r.status_code == 200, r.text
    answers = [json.loads(line[6:]) for line in r.text.splitlines() if line.startswith("data: [")]
    assert answers == [["done"]], r.text
    srv.wait_stage("admin/busy", {"SLEEPING"}, timeout=60)  # and once it ended, the Space sleeps
