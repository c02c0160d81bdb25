"""The ``spaceyard`` command in a real terminal (tmux), as a new user types it.

One story: ``spaceyard up --port P`` in one window, and in another — with no --url, no token, no
environment — ``spaceyard create`` finds that server (the URL and admin token ``up`` recorded in
``.data/cli.json``, mode 0600), ``spaceyard push`` from a working copy below shows the build as it
happens until RUNNING, and ``spaceyard logs -f`` renders its colours (never a literal ``[dim]``) and
stops cleanly on Ctrl-C. Each error is one line saying what to do: no server at the URL, a wrong
token, no token, an unknown Space, a port already in use, a server that was stopped.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.cli.tmux import Tmux
from tests.conftest import SAMPLES, free_port
from tests.support import git

pytestmark = pytest.mark.slow
SPACE = "admin/cli-hello"


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("error: ")]


def assert_one_clear_error(output: str, *needles: str) -> str:
    assert "Traceback" not in output, output
    errors = error_lines(output)
    assert len(errors) == 1, output
    for needle in needles:
        assert needle in errors[0], output
    return errors[0]


class Session:
    def __init__(self, term: Tmux, home: Path, port: int) -> None:
        self.term = term
        self.home = home
        self.port = port
        self.url = f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory, shared_env_dir: Path) -> Iterator[Session]:
    home = tmp_path_factory.mktemp("cli-home")
    bindir = str(Path(sys.executable).parent)
    env = {
        "PATH": f"{bindir}:{os.environ['PATH']}",
        "TERM": "xterm-256color",
        "HOME": str(home),
        "PS1": "$ ",
        "SPACEYARD_ENV_DIR": str(shared_env_dir),  # the server reuses the prebuilt Gradio environment
        "SPACEYARD_URL": "",
        "SPACEYARD_TOKEN": "",
        "SPACEYARD_DATA_DIR": "",
        "HF_TOKEN": "",
    }
    term = Tmux(home, env)
    s = Session(term, home, free_port())
    yield s
    term.interrupt("w0")
    try:
        term.wait_for("w0", r"Finished server process|command not found|^\$ $", timeout=30)
    finally:
        term.kill()


@pytest.fixture(scope="module")
def client_window(session: Session) -> str:
    return session.term.new_window()


@pytest.fixture(scope="module")
def started(session: Session) -> dict[str, str]:
    session.term.send("w0", f"spaceyard up --port {session.port}")
    text = session.term.wait_for("w0", r"Application startup complete|Uvicorn running", timeout=90)
    assert "Traceback" not in text
    token = re.search(r"admin token: (\S+)", text)
    assert token, text
    assert httpx.get(f"{session.url}/api/health", timeout=5).status_code == 200
    return {"token": token.group(1), "banner": text}


def test_up_prints_and_records_url_and_token(session: Session, started: dict[str, str]) -> None:
    banner = started["banner"]
    assert f"on http://localhost:{session.port}" in banner
    assert "[bold]" not in banner and "[link" not in banner
    record = session.home / ".data" / "cli.json"
    assert stat.S_IMODE(record.stat().st_mode) == 0o600
    assert json.loads(record.read_text()) == {"url": session.url, "token": started["token"]}


def test_create_finds_the_server_it_started(session: Session, started: dict[str, str], client_window: str) -> None:
    out = session.term.run(client_window, f"spaceyard create {SPACE}")
    assert session.term.last_status == 0, out
    assert f"Created {SPACE}: " in out and "Traceback" not in out
    assert f"spaceyard push {SPACE}" in out
    r = httpx.get(f"{session.url}/api/spaces/{SPACE}", timeout=10)
    assert r.status_code == 200
    out = session.term.run(client_window, 'export TOKEN=$(spaceyard token show); echo "token=$TOKEN"')
    assert f"token={started['token']}" in out


def test_push_follows_the_build_until_running(session: Session, started: dict[str, str], client_window: str) -> None:
    wc = session.home / "work" / "hello"  # below the directory `up` ran in: the record is found upwards
    shutil.copytree(SAMPLES / "hello-gradio", wc)
    git(wc, "init", "-q", "-b", "main")
    git(wc, "add", "-A")
    git(wc, "commit", "-q", "-m", "hello")
    sha = git(wc, "rev-parse", "HEAD").stdout.strip()
    session.term.send(client_window, f"cd {wc}")
    out = session.term.run(client_window, f"spaceyard push {SPACE}", timeout=300)
    assert session.term.last_status == 0, out
    assert f"Pushing {sha[:12]}" in out
    assert "Building" in out or "environment" in out.lower(), out  # the build log, shown as it happens
    assert re.search(rf"^RUNNING  {re.escape(session.url)}/spaces/{SPACE}$", out, re.MULTILINE), out
    assert "[dim]" not in out and "Traceback" not in out
    rt = httpx.get(f"{session.url}/api/spaces/{SPACE}/runtime", timeout=10).json()
    assert rt["stage"] == "RUNNING" and rt["sha"] == sha


def test_logs_follow_renders_colours_and_stops_on_ctrl_c(
    session: Session, started: dict[str, str], client_window: str
) -> None:
    term = session.term
    term.send(client_window, f"spaceyard logs {SPACE} -f")
    text = term.wait_for(client_window, r"hello-gradio v1 starting", timeout=30)
    coloured = term.capture(client_window, escapes=True)
    assert "[dim]" not in text and "[/dim]" not in text
    line = next(ln for ln in coloured.splitlines() if "hello-gradio v1 starting" in ln)
    assert "\x1b[2m" in line, repr(line)  # the timestamp is dim: Rich markup rendered, not printed
    assert re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", line)
    term.interrupt(client_window)
    out = term.run(client_window, "echo stopped")
    assert "stopped" in out
    assert not re.search(r"^Traceback", term.capture(client_window), re.MULTILINE)  # (the app's own may be logged)


def test_errors_are_one_line_with_what_to_do(session: Session, started: dict[str, str], client_window: str) -> None:
    term = session.term
    closed = free_port()
    out = term.run(client_window, f"spaceyard create admin/nowhere --url http://127.0.0.1:{closed}")
    assert term.last_status == 1
    assert_one_clear_error(out, f"no Spaceyard at http://127.0.0.1:{closed}", "spaceyard up", "--url")

    out = term.run(client_window, f"SPACEYARD_URL=http://127.0.0.1:{closed} spaceyard logs {SPACE}")
    assert_one_clear_error(out, f"no Spaceyard at http://127.0.0.1:{closed}")

    out = term.run(client_window, "spaceyard create admin/wrong-token --token sy_wrong_token_0123456")
    assert term.last_status == 1
    line = assert_one_clear_error(out, "401", "sy_wro…", "--token or SPACEYARD_TOKEN", "spaceyard token create")
    assert "sy_wrong_token_0123456" not in line  # never echo a whole token

    # a token is never sent to a server other than the recorded one: with --url and nothing else, none
    out = term.run(
        client_window, f"spaceyard create admin/no-token --url {session.url.replace('127.0.0.1', 'localhost')}"
    )
    assert_one_clear_error(out, "needs a token (401)", "--token")

    out = term.run(client_window, "spaceyard logs admin/no-such-space")
    assert_one_clear_error(out, "404", "OWNER/NAME")

    out = term.run(client_window, "spaceyard logs not-an-id")
    assert term.last_status == 2
    assert_one_clear_error(out, "OWNER/NAME")

    out = term.run(client_window, f"spaceyard up --port {session.port}")
    assert_one_clear_error(out, f"port {session.port}", "in use", "--port")

    assert httpx.get(f"{session.url}/api/health", timeout=5).status_code == 200  # still the first server


def test_a_stopped_server_says_how_to_start_it(session: Session, started: dict[str, str], client_window: str) -> None:
    term = session.term
    term.interrupt("w0")
    term.wait_for("w0", r"Finished server process", timeout=30)
    out = term.run(client_window, f"spaceyard logs {SPACE}")
    assert_one_clear_error(out, f"no Spaceyard at {session.url}", "cli.json", "start it with `spaceyard up`")
