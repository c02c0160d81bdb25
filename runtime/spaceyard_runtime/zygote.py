"""Warm parent ("zygote") for fast wake: imports Gradio once, then forks apps on request.

Run as a script, by path, with the *Space environment's* interpreter::

    <env>/bin/python /path/to/zygote.py FD [MODULE ...]

``FD`` is one end of a ``SOCK_SEQPACKET`` socketpair whose other end the runtime keeps. Until the
preload modules are imported this file uses the standard library only (spaceyard is not installed in
the Space's environment). The runtime imports this module too, for the tables below.

Protocol, one JSON object per packet:

* zygote -> runtime, once: ``{"type": "hello", "pid", "python", "preload_seconds", "threads", "reads",
  "iterated"}`` or ``{"type": "error", "message"}``. ``reads`` maps every environment variable read while
  importing the preload modules to ``[value or null, [reading modules]]``; ``iterated`` lists the modules
  that iterated over the whole environment. The runtime uses them to decide whether a fork behaves like a
  cold start (see :func:`fork_blockers`).
* runtime -> zygote: ``{"signal": N, "pid": P}`` (after the 8-byte header, no fds): signal child ``P``
  (and its process group) with ``N``; pids are the zygote's own (it may run in a pid namespace).
* runtime -> zygote: an 8-byte request id, then ``{"argv", "cwd", "env", "app_path", "quiet_queue"}``,
  with the child's stdout and stderr write ends attached (``SCM_RIGHTS``), and optionally a third fd: a
  pipe on which the child writes one byte once its HTTP server listens (uvicorn's ``Server.startup``
  returned with ``started``), or which it closes without a byte if it cannot tell (readiness by
  announcement instead of probing, :func:`_announce_ready`). Only the child parses it; the
  zygote wipes its copy after forking (a later child must not find an earlier Space's secrets in memory).
* zygote -> runtime: ``{"type": "forked", "id", "pid"}`` or ``{"type": "fork_failed", "id", "message"}``;
  later ``{"type": "exit", "pid", "code"}`` when the zygote reaped the child (``code`` like
  ``Popen.returncode``: negative for a signal).

The zygote exits when the runtime closes its end. The child: new session, Python's startup signal
dispositions, the fds, ``os.environ`` replaced entirely, cwd, ``sys.argv``, ``sys.path`` as
``python app.py`` would set them, environment-derived module constants recomputed (:data:`REFRESH`),
random generators reseeded, then ``runpy.run_path(app, run_name="__main__")`` and a normal interpreter
exit with the app's status. ``MODULE`` arguments starting with ``?`` are optional (not installed: skipped).

What still differs from a cold start, by nature of fork:

* the str hash secret and the address-space layout (ASLR) are the warm parent's, shared by every app
  forked from it. The local runtime keeps one warm parent per Space, inside that Space's sandbox, so
  only successive runs of the same Space share them;
* ``/proc/PID/cmdline`` shows the warm parent's command line (``sys.argv``/``sys.orig_argv`` are right);
* environment variables read by C code when the preload modules loaded are not observed, except the
  known ones in :data:`EXEC_TIME_PREFIXES` (a difference there means a cold start);
* objects created while preloading are frozen (``gc.freeze``), never collected in the child.
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__":  # `python zygote.py` put our own folder first on sys.path: never import from it
    _here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _here]

import array
import contextlib
import gc
import importlib
import json
import runpy
import selectors
import signal
import socket
import struct
import threading
import time
import traceback
from collections.abc import Iterator
from types import ModuleType, TracebackType
from typing import Any

MAX_PACKET = 1 << 20
HEADER = struct.Struct("!Q")
"""A fork request is this header (the request id) followed by the JSON request."""
FD_SIZE = array.array("i").itemsize


def _forget(buffer: bytearray, size: int) -> None:
    buffer[:size] = bytes(size)


REFRESH: dict[str, tuple[str, ...] | None] = {
    "huggingface_hub.constants": None,
    "gradio.oauth": ("OAUTH_CLIENT_ID", "OAUTH_CLIENT_SECRET", "OAUTH_SCOPES", "OPENID_PROVIDER_URL"),
    "gradio.node_server": ("INITIAL_PORT_VALUE", "TRY_NUM_PORTS", "LOCALHOST_NAME", "GRADIO_LOCAL_DEV_MODE"),
    "gradio.route_utils": ("DEFAULT_TEMP_DIR",),
    "gradio.mcp": ("DEFAULT_TEMP_DIR",),
    "gradio.screen_recording_utils": ("DEFAULT_TEMP_DIR",),
    "gradio_client.client": ("DEFAULT_TEMP_DIR",),
    "fsspec.config": ("default_conf_dir", "conf_dir"),
}
"""Modules whose import-time environment reads a child recomputes: the module-level assignments of
these names (``None``: every module-level assignment) are executed again in the module's namespace with
the child's environment, and other modules that imported the old values get the new ones."""

HARMLESS = frozenset({"sysconfig", "tempfile", "shutil", "pydub.utils", "zoneinfo._tzpath", "ssl"})
"""Modules whose import-time reads leave nothing behind that the child's behaviour depends on, or that
the child resets itself (``tempfile``'s cached directory, the time zone)."""

ITERATED: dict[str, tuple[str, ...]] = {
    "fsspec.config": ("FSSPEC_",),
    "tqdm.utils": ("TQDM_",),
    "urllib.request": ("REQUEST_METHOD", "*_proxy"),
}
"""Modules known to iterate over the whole environment at import, and the variables they care about
(``*_proxy``: any name ending so, any case). A variable they do not care about does not count as read by
them; a module that iterates and is not listed here counts as reading everything."""

EXEC_TIME_PREFIXES = (
    "PYTHON",
    "LD_",
    "MALLOC_",
    "GLIBC_TUNABLES",
    "LC_",
    "LANG",
    "OMP_",
    "OPENBLAS_",
    "MKL_",
    "GOTO_",
)
"""Read by the interpreter or C libraries when the process starts or loads them, not through os.environ:
they must be equal in the zygote and the child (``PYTHONPATH`` excepted: the child sets ``sys.path``)."""


def _cares(module: str, key: str) -> bool:
    patterns = ITERATED.get(module)
    if patterns is None:
        return True
    for pattern in patterns:
        if pattern.startswith("*"):
            if key.lower().endswith(pattern[1:].lower()):
                return True
        elif key.startswith(pattern):
            return True
    return False


def fork_blockers(
    zygote_env: dict[str, str], child_env: dict[str, str], reads: dict[str, Any], iterated: list[str]
) -> list[str]:
    """Why a child with ``child_env`` would not behave like a cold start; empty when a fork is faithful.

    A variable that differs between the zygote's environment and the child's is fine when nothing read it
    while the zygote preloaded, or when every module that read it is refreshed in the child or keeps
    nothing of it (:data:`REFRESH`, :data:`HARMLESS`).
    """
    blockers: list[str] = []
    for key in sorted(set(zygote_env) | set(child_env)):
        if key == "PYTHONPATH" or zygote_env.get(key) == child_env.get(key):
            continue
        if key.startswith(EXEC_TIME_PREFIXES):
            blockers.append(f"{key} is read when Python starts")
            continue
        readers = set(reads.get(key, (None, []))[1]) | set(iterated)
        bad = sorted(m for m in readers if m not in REFRESH and m not in HARMLESS and _cares(m, key))
        if bad:
            blockers.append(f"{key} is read by {', '.join(bad)} at import")
    return blockers


# ---------------------------------------------------------------------------------------- recording


class _RecordingEnviron(os._Environ):  # type: ignore[type-arg,misc]
    """``os.environ`` that notes which module read which variable (installed while preloading)."""

    reads: dict[str, tuple[str | None, set[str]]]
    iterated: set[str]

    @staticmethod
    def _caller() -> str:
        frame = sys._getframe(2)
        skip = ("os", "_collections_abc", "collections.abc", "posixpath", "genericpath", __name__)
        while frame is not None and frame.f_globals.get("__name__", "") in skip:
            frame = frame.f_back  # type: ignore[assignment]
        return str(frame.f_globals.get("__name__", "?")) if frame is not None else "?"

    def __getitem__(self, key: str) -> str:
        try:
            value: str = super().__getitem__(key)
        except KeyError:
            self.reads.setdefault(key, (None, set()))[1].add(self._caller())
            raise
        self.reads.setdefault(key, (value, set()))[1].add(self._caller())
        return value

    def __iter__(self) -> Iterator[str]:
        self.iterated.add(self._caller())
        return super().__iter__()


def _preload(modules: list[str]) -> tuple[dict[str, Any], list[str]]:
    real = os.environ
    rec = _RecordingEnviron(real._data, real.encodekey, real.decodekey, real.encodevalue, real.decodevalue)  # type: ignore[attr-defined]
    rec.reads, rec.iterated = {}, set()
    os.environ = rec  # noqa: B003 (same data: the real environment, observed)
    try:
        for name in modules:
            if name.startswith("?"):  # optional: what the SDK would import later anyway, if present
                with contextlib.suppress(ImportError):
                    importlib.import_module(name[1:])
            else:
                importlib.import_module(name)
    finally:
        os.environ = real  # noqa: B003
    reads = {k: [v, sorted(m)] for k, (v, m) in rec.reads.items()}
    return reads, sorted(rec.iterated)


# ---------------------------------------------------------------------------------------- child


class _Refresh:
    """What a child re-executes, prepared once in the warm parent (its state is the child's at fork): the
    compiled module-level assignments of :data:`REFRESH`, the values they held, and where else those
    values are held (other modules' globals, default arguments in the refreshed packages)."""

    def __init__(self) -> None:
        self.code: list[tuple[dict[str, Any], Any, dict[str, object]]] = []
        """(module namespace, compiled assignments, the assigned names' values before)."""
        self.globals: dict[tuple[str, int], list[dict[str, Any]]] = {}
        """(name, id(old value)) -> namespaces of other modules holding that value under that name."""
        self.defaults: dict[int, list[tuple[Any, int | str]]] = {}
        """id(old value) -> (function, position or keyword) of defaults that are it (only values whose
        identity is their own: see :func:`_own_identity`)."""


def _own_identity(value: object) -> bool:
    """Whether holding this very object says it came from the refreshed assignment. Not for ``None``,
    bools and numbers: the interpreter shares them (every ``False`` default is the same object as
    ``HF_HUB_OFFLINE = False``, every ``10`` the same as ``HF_HUB_ETAG_TIMEOUT = 10``)."""
    return not (value is None or isinstance(value, (bool, int, float, complex)))


_PREPARED: _Refresh | None = None


def _prepare_refresh() -> _Refresh:
    """Parse and compile the refreshed assignments and index their values' holders (in the warm parent)."""
    import ast

    prepared = _Refresh()
    olds: dict[str, dict[int, object]] = {}
    for name, names in REFRESH.items():
        module = sys.modules.get(name)
        path = getattr(module, "__file__", None)
        if module is None or not path or not path.endswith(".py"):
            continue
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), path)
        body: list[ast.stmt] = []
        assigned: set[str] = set()
        for node in tree.body:
            if isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                tnames = [t.id for t in targets if isinstance(t, ast.Name)]
                if tnames and (names is None or any(t in names for t in tnames)):
                    if isinstance(node, ast.AnnAssign) and node.value is None:
                        continue
                    body.append(node)
                    assigned.update(tnames)
        ns = vars(module)
        before = {k: ns[k] for k in assigned if k in ns}
        prepared.code.append((ns, compile(ast.Module(body=body, type_ignores=[]), path, "exec"), before))
        for key, value in before.items():
            olds.setdefault(key, {})[id(value)] = value

    packages = {name.split(".")[0] for name in REFRESH}
    all_olds = {i: v for by_id in olds.values() for i, v in by_id.items() if _own_identity(v)}

    def index_defaults(func: Any) -> None:
        func = getattr(func, "__func__", func)
        for i, d in enumerate(getattr(func, "__defaults__", None) or ()):
            if all_olds.get(id(d)) is d:
                prepared.defaults.setdefault(id(d), []).append((func, i))
        kw = getattr(func, "__kwdefaults__", None)
        if isinstance(kw, dict):
            for k, d in kw.items():
                if all_olds.get(id(d)) is d:
                    prepared.defaults.setdefault(id(d), []).append((func, k))

    for mod_name, module in list(sys.modules.items()):
        mod_ns = getattr(module, "__dict__", None)
        if not isinstance(module, ModuleType) or not isinstance(mod_ns, dict):
            continue
        if mod_name not in REFRESH:
            for key, by_id in olds.items():
                current = mod_ns.get(key, mod_ns)
                if by_id.get(id(current)) is current:
                    prepared.globals.setdefault((key, id(current)), []).append(mod_ns)
        if mod_name.split(".")[0] not in packages:
            continue
        for value in list(mod_ns.values()):
            if getattr(value, "__module__", None) != mod_name:
                continue
            if isinstance(value, type):
                for attr in list(vars(value).values()):
                    index_defaults(attr)
            else:
                index_defaults(value)
    return prepared


def _refresh_modules() -> None:
    """Recompute environment-derived module constants for the child's environment."""
    prepared = _PREPARED if _PREPARED is not None else _prepare_refresh()
    swap: dict[tuple[str, int], object] = {}
    for ns, code, before in prepared.code:
        exec(code, ns)
        for key, old in before.items():
            new = ns.get(key, old)
            if new is not old and old != new:
                swap[(key, id(old))] = new
    conf = sys.modules.get("fsspec.config")
    if conf is not None:  # fsspec reads its config files and FSSPEC_* variables at import
        conf.conf.clear()
        conf.set_conf_files(conf.conf_dir, conf.conf)
        conf.set_conf_env(conf.conf, os.environ)
    for (key, old_id), new in swap.items():  # modules and default arguments that hold an old value get the new one
        for ns in prepared.globals.get((key, old_id), ()):
            if id(ns.get(key)) == old_id:
                ns[key] = new
        for func, where in prepared.defaults.get(old_id, ()):
            if isinstance(where, int):
                defaults = list(func.__defaults__)
                defaults[where] = new
                func.__defaults__ = tuple(defaults)
            else:
                func.__kwdefaults__[where] = new


def _reseed() -> None:
    np_random = sys.modules.get("numpy.random")
    if np_random is not None:
        np_random.seed()  # the legacy global generator was seeded once, in the zygote


QUEUE_IDLE_CAP = 0.5
"""Quiet Gradio queue: the longest an idle queue loop sleeps when nothing wakes it (a safety net only)."""


def quiet_gradio_queue() -> bool:
    """Make an idle Gradio queue sleep until work arrives instead of polling every millisecond.

    Stock ``gradio.queueing.Queue`` loops on ``await asyncio.sleep(self.sleep_when_free)`` (1 ms) while
    it has nothing to do, and its progress loop on a 10 ms sleep: ~1,100 event-loop wake-ups per second
    per idle app. Here both idle sleeps wait on a wake-up that ``Queue.push`` (a new job) and
    ``Queue.process_events`` (a job starts or ends, freeing a worker) trigger, with
    :data:`QUEUE_IDLE_CAP` as a fallback. While jobs run, progress updates keep their own cadence. Applied
    before the app builds its Blocks; ``False`` (nothing changed) if this Gradio does not look as expected.
    """
    import asyncio

    module = sys.modules.get("gradio.queueing")
    queue_cls = getattr(module, "Queue", None)
    real = getattr(module, "asyncio", None)
    needed = ("__init__", "push", "process_events", "start_processing", "start_progress_updates")
    if module is None or queue_cls is None or real is not asyncio or not all(hasattr(queue_cls, n) for n in needed):
        return False
    waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = set()

    class IdleDelay(float):
        queue: Any = None
        busy_delay: float | None = None
        """Progress loop: the stock interval, kept while jobs run."""

    def resolve(future: asyncio.Future[None]) -> None:
        if not future.done():
            future.set_result(None)

    def wake() -> None:
        try:
            current: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            current = None
        for loop, future in list(waiters):
            if loop is current:
                resolve(future)
            elif not loop.is_closed():
                loop.call_soon_threadsafe(resolve, future)

    async def sleep(delay: float, result: Any = None) -> Any:
        if not isinstance(delay, IdleDelay):
            return await asyncio.sleep(delay, result)
        if delay.busy_delay is not None and any(job is not None for job in delay.queue.active_jobs):
            return await asyncio.sleep(delay.busy_delay, result)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        timer = loop.call_later(float(delay), resolve, future)
        entry = (loop, future)
        waiters.add(entry)
        try:
            await future
        finally:
            timer.cancel()
            waiters.discard(entry)
        return result

    class AsyncioWithQuietSleep:
        """``asyncio`` as ``gradio.queueing`` sees it: the same module, but idle sleeps wait for work."""

        def __getattr__(self, name: str) -> Any:
            return getattr(asyncio, name)

    proxy = AsyncioWithQuietSleep()
    proxy.sleep = sleep  # type: ignore[attr-defined]

    original_init = queue_cls.__init__
    original_push = queue_cls.push
    original_process = queue_cls.process_events

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        idle = IdleDelay(max(QUEUE_IDLE_CAP, float(self.sleep_when_free)))
        idle.queue = self
        self.sleep_when_free = idle
        progress = IdleDelay(max(QUEUE_IDLE_CAP, float(self.progress_update_sleep_when_free)))
        progress.queue, progress.busy_delay = self, float(self.progress_update_sleep_when_free)
        self.progress_update_sleep_when_free = progress

    async def push(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return await original_push(self, *args, **kwargs)
        finally:
            wake()

    async def process_events(self: Any, *args: Any, **kwargs: Any) -> Any:
        wake()  # a job started: the progress loop goes back to its own cadence
        try:
            return await original_process(self, *args, **kwargs)
        finally:
            wake()  # a worker is free: the dispatcher may start the next job

    for name, func in (("__init__", __init__), ("push", push), ("process_events", process_events)):
        original = getattr(queue_cls, name)
        func.__name__, func.__qualname__, func.__doc__ = original.__name__, original.__qualname__, original.__doc__
        func.__wrapped__ = original  # type: ignore[attr-defined,union-attr]
        setattr(queue_cls, name, func)
    module.asyncio = proxy  # type: ignore[attr-defined,union-attr]
    return True


def _announce_ready(fd: int) -> None:
    """Write one byte on ``fd`` once the app's uvicorn server listens (the first one to start), then close
    it; close it at once, without a byte, if uvicorn is not there to be watched (the runtime then probes)."""
    os.set_inheritable(fd, False)  # the app's own subprocesses never see it
    module = sys.modules.get("uvicorn.server")
    server_cls = getattr(module, "Server", None)
    original = getattr(server_cls, "startup", None)
    if server_cls is None or original is None:
        os.close(fd)
        return
    pending = [fd]

    async def startup(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return await original(self, *args, **kwargs)
        finally:
            if pending:
                own = pending.pop()
                with contextlib.suppress(OSError):
                    if getattr(self, "started", False):
                        os.write(own, b"1")
                    os.close(own)

    startup.__name__, startup.__qualname__, startup.__doc__ = original.__name__, original.__qualname__, original.__doc__
    startup.__wrapped__ = original  # type: ignore[attr-defined]
    server_cls.startup = startup


_PYTHON_STARTUP_SIGNALS: dict[int, Any] = {
    signal.SIGINT: signal.default_int_handler,
    signal.SIGPIPE: signal.SIG_IGN,
    signal.SIGXFSZ: signal.SIG_IGN,
}


def _reset_signals() -> None:
    """Dispositions of a freshly started Python: default everywhere, except what CPython itself sets."""
    signal.set_wakeup_fd(-1)
    for sig in signal.valid_signals():
        if sig in (signal.SIGKILL, signal.SIGSTOP):
            continue
        with contextlib.suppress(OSError, ValueError):
            signal.signal(sig, _PYTHON_STARTUP_SIGNALS.get(sig, signal.SIG_DFL))
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


def _child(request: dict[str, Any], fds: list[int], keep: list[int]) -> int:
    """In the forked child: become the app. Returns the exit status for ``sys.exit``."""
    os.setsid()
    _reset_signals()
    with contextlib.suppress(OSError), open("/proc/self/oom_score_adj", "w") as f:
        f.write("1000")  # out of memory, the kernel ends the app, not the warm parent
    for fd in keep:
        os.close(fd)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(fds[0], 1)
    os.dup2(fds[1], 2)
    for fd in {devnull, fds[0], fds[1]}:
        if fd > 2:
            os.close(fd)
    ready_fd = fds[2] if len(fds) > 2 else None
    env: dict[str, str] = request["env"]
    os.environ.clear()
    os.environ.update(env)
    os.chdir(request["cwd"])
    app_path: str = request["app_path"]
    sys.argv = list(request["argv"])
    if "orig_argv" in request and hasattr(sys, "orig_argv"):
        sys.orig_argv = list(request["orig_argv"])  # the command line a cold start would have had
    # `python app.py`: the script's folder first, then PYTHONPATH, then the interpreter's own paths.
    # (The zygote took its own folder off sys.path and ran without PYTHONPATH: the rest is the interpreter's.)
    extra = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    sys.path[:] = [os.path.dirname(app_path), *extra, *sys.path]
    import tempfile

    tempfile.tempdir = None
    time.tzset()
    _refresh_modules()
    _reseed()
    if request.get("quiet_queue"):
        quiet_gradio_queue()
    if ready_fd is not None:
        _announce_ready(ready_fd)
    sys.stdout.flush()
    sys.stderr.flush()
    # run_path would set sys.argv[0] to the absolute path; `python app.py` keeps it as typed ("app.py") while
    # __file__ and code paths are absolute. Keep ours.
    runpy._ModifiedArgv0 = _KeepArgv0  # type: ignore[misc,assignment]
    try:
        runpy.run_path(app_path, run_name="__main__")
    except SystemExit as exc:
        return _exit_status(exc.code)
    except KeyboardInterrupt:
        _print_exception(sys.exc_info(), app_path)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        sys.stdout.flush()
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGINT)
        return 130
    except BaseException:
        _print_exception(sys.exc_info(), app_path)
        return 1
    return 0


class _KeepArgv0:
    def __init__(self, value: object) -> None:
        pass

    def __enter__(self) -> None:
        pass

    def __exit__(self, *args: object) -> None:
        pass


def _exit_status(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def _print_exception(
    info: tuple[type[BaseException] | None, BaseException | None, TracebackType | None], app_path: str
) -> None:
    """Print like the interpreter would for ``python app.py``: without our own (runpy) frames."""
    exc_type, exc, tb = info
    start = tb
    while start is not None and start.tb_frame.f_code.co_filename != app_path:
        start = start.tb_next
    if exc_type is not None and exc is not None:
        if start is not None:
            exc.__traceback__ = start  # the hook prints the exception's own traceback
        sys.excepthook(exc_type, exc, exc.__traceback__)


# ---------------------------------------------------------------------------------------- server


def _send(sock: socket.socket, message: dict[str, Any]) -> None:
    sock.sendall(json.dumps(message).encode())


def _exit_code(status: int) -> int:
    return os.waitstatus_to_exitcode(status)


def _signal_child(request: dict[str, Any], children: set[int]) -> None:
    """``{"signal": N, "pid": P}``: signal child ``P``'s process group and ``P`` itself (our children only)."""
    pid, sig = int(request["pid"]), int(request["signal"])
    if pid not in children:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def serve(sock: socket.socket, preload: list[str]) -> int:
    started = time.perf_counter()
    try:
        reads, iterated = _preload(preload)
    except BaseException:
        _send(sock, {"type": "error", "message": traceback.format_exc()})
        return 1
    global _PREPARED
    try:
        _PREPARED = _prepare_refresh()  # once here, not in every child
    except Exception:  # each child prepares its own (slower, the same result)
        _PREPARED = None
    gc.collect()
    gc.freeze()  # keep the preloaded objects out of the children's collections: their pages stay shared
    _send(
        sock,
        {
            "type": "hello",
            "pid": os.getpid(),
            "python": sys.version.split()[0],
            "preload_seconds": round(time.perf_counter() - started, 3),
            "threads": threading.active_count(),
            "reads": reads,
            "iterated": iterated,
            "python_path": sys.path,
        },
    )
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    os.set_blocking(wake_r, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    selector = selectors.DefaultSelector()
    selector.register(sock, selectors.EVENT_READ, "sock")
    selector.register(wake_r, selectors.EVENT_READ, "wake")
    children: set[int] = set()
    buffer = bytearray(MAX_PACKET)
    while True:
        for key, _ in selector.select():
            if key.data == "wake":
                try:
                    while os.read(wake_r, 512):
                        pass
                except BlockingIOError:
                    pass
                continue
            fds: list[int] = []
            size, ancdata, flags, _addr = sock.recvmsg_into([buffer], socket.CMSG_SPACE(16 * FD_SIZE))
            if size == 0:
                return 0  # the runtime went away
            for level, kind, data in ancdata:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fa = array.array("i")
                    fa.frombytes(data[: len(data) - (len(data) % fa.itemsize)])
                    fds.extend(fa)
            (request_id,) = HEADER.unpack_from(buffer)
            if not fds and size > HEADER.size and buffer[HEADER.size : HEADER.size + 10] == b'{"signal":':
                _signal_child(json.loads(bytes(buffer[HEADER.size : size])), children)
                continue
            if size < HEADER.size or len(fds) not in (2, 3) or flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
                for fd in fds:
                    os.close(fd)
                _forget(buffer, size)
                _send(sock, {"type": "fork_failed", "id": request_id, "message": "bad request"})
                continue
            # The request (the app's environment: its secrets) is parsed in the child only, and wiped here
            # right after the fork, so that no later child inherits another Space's data from our memory.
            sys.stdout.flush()
            sys.stderr.flush()
            try:
                pid = os.fork()
            except OSError as exc:
                for fd in fds:
                    os.close(fd)
                _forget(buffer, size)
                _send(sock, {"type": "fork_failed", "id": request_id, "message": str(exc)})
                continue
            if pid == 0:
                selector.close()
                try:
                    request = json.loads(bytes(buffer[HEADER.size : size]))
                    _forget(buffer, size)
                    return _child(request, fds, [sock.detach(), wake_r, wake_w])
                except BaseException:  # the child could not even become the app
                    traceback.print_exc()
                    sys.stderr.flush()
                    os._exit(1)
            _forget(buffer, size)
            for fd in fds:
                os.close(fd)
            children.add(pid)
            _send(sock, {"type": "forked", "id": request_id, "pid": pid})
        while children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            children.discard(pid)
            _send(sock, {"type": "exit", "pid": pid, "code": _exit_code(status)})


def main(argv: list[str]) -> int:
    sock = socket.socket(fileno=int(argv[1]))
    return serve(sock, argv[2:])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
