"""The embedded build worker under faults: killed mid-build, the control plane stopped (SIGTERM) or killed
(SIGKILL) mid-build, a worker left behind by a previous platform. Each time the build ends RUNNING (or
with a reason), exactly one worker runs, and nothing is left running or half-built."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

from .conftest import procs_of, wait_gone, worker_pids
from .helpers import build_log, greet, pushed_gradio, wait_until
from .pausing import child_pids


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "State:\tZ" not in status


def test_killed_worker_is_restarted_and_the_build_resumes(faulty, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    f = faulty()
    srv = f.start()
    [worker] = wait_until(lambda: worker_pids(f.data), 30, "the embedded worker")
    _, sha = pushed_gradio(srv, tmp_path, "admin/killed-worker")
    [child] = wait_until(lambda: child_pids(f.markers), 60, "the build's child process")
    os.kill(worker, signal.SIGKILL)  # the worker dies mid-build, its message unacknowledged
    wait_until(lambda: not _alive(child), 10, "the build's child to die with its worker")

    rt = srv.wait_stage("admin/killed-worker", {"RUNNING"}, sha=sha, timeout=120)
    assert not rt.get("errorMessage")
    assert greet(srv, "admin/killed-worker") == "Hello x! (v1)"
    log = build_log(srv, "admin/killed-worker")
    assert any("Build restarted (attempt 2)" in line for line in log), log
    assert len(child_pids(f.markers)) == 2  # the build ran again, once
    assert worker_pids(f.data) not in ([], [worker]) and len(worker_pids(f.data)) == 1


@pytest.mark.parametrize("grace", ["1", "30"], ids=["cut-off-then-resumed", "finished-during-shutdown"])
def test_graceful_restart_mid_build_does_not_fail_it(faulty, tmp_path: Path, grace: str) -> None:  # type: ignore[no-untyped-def]
    f = faulty(SPACEYARD_WORKER_STOP_GRACE=grace)
    srv = f.start()
    _, sha = pushed_gradio(srv, tmp_path, "admin/sigterm")
    [child] = wait_until(lambda: child_pids(f.markers), 60, "the build's child process")
    f.kill(signal.SIGTERM)
    assert not wait_gone(f.data), "the stopped platform left processes behind"

    srv = f.start()
    rt = srv.wait_stage("admin/sigterm", {"RUNNING"}, sha=sha, timeout=120)
    assert not rt.get("errorMessage")
    log = build_log(srv, "admin/sigterm")
    assert not any("exit -15" in line or "BUILD_ERROR" in line for line in log), log
    runs = len(child_pids(f.markers))
    # cut off: the build starts again after the restart; given time, it finished before the worker stopped
    assert runs == (2 if grace == "1" else 1), log
    assert greet(srv, "admin/sigterm") == "Hello x! (v1)"


def test_killed_control_plane_takes_its_worker_along(faulty, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    f = faulty(SPACEYARD_TEST_BUILD_SECONDS="30")
    srv = f.start()
    _, sha = pushed_gradio(srv, tmp_path, "admin/sigkill")
    wait_until(lambda: child_pids(f.markers), 60, "the build's child process")
    f.kill(signal.SIGKILL)
    assert not wait_gone(f.data, timeout=10), "kill -9 of the platform orphaned its worker or build"

    srv = f.start(SPACEYARD_TEST_BUILD_SECONDS="2")
    rt = srv.wait_stage("admin/sigkill", {"RUNNING"}, sha=sha, timeout=120)
    assert not rt.get("errorMessage")
    assert len(worker_pids(f.data)) == 1
    assert greet(srv, "admin/sigkill") == "Hello x! (v1)"


def test_a_worker_left_running_is_ended_before_a_new_one_starts(faulty, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    f = faulty()
    f.data.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPACEYARD_")}
    env.update({**f.extra, "SPACEYARD_DATA_DIR": str(f.data)})
    # A worker from some earlier platform that is not its child (no death signal): only the pidfile finds it.
    stray = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "spaceyard_builder.worker", "worker", "--pool=solo",
         "--without-gossip", "--without-mingle", "--without-heartbeat"],
        env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        (f.data / "worker.pid").write_text(f"{stray.pid}\n")
        f.start()
        assert stray.wait(10) == -signal.SIGKILL
        workers = worker_pids(f.data)
        assert len(workers) == 1 and workers != [stray.pid]
    finally:
        if stray.poll() is None:
            stray.kill()
            stray.wait()


def test_build_deadline_fails_the_build_with_the_reason(faulty, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    f = faulty(SPACEYARD_BUILD_TIMEOUT="3", SPACEYARD_TEST_BUILD_SECONDS="60")
    srv = f.start()
    _, sha = pushed_gradio(srv, tmp_path, "admin/deadline")
    rt = srv.wait_stage("admin/deadline", {"BUILD_ERROR"}, sha=sha, timeout=60)
    assert "did not finish within the build deadline (3 s" in rt.get("errorMessage", "")
    [child] = child_pids(f.markers)
    assert not _alive(child)
    log = build_log(srv, "admin/deadline")
    assert any("did not finish within the build deadline" in line for line in log)
    assert procs_of(f.data)  # the server and its worker still run: only the build ended
