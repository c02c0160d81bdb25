"""Bad input gets a clear error and loses nothing: each failure stage shows its reason and the logs,
and the last good version keeps serving."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from gradio_client import Client

from tests.support import Server, commit_all, git, push, working_copy

pytestmark = pytest.mark.slow
SPACE = "admin/resilient"


@pytest.fixture(scope="module")
def good(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Path:
    server.create_space(SPACE, sdk="gradio")
    wc = working_copy(tmp_path_factory.mktemp("resilient"), "hello-gradio")
    push(server, wc, SPACE)
    server.wait_stage(SPACE, {"RUNNING"}, sha=git(wc, "rev-parse", "HEAD").stdout.strip())
    return wc


def still_serving_v1(server: Server) -> None:
    assert (
        Client(f"{server.url}/apps/{SPACE}/", verbose=False).predict("again", api_name="/greet") == "Hello again! (v1)"
    )
    assert server.app_get(SPACE, "/").status_code == 200


def push_broken(server: Server, wc: Path, change: dict[str, str | None], stage: str) -> dict[str, object]:
    for name, text in change.items():
        if text is None:
            (wc / name).unlink()
        else:
            (wc / name).write_text(text)
    sha = commit_all(wc, f"break: {stage}")
    push(server, wc, SPACE)
    rt = server.wait_stage(SPACE, {stage}, sha=sha)
    git(wc, "reset", "-q", "--hard", "HEAD~1")
    return rt


def build_log(server: Server) -> str:
    with httpx.stream("GET", f"{server.url}/api/spaces/{SPACE}/logs/build", timeout=10) as r:
        return "\n".join(line for line in r.iter_lines() if line.startswith("data: "))


def test_config_error_keeps_the_old_version(server: Server, good: Path) -> None:
    readme = (good / "README.md").read_text().replace("sdk: gradio", "sdk: [gradio")
    rt = push_broken(server, good, {"README.md": readme}, "CONFIG_ERROR")
    assert "not valid YAML" in str(rt["errorMessage"]) and "line" in str(rt["errorMessage"])
    assert "CONFIG_ERROR" in build_log(server)
    still_serving_v1(server)


def test_unknown_sdk_is_a_config_error_with_the_choices(server: Server, good: Path) -> None:
    readme = (good / "README.md").read_text().replace("sdk: gradio", "sdk: flask")
    rt = push_broken(server, good, {"README.md": readme}, "CONFIG_ERROR")
    assert "sdk: must be one of gradio, streamlit, docker, static" in str(rt["errorMessage"])
    still_serving_v1(server)


def test_missing_app_file(server: Server, good: Path) -> None:
    rt = push_broken(server, good, {"app.py": None}, "NO_APP_FILE")
    assert "'app.py' is not in this commit" in str(rt["errorMessage"])
    still_serving_v1(server)


def test_uninstallable_requirement(server: Server, good: Path) -> None:
    rt = push_broken(server, good, {"requirements.txt": "spaceyard-no-such-package-anywhere==9.9.9\n"}, "BUILD_ERROR")
    assert "requirements.txt" in str(rt["errorMessage"]) and "spaceyard-no-such-package-anywhere" in str(
        rt["errorMessage"]
    )
    assert "spaceyard-no-such-package-anywhere" in build_log(server)
    still_serving_v1(server)


def test_crash_at_start(server: Server, good: Path) -> None:
    app = (
        (good / "app.py")
        .read_text()
        .replace("import gradio as gr", "import gradio as gr\nraise SystemExit('boom: missing MODEL_ID')")
    )
    rt = push_broken(server, good, {"app.py": app}, "RUNTIME_ERROR")
    assert "boom: missing MODEL_ID" in str(rt["errorMessage"])
    still_serving_v1(server)


def test_a_space_that_never_built_shows_its_stage_to_visitors(server: Server, tmp_path: Path) -> None:
    space = "admin/never-built"
    server.create_space(space, sdk="gradio")
    wc = working_copy(tmp_path, "hello-gradio")
    (wc / "README.md").write_text("# no front matter\n")
    sha = commit_all(wc, "no config")
    push(server, wc, space)
    rt = server.wait_stage(space, {"CONFIG_ERROR"}, sha=sha)
    assert "no YAML front matter" in str(rt["errorMessage"])
    visit = server.app_get(space, "/", headers={"Accept": "text/html"})
    assert visit.status_code == 503 and "CONFIG_ERROR" in visit.text and "no YAML front matter" in visit.text
