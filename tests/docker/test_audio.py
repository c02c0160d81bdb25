"""A Gradio audio demo with ``gr.Audio(format="mp3")`` on the Docker engine and runtime: the image has
ffmpeg (Debian's, in the base image; the generated Dockerfile installs it on bases without it), so
Gradio encodes the MP3 inside the read-only container."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import Callable
from pathlib import Path

import docker
import pytest

from spaceyard_runtime.docker import DockerRuntime

from .conftest import BuildFn, _built, spec_for, start_app

pytestmark = pytest.mark.docker


def _tone(base: str) -> bytes:
    req = urllib.request.Request(
        base + "/gradio_api/call/tone", data=json.dumps({"data": [440]}).encode(),
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(req, timeout=30) as resp:
        event_id = json.loads(resp.read())["event_id"]
    with urllib.request.urlopen(f"{base}/gradio_api/call/tone/{event_id}", timeout=60) as resp:
        stream = resp.read().decode()
    assert "event: complete" in stream, stream
    data_line = [ln for ln in stream.splitlines() if ln.startswith("data: ")][-1]
    audio = json.loads(data_line[6:])[0]
    assert audio["path"].endswith(".mp3"), audio
    url = audio["url"] if audio["url"].startswith("http") else base + audio["url"]
    url = base + url[url.index("/gradio_api/") :]  # the app names itself by its in-container address
    with urllib.request.urlopen(url, timeout=30) as resp:
        return bytes(resp.read())


async def test_gradio_mp3_output_on_the_docker_engine(
    runtime: DockerRuntime,
    build: BuildFn,
    sample_repo: Callable[[str], tuple[str, str, Path]],
    docker_client: docker.DockerClient,
) -> None:
    result = _built(build, sample_repo, "hello-audio")
    lines: list[str] = []
    spec = spec_for(result, env={"SPACE_ID": "samples/hello-audio", "SYSTEM": "spaces"})
    handle = await start_app(runtime, spec, lines)
    await runtime.wait_ready(handle, 180)
    out = docker_client.containers.get(handle.backend_id).exec_run(["ffmpeg", "-hide_banner", "-version"])
    assert out.exit_code == 0 and b"ffmpeg version" in out.output
    data = await asyncio.to_thread(_tone, handle.endpoint.url)
    assert len(data) > 1000 and (data[:3] == b"ID3" or (data[0] == 0xFF and data[1] & 0xE0 == 0xE0)), data[:16]
