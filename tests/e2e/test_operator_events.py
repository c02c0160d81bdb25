"""Operator events and metrics through a real server: one structured line per push, finished build
(duration, result) and stage change on the server's output; errors by stage, the build queue depth and
the Grafana dashboard's metrics at /metrics."""

from __future__ import annotations

import json
import logging
import re
import time
from pathlib import Path

import httpx
import pytest

from spaceyard_platform import oplog
from tests.conftest import ROOT
from tests.support import Server, commit_all, git, push, working_copy

pytestmark = pytest.mark.slow
SPACE = "admin/ops-events"


def metric(server: Server, name: str, **labels: str) -> float:
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = (
        rf"^{re.escape(name)}{{{re.escape(want)}}} ([0-9.e+-]+)$" if labels else rf"^{re.escape(name)} ([0-9.e+-]+)$"
    )
    m = re.search(pattern, text, re.MULTILINE)
    return float(m.group(1)) if m else 0.0


def event_lines(server: Server, event: str, space: str) -> list[str]:
    return [ln for ln in server.log_path.read_text().splitlines()
            if ln.startswith("spaceyard ") and f" event={event} " in ln and f" space={space}" in ln]  # fmt: skip


def test_push_build_and_stage_lines_and_error_metrics(server: Server, tmp_path: Path) -> None:
    server.create_space(SPACE, sdk="static")
    wc = working_copy(tmp_path, "hello-static")
    push(server, wc, SPACE)
    sha = git(wc, "rev-parse", "HEAD").stdout.strip()
    server.wait_stage(SPACE, {"RUNNING"}, sha=sha)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not event_lines(server, "stage", SPACE):
        time.sleep(0.2)
    pushes = event_lines(server, "push", SPACE)
    assert any(f"sha={sha}" in ln for ln in pushes), pushes
    builds = event_lines(server, "build", SPACE)
    assert any(re.search(r" result=ok duration_s=[0-9.]+ cache_hit=(true|false)$", ln) for ln in builds), builds
    stages = event_lines(server, "stage", SPACE)
    assert any("new=RUNNING" in ln for ln in stages), stages

    before = metric(server, "spaceyard_errors_total", stage="NO_APP_FILE")
    (wc / "index.html").unlink()
    bad = commit_all(wc, "no index")
    push(server, wc, SPACE)
    server.wait_stage(SPACE, {"NO_APP_FILE"}, sha=bad)
    assert metric(server, "spaceyard_errors_total", stage="NO_APP_FILE") == before + 1
    stages = event_lines(server, "stage", SPACE)
    assert any("new=NO_APP_FILE reason=" in ln for ln in stages), stages
    assert "spaceyard_build_queue_depth " in httpx.get(f"{server.url}/metrics", timeout=10).text


def base(name: str) -> str:
    for suffix in ("_bucket", "_total", "_count", "_sum", "_created"):
        name = name.removesuffix(suffix)
    return name


def test_the_dashboard_uses_only_metrics_that_exist(server: Server, tmp_path: Path) -> None:
    server.create_space("admin/ops-dashboard", sdk="static")
    push(server, working_copy(tmp_path, "hello-static"), "admin/ops-dashboard")
    server.wait_stage("admin/ops-dashboard", {"RUNNING"})
    assert server.app_get("admin/ops-dashboard", "/").status_code == 200  # the gateway counts it
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    exposed = {base(m.group(1)) for m in re.finditer(r"^# TYPE (\S+)", text, re.MULTILINE)}
    dashboard = json.loads((ROOT / "docs" / "grafana-dashboard.json").read_text())
    used = {m for p in dashboard["panels"] for t in p["targets"] for m in re.findall(r"spaceyard_[a-z_]+", t["expr"])}
    missing = {u for u in used if base(u) not in exposed}
    assert used and not missing, missing
    assert {"spaceyard_errors_total", "spaceyard_build_queue_depth", "spaceyard_gateway_requests_total"} <= used
    assert metric(server, "spaceyard_gateway_responses_total", code="200", space="admin/ops-dashboard") >= 1
    assert metric(server, "spaceyard_gateway_latency_seconds_count", space="admin/ops-dashboard") >= 1
    assert server.app_get("admin/ops-dashboard", "/no-such-file").status_code == 404
    assert metric(server, "spaceyard_gateway_responses_total", code="404", space="admin/ops-dashboard") >= 1


def test_event_lines_as_json_and_runtime_errors_counted() -> None:
    record = logging.LogRecord("spaceyard.events", logging.INFO, __file__, 1, "build", None, None)
    record.fields = {"space": "a/b", "result": "BUILD_ERROR", "duration_s": 1.5, "reason": 'no "x"'}
    line = json.loads(oplog.EventFormatter(as_json=True).format(record))
    assert line["event"] == "build" and line["space"] == "a/b" and line["duration_s"] == 1.5 and line["ts"]
    text = oplog.EventFormatter(as_json=False).format(record)
    assert text.endswith('event=build space=a/b result=BUILD_ERROR duration_s=1.5 reason="no \\"x\\""'), text
    before = oplog.ERRORS.labels(stage="RUNTIME_ERROR")._value.get()
    oplog.stage_changed("a/b", "APP_STARTING", "RUNTIME_ERROR", "the app exited with code 1\ntail")
    oplog.stage_changed("a/b", "RUNTIME_ERROR", "RUNTIME_ERROR", "again")  # not a change: not counted
    assert oplog.ERRORS.labels(stage="RUNTIME_ERROR")._value.get() == before + 1
