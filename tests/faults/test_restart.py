"""A restart of the control plane (SIGTERM or SIGKILL) while a version is starting: the deploy is resumed
on the same data directory, the Space ends RUNNING (not APP_STARTING forever), and the version that
answers visitors is the one the API reports."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from .helpers import greet, pushed_gradio, repush, wait_until


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_first_deploy_interrupted_while_starting_is_resumed(faulty, tmp_path: Path, sig: int) -> None:  # type: ignore[no-untyped-def]
    f = faulty(SPACEYARD_TEST_BUILD_SECONDS="0")
    srv = f.start()
    _, sha = pushed_gradio(srv, tmp_path, "admin/first", start_delay=8)
    srv.wait_stage("admin/first", {"APP_STARTING"}, sha=sha, timeout=120)
    f.kill(sig)

    srv = f.start()
    rt = srv.wait_stage("admin/first", {"RUNNING"}, sha=sha, timeout=120)
    assert not rt.get("errorMessage")
    assert greet(srv, "admin/first") == "Hello x! (v1)"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_new_version_interrupted_while_starting_is_the_one_served(faulty, tmp_path: Path, sig: int) -> None:  # type: ignore[no-untyped-def]
    f = faulty(SPACEYARD_TEST_BUILD_SECONDS="0")
    srv = f.start()
    wc, v1 = pushed_gradio(srv, tmp_path, "admin/swap")
    srv.wait_stage("admin/swap", {"RUNNING"}, sha=v1, timeout=120)
    v2 = repush(srv, wc, "admin/swap", "v2", start_delay=8)
    srv.wait_stage("admin/swap", {"RUNNING_APP_STARTING"}, sha=v2, timeout=120)
    f.kill(sig)

    srv = f.start()
    rt = srv.wait_stage("admin/swap", {"RUNNING"}, sha=v2, timeout=120)
    assert not rt.get("errorMessage")
    # the API says v2 runs, and v2 is what answers (woken or started), not the old code
    assert wait_until(lambda: greet(srv, "admin/swap") == "Hello x! (v2)", 60, "v2 to answer")
