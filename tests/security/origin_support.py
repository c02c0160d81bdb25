"""The hostile Space of ``test_origin.py`` and ``test_credentials.py``, deployed once per server.

``deploy(server)`` pushes ``spaces/origin_probe`` as a public Space (:data:`PROBE`) and as a private
one (:data:`PRIVATE_PROBE`), and a private static Space holding a secret (:data:`VICTIM`), which the
probe's page tries to read and to make public with the visitor's credentials.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import httpx

from tests.support import Server, git, push, working_copy

HERE = Path(__file__).resolve().parent
PROBE = "admin/origin-probe"
PRIVATE_PROBE = "admin/origin-probe-private"
VICTIM = "admin/origin-victim"
VICTIM_SECRET = "VICTIM-SECRET-4f1c"
_deployed: set[str] = set()


def app_origin(server: Server, space_id: str) -> str:
    return f"http://{space_id.lower().replace('/', '-')}.localhost:{server.port}"


def deploy(server: Server) -> None:
    if server.url in _deployed:
        return
    work = Path(tempfile.mkdtemp(prefix="origin-probe-"))
    try:
        probe = working_copy(work, HERE / "spaces" / "origin_probe")
        victim = work / "victim"
        victim.mkdir()
        (victim / "README.md").write_text("---\ntitle: Victim\nsdk: static\n---\n")
        (victim / "index.html").write_text(f"<h1>victim</h1><p>{VICTIM_SECRET}</p>")
        git(victim, "init", "-q", "-b", "main")
        git(victim, "add", "-A")
        git(victim, "commit", "-q", "-m", "victim")
        for space_id, wc, sdk, private in (
            (VICTIM, victim, "static", True),
            (PROBE, probe, "gradio", False),
            (PRIVATE_PROBE, probe, "gradio", True),
        ):
            if server.api("GET", f"/api/spaces/{space_id}").status_code == 404:
                server.create_space(space_id, sdk=sdk, private=private)
            sha = git(wc, "rev-parse", "HEAD").stdout.strip()
            push(server, wc, space_id)
            server.wait_stage(space_id, {"RUNNING"}, sha=sha)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    _deployed.add(server.url)


def seen(server: Server, space_id: str) -> dict[str, Any]:
    """Every credential-bearing header the probe app ever received (asked with the owner's token)."""
    r = httpx.get(
        f"{server.url}/apps/{space_id}/probe/seen", headers={"Authorization": f"Bearer {server.token}"}, timeout=30
    )
    assert r.status_code == 200, r.text
    return dict(r.json())
