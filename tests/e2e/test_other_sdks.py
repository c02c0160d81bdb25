"""The embedded default serves every SDK but docker (which needs the docker engine): Streamlit as a
local process (its websocket through the gateway), static Spaces as files, and `sdk: docker` fails
with a BUILD_ERROR that says what to do."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import websockets

from tests.support import Server, git, push, working_copy

pytestmark = pytest.mark.slow


def deploy(
    server: Server, tmp: Path, sample: str, space_id: str, sdk: str, stage: str = "RUNNING"
) -> dict[str, object]:
    server.create_space(space_id, sdk=sdk)
    wc = working_copy(tmp, sample)
    push(server, wc, space_id)
    return server.wait_stage(space_id, {stage}, sha=git(wc, "rev-parse", "HEAD").stdout.strip(), timeout=420)


def test_streamlit_space_and_its_websocket(server: Server, tmp_path: Path) -> None:
    deploy(server, tmp_path, "hello-streamlit", "admin/local-streamlit", "streamlit")
    assert server.app_get("admin/local-streamlit", "/_stcore/health").text == "ok"
    assert "streamlit" in server.app_get("admin/local-streamlit", "/").text.lower()

    async def handshake() -> bool:
        # the path form: a Python client cannot resolve *.localhost (and websockets sets Host itself)
        url = f"ws://127.0.0.1:{server.port}/apps/admin/local-streamlit/_stcore/stream"
        async with websockets.connect(url, subprotocols=["streamlit"]) as ws:  # type: ignore[list-item]
            return ws.subprotocol == "streamlit"

    assert asyncio.run(handshake())


def test_static_space(server: Server, tmp_path: Path) -> None:
    deploy(server, tmp_path, "hello-static", "admin/local-static", "static")
    page = server.app_get("admin/local-static", "/")
    assert page.status_code == 200 and "Hello from a static Space" in page.text
    assert server.app_get("admin/local-static", "/style.css").headers["content-type"].startswith("text/css")


def test_docker_sdk_needs_the_docker_engine(server: Server, tmp_path: Path) -> None:
    rt = deploy(server, tmp_path, "hello-docker", "admin/local-docker", "docker", stage="BUILD_ERROR")
    assert "SPACEYARD_BUILD_ENGINE=docker" in str(rt["errorMessage"])
