"""The build queue is unreachable (Redis down) when a push arrives: the push is kept, and the Space says
why it is not building (BUILD_ERROR with the reason) instead of staying BUILDING forever."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import free_port

from .helpers import pushed_gradio


def test_a_push_that_cannot_be_queued_is_a_build_error_with_the_reason(faulty, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    closed = free_port()  # nothing listens there
    f = faulty(SPACEYARD_REDIS_URL=f"redis://127.0.0.1:{closed}/0", SPACEYARD_EMBEDDED_WORKER="false")
    srv = f.start()
    _, sha = pushed_gradio(srv, tmp_path, "admin/queue-down")
    rt = srv.wait_stage("admin/queue-down", {"BUILD_ERROR"}, sha=sha, timeout=120)
    assert "could not queue the build" in rt.get("errorMessage", "")
    info = srv.api("GET", "/api/spaces/admin/queue-down").json()
    assert info["sha"] == sha  # the push itself is kept
