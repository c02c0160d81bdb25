"""The runtime's side of the in-container agent (:mod:`spaceyard_runtime.agent`): its files, its command line,
and an asyncio client of its control port.

:func:`agent_files` is a folder holding ``agent.py`` and ``zygote.py`` (a copy per version of them, made once
under the runtime's state directory) for a backend to deliver read-only at :data:`AGENT_DIR` in the
container; :func:`agent_command` is the container's command around the image's own. :class:`AgentClient`
speaks the agent's protocol (one HTTP/1.1 request per connection, a bearer token, JSON both ways); with
``signed=True`` its requests are signed instead and every answer must prove it comes from the token's holder
(:class:`AgentError` otherwise): for an address that may no longer be that agent's (a pod remembered from its
suspend), so that nothing else that answers there learns the token or is taken for the agent.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import secrets
import time
from pathlib import Path
from typing import Any

from .agent import PROOF_HEADER, SIGNED, body_digest, signature

AGENT_SOURCES = (Path(__file__).with_name("agent.py"), Path(__file__).with_name("zygote.py"))
AGENT_DIR = "/opt/spaceyard"
AGENT_PORT = 7979
"""The agent's control port in the container: never the app's (Gradio tries 7860-7959 when 7860 is taken)."""
TOKEN_ENV = "SPACEYARD_AGENT_TOKEN"
REQUEST_TIMEOUT = 30.0
MAX_ANSWER = 1 << 20


class AgentError(Exception):
    """The agent could not be reached, refused the request or failed it."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def new_token() -> str:
    return secrets.token_urlsafe(32)


def agent_files(state_dir: Path) -> Path:
    """A folder with this version's ``agent.py`` and ``zygote.py`` (readable by every uid), made once."""
    blobs = [p.read_bytes() for p in AGENT_SOURCES]
    digest = hashlib.sha256(b"\0".join(blobs)).hexdigest()[:12]
    folder = (state_dir / f"agent-{digest}").resolve()
    if not all((folder / p.name).is_file() for p in AGENT_SOURCES):
        tmp = folder.with_name(f"{folder.name}.{os.getpid()}.tmp")
        tmp.mkdir(parents=True, exist_ok=True)
        for path, blob in zip(AGENT_SOURCES, blobs, strict=True):
            (tmp / path.name).write_bytes(blob)
            (tmp / path.name).chmod(0o444)
        tmp.chmod(0o555)
        try:
            tmp.rename(folder)
        except OSError:  # made meanwhile by another process
            for path in AGENT_SOURCES:
                with contextlib.suppress(OSError):
                    (tmp / path.name).unlink()
            with contextlib.suppress(OSError):
                tmp.rmdir()
    return folder


def agent_command(
    app_argv: list[str],
    *,
    python: str = "python3",
    preload: list[str] | None = None,
    quiet_queue: bool = False,
    stop_grace: float = 5.0,
    port: int = AGENT_PORT,
    autostart: bool = True,
    setup: str = "",
    health_port: int = 0,
    health_interval: float = 30.0,
    token: str = "",
) -> list[str]:
    """The container's command line: the agent, then (after ``--``) the app's own."""
    argv = [python, f"{AGENT_DIR}/agent.py", "--control-port", str(port), "--stop-grace", f"{stop_grace:g}"]
    if setup:
        argv += ["--setup", setup]
    if health_port:
        argv += ["--health-port", str(health_port), "--health-interval", f"{health_interval:g}"]
    if token:  # the agent blanks it in its command line at once
        argv.append(f"--token={token}")  # one argument: a token may start with "-"
    for module in preload or []:
        argv += ["--preload", module]
    if quiet_queue:
        argv.append("--quiet-queue")
    if autostart:
        argv.append("--autostart")
    return [*argv, "--", *app_argv]


SHELL_WRAPPER_TAIL = '; exec "$@"'


def split_setup(argv: list[str]) -> tuple[str, list[str]]:
    """An image command ``sh -c 'SETUP; exec "$@"' sh APP...`` as (``SETUP``, ``APP...``), so that the agent
    runs the setup once and the app itself can be forked; any other command as ("", itself)."""
    if len(argv) >= 5 and argv[0] in ("sh", "/bin/sh") and argv[1] == "-c" and argv[3] == "sh":
        script = argv[2]
        if script.endswith(SHELL_WRAPPER_TAIL) and script[: -len(SHELL_WRAPPER_TAIL)].strip():
            return script[: -len(SHELL_WRAPPER_TAIL)], argv[4:]
    return "", argv


def token_in(argv: list[str]) -> str:
    """The ``--token`` of an agent command line (a container's arguments), "" if none."""
    for i, arg in enumerate(argv):
        if arg == "--":
            break
        if arg.startswith("--token="):
            return arg.removeprefix("--token=")
        if arg == "--token" and i + 1 < len(argv):
            return argv[i + 1]
    return ""


class AgentClient:
    """One container's agent at ``host:port``. ``signed``: sign the requests and check that every answer
    proves it comes from the token's holder; ``connect_timeout``: seconds to wait for the connection (an
    address that may be gone: a quick failure instead of the request's whole timeout)."""

    def __init__(
        self, host: str, token: str, port: int = AGENT_PORT, *, signed: bool = False, connect_timeout: float = 0.0
    ) -> None:
        self.host = host
        self.port = port
        self.token = token
        self.signed = signed
        self.connect_timeout = connect_timeout

    async def request(
        self, method: str, path: str, body: dict[str, Any] | None = None, timeout: float = REQUEST_TIMEOUT
    ) -> dict[str, Any]:
        """The JSON answer of a 200; :class:`AgentError` otherwise (``status`` is ``None`` when unreachable, or
        when a signed request's answer does not prove it comes from the agent)."""
        data = json.dumps(body).encode() if body is not None else b""
        nonce = secrets.token_hex(16) if self.signed else ""
        if nonce:
            ts = f"{time.time():.3f}"
            mac = signature(self.token, "request", method, path, ts, nonce, body_digest(data))
            authorization = f"{SIGNED} ts={ts},nonce={nonce},mac={mac}"
        else:
            authorization = f"Bearer {self.token}"
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nAuthorization: {authorization}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\nConnection: close\r\n\r\n"
        )
        try:
            raw = await asyncio.wait_for(self._exchange(head.encode() + data), timeout)
        except (OSError, TimeoutError) as exc:
            raise AgentError(f"the agent at {self.host}:{self.port} did not answer: {exc or 'timed out'}") from exc
        status_line, _, rest = raw.partition(b"\r\n")
        try:
            status = int(status_line.split()[1])
        except (IndexError, ValueError) as exc:
            raise AgentError(f"the agent answered something else than HTTP: {status_line[:80]!r}") from exc
        headers, _, payload = rest.partition(b"\r\n\r\n")
        if nonce and status != 401:
            expected = signature(self.token, "answer", nonce, str(status), body_digest(payload))
            if not hmac.compare_digest(_header(headers, PROOF_HEADER).encode(), expected.encode()):
                raise AgentError(f"the answer at {self.host}:{self.port} is not from this Space's agent (no proof)")
        try:
            answer = json.loads(payload) if payload else {}
        except ValueError:
            answer = {}
        if status != 200:
            raise AgentError(f"the agent answered {status}: {answer.get('error', '')}", status)
        if not isinstance(answer, dict):
            raise AgentError("the agent's answer is not a JSON object", status)
        return answer

    async def _exchange(self, request: bytes) -> bytes:
        connecting = asyncio.open_connection(self.host, self.port)
        if self.connect_timeout > 0:
            reader, writer = await asyncio.wait_for(connecting, self.connect_timeout)
        else:
            reader, writer = await connecting
        try:
            writer.write(request)
            await writer.drain()
            answer = b""
            while len(answer) <= MAX_ANSWER:  # one request per connection: the answer ends with it
                chunk = await reader.read(65536)
                if not chunk:
                    return answer
                answer += chunk
            raise OSError("the answer is too large")
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def start(self, env: dict[str, str] | None = None, wait_warm: float = 60.0) -> dict[str, Any]:
        body: dict[str, Any] = {"wait_warm": wait_warm}
        if env:
            body["env"] = env
        return await self.request("POST", "/app/start", body, timeout=wait_warm + REQUEST_TIMEOUT)

    async def stop(self, grace: float) -> dict[str, Any]:
        return await self.request("POST", "/app/stop", {"grace": grace}, timeout=grace + REQUEST_TIMEOUT)

    async def status(self, wait: float = 0.0, ready: float = 0.0, memory: bool = True) -> dict[str, Any]:
        """``wait``: first wait that long for the app to end; ``ready``: for it to say that it listens;
        ``memory=False``: no memory counts (a quicker answer)."""
        query = "&".join(f"{k}={v:g}" for k, v in (("wait", wait), ("ready", ready)) if v > 0)
        if not memory:
            query = f"{query}&memory=0" if query else "memory=0"
        return await self.request(
            "GET", "/status" + (f"?{query}" if query else ""), timeout=wait + ready + REQUEST_TIMEOUT
        )

    async def wait_listening(self, timeout: float, interval: float = 0.05) -> None:
        """Until the control port accepts a connection (the container just started)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            try:
                _, writer = await asyncio.wait_for(asyncio.open_connection(self.host, self.port), 2.0)
                writer.close()
                return
            except (OSError, TimeoutError) as exc:
                if loop.time() > deadline:
                    raise AgentError(f"the agent at {self.host}:{self.port} never listened: {exc}") from exc
                await asyncio.sleep(interval)


def _header(head: bytes, name: str) -> str:
    """The value of header ``name`` in an answer's header lines ("" if absent)."""
    wanted = name.lower().encode()
    for line in head.split(b"\r\n"):
        key, sep, value = line.partition(b":")
        if sep and key.strip().lower() == wanted:
            return value.strip().decode("latin-1")
    return ""


def private_bytes(status: dict[str, Any], *keys: str) -> int | None:
    """The sum of the byte counts ``keys`` of a ``/status`` answer; ``None`` if none is known."""
    values = [status.get(k) for k in keys]
    known = [int(v) for v in values if isinstance(v, int)]
    return sum(known) if known else None


__all__ = ["AGENT_DIR", "AGENT_PORT", "TOKEN_ENV", "AgentClient", "AgentError", "agent_command", "agent_files"]
