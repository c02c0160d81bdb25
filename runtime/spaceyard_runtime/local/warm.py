"""Warm parents (*zygotes*, :mod:`spaceyard_runtime.zygote`): which one an app forks from, warming, bounding.

One warm parent per (Space, environment, preload modules), each in its own box. The idle ones (whose
Space sleeps lightly, or starts cold) together hold at most ``RuntimeSettings.light_sleep_memory_mib``
of memory, measured (:mod:`spaceyard_runtime.procmem`: the PSS of every process in the box): past it the
least recently used idle ones end first (their Space is then in deep sleep: its next wake is cold). A busy
one serves an awake app and is not counted (the app it forked shares its pages). A box holds one app: while
the warm parent serves one version, another version of the Space starts cold. :meth:`WarmParents.source`
says which warm parent a start forks from, or why it starts cold; after a cold start answers,
:meth:`WarmParents.after_cold_start` warms one for the next start (not during it: on a small machine two
SDK imports at once make the cold start about twice as slow). The platform may warm one earlier
(:meth:`WarmParents.prewarm`: while a Space's first build runs, on the environment it starts from), and a
start on another environment of the Space retires the idle ones it will not use
(:meth:`WarmParents.retire_others`). A warm parent that failed is retried after :data:`ZYGOTE_RETRY_AFTER`
seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import time
from pathlib import Path

from .. import procmem
from ..api import AppSpec, LogSink
from ..sandbox import Box, Sandbox
from ..settings import RuntimeSettings
from ..zygote import fork_blockers
from ..zygote_client import Zygote, ZygoteError
from . import launch
from .launch import LaunchPlan

GRADIO_LAUNCH_MODULES = (
    "uvicorn.main",
    "uvicorn.config",
    "uvicorn.server",
    "uvicorn.lifespan.on",
    "uvicorn.loops.auto",
    "uvicorn.protocols.http.auto",
    "uvicorn.protocols.http.h11_impl",
    "uvicorn.protocols.websockets.auto",
    "uvicorn.middleware.proxy_headers",
    "uvicorn.supervisors",
    "anyio._backends._asyncio",
    "multiprocessing.synchronize",
    "pydantic.v1",
    "starlette.middleware.cors",
    "logging.config",
    "encodings.idna",
)
"""Modules Gradio imports only when an app launches (not at ``import gradio``): the warm parent imports
them too, when present. Whatever they read from the environment is checked like the rest."""
WARMING_WAIT = 120.0
"""Seconds a start waits for its warm parent to finish warming before it starts cold instead."""
ZYGOTE_RETRY_AFTER = 300.0
"""Seconds before trying again to warm a parent for an environment whose warm parent failed."""

logger = logging.getLogger(__name__)


def preload_modules(spec: AppSpec) -> list[str]:
    """What the warm parent imports: Gradio, the Space's heavy modules, and ``?``-marked optional ones."""
    return list(dict.fromkeys(["gradio", *spec.preload_modules, *(f"?{m}" for m in GRADIO_LAUNCH_MODULES)]))


def zygote_key(spec: AppSpec) -> str:
    """Identifies a warm parent: the Space (each has its own, inside its own walls), the environment
    (path, and which build of it) and the preload list."""
    path = Path(spec.artifact).resolve()
    try:
        build = os.stat(path).st_ino  # an environment rebuilt in place is a new directory
    except OSError:
        build = 0
    volume = spec.storage.volume if spec.storage else None  # forked apps see the parent's /data
    ident = json.dumps([spec.space_id.lower(), str(path), build, preload_modules(spec), volume])
    return hashlib.sha256(ident.encode()).hexdigest()[:16]


def zygote_code(spec: AppSpec) -> Path:
    """What of the Space's code its warm parent sees: all its exported commits
    (``sources/OWNER--NAME``), so that later pushes fork too; else only this commit."""
    if spec.app_dir is None:
        return Path(spec.artifact).resolve()
    app_dir = Path(spec.app_dir).resolve()
    return app_dir.parent if app_dir.parent.name == spec.source_folder else app_dir


class WarmParents:
    """The warm parents of one runtime, by :func:`zygote_key`."""

    def __init__(self, settings: RuntimeSettings, sandbox: Sandbox) -> None:
        self.settings = settings
        self.sandbox = sandbox
        self.tasks: dict[str, asyncio.Task[Zygote]] = {}
        self._failures: dict[str, tuple[float, str]] = {}
        self._used: dict[str, float] = {}
        self._lineage: dict[str, str] = {}
        self._boxes: dict[str, Box] = {}
        self._closing: set[asyncio.Task[None]] = set()
        """Dropped warm parents being closed (awaited by :meth:`aclose`)."""
        self._cost: dict[str, int] = {}
        self._forking: set[str] = set()
        """Keys whose parent a start took (:meth:`source`) and is forking from: not yet ``busy``."""
        """Last measured PSS (bytes) of each idle warm parent's box."""

    def env(self, spec: AppSpec) -> dict[str, str]:
        """The warm parent's environment: an app's (the Space's HOME and TMPDIR), without the Space's
        variables, port or code."""
        space = launch.space_dir(self.settings, spec)
        env = launch.base_env(spec.artifact, space / "home", space / "tmp")
        env.update(launch.platform_env(self.settings, None, None))
        return env

    def box(self, key: str) -> Box | None:
        return self._boxes.get(key)

    def source(self, spec: AppSpec, plan: LaunchPlan) -> tuple[Zygote | None, str]:
        """A warm parent to fork this app from, or ``None`` and why not."""
        if not self.settings.fast_wake:
            return None, "fast wake is off"
        if spec.sdk != "gradio":
            return None, f"fast wake is for Gradio Spaces, this is {spec.sdk}"
        key = zygote_key(spec)
        task = self.tasks.get(key)
        if task is None:
            failed = self._failures.get(key)
            if failed and time.monotonic() - failed[0] < ZYGOTE_RETRY_AFTER:
                return None, f"the warm parent for this environment failed: {failed[1]}"
            return None, "no warm parent yet for this environment; one is warmed once the app answers"
        if not task.done():
            return None, "the warm parent for this environment is still warming up"
        if task.cancelled() or task.exception() is not None:
            return None, "the warm parent for this environment failed"
        zygote = task.result()
        if not zygote.alive:
            self.tasks.pop(key, None)
            return None, "the warm parent for this environment exited; a new one is warmed once the app answers"
        self._used[key] = time.monotonic()
        if self.sandbox.isolated and (zygote.busy or key in self._forking):
            return None, "the Space's warm parent is serving another version of it"
        box = self._boxes.get(key)
        if box is not None and self.sandbox.isolated and not any(Path(plan.cwd).is_relative_to(p) for p in box.spec.ro):
            return None, "this commit is outside the warm parent's view"
        blockers = fork_blockers(zygote.env, plan.env, zygote.reads, zygote.iterated)
        if blockers:
            return None, "a fork would not behave like a cold start: " + "; ".join(blockers[:3])
        self._forking.add(key)  # two starts that waited for one warming parent: only one forks into its box
        return zygote, ""

    def forked(self, zygote: Zygote) -> None:
        """The start that took ``zygote`` from :meth:`source` has forked (its child makes it busy) or failed."""
        self._forking.discard(zygote.key)

    async def warming(self, spec: AppSpec, log: LogSink) -> None:
        """If ``spec``'s warm parent is being warmed (early, while its build ran), wait for it: what is left
        of its SDK import is less than a cold start's whole one, and the start then forks. At most
        :data:`WARMING_WAIT` seconds; a parent that fails leaves the start cold."""
        task = self.tasks.get(zygote_key(spec))
        if task is None or task.done() or not self.settings.fast_wake:
            return
        log("Waiting for the warm parent being warmed for this environment (it started while the Space built)")
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(task), WARMING_WAIT)

    def after_cold_start(self, spec: AppSpec) -> None:
        """A cold start of ``spec`` answers: warm its parent for the next start (unless there is one, or
        it failed less than :data:`ZYGOTE_RETRY_AFTER` seconds ago)."""
        if not self.settings.fast_wake or spec.sdk != "gradio":
            return
        key = zygote_key(spec)
        failed = self._failures.get(key)
        if failed and time.monotonic() - failed[0] < ZYGOTE_RETRY_AFTER:
            return
        self.ensure(spec)

    def retire_others(self, spec: AppSpec) -> int:
        """``spec`` starts: end the Space's idle or still warming parents on other environments (a parent
        warmed early on the environment a build started from, when the build ended on another one). Busy
        ones (serving the running version) stay. Returns how many went."""
        mine = zygote_key(spec)
        prefix = json.dumps([spec.space_id.lower()])[:-1] + ","

        def unused(key: str) -> bool:  # idle, or still warming (then it serves nothing yet either)
            task = self.tasks.get(key)
            return self._idle(key) or (task is not None and not task.done())

        gone = [k for k, lineage in self._lineage.items() if lineage.startswith(prefix) and k != mine and unused(k)]
        for key in gone:
            logger.info("warm parent %s ended: its Space starts on another environment", key)
            self.drop(key)
        return len(gone)

    def ensure(self, spec: AppSpec) -> asyncio.Task[Zygote]:
        """The (warming or warm) parent of ``spec``: started now if there is none alive."""
        key = zygote_key(spec)
        task = self.tasks.get(key)
        if task is not None and not (task.done() and (task.cancelled() or task.exception() or not task.result().alive)):
            return task
        python = str(Path(spec.artifact).resolve() / "bin" / "python")
        box = self.sandbox.create(launch.box_spec(self.settings, spec, "zygote", zygote_code(spec)))
        self._boxes[key] = box
        home = str(launch.space_dir(self.settings, spec) / "home")
        zygote = Zygote(
            key,
            python,
            preload_modules(spec),
            self.env(spec),
            self.settings.runtime_dir.resolve() / "zygotes" / key,
            wrap=lambda argv: self.sandbox.command(box, argv, home),
            on_spawn=lambda pid: self.sandbox.started(box, pid),
            host_pids=not self.sandbox.isolated,
        )

        async def warm() -> Zygote:
            try:
                await zygote.start()
            except ZygoteError as exc:
                await self.sandbox.destroy(box)
                self._failures[key] = (time.monotonic(), str(exc).splitlines()[-1] if str(exc) else "")
                self.tasks.pop(key, None)
                logger.warning("warm parent for %s failed: %s", spec.artifact, exc)
                raise
            self._failures.pop(key, None)
            self._used[key] = time.monotonic()
            asyncio.get_running_loop().call_soon(self.bound)  # now it has a size (after the task is done)
            return zygote

        task = asyncio.ensure_future(warm())
        task.add_done_callback(lambda t: t.cancelled() or t.exception())  # retrieved: no "never retrieved"
        # A warm parent of an earlier build of the same environment path (same preload modules) imported
        # files that are gone: it goes.
        lineage = json.dumps([spec.space_id.lower(), python, preload_modules(spec)])
        for other, old in list(self._lineage.items()):
            if old == lineage and other != key:
                self.drop(other)
        self.tasks[key] = task
        self._lineage[key] = lineage
        self._used[key] = time.monotonic()
        self.bound()
        return task

    def app_ended(self, zygote: Zygote) -> None:
        """An app forked from ``zygote`` ended."""
        if zygote.key not in self.tasks:  # dropped while it served this app
            asyncio.ensure_future(zygote.close())
        else:
            self._used[zygote.key] = time.monotonic()  # its Space just went to sleep: the last to go
        self.bound()

    def _idle(self, key: str) -> bool:
        task = self.tasks.get(key)
        if task is None or not task.done():
            return task is None
        return task.cancelled() or task.exception() is not None or not task.result().busy

    def cost(self, key: str) -> int:
        """Bytes (PSS) the warm parent ``key`` holds now; 0 if there is none alive."""
        task = self.tasks.get(key)
        box = self._boxes.get(key)
        if task is None or not task.done() or task.cancelled() or task.exception() is not None:
            return 0
        zygote = task.result()
        if not zygote.alive:
            return 0
        if box is not None and self.sandbox.isolated:
            pids = self.sandbox.pids(box)
        else:
            pids = [zygote.pid] if zygote.pid is not None else []
        return procmem.total(pids).pss

    def bound(self) -> None:
        """Keep the idle warm parents within ``light_sleep_memory_mib``: the least recently used go first (a
        busy one serves an app that lives in its sandbox: it stays until that app ends, and is not counted)."""
        budget = max(self.settings.light_sleep_memory_mib, 0) * 2**20
        idle = [k for k in self.tasks if self._idle(k)]  # warming ones are not: they have no size yet
        for key in idle:
            self._cost[key] = self.cost(key)
        held = sum(self._cost[k] for k in idle)
        for key in sorted(idle, key=lambda k: self._used.get(k, 0.0)):
            if held <= budget:
                return
            held -= self._cost[key]
            logger.info("warm parent %s ended: idle warm parents are over light_sleep_memory_mib", key)
            self.drop(key)

    def deepen(self, spec: AppSpec) -> None:
        """Deep sleep for ``spec``'s Space: end its idle warm parent (its next start is cold)."""
        key = zygote_key(spec)
        if key in self.tasks and self._idle(key):
            self.drop(key)

    def drop(self, key: str) -> None:
        """Close a warm parent and its sandbox. In a sandbox its forked app dies with it: only idle ones go."""
        task = self.tasks.get(key)
        if task is not None and self.sandbox.isolated and not self._idle(key):
            return
        self.tasks.pop(key, None)
        self._used.pop(key, None)
        self._cost.pop(key, None)
        self._lineage.pop(key, None)
        box = self._boxes.pop(key, None)
        if task is None:
            return

        async def close() -> None:
            if box is not None and not task.done():  # still warming: end it now, not after a whole SDK import
                await self.sandbox.destroy(box)
            with contextlib.suppress(BaseException):
                await (await task).close()
            self._failures.pop(key, None)  # ended on purpose, not failed: a later start may warm it again
            if box is not None:
                await self.sandbox.destroy(box)

        closing = asyncio.ensure_future(close())
        self._closing.add(closing)
        closing.add_done_callback(self._closing.discard)

    async def forget(self, space_id: str) -> None:
        """End the Space's warm parents (and their sandboxes)."""
        prefix = json.dumps([space_id.lower()])[:-1] + ","
        for key, lineage in list(self._lineage.items()):
            if lineage.startswith(prefix):
                task = self.tasks.pop(key, None)
                self._used.pop(key, None)
                self._cost.pop(key, None)
                self._lineage.pop(key, None)
                box = self._boxes.pop(key, None)
                if task is not None:
                    with contextlib.suppress(BaseException):
                        await (await task).close()
                if box is not None:
                    await self.sandbox.destroy(box)

    async def prewarm(self, spec: AppSpec) -> bool:
        """Warm the parent that ``spec``'s apps fork from, and wait for it. ``True`` when it is ready."""
        if not self.settings.fast_wake or spec.sdk != "gradio":
            return False
        try:
            zygote = await asyncio.shield(self.ensure(spec))
        except ZygoteError:
            return False
        return zygote.alive

    async def aclose(self) -> None:
        """End every warm parent and its box."""
        if self._closing:
            await asyncio.wait(list(self._closing))
        tasks = list(self.tasks.values())
        self.tasks.clear()
        for task in tasks:
            if not task.done():
                task.cancel()
            with contextlib.suppress(BaseException):
                await task
            if task.done() and not task.cancelled() and task.exception() is None:
                await task.result().close()
        boxes = list(self._boxes.values())
        self._boxes.clear()
        for box in boxes:
            await self.sandbox.destroy(box)
