"""One run of an app under its container's agent (:mod:`spaceyard_runtime.agent`): its end, and restarts.

Gradio and Streamlit containers run the agent as their main process, so the container outlives the app:
the end of a run is the agent's news, not Docker's. :func:`begin_run` gives the :class:`~.logs.DockerApp`
a fresh :attr:`~.logs.DockerApp.exited` future and a watcher task that long-polls the agent's
``/status?wait=`` and resolves the future with the app's exit code (or the container's, if the container
ends first). Once the app was ready, an exit with an error is restarted in place by the watcher, up to
``retries`` times with a doubling back-off from 100 ms (what Docker's ``on-failure`` policy did for the
container); an exit while going to sleep (``asleep``) or a clean one is final.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from ..agent_client import AgentError
from .logs import DockerApp

STATUS_WAIT = 30.0
"""Seconds one long poll of the agent waits for the app to end."""
RESTART_BACKOFF = 0.1
log = logging.getLogger("spaceyard.runtime.docker")


def begin_run(app: DockerApp, pid: int | None, retries: int) -> None:
    """A new run of the app (``pid``: as the agent answered ``/app/start``; ``None``: the agent's autostart)."""
    end_run(app)
    app.pid = pid
    app.restarting = False
    app.exited = app.loop.create_future()
    app.watcher = app.loop.create_task(_watch(app, app.exited, retries))


def end_run(app: DockerApp) -> None:
    """Stop watching the current run (the container goes away, or the platform closes)."""
    if app.watcher is not None and not app.watcher.done():
        app.watcher.cancel()
    app.watcher = None


def container_code(code: Any) -> int:
    """The agent's exit code (``Popen.returncode``: negative for a signal) as Docker states it (128 + N)."""
    if not isinstance(code, int):
        return -1
    return 128 - code if code < 0 else code


def _resolve(future: asyncio.Future[int], code: int) -> None:
    if not future.done():
        future.set_result(code)


async def _watch(app: DockerApp, exited: asyncio.Future[int], retries: int) -> None:
    agent = app.agent
    assert agent is not None
    container = app.container_exited
    while not exited.done():
        if container is not None and container.done():
            _resolve(exited, container.result())
            return
        try:
            status = await _status_or_container_end(agent.status(STATUS_WAIT), container)
        except AgentError:
            await asyncio.sleep(0.2)  # just started (not listening yet), or ending: the container tells
            continue
        if status is None:
            continue
        run: dict[str, Any] | None = status.get("app")
        if run is None:  # the autostart waits for the warm parent
            await asyncio.sleep(0.05)
            continue
        if app.pid is None or int(run["pid"]) != app.pid:
            app.pid = int(run["pid"])
        if run.get("running"):
            continue
        code = container_code(run.get("exit_code"))
        if app.asleep or not app.ready or code == 0 or app.restarts >= retries:
            _resolve(exited, code)
            return
        app.restarts += 1
        app.restarting = True
        log.info("the app of container %s exited with %s: restart %d", app.container_id[:12], code, app.restarts)
        await asyncio.sleep(RESTART_BACKOFF * 2 ** (app.restarts - 1))
        try:
            answer = await agent.start()
        except AgentError as exc:
            log.warning("could not restart the app of container %s: %s", app.container_id[:12], exc)
            app.restarting = False
            _resolve(exited, code)
            return
        app.pid = int(answer["pid"])
        app.restarting = False


async def _status_or_container_end(status: Any, container: asyncio.Future[int] | None) -> dict[str, Any] | None:
    """The agent's status, or ``None`` if the container ended first."""
    task: asyncio.Task[dict[str, Any]] = asyncio.ensure_future(status)
    waiting: list[asyncio.Future[Any]] = [task] + ([container] if container is not None else [])
    try:
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        raise
    if not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, AgentError):
            await task
        return None
    return task.result()
