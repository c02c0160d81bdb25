"""Builds in walls: a hostile build (a local requirement whose setup.py prints the build's environment,
tries to read the platform's key and database and every process's environment) through the real server.

It must find nothing; the relative requirement path resolves inside the commit; the ``BUILD_ERROR``
and the build log (public for a public Space) name no host path and no credential.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support import ADMIN_TOKEN, Server, commit_all, push, read_sse, working_copy

pytestmark = [
    pytest.mark.slow,
]


@pytest.fixture(autouse=True)
def _root() -> None:
    """The walls need root (bubblewrap, setpriv, cgroups): without it this is a failure, never a skip."""
    if os.geteuid() != 0:
        pytest.fail("the sandbox needs root: run the tests as root, as .ci/test does")


HERE = Path(__file__).resolve().parent
SPACE = "admin/evil-build"


def test_a_hostile_build_sees_no_platform_secret_and_its_error_names_no_host_path(
    server: Server, tmp_path: Path
) -> None:
    server.create_space(SPACE, sdk="gradio")
    r = server.api("POST", f"/api/spaces/{SPACE}/secrets", json={"key": "RUNTIME_ONLY", "value": "rt-secret-77a1"})
    assert r.status_code == 200, r.text
    wc = working_copy(tmp_path, HERE / "spaces" / "hostile-build")
    # what a build running the Space's own code must not reach: the shared uv cache and a built environment
    env_dir = Path(server.env["SPACEYARD_ENV_DIR"]).resolve()
    built = sorted(env_dir.glob("*/lib/python3*/site-packages/gradio/__init__.py"))
    targets = [env_dir.parent / "uv-cache-build", *built[:1]]
    assert built, "the session's Gradio environment is built first (shared_env_dir)"
    (wc / "evilpkg" / "targets.txt").write_text("".join(f"{t}\n" for t in targets))
    commit_all(wc, "name the targets")
    push(server, wc, SPACE)
    rt = server.wait_stage(SPACE, {"BUILD_ERROR"}, timeout=300)
    message = rt["errorMessage"]
    log = "\n".join(read_sse(f"{server.url}/api/spaces/{SPACE}/logs/build"))
    key = (server.data_dir / "secret.key").read_bytes().strip().decode(errors="replace")
    # The build-time code ran (the relative path ./evilpkg resolved inside the commit, its working directory)...
    assert "EVIL cwd=/app" in log and "EVIL done" in message, message
    for text in (message, log):
        # ... with a clean environment: nothing of the platform's ...
        assert "SPACEYARD_" not in text and ADMIN_TOKEN not in text and "rt-secret-77a1" not in text
        # ... seeing neither the key nor the database ...
        assert key not in text
        assert "EVIL read" not in text, [line for line in text.splitlines() if "EVIL read" in line]
        # ... and what it prints names no host path.
        assert str(server.data_dir) not in text and str(server.data_dir.resolve()) not in text
    env_keys = {
        line.split("=", 1)[0].removeprefix("EVIL env ").strip() for line in log.splitlines() if "EVIL env " in line
    }
    assert env_keys and all(not k.startswith(("SPACEYARD", "HF_", "CELERY")) for k in env_keys), env_keys
    # It could neither write into a built environment nor see the shared uv cache (its own is private) ...
    assert "EVIL wrote" not in log and "EVIL listed" not in log, [x for x in log.splitlines() if "EVIL " in x]
    assert log.count("EVIL cannot reach ") >= len(targets), log  # (in the log and again in the BUILD_ERROR)
    # No other process's environment was readable (its own pid namespace holds only the build).
    environs = [line for line in log.splitlines() if "EVIL environ" in line]
    assert environs and all(ADMIN_TOKEN not in line for line in environs)
