"""The in-container agent (``spaceyard_runtime/agent.py``) outside containers: the real script, run by the
Gradio test environment's interpreter, with a plain stdlib app and the hello-gradio sample."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from spaceyard_builder.engines.docker import hub_cmd
from spaceyard_builder.spaceconfig import SpaceConfig
from spaceyard_runtime.agent import ANNOUNCES, SIGNED, body_digest, signature
from spaceyard_runtime.agent_client import AgentClient, AgentError, split_setup

AGENT = Path(__file__).resolve().parents[2] / "runtime" / "spaceyard_runtime" / "agent.py"
SAMPLE = Path(__file__).resolve().parents[2] / "sample_spaces" / "hello-gradio"
PLAIN_APP = """\
import http.server, json, os, sys, threading
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"env": dict(os.environ), "pid": os.getpid(), "argv": sys.argv}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        if self.path == "/exit":
            threading.Timer(0.1, os._exit, (7,)).start()
    def log_message(self, *args):
        pass
print("plain app up", flush=True)
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RunningAgent:
    proc: subprocess.Popen[bytes]
    port: int
    app_port: int
    token: str
    log: Path

    def call(self, method: str, path: str, body: Any = None, token: str | None = None) -> tuple[int, Any]:
        data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data, method=method)
        if token is None:
            token = self.token
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def app_get(self, path: str = "/", within: float = 60.0) -> bytes:
        deadline = time.monotonic() + within
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.app_port}{path}", timeout=10) as response:
                    return bytes(response.read())
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)


def run_agent(python: Path, cwd: Path, app: list[str], *flags: str, token_flag: bool = False) -> RunningAgent:
    """The agent on free ports; its token in ``SPACEYARD_AGENT_TOKEN``, or with ``token_flag`` as ``--token``."""
    port, app_port, token = free_port(), free_port(), os.urandom(16).hex()
    env = {
        "PATH": f"{python.parent}:/usr/bin:/bin",
        "HOME": str(cwd),
        "LANG": "C.UTF-8",
        "PORT": str(app_port),
        "GRADIO_SERVER_PORT": str(app_port),
        "GRADIO_SERVER_NAME": "127.0.0.1",
        "GRADIO_ANALYTICS_ENABLED": "False",
        "SPACEYARD_AGENT_EXTRA": "scrubbed too",
    }
    if token_flag:
        flags = (*flags, "--token", token)
    else:
        env["SPACEYARD_AGENT_TOKEN"] = token
    log = cwd / "agent.log"
    argv = [str(python), str(AGENT), "--control-port", str(port), "--control-host", "127.0.0.1", *flags, "--", *app]
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    agent = RunningAgent(proc, port, app_port, token, log)
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return agent
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the agent did not listen: {log.read_text()}") from None
            time.sleep(0.05)


def end(agent: RunningAgent) -> int:
    agent.proc.send_signal(signal.SIGTERM)
    try:
        return agent.proc.wait(20)
    finally:
        if agent.proc.poll() is None:
            os.killpg(agent.proc.pid, signal.SIGKILL)
            agent.proc.wait()


@pytest.fixture
def plain(tmp_path: Path, gradio_env: Path) -> Iterator[RunningAgent]:
    (tmp_path / "app.py").write_text(PLAIN_APP)
    flags = ("--preload", "json", "--setup", "echo setup ran in $PWD")
    agent = run_agent(gradio_env / "bin" / "python", tmp_path, ["python", "app.py"], *flags)
    yield agent
    end(agent)


def test_a_plain_app_forks_stops_restarts_and_its_exit_is_recorded(plain: RunningAgent) -> None:
    status, started = plain.call("POST", "/app/start", {})
    assert status == 200 and started["mode"] == "fork", started
    seen = json.loads(plain.app_get())
    assert seen["pid"] == started["pid"] and seen["argv"] == ["app.py"]
    # the app gets the container's environment without the agent's variables (nor the token anywhere)
    assert not [k for k, v in seen["env"].items() if k.startswith("SPACEYARD_") or plain.token in v]
    assert plain.call("POST", "/app/start", {})[1]["pid"] == started["pid"]  # idempotent while it runs

    status, body = plain.call("GET", "/status")
    assert status == 200 and body["warm"] is True
    assert body["app"] == {**body["app"], "pid": started["pid"], "running": True, "mode": "fork"}
    assert body["warm_private_bytes"] > 0 and body["app_private_bytes"] > 0

    assert plain.call("POST", "/app/stop", {"grace": 2})[1] == {"exit_code": -signal.SIGTERM}
    with pytest.raises(OSError):
        plain.app_get(within=0)
    body = plain.call("GET", "/status")[1]
    assert body["warm"] is True and body["app"]["running"] is False and body["app_private_bytes"] is None

    again = plain.call("POST", "/app/start", {})[1]
    assert again["mode"] == "fork" and again["pid"] != started["pid"]
    plain.app_get()
    plain.app_get("/exit")  # the app exits on its own with 7: recorded, and the agent stays
    body = plain.call("GET", "/status?wait=30")[1]
    assert body["app"]["running"] is False and body["app"]["exit_code"] == 7 and plain.proc.poll() is None
    # an environment overlay that a fork cannot honour (read when Python starts) is a cold start
    cold = plain.call("POST", "/app/start", {"env": {"PYTHONHASHSEED": "1", "SPACEYARD_AGENT_X": "no"}})[1]
    assert cold["mode"] == "cold" and "PYTHONHASHSEED" in cold["reason"]
    seen = json.loads(plain.app_get())
    assert seen["env"]["PYTHONHASHSEED"] == "1" and "SPACEYARD_AGENT_X" not in seen["env"]
    assert plain.call("POST", "/app/stop", {"grace": 2})[1] == {"exit_code": -signal.SIGTERM}
    assert end(plain) == 0
    assert "plain app up" in plain.log.read_text() and f"setup ran in {plain.log.parent}" in plain.log.read_text()


def test_an_image_commands_shell_wrapper_is_split_into_setup_and_a_forkable_app() -> None:
    wrapped = hub_cmd(SpaceConfig(sdk="gradio", app_file="app.py"), preloaded=True)
    setup, app = split_setup(wrapped)
    assert app == ["python", "app.py"] and setup.startswith("mkdir -p ") and "exec" not in setup
    assert split_setup(["python", "app.py"]) == ("", ["python", "app.py"])
    assert split_setup(["sh", "-c", 'exec "$@"', "sh", "python", "app.py"])[0] == ""


def test_wrong_or_missing_tokens_and_bad_bodies_are_refused(plain: RunningAgent) -> None:
    for token in ("", "wrong", plain.token + "x", plain.token[:-1]):
        assert plain.call("GET", "/status", token=token)[0] == 401
        assert plain.call("POST", "/app/start", {}, token=token)[0] == 401
    with socket.create_connection(("127.0.0.1", plain.port)) as s:  # Basic, or the token without "Bearer"
        s.sendall(f"GET /status HTTP/1.1\r\nHost: x\r\nAuthorization: {plain.token}\r\n\r\n".encode())
        assert s.recv(100).startswith(b"HTTP/1.1 401")
    assert plain.call("GET", "/status")[1]["app"] is None  # nothing was started by the refused requests
    assert plain.call("POST", "/app/start", b"x" * 70_000)[0] == 413
    assert plain.call("POST", "/app/start", b"[1]")[0] == 400
    assert plain.call("POST", "/app/start", {"env": {"A": 1}})[0] == 400
    assert plain.call("GET", "/nope")[0] == 404


def test_an_app_that_is_not_python_script_runs_cold(tmp_path: Path, gradio_env: Path) -> None:
    (tmp_path / "app.py").write_text(PLAIN_APP)
    agent = run_agent(gradio_env / "bin" / "python", tmp_path, ["sh", "-c", "exec python app.py"], "--preload", "json",
                      "--autostart", token_flag=True)  # fmt: skip
    try:
        agent.app_get()
        cmdline = Path(f"/proc/{agent.proc.pid}/cmdline").read_bytes()
        assert b"--token" in cmdline and agent.token.encode() not in cmdline  # blanked in the agent's own memory
        body = agent.call("GET", "/status")[1]
        assert body["warm"] is False and "not `python SCRIPT.py`" in body["warm_error"]
        assert body["app"]["mode"] == "cold" and body["app"]["running"] is True
    finally:
        assert end(agent) == 128 + signal.SIGTERM  # the agent exits with its app's status


def test_a_gradio_app_forks_from_the_warm_parent_again_after_a_stop(tmp_path: Path, gradio_env: Path) -> None:
    app_dir = tmp_path / "app"
    shutil.copytree(SAMPLE, app_dir)
    flags = ("--preload", "gradio", "--preload", "?uvicorn.main", "--autostart", "--quiet-queue")
    agent = run_agent(gradio_env / "bin" / "python", app_dir, ["python", "app.py"], *flags)
    try:
        assert b"Hello Gradio" in agent.app_get(within=120)
        body = agent.call("GET", "/status")[1]
        assert body["app"]["mode"] == "fork" and body["warm"] is True
        assert agent.call("POST", "/app/stop", {"grace": 5})[0] == 200
        asleep = agent.call("GET", "/status")[1]
        assert asleep["warm"] is True and asleep["warm_private_bytes"] > 20 * 2**20  # Gradio imported: tens of MiB
        woke = agent.call("POST", "/app/start", {})[1]
        assert woke["mode"] == "fork"
        said = agent.call("GET", "/status?ready=60")[1]["app"]["announced"]  # readiness without probing
        assert said is (True if ANNOUNCES else None)
        assert b"Hello Gradio" in agent.app_get(within=60)
    finally:
        end(agent)


async def test_signed_requests_never_send_the_token_and_answers_prove_they_come_from_the_agent(
    plain: RunningAgent,
) -> None:
    signed = AgentClient("127.0.0.1", plain.token, plain.port, signed=True, connect_timeout=1.0)
    started = await signed.start()
    assert started["mode"] == "fork"
    assert (await signed.status(memory=False))["warm_private_bytes"] is None  # no memory read when not asked
    assert (await signed.status())["warm_private_bytes"] > 0
    for wrong in (AgentClient("127.0.0.1", plain.token + "x", plain.port, signed=True),
                  AgentClient("127.0.0.1", "", plain.port, signed=True)):  # fmt: skip
        with pytest.raises(AgentError) as refused:
            await wrong.status()
        assert refused.value.status == 401

    def raw(authorization: str) -> bytes:
        with socket.create_connection(("127.0.0.1", plain.port)) as s:
            s.sendall(f"GET /status HTTP/1.1\r\nHost: x\r\nAuthorization: {authorization}\r\n\r\n".encode())
            return s.recv(100)

    ts, nonce = f"{time.time():.3f}", os.urandom(16).hex()
    mac = signature(plain.token, "request", "GET", "/status", ts, nonce, body_digest(b""))
    assert raw(f"{SIGNED} ts={ts},nonce={nonce},mac={mac}").startswith(b"HTTP/1.1 200")
    assert raw(f"{SIGNED} ts={ts},nonce={nonce},mac={mac}").startswith(b"HTTP/1.1 401")  # a replay
    old, nonce = f"{time.time() - 3600:.3f}", os.urandom(16).hex()
    mac = signature(plain.token, "request", "GET", "/status", old, nonce, body_digest(b""))
    assert raw(f"{SIGNED} ts={old},nonce={nonce},mac={mac}").startswith(b"HTTP/1.1 401")  # out of its time
    nonce = os.urandom(16).hex()
    mac = signature(plain.token, "request", "POST", "/app/stop", ts, nonce, body_digest(b""))
    assert raw(f"{SIGNED} ts={ts},nonce={nonce},mac={mac}").startswith(b"HTTP/1.1 401")  # signed for another request
    assert (await signed.status())["app"]["running"] is True  # nothing refused was done


async def test_a_signed_client_sends_no_token_to_an_impostor_and_does_not_believe_it(tmp_path: Path) -> None:
    """What listens at a remembered address may be another pod now: it learns nothing, and is not believed."""
    seen: list[bytes] = []

    async def impostor(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.readuntil(b"\r\n\r\n"))
        body = json.dumps({"pid": 1, "mode": "fork"}).encode()
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nX-Spaceyard-Proof: 00\r\n\r\n%s" % (len(body), body))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(impostor, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    token = os.urandom(16).hex()
    try:
        with pytest.raises(AgentError, match="not from this Space's agent"):
            await AgentClient("127.0.0.1", token, port, signed=True).start()
    finally:
        server.close()
        await server.wait_closed()
    assert seen and token.encode() not in seen[0] and b"Bearer" not in seen[0]
    with pytest.raises(AgentError) as gone:  # nothing there at all: a quick failure
        await AgentClient("127.0.0.1", token, free_port(), signed=True, connect_timeout=1.0).start()
    assert gone.value.status is None
