"""Disk does not leak: exports of versions no Space serves any more are collected, and disk use per area
is reported at /metrics (and by `spaceyard gc`)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import httpx

from .helpers import pushed_gradio, repush, wait_until


def _disk(srv) -> dict[str, float]:  # type: ignore[no-untyped-def]
    text = httpx.get(f"{srv.url}/metrics", headers={"Authorization": f"Bearer {srv.token}"}, timeout=10).text
    return {m[0]: float(m[1]) for m in re.findall(r'^spaceyard_disk_bytes\{area="(\w+)"\} (\S+)$', text, re.M)}


def test_exports_no_space_uses_are_collected_and_disk_use_reported(faulty, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    f = faulty(SPACEYARD_TEST_BUILD_SECONDS="0", SPACEYARD_GC_INTERVAL="1", SPACEYARD_GC_GRACE="0")
    srv = f.start()
    wc, v1 = pushed_gradio(srv, tmp_path, "admin/disk")
    srv.wait_stage("admin/disk", {"RUNNING"}, sha=v1, timeout=120)
    v2 = repush(srv, wc, "admin/disk", "v2")
    srv.wait_stage("admin/disk", {"RUNNING"}, sha=v2, timeout=120)
    exports = f.data / "sources" / "admin--disk"
    wait_until(lambda: not (exports / v1).exists(), 60, "the replaced version's export to be collected")
    assert (exports / v2).is_dir()  # the serving one stays
    disk = wait_until(lambda: _disk(srv).get("sources"), 30, "disk use at /metrics")
    assert disk > 0 and {"repos", "logs", "envs", "queue"} <= set(_disk(srv))

    out = subprocess.run(
        [str(Path(sys.executable).parent / "spaceyard"), "gc"], env=srv.env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert "freed" in out.stdout and "sources" in out.stdout
    assert (exports / v2).is_dir()
