"""What fault tests look at: a Space's build log, what a visitor gets from its app."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx

from tests.support import Server, commit_all, push, read_sse, working_copy


def build_log(srv: Server, space_id: str) -> list[str]:
    lines = read_sse(
        f"{srv.url}/api/spaces/{space_id}/logs/build", quiet=1.0, headers={"Authorization": f"Bearer {srv.token}"}
    )
    return [json.loads(line)["data"] for line in lines]


def greet(srv: Server, space_id: str, name: str = "x", timeout: float = 30) -> str:
    """Call the hello-gradio app's ``greet`` the way curl does (two requests, no cookie): its answer."""
    base = f"{srv.url}/apps/{space_id}"
    with httpx.Client(timeout=timeout) as c:
        r = c.post(f"{base}/gradio_api/call/greet", json={"data": [name]})
        r.raise_for_status()
        event = r.json()["event_id"]
        body = c.get(f"{base}/gradio_api/call/greet/{event}").text
    for line in body.splitlines():
        if line.startswith("data: ") and line[6:].startswith("["):
            return str(json.loads(line[6:])[0])
    raise AssertionError(f"no answer from greet: {body!r}")


def pushed_gradio(
    srv: Server, tmp: Path, space_id: str, version: str = "v1", start_delay: float = 0
) -> tuple[Path, str]:
    """Create ``space_id`` and push hello-gradio whose greeting names ``version``; returns (working copy, sha)."""
    srv.create_space(space_id)
    wc = working_copy(tmp, "hello-gradio")
    return wc, repush(srv, wc, space_id, version, start_delay)


def repush(srv: Server, wc: Path, space_id: str, version: str, start_delay: float = 0) -> str:
    app = wc / "app.py"
    text = app.read_text()
    text = text.replace('os.environ.get("HELLO_VERSION", "v1")', repr(version)) if "HELLO_VERSION" in text else text
    lines = [line for line in text.splitlines() if not line.startswith(("VERSION = ", "time.sleep("))]
    at = lines.index("import gradio as gr")
    lines[at + 1 : at + 1] = [f"VERSION = {version!r}", f"time.sleep({start_delay})"]
    app.write_text("\n".join(lines) + "\n")
    sha = commit_all(wc, f"version {version}")
    push(srv, wc, space_id)
    return sha


def wait_until(predicate, timeout: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")
