"""A Gradio audio demo with ``gr.Audio(format="mp3")`` runs on the local engine: the environment carries
ffmpeg (imageio-ffmpeg's static build on the app's PATH), so Gradio can encode the MP3."""

from __future__ import annotations

from pathlib import Path

import pytest
from gradio_client import Client

from tests.support import Server, git, push, working_copy

pytestmark = pytest.mark.slow
SPACE = "admin/hello-audio"


def is_mp3(data: bytes) -> bool:
    return data[:3] == b"ID3" or (len(data) > 1 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0)


def test_gradio_mp3_output_on_the_local_engine(server: Server, tmp_path: Path) -> None:
    server.create_space(SPACE)
    wc = working_copy(tmp_path, "hello-audio")
    push(server, wc, SPACE)
    sha = git(wc, "rev-parse", "HEAD").stdout.strip()
    server.wait_stage(SPACE, {"RUNNING"}, sha=sha)
    logs = server.api("GET", f"/api/spaces/{SPACE}/logs/build").text
    assert "ffmpeg on the app's PATH" in logs or "Reusing environment" in logs
    client = Client(f"{server.url}/apps/{SPACE}/", verbose=False, download_files=str(tmp_path / "dl"))
    result = client.predict(440, api_name="/tone")
    path = Path(result if isinstance(result, str) else result["path"])
    assert path.suffix == ".mp3", result
    data = path.read_bytes()
    assert len(data) > 1000 and is_mp3(data), data[:16]
