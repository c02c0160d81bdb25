"""Local runtime: every Space runs as processes on this machine, inside walls (:mod:`.sandbox`).

With the default sandbox (``local_sandbox="bwrap"``) each cold app and each Space's warm parent runs in
its own *box*: bubblewrap namespaces (pid, network, IPC, UTS, mount, cgroup), the Space's own
unprivileged uid, a filesystem view of its code, environment and interpreter (read-only) and its own
HOME and TMPDIR, cgroup limits from the flavor. The app listens on port 7860 of its own loopback; its
:class:`~spaceyard_runtime.api.Endpoint` names the box's network namespace (:mod:`.netns`), where the
gateway and the readiness probe create their sockets. With ``local_sandbox="none"`` apps are host
processes on a free loopback port (trusted Spaces only).

Two ways to start an app, said in the run log (second line, after the Hub-style startup banner) and in
:attr:`AppHandle.start_mode`:

* ``cold``: ``<env>/bin/python app.py`` (Gradio) or ``python -m streamlit run app.py ...`` (Streamlit) in
  a new box, cwd the Space's checkout.
* ``fork``: the app is forked from the Space's warm parent (a *zygote*, :mod:`spaceyard_runtime.zygote`)
  that has already imported Gradio and ``AppSpec.preload_modules``, and runs inside the warm parent's box:
  the same walls as a cold start, ~10x faster. One warm parent per (Space, environment, preload modules),
  at most ``RuntimeSettings.max_warm_parents`` (least recently used idle ones go first); a sleeping Space
  keeps only its warm parent. A box holds one app: while the warm parent serves one version, another
  version of the Space starts cold. Used for Gradio Spaces when ``RuntimeSettings.fast_wake`` is on and
  the fork would behave like a cold start (:func:`spaceyard_runtime.zygote.fork_blockers`); otherwise,
  or if the warm parent is not ready or fails, the start is cold and the log line says why. The first
  start of a Space is cold and warms its parent in the background; :meth:`LocalRuntime.prewarm` warms one
  ahead of time. Forked apps also get a quiet Gradio queue (no 1 ms idle poll), unless
  ``quiet_queue=False``.

``start``/``resume`` both go through the above (``resume`` is a fresh start of the same spec, forked when
possible); ``suspend``/``remove`` stop (whatever the app left in its box goes with it); ``forget`` ends a
deleted Space's warm parent; ``aclose`` stops the apps and the warm parents. An app killed for its
memory limit ends with the reason ``out of memory (limit N GiB of flavor X)``.

The app's environment is built from scratch, never from the platform's own ``os.environ``: a minimal
base (``PATH`` with the Space's environment first, a per-Space ``HOME`` and ``TMPDIR`` under
``runtime_dir/spaces/<slug>``, ``LANG``), then ``AppSpec.env``, then what the platform must set (port,
host, ``SYSTEM=spaces``, ``PYTHONPATH``...). Output is read line by line from pipes and handed to the
``log`` sink, for forked apps too (their pipes are passed to the warm parent with ``SCM_RIGHTS``).
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import hashlib
import json
import logging
import os
import signal
import socket
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import hubcache, hubpath
from .api import AppHandle, AppSpec, AppState, AppStatus, Endpoint, LogSink, Runtime
from .errors import AppCrashed, AppStartError
from .hubpath import HubPath
from .readiness import probe_http, wait_for_http
from .sandbox import Box, BoxSpec, Limits, NoSandbox, create_sandbox, space_uid
from .settings import RuntimeSettings
from .zygote import fork_blockers
from .zygote_client import ZYGOTE_SCRIPT, Zygote, ZygoteError

LOG_TAIL_LINES = 40
"""How many of the last output lines an :class:`AppCrashed` carries."""
DRAIN_TIMEOUT = 2.0
"""Seconds to wait for the last output after the process exited (a grandchild may hold the pipe)."""
BASE_PATH = "/usr/local/bin:/usr/bin:/bin"
RUNNABLE_SDKS = ("gradio", "streamlit")
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
ZYGOTE_RETRY_AFTER = 300.0
"""Seconds before trying again to warm a parent for an environment whose warm parent failed."""

logger = logging.getLogger(__name__)


def free_port(host: str) -> int:
    """A port nobody listens on right now (the app binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def startup_banner(now: float | None = None) -> str:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(time.time() if now is None else now))
    return f"===== Application Startup at {stamp} ====="


@dataclass
class LaunchPlan:
    """What to run and how: shared by cold start and fork."""

    argv: list[str]
    """The whole command line of a cold start."""
    app_argv: list[str]
    """``sys.argv`` the app sees."""
    cwd: str
    env: dict[str, str]
    app_path: str
    """Absolute path of the app file."""


@dataclass
class _App:
    """One started app, however it was started."""

    backend_id: str
    pid: int
    mode: str
    log: LogSink
    exited: asyncio.Future[int | None]
    """Exit code (negative: killed by that signal); ``None`` when nobody could tell."""
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=LOG_TAIL_LINES))
    readers: list[asyncio.Task[None]] = field(default_factory=list)
    ready: bool = False
    stop_task: asyncio.Task[None] | None = None
    kill: Callable[[int], None] | None = None
    """Send a signal to the app's whole process group."""
    box: Box | None = None
    """The sandbox the app runs in (a warm parent's, for a forked app)."""
    oom_base: int = 0
    oom: bool = False
    """The kernel killed a process of the app for its memory limit."""

    def emit(self, line: str) -> None:
        self.tail.append(line)
        with contextlib.suppress(Exception):  # a broken sink must not stop the app's output pump
            self.log(line)


async def _pump(fd: int, app: _App) -> None:
    """Read ``fd`` to EOF, handing complete lines (without newline) to the app's log."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=2**20)
    pipe = os.fdopen(fd, "rb", buffering=0)
    transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), pipe)
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    pending = ""
    try:
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                break
            pending += decoder.decode(chunk)
            *lines, pending = pending.split("\n")
            for line in lines:
                app.emit(line.removesuffix("\r"))
        pending += decoder.decode(b"", final=True)
        if pending:
            app.emit(pending.removesuffix("\r"))
    finally:
        transport.close()


def _process_exists(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def _is_left_over_app(pid: int, port: int) -> bool:
    """Whether ``pid`` is still an app this runtime started on ``port`` (not a reused pid)."""
    try:
        if os.getsid(pid) != pid:
            return False
        with open(f"/proc/{pid}/environ", "rb") as f:
            items = f.read().split(b"\0")
    except (OSError, ProcessLookupError):
        return False
    env = dict(item.split(b"=", 1) for item in items if b"=" in item)
    return env.get(b"SYSTEM") == b"spaces" and env.get(b"PORT") == str(port).encode()


def _readable(*dirs: Path) -> None:
    """Let the Space's user into directories the platform made private (0700: exports, environments);
    they are bound read-only into the Space's own box, the only place it can reach them from."""
    for path in dirs:
        with contextlib.suppress(OSError):
            mode = path.stat().st_mode
            if mode & 0o005 != 0o005:
                path.chmod(mode | 0o055)


def _killpg(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


class LocalRuntime(Runtime):
    name = "local"

    @classmethod
    def start_warnings(cls, settings: RuntimeSettings) -> list[str]:
        sandbox = create_sandbox(settings.local_sandbox, settings.data_dir, settings.runtime_dir)
        if isinstance(sandbox, NoSandbox):
            return [
                "local runtime without walls (SPACEYARD_LOCAL_SANDBOX=none): every Space runs as this user, sees its "
                "files and processes and can listen on every interface. Trusted Spaces only (docs/security.md)."
            ]
        try:
            sandbox.check()
        except AppStartError as exc:
            return [f"local runtime: {exc} Apps will fail to start until this is fixed."]
        return []

    def __init__(self, settings: RuntimeSettings, *, quiet_queue: bool = True) -> None:
        """``quiet_queue``: forked Gradio apps get a queue that sleeps until work arrives instead of polling
        every millisecond (:func:`spaceyard_runtime.zygote.quiet_gradio_queue`)."""
        self.settings = settings
        self.quiet_queue = quiet_queue
        self._apps: dict[str, _App] = {}
        self._finished: OrderedDict[str, int | None] = OrderedDict()
        self._seq = 0
        self._zygotes: dict[str, asyncio.Task[Zygote]] = {}
        self._zygote_failures: dict[str, tuple[float, str]] = {}
        self._zygote_used: dict[str, float] = {}
        self._zygote_lineage: dict[str, str] = {}
        self._zygote_boxes: dict[str, Box] = {}
        self.sandbox = create_sandbox(settings.local_sandbox, settings.data_dir, settings.runtime_dir)
        self.sandbox.cleanup()  # whatever a previous platform process on this DATA_DIR left running

    def attach_hub(self, hub: HubPath) -> None:
        self.hub = self.sandbox.hub = hub

    # ------------------------------------------------------------------ plan

    def space_dir(self, spec: AppSpec) -> Path:
        """Per-Space writable directory (holds the app's ``HOME`` and ``TMPDIR``)."""
        return (self.settings.runtime_dir / "spaces" / spec.slug).resolve()

    def base_env(self, artifact: str, home: Path, tmp: Path) -> dict[str, str]:
        home.mkdir(parents=True, exist_ok=True)
        tmp.mkdir(parents=True, exist_ok=True)
        return {
            "PATH": f"{Path(artifact).resolve() / 'bin'}:{BASE_PATH}",
            "HOME": str(home),
            "LANG": "C.UTF-8",
            "TMPDIR": str(tmp),
        }

    def platform_env(self, port: int | None, app_dir: Path | None) -> dict[str, str]:
        """What the platform sets for every app, over the Space's own variables."""
        env = {
            "GRADIO_SERVER_NAME": self.settings.app_host,
            "PYTHONUNBUFFERED": "1",
            "GRADIO_ANALYTICS_ENABLED": "False",
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "SYSTEM": "spaces",
        }
        if port is not None:
            env.update(GRADIO_SERVER_PORT=str(port), PORT=str(port))
        if self.hub is not None and self.sandbox.isolated:  # the relay on the box's loopback (sandbox.py)
            env["HF_ENDPOINT"] = hubpath.endpoint("127.0.0.1", self.hub.port)
        if app_dir is not None:
            env["PYTHONPATH"] = str(Path(app_dir).resolve())
        return env

    def app_env(self, spec: AppSpec, port: int) -> dict[str, str]:
        """The app's whole environment: clean base, then ``spec.env``, then what the platform sets."""
        space = self.space_dir(spec)
        env = self.base_env(spec.artifact, space / "home", space / "tmp")
        env.update(spec.env)
        env.update(self.platform_env(port, spec.app_dir))
        return env

    def plan(self, spec: AppSpec, port: int) -> LaunchPlan:
        if spec.sdk not in RUNNABLE_SDKS:
            raise AppStartError(f"sdk: {spec.sdk} cannot run on the local runtime (only gradio and streamlit)")
        if spec.app_dir is None:
            raise AppStartError("the local runtime needs the Space's checkout (app_dir)")
        python = Path(spec.artifact).resolve() / "bin" / "python"
        if not python.exists():
            raise AppStartError(f"the Space's Python environment is missing ({spec.artifact})")
        app_dir = Path(spec.app_dir).resolve()
        app_path = str(app_dir / spec.app_file)
        if spec.sdk == "gradio":
            argv = [str(python), spec.app_file]
        else:
            argv = [
                str(python),
                "-m",
                "streamlit",
                "run",
                spec.app_file,
                "--server.port",
                str(port),
                "--server.address",
                self.settings.app_host,
                "--server.headless",
                "true",
                "--server.enableXsrfProtection",
                "false",
                "--server.enableCORS",
                "false",
                "--browser.gatherUsageStats",
                "false",
            ]
        return LaunchPlan(
            argv=argv, app_argv=argv[1:], cwd=str(app_dir), env=self.app_env(spec, port), app_path=app_path
        )

    # ------------------------------------------------------------------ start

    def _new_id(self, pid: int) -> str:
        self._seq += 1
        return f"local-{pid}-{self._seq}"

    async def start(self, spec: AppSpec, log: LogSink) -> AppHandle:
        port = self.sandbox.app_port(self.settings.app_host)
        plan = self.plan(spec, port)
        if self.sandbox.isolated:
            _readable(Path(plan.cwd))
        log(startup_banner())
        uid = space_uid(spec.space_id) if self.sandbox.isolated else None
        if added := await asyncio.to_thread(hubcache.install, spec.app_dir, self.space_dir(spec) / "home", uid):
            log(f"Hub cache: {added} preloaded file(s) (preload_from_hub)")
        zygote, reason = self._fork_source(spec, plan)
        app: _App | None = None
        if zygote is not None:
            try:
                app = await self._start_fork(plan, log, zygote)
            except ZygoteError as exc:
                reason = f"fork failed: {exc}"
        if app is None:
            app = await self._start_cold(spec, plan, log, reason)
        return self._register(spec, app, port)

    # ------------------------------------------------------------------ fast wake

    @staticmethod
    def preload_modules(spec: AppSpec) -> list[str]:
        """What the warm parent imports: Gradio, the Space's heavy modules, and ``?``-marked optional ones."""
        return list(dict.fromkeys(["gradio", *spec.preload_modules, *(f"?{m}" for m in GRADIO_LAUNCH_MODULES)]))

    def zygote_key(self, spec: AppSpec) -> str:
        """Identifies a warm parent: the Space (each has its own, inside its own walls), the environment
        (path, and which build of it) and the preload list."""
        path = Path(spec.artifact).resolve()
        try:
            build = os.stat(path).st_ino  # an environment rebuilt in place is a new directory
        except OSError:
            build = 0
        ident = json.dumps([spec.space_id.lower(), str(path), build, self.preload_modules(spec)])
        return hashlib.sha256(ident.encode()).hexdigest()[:16]

    def zygote_env(self, spec: AppSpec) -> dict[str, str]:
        """The warm parent's environment: an app's (the Space's HOME and TMPDIR), without the Space's
        variables, port or code."""
        space = self.space_dir(spec)
        env = self.base_env(spec.artifact, space / "home", space / "tmp")
        env.update(self.platform_env(None, None))
        return env

    # ------------------------------------------------------------------ walls

    def limits(self, spec: AppSpec) -> Limits:
        """The flavor's memory and CPU, scaled by the operator's settings, and the process limit."""
        flavor = spec.flavor
        memory = int(flavor.memory_mib * 2**20 * self.settings.local_memory_scale)
        cpu = flavor.cpu * self.settings.local_cpu_scale
        return Limits(
            flavor=flavor.name,
            memory_bytes=memory or None,
            cpu=cpu or None,
            pids=self.settings.local_pids_limit or None,
        )

    def box_spec(self, spec: AppSpec, kind: str, code: Path) -> BoxSpec:
        """What a box of ``spec`` sees: ``code`` (the checkout, or all of the Space's checkouts for a warm
        parent), its environment and interpreter read-only; its HOME and TMPDIR read-write."""
        env_dir = Path(spec.artifact).resolve()
        python = Path(os.path.realpath(env_dir / "bin" / "python"))
        ro = [code, env_dir]
        _readable(code, env_dir)
        interpreter = python.parents[1]
        if not interpreter.is_relative_to("/usr") and not interpreter.is_relative_to(env_dir):
            ro.append(interpreter)
        if kind == "zygote":
            ro.append(ZYGOTE_SCRIPT.resolve())
        space = self.space_dir(spec)
        return BoxSpec(
            space_id=spec.space_id,
            kind=kind,
            ro=tuple(ro),
            rw=(space / "home", space / "tmp"),
            home=space / "home",
            limits=self.limits(spec),
        )

    def _oom_check(self, app: _App) -> None:
        if app.box is not None and not app.oom and self.sandbox.oom_kills(app.box) > app.oom_base:
            app.oom = True

    @staticmethod
    def _zygote_code(spec: AppSpec) -> Path:
        """What of the Space's code its warm parent sees: all its exported commits
        (``sources/OWNER--NAME``), so that later pushes fork too; else only this commit."""
        if spec.app_dir is None:
            return Path(spec.artifact).resolve()
        app_dir = Path(spec.app_dir).resolve()
        return app_dir.parent if app_dir.parent.name == spec.space_id.replace("/", "--") else app_dir

    def _fork_source(self, spec: AppSpec, plan: LaunchPlan) -> tuple[Zygote | None, str]:
        """A warm parent to fork this app from, or ``None`` and why not."""
        if not self.settings.fast_wake:
            return None, "fast wake is off"
        if spec.sdk != "gradio":
            return None, f"fast wake is for Gradio Spaces, this is {spec.sdk}"
        key = self.zygote_key(spec)
        task = self._zygotes.get(key)
        if task is None:
            failed = self._zygote_failures.get(key)
            if failed and time.monotonic() - failed[0] < ZYGOTE_RETRY_AFTER:
                return None, f"the warm parent for this environment failed: {failed[1]}"
            self._ensure_zygote(spec)
            return None, "no warm parent yet for this environment; warming one up for the next start"
        if not task.done():
            return None, "the warm parent for this environment is still warming up"
        if task.cancelled() or task.exception() is not None:
            return None, "the warm parent for this environment failed"
        zygote = task.result()
        if not zygote.alive:
            self._zygotes.pop(key, None)
            self._ensure_zygote(spec)
            return None, "the warm parent for this environment exited; warming a new one"
        self._zygote_used[key] = time.monotonic()
        if self.sandbox.isolated and zygote.busy:
            return None, "the Space's warm parent is serving another version of it"
        box = self._zygote_boxes.get(key)
        if box is not None and self.sandbox.isolated and not any(Path(plan.cwd).is_relative_to(p) for p in box.spec.ro):
            return None, "this commit is outside the warm parent's view"
        blockers = fork_blockers(zygote.env, plan.env, zygote.reads, zygote.iterated)
        if blockers:
            return None, "a fork would not behave like a cold start: " + "; ".join(blockers[:3])
        return zygote, ""

    def _ensure_zygote(self, spec: AppSpec) -> asyncio.Task[Zygote]:
        key = self.zygote_key(spec)
        task = self._zygotes.get(key)
        if task is not None and not (task.done() and (task.cancelled() or task.exception() or not task.result().alive)):
            return task
        python = str(Path(spec.artifact).resolve() / "bin" / "python")
        box = self.sandbox.create(self.box_spec(spec, "zygote", self._zygote_code(spec)))
        self._zygote_boxes[key] = box
        home = str(self.space_dir(spec) / "home")
        zygote = Zygote(
            key,
            python,
            self.preload_modules(spec),
            self.zygote_env(spec),
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
                self._zygote_failures[key] = (time.monotonic(), str(exc).splitlines()[-1] if str(exc) else "")
                self._zygotes.pop(key, None)
                logger.warning("warm parent for %s failed: %s", spec.artifact, exc)
                raise
            self._zygote_failures.pop(key, None)
            return zygote

        task = asyncio.ensure_future(warm())
        task.add_done_callback(lambda t: t.cancelled() or t.exception())  # retrieved: no "never retrieved"
        # A warm parent of an earlier build of the same environment path (same preload modules) imported
        # files that are gone: it goes.
        lineage = json.dumps([spec.space_id.lower(), python, self.preload_modules(spec)])
        for other, old in list(self._zygote_lineage.items()):
            if old == lineage and other != key:
                self._drop_warm_parent(other)
        self._zygotes[key] = task
        self._zygote_lineage[key] = lineage
        self._zygote_used[key] = time.monotonic()
        self._bound_warm_parents()
        return task

    def _idle(self, key: str) -> bool:
        task = self._zygotes.get(key)
        if task is None or not task.done():
            return task is None
        return task.cancelled() or task.exception() is not None or not task.result().busy

    def _bound_warm_parents(self) -> None:
        """At most ``max_warm_parents``: the least recently used idle ones go (a busy one serves an app that
        lives in its sandbox: it stays until that app ends)."""
        while len(self._zygotes) > max(self.settings.max_warm_parents, 0):
            idle = [k for k in self._zygotes if self._idle(k)]
            if not idle:
                return
            self._drop_warm_parent(min(idle, key=lambda k: self._zygote_used.get(k, 0.0)))

    def _drop_warm_parent(self, key: str) -> None:
        """Close a warm parent and its sandbox. In a sandbox its forked app dies with it: only idle ones go."""
        task = self._zygotes.get(key)
        if task is not None and self.sandbox.isolated and not self._idle(key):
            return
        self._zygotes.pop(key, None)
        self._zygote_used.pop(key, None)
        self._zygote_lineage.pop(key, None)
        box = self._zygote_boxes.pop(key, None)
        if task is None:
            return

        async def close() -> None:
            with contextlib.suppress(BaseException):
                await (await task).close()
            if box is not None:
                await self.sandbox.destroy(box)

        asyncio.ensure_future(close())

    async def forget(self, space_id: str) -> None:
        """End the Space's warm parents (and their sandboxes)."""
        prefix = json.dumps([space_id.lower()])[:-1] + ","
        for key, lineage in list(self._zygote_lineage.items()):
            if lineage.startswith(prefix):
                task = self._zygotes.pop(key, None)
                self._zygote_used.pop(key, None)
                self._zygote_lineage.pop(key, None)
                box = self._zygote_boxes.pop(key, None)
                if task is not None:
                    with contextlib.suppress(BaseException):
                        await (await task).close()
                if box is not None:
                    await self.sandbox.destroy(box)

    async def prewarm(self, spec: AppSpec) -> bool:
        """Warm the parent that ``spec``'s apps fork from, and wait for it. ``True`` when it is ready.

        Optional: without it the first start of an environment is cold and warms the parent for the next.
        """
        if not self.settings.fast_wake or spec.sdk != "gradio":
            return False
        try:
            zygote = await asyncio.shield(self._ensure_zygote(spec))
        except ZygoteError:
            return False
        return zygote.alive

    async def _start_fork(self, plan: LaunchPlan, log: LogSink, zygote: Zygote) -> _App:
        box = self._zygote_boxes.get(zygote.key)
        oom_base = self.sandbox.oom_kills(box) if box is not None else 0
        preloaded = ", ".join(m for m in zygote.preload if not m.startswith("?"))
        log(f"Fork: from the warm parent (pid {zygote.pid}, {preloaded} already imported)")
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        request = {
            "argv": plan.app_argv,
            "orig_argv": plan.argv,
            "cwd": plan.cwd,
            "env": plan.env,
            "app_path": plan.app_path,
            "quiet_queue": self.quiet_queue,
        }
        try:
            pid, exited = await zygote.fork(request, out_w, err_w)
        except BaseException:
            os.close(out_r)
            os.close(err_r)
            raise
        finally:
            os.close(out_w)
            os.close(err_w)
        app = _App(backend_id=self._new_id(pid), pid=pid, mode="fork", log=log, exited=exited, box=box)
        app.oom_base = oom_base
        app.kill = lambda sig: zygote.signal_child(pid, sig)

        def ended(_: asyncio.Future[int | None]) -> None:
            self._oom_check(app)
            if box is not None and not box.destroyed:  # what the app left (setsid children...) goes with it
                self.sandbox.signal(box, signal.SIGKILL, keep=(2,))
            if zygote.key not in self._zygotes:  # dropped while it served this app
                asyncio.ensure_future(zygote.close())
            self._bound_warm_parents()

        exited.add_done_callback(ended)
        for line in zygote.preload_output:  # a cold start would have printed these while importing
            app.emit(line)
        self._attach_pipes(app, [out_r, err_r])
        return app

    def _register(self, spec: AppSpec, app: _App, port: int) -> AppHandle:
        self._apps[app.backend_id] = app
        return AppHandle(
            spec=spec,
            endpoint=Endpoint(self.settings.app_host, port, app.box.netns if app.box else None),
            backend_id=app.backend_id,
            started_at=time.time(),
            start_mode=app.mode,
            extra={"pid": app.pid},
        )

    def _attach_pipes(self, app: _App, fds: list[int]) -> None:
        app.readers = [asyncio.ensure_future(_pump(fd, app)) for fd in fds]

    async def _start_cold(self, spec: AppSpec, plan: LaunchPlan, log: LogSink, reason: str = "") -> _App:
        why = f" ({reason})" if reason else ""
        log(f"Cold start: {' '.join(os.path.basename(a) if i == 0 else a for i, a in enumerate(plan.argv))}{why}")
        box = self.sandbox.create(self.box_spec(spec, "app", Path(plan.cwd)))
        argv, pass_fds = self.sandbox.command(box, plan.argv, plan.cwd)
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                cwd=plan.cwd,
                env=plan.env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out_w,
                stderr=err_w,
                start_new_session=True,
                close_fds=True,
                pass_fds=pass_fds,
            )
        except OSError as exc:
            for fd in (out_r, err_r):
                os.close(fd)
            await self.sandbox.destroy(box)
            raise AppStartError(f"could not start the app: {exc}") from exc
        finally:
            for fd in (out_w, err_w, *pass_fds):
                os.close(fd)
        loop = asyncio.get_running_loop()
        app = _App(
            backend_id=self._new_id(proc.pid), pid=proc.pid, mode="cold", log=log, exited=loop.create_future(), box=box
        )
        app.oom_base = box.oom_base

        def kill(sig: int) -> None:
            self.sandbox.signal(box, sig)

        app.kill = kill
        self._attach_pipes(app, [out_r, err_r])
        try:
            await self.sandbox.started(box, proc.pid)
        except AppStartError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            await self._drain(app)
            await self.sandbox.destroy(box)
            raise AppStartError("the app's sandbox did not come up: " + " / ".join(list(app.tail)[-3:])) from None

        async def reap() -> None:
            code = await proc.wait()
            self._oom_check(app)
            await self.sandbox.destroy(box)  # anything the app left behind goes with it
            if not app.exited.done():
                app.exited.set_result(code)

        app.readers.append(asyncio.ensure_future(reap()))
        return app

    # ------------------------------------------------------------------ lifecycle

    def _get(self, handle: AppHandle) -> _App | None:
        return self._apps.get(handle.backend_id)

    async def _drain(self, app: _App) -> None:
        if app.readers:
            _, pending = await asyncio.wait(app.readers, timeout=DRAIN_TIMEOUT)
            for task in pending:
                task.cancel()

    def _exit_reason(self, app: _App, code: int | None) -> str:
        self._oom_check(app)
        if app.oom and app.box is not None:
            return f"the app ran {app.box.spec.limits.oom_message()}"
        return f"exited with code {code}" if code is not None else "exited (exit code unknown)"

    async def _crashed(self, app: _App, when: str) -> AppCrashed:
        await self._drain(app)
        code = app.exited.result()
        tail = "\n".join(app.tail)
        reason = self._exit_reason(app, code)
        message = reason if app.oom else f"the app {reason} {when}"
        return AppCrashed(message, exit_code=code, log_tail=tail)

    async def wait_ready(self, handle: AppHandle, timeout: float) -> None:
        app = self._get(handle)
        if app is None:
            code = self._finished.get(handle.backend_id)
            raise AppCrashed("the app is not running", exit_code=code)
        host, port = handle.endpoint.host, handle.endpoint.port
        interval = self.settings.readiness_interval
        if not await wait_for_http(host, port, app.exited, timeout, interval, handle.endpoint.netns):
            raise await self._crashed(app, "before answering HTTP")
        app.ready = True

    async def stop(self, handle: AppHandle, grace: float = 5.0) -> None:
        app = self._get(handle)
        if app is None:
            return
        if app.stop_task is None:
            app.stop_task = asyncio.ensure_future(self._stop(app, grace))
        await asyncio.shield(app.stop_task)

    async def _stop(self, app: _App, grace: float) -> None:
        assert app.kill is not None
        if not app.exited.done():
            app.kill(signal.SIGTERM)
            try:
                await asyncio.wait_for(asyncio.shield(app.exited), grace)
            except TimeoutError:
                app.kill(signal.SIGKILL)
                await app.exited
        app.kill(signal.SIGKILL)  # whatever the app left behind in its group
        await self._drain(app)
        self._apps.pop(app.backend_id, None)
        self._finished[app.backend_id] = app.exited.result()
        while len(self._finished) > 1000:
            self._finished.popitem(last=False)

    async def poll(self, handle: AppHandle) -> AppStatus:
        app = self._get(handle)
        if app is None:
            code = self._finished.get(handle.backend_id)
            return AppStatus(AppState.EXITED, exit_code=code, message="stopped" if code is not None else "unknown")
        if app.exited.done():
            code = app.exited.result()
            return AppStatus(AppState.EXITED, exit_code=code, message=self._exit_reason(app, code))
        return AppStatus(AppState.RUNNING if app.ready else AppState.STARTING)

    def get_state(self, handle: AppHandle) -> dict[str, Any]:
        state = super().get_state(handle)
        state.update(pid=handle.extra.get("pid"), start_mode=handle.start_mode)
        return state

    async def load_state(self, spec: AppSpec, state: dict[str, Any], log: LogSink) -> AppHandle | None:
        """Local apps are not re-attached: their output went to pipes of the previous platform process.

        Always ``None``. An app that process left running (same pid, port and session, still ours) is
        stopped, so that it does not hold its port and memory forever; the platform starts a new one.
        """
        pid, port = state.get("pid"), state.get("port")
        if isinstance(pid, int) and isinstance(port, int) and _is_left_over_app(pid, port):
            _killpg(pid, signal.SIGTERM)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self.settings.stop_grace
            while _process_exists(pid) and loop.time() < deadline:
                await asyncio.sleep(0.05)
            _killpg(pid, signal.SIGKILL)
        return None

    async def aclose(self) -> None:
        """Stop every app this runtime started, then the warm parents."""
        apps = list(self._apps.values())
        await asyncio.gather(*(self._stop_app(a) for a in apps), return_exceptions=True)
        tasks = list(self._zygotes.values())
        self._zygotes.clear()
        for task in tasks:
            if not task.done():
                task.cancel()
            with contextlib.suppress(BaseException):
                await task
            if task.done() and not task.cancelled() and task.exception() is None:
                await task.result().close()
        boxes = list(self._zygote_boxes.values())
        self._zygote_boxes.clear()
        for box in boxes:
            await self.sandbox.destroy(box)
        if not self._apps:
            self.sandbox.close()

    async def _stop_app(self, app: _App) -> None:
        if app.stop_task is None:
            app.stop_task = asyncio.ensure_future(self._stop(app, self.settings.stop_grace))
        await app.stop_task


__all__ = ["LaunchPlan", "LocalRuntime", "free_port", "probe_http", "startup_banner"]
