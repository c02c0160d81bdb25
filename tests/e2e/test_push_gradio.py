"""The first whole path: create a Space, git push the Gradio sample, it builds, runs and answers
through the gateway — by subdomain, by path, and to the real gradio_client; a second push swaps
versions without a failed request in between."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from gradio_client import Client

from tests.support import Server, commit_all, git, push, working_copy

pytestmark = pytest.mark.slow
SPACE = "admin/hello"


@pytest.fixture(scope="module")
def hello(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Path:
    server.create_space(SPACE, sdk="gradio")
    wc = working_copy(tmp_path_factory.mktemp("hello"), "hello-gradio")
    push(server, wc, SPACE)
    sha = git(wc, "rev-parse", "HEAD").stdout.strip()
    server.wait_stage(SPACE, {"RUNNING"}, sha=sha)
    return wc


def test_create_space_with_the_cli(server: Server) -> None:
    spaceyard = Path(sys.executable).parent / "spaceyard"
    out = subprocess.run(
        [str(spaceyard), "create", "admin/from-cli", "--sdk", "gradio", "--url", server.url, "--token", server.token],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert server.runtime("admin/from-cli")["stage"] == "NO_APP_FILE"
    again = server.api(
        "POST",
        "/api/repos/create",
        json={"name": "from-cli", "organization": "admin", "type": "space", "sdk": "gradio"},
    )
    assert again.status_code == 409


def test_runtime_in_the_hubs_shape(server: Server, hello: Path) -> None:
    rt = server.runtime(SPACE)
    assert rt["stage"] == "RUNNING"
    assert rt["hardware"] == {"current": "cpu-basic", "requested": "cpu-basic"}
    assert rt["sha"] == git(hello, "rev-parse", "HEAD").stdout.strip()
    assert "gcTimeout" in rt and rt["domains"][0]["domain"].startswith("admin-hello.localhost")


def test_app_through_the_gateway_by_subdomain_and_path(server: Server, hello: Path) -> None:
    by_host = server.app_get(SPACE, "/")
    assert by_host.status_code == 200 and "gradio" in by_host.text.lower()
    by_path = httpx.get(f"{server.url}/apps/{SPACE}/", timeout=30)
    assert by_path.status_code == 200 and "gradio" in by_path.text.lower()
    assert httpx.get(f"{server.url}/apps/admin/nope/", timeout=10).status_code == 404


def test_gradio_client_calls_the_app(server: Server, hello: Path) -> None:
    client = Client(f"{server.url}/apps/{SPACE}/", verbose=False)
    assert client.predict("World", api_name="/greet") == "Hello World! (v1)"


def test_space_page_shows_title_emoji_stage_and_iframe(server: Server, hello: Path) -> None:
    page = httpx.get(f"{server.url}/spaces/{SPACE}", timeout=10)
    assert page.status_code == 200
    assert "Hello Gradio" in page.text and "👋" in page.text and "RUNNING" in page.text
    assert f'src="http://admin-hello.localhost:{server.port}/"' in page.text


def test_logs_are_kept_and_readable(server: Server, hello: Path) -> None:
    spaceyard = Path(sys.executable).parent / "spaceyard"
    base = [str(spaceyard), "logs", SPACE, "--url", server.url, "--token", server.token]
    build = subprocess.run([*base, "--build"], capture_output=True, text=True, check=True, timeout=60).stdout
    assert "Build Queued" in build and "Commit SHA" in build
    run = subprocess.run([*base, "--run"], capture_output=True, text=True, check=True, timeout=60).stdout
    assert "Application Startup" in run and "hello-gradio v1 starting" in run
    with httpx.stream("GET", f"{server.url}/api/spaces/{SPACE}/logs/build", timeout=10) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        first = next(line for line in r.iter_lines() if line.startswith("data: "))
        assert '"timestamp"' in first


def test_push_without_or_with_a_wrong_token_is_refused(server: Server, hello: Path) -> None:
    before = server.runtime(SPACE)["sha"]
    (hello / "intruder.txt").write_text("nope")
    commit_all(hello, "intruder")
    anonymous = push(server, hello, SPACE, token=None, check=False)
    # git met the 401 challenge and, with prompts off, gave up asking for a user name
    assert anonymous.returncode != 0 and "could not read Username" in anonymous.stderr
    wrong = push(server, hello, SPACE, token="sy_wrong", check=False)
    assert wrong.returncode != 0 and "Authentication failed" in wrong.stderr
    assert server.runtime(SPACE)["sha"] == before
    git(hello, "reset", "-q", "--hard", "HEAD~1")
    # the HTTP status codes themselves
    r = httpx.get(f"{server.url}/spaces/{SPACE}/info/refs?service=git-receive-pack", timeout=10)
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Basic")
    r = httpx.get(
        f"{server.url}/spaces/{SPACE}/info/refs?service=git-receive-pack", auth=("admin", "sy_wrong"), timeout=10
    )
    assert r.status_code == 401


def test_git_clone_works(server: Server, hello: Path, tmp_path: Path) -> None:
    git(tmp_path, "clone", "-q", server.git_url(SPACE, token=None), "clone")
    assert (tmp_path / "clone" / "app.py").read_text() == (hello / "app.py").read_text()


def test_second_push_swaps_without_a_failed_request(server: Server, hello: Path) -> None:
    """A visitor calling the app all through a redeploy never sees a failure: its session stays on v1
    (cookie) while it keeps using it, so a job started just before the swap finishes where its state
    lives; a new visitor gets v2 as soon as it is RUNNING; once v1 has been idle for the grace period
    it is retired and the first visitor moves on to v2."""
    failures: list[str] = []
    answers: list[str] = []
    stop = threading.Event()
    sticky = httpx.Client(timeout=30)

    def call(c: httpx.Client) -> None:
        try:
            r = c.post(f"{server.url}/apps/{SPACE}/gradio_api/call/greet", json={"data": ["swap"]})
            if r.status_code != 200:
                failures.append(f"{r.status_code} {r.text[:200]}")
                return
            s = c.get(f"{server.url}/apps/{SPACE}/gradio_api/call/greet/{r.json()['event_id']}")
            if "event: complete" not in s.text:
                failures.append(s.text[:200])
            else:
                answers.append(s.text.split("data: ")[-1].strip())
        except httpx.HTTPError as exc:
            failures.append(repr(exc))

    def visit() -> None:
        while not stop.is_set():
            call(sticky)

    visitor = threading.Thread(target=visit)
    visitor.start()
    try:
        app = hello / "app.py"
        app.write_text(app.read_text().replace('"HELLO_VERSION", "v1"', '"HELLO_VERSION", "v2"'))
        sha = commit_all(hello, "v2")
        push(server, hello, SPACE)
        server.wait_stage(SPACE, {"RUNNING_BUILDING", "RUNNING_APP_STARTING", "RUNNING"}, timeout=30)
        server.wait_stage(SPACE, {"RUNNING"}, sha=sha)
        fresh = Client(f"{server.url}/apps/{SPACE}/", verbose=False)
        assert fresh.predict("World", api_name="/greet") == "Hello World! (v2)"
        time.sleep(1)
    finally:
        stop.set()
        visitor.join()
    assert failures == [] and answers
    assert set(answers) == {'["Hello swap! (v1)"]'}  # the session that started on v1 stayed there
    time.sleep(3 + 1 + 1)  # SPACEYARD_VERSION_GRACE (3 s in tests) of idleness, the drain, a margin
    call(sticky)
    sticky.close()
    assert failures == [] and answers[-1] == '["Hello swap! (v2)"]'


def test_log_stream_resumes_after_last_event_id(server: Server, hello: Path) -> None:
    def events(headers: dict[str, str]) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        event_id = ""
        with httpx.stream(
            "GET", f"{server.url}/api/spaces/{SPACE}/logs/build", headers=headers, timeout=httpx.Timeout(10, read=2)
        ) as r:
            try:
                for line in r.iter_lines():
                    if line.startswith("id: "):
                        event_id = line[4:]
                    elif line.startswith("data: "):
                        out.append((event_id, line[6:]))
            except httpx.ReadTimeout:
                pass
        return out

    everything = events({})
    assert len(everything) > 3
    resumed = events({"Last-Event-ID": everything[2][0]})
    assert resumed == everything[3:]
