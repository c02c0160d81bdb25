"""A container's output and exit, followed from threads and handed to the event loop.

:func:`attach` starts two daemon threads for a running container: one follows ``docker logs --follow``
(across Docker's own restarts of a crashing app, skipping lines already handed on by their timestamp) and
hands each line to the app's ``log`` sink on its event loop (the current one: a light sleeper's container
keeps running, and its next run's lines go to the sink given to ``resume``); the other resolves
:attr:`DockerApp.container_exited` with the exit code when the container stops. :attr:`DockerApp.exited`
is the end of the current run of the app: the container's end, or, with the in-container agent, the
app's (:mod:`.agentapp`). :func:`tail_lines` gives the last lines for an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from dataclasses import dataclass, field
from datetime import datetime

import docker
import docker.errors

from ..agent_client import AgentClient
from ..output import LOG_TAIL_LINES, AppOutput, LineSplitter


@dataclass(kw_only=True)
class DockerApp(AppOutput):
    """A container this runtime started or re-attached to, and the threads that follow it."""

    container_id: str
    loop: asyncio.AbstractEventLoop
    gpus: list[str] = field(default_factory=list)
    ready: bool = False
    stopping: threading.Event = field(default_factory=threading.Event)
    follower: threading.Thread | None = None
    exited: asyncio.Future[int] | None = None
    container_exited: asyncio.Future[int] | None = None
    agent: AgentClient | None = None
    """The container's agent (gradio/streamlit images): the app runs, sleeps and wakes inside the container."""
    pid: int | None = None
    """The current run's pid (in the container), once known."""
    asleep: bool = False
    restarting: bool = False
    restarts: int = 0
    watcher: asyncio.Task[None] | None = None

    def emit_threadsafe(self, line: str) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: the platform is gone
            self.loop.call_soon_threadsafe(self.emit, line)


def parse_ts(raw: str) -> float:
    """Docker's RFC 3339 nano timestamp -> epoch seconds (microsecond precision)."""
    date, _, frac = raw.rstrip("Z").partition(".")
    base = datetime.fromisoformat(date + "+00:00").timestamp()
    return base + (float("0." + frac[:6]) if frac else 0.0)


def follow_logs(client: docker.DockerClient, app: DockerApp, since: float) -> None:
    """Thread: hand every output line to the app's sink, across Docker restarts, until stopped."""
    api = client.api
    last: float | None = None  # timestamp of the last line handed on; re-follows skip up to it
    while not app.stopping.is_set():
        splitter = LineSplitter()
        try:
            stream = api.logs(
                app.container_id, stream=True, follow=True, timestamps=True, since=since if last is None else last
            )
            for chunk in stream:
                for raw in splitter.feed(chunk):
                    stamp, _, line = raw.partition(" ")
                    try:
                        ts = parse_ts(stamp)
                    except ValueError:
                        ts = None
                    if ts is not None:
                        if last is not None and ts <= last:
                            continue
                        last = ts
                    app.emit_threadsafe(line)
        except docker.errors.NotFound:
            return
        except Exception:  # the engine restarted or the connection dropped: retry below
            pass
        if app.stopping.wait(0.2):
            return
        try:
            state = api.inspect_container(app.container_id)["State"]
        except docker.errors.NotFound:
            return
        except Exception:
            continue
        if not (state.get("Running") or state.get("Restarting")):
            return


def watch_exit(client: docker.DockerClient, app: DockerApp) -> None:
    """Thread: resolve ``app.exited`` with the exit code when the container stops."""
    fut = app.container_exited
    try:
        code = int(client.api.wait(app.container_id, timeout=None)["StatusCode"])
    except Exception:
        code = -1

    def resolve() -> None:
        if fut is not None and not fut.done():
            fut.set_result(code)

    with contextlib.suppress(RuntimeError):
        app.loop.call_soon_threadsafe(resolve)


def attach(client: docker.DockerClient, app: DockerApp, since: float) -> None:
    """Follow the (just started) container's output from ``since`` and watch for its exit."""
    app.stopping.clear()
    app.container_exited = app.exited = app.loop.create_future()
    app.follower = threading.Thread(target=follow_logs, args=(client, app, since), daemon=True)
    app.follower.start()
    threading.Thread(target=watch_exit, args=(client, app), daemon=True).start()


def tail_lines(client: docker.DockerClient, app: DockerApp | None, container_id: str) -> str:
    """The container's last lines: those followed, else Docker's own log (blocking)."""
    if app is not None and app.tail:
        return app.tail_text()
    with contextlib.suppress(docker.errors.APIError):
        raw = client.api.logs(container_id, tail=LOG_TAIL_LINES)
        return bytes(raw).decode("utf-8", errors="replace").rstrip("\n")
    return ""
