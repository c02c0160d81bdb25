"""The in-container agent: a Space container's (or pod's) main process, keeping a warm parent and forking the app.

Run with the Space image's own Python (standard library only: spaceyard is not installed there), from the
folder that also holds ``zygote.py`` (the runtime delivers both read-only at ``/opt/spaceyard/``)::

    python /opt/spaceyard/agent.py --control-port PORT [--preload MODULE ...] [--autostart]
        [--quiet-queue] [--setup SHELL] [--health-port PORT [--health-interval S]] [--token TOKEN]
        [--control-host ADDR] [--stop-grace S] -- APP_ARGV...

At start the agent reads its token from ``SPACEYARD_AGENT_TOKEN`` (or, if set, from the file named by
``SPACEYARD_AGENT_TOKEN_FILE``, which it then deletes if it can; or from ``--token``, which it then blanks
in its own command line, ``/proc/PID/cmdline``) and removes every ``SPACEYARD_AGENT_*`` variable from the
environment before anything else starts: the warm parent and the app never get them. ``--token`` keeps the
token out of the container's configured environment, which every process exec'd into it would get.
With ``--preload`` it starts :mod:`zygote` (the warm parent: the modules imported, no app) over a
``SOCK_SEQPACKET`` socketpair; without it every start is cold. ``--autostart`` starts the app at once (as
``POST /app/start`` would, once the warm parent is up or has failed). ``--quiet-queue``: forked Gradio apps
get :func:`zygote.quiet_gradio_queue`. ``--setup``: a shell command run once, before anything else (what an
image's ``sh -c 'SETUP; exec "$@"' sh APP...`` command did before its app: e.g. linking preloaded Hub files
into the cache); its output goes to the container log, and its failure does not stop the agent.
``--health-port``: once the app answered ``GET /`` on that port (of 127.0.0.1), the agent probes it every
``--health-interval`` seconds (30 by default); 3 failures in a row (no answer within the interval or
10 s, whichever is shorter, or a status of 500 or more) mark the run unhealthy, a success healthy again
(what a Docker ``HEALTHCHECK`` did, without a process exec'd into the container that would see its
environment). ``app.healthy`` in ``/status``: ``null`` until the first probe answered, then ``true`` or
``false``.

The app is *forkable* when ``APP_ARGV`` is ``python[3[.N]] SCRIPT.py [ARGS...]``: it forks from the warm
parent with the agent's (scrubbed) environment, working directory and ``sys.argv = APP_ARGV[1:]``, unless
:func:`zygote.fork_blockers` says the fork would not behave like a cold start. Otherwise (``streamlit run``,
``sh -c``..., no warm parent, preload failed) it is executed cold, in a new session. Either way the app's
stdout and stderr are the agent's own (the container log); the agent itself prints nothing there but its
own errors, prefixed ``spaceyard-agent:``.

Protocol: HTTP/1.1 on ``--control-port`` (never the app's), one request per connection; every request
carries ``Authorization: Bearer TOKEN`` (compared in constant time; anything else is ``401``); request
bodies are JSON objects of at most :data:`MAX_BODY` bytes (``413`` beyond, ``400`` if not JSON). Answers
are JSON objects. Instead of the bearer token, a request may be *signed*, so that a client that is not sure who
listens at an address (a pod's address remembered from an earlier look: the pod may be gone and its address
another pod's) never sends the token and learns whether the answer comes from the agent that holds it:
``Authorization: Spaceyard-Signed ts=T,nonce=N,mac=M`` with ``M = signature(token, "request", METHOD,
PATH_AND_QUERY, T, N, sha256_hex(BODY))`` (:func:`signature`), ``T`` the client's Unix time (within
:data:`SIGNED_WINDOW` of the agent's), ``N`` 16-64 letters or digits never used before (the agent remembers
them: no replays); the answer then carries ``X-Spaceyard-Proof: signature(token, "answer", N, STATUS,
sha256_hex(ANSWER_BODY))``. A bad signature is ``401`` like a wrong token:

* ``POST /app/start`` ``{}`` (optional ``"env"``: variables laid over the agent's environment, checked for
  fork blockers; ``"wait_warm"``: seconds to wait for a warming parent, default 60) ->
  ``{"pid", "mode": "fork"|"cold", "reason"}``; ``reason`` says why a start was cold ("" for a fork).
  Idempotent while the app runs (the running app's pid and mode). ``500 {"error"}`` if it cannot start.
* ``POST /app/stop`` ``{"grace": s}`` (default ``--stop-grace``) -> ``{"exit_code"}``: ``SIGTERM`` to the
  app's process group, ``SIGKILL`` after the grace; the warm parent stays (light sleep). ``exit_code`` is
  ``null`` if no app ran.
* ``GET /status`` -> ``{"warm": bool, "warm_error": str, "app": null | {"pid", "running", "exit_code",
  "mode", "started_at", "healthy"}, "warm_private_bytes", "app_private_bytes", "warm_pss_bytes",
  "app_pss_bytes", "agent_private_bytes", "oom_kills"}``: private memory is ``Private_Clean +
  Private_Dirty`` of ``/proc/PID/smaps_rollup`` (the app's: with its descendants; the agent's: its own);
  ``null`` where there is no such process or it cannot be read. ``oom_kills``: how many processes the
  kernel's out-of-memory killer ended in the container's memory cgroup so far (``null`` if unknown).
  ``GET /status?wait=S`` first waits up to ``S`` seconds (at most 600) for the running app to exit: a
  long poll for its end. ``app.announced``: ``true`` once a forked app said that it listens (its HTTP
  server started: the warm parent's readiness pipe, when its ``zygote.py`` has one), ``false`` while it
  has not yet, ``null`` if it will not say (a cold start; then probe it). ``GET /status?ready=S`` first
  waits up to ``S`` seconds for that word (or the app's end). ``memory=0``: no memory read (the byte
  counts ``null``), for an answer as quick as can be (a wake waiting on it).

``exit_code`` is like ``subprocess.Popen.returncode`` (negative: killed by that signal). An app that exits
on its own is recorded, and the agent keeps running: restarting it is the runtime's decision. On
``SIGTERM``/``SIGINT`` the agent stops the app (``--stop-grace``), ends the warm parent and exits with the
status of the app it stopped (0 if none was running). If a warm parent that had come up exits, the next
start warms a new one first (a failed preload is not retried: those starts are cold).

Trust: the app shares the container and its uid with the agent; it may reach the agent (same trust
domain) but should not learn the token. The agent makes itself non-dumpable at start
(``prctl(PR_SET_DUMPABLE, 0)``, through ``ctypes`` when the image has it), so a process of the same uid
can read neither its ``/proc/PID/environ`` (the initial environment, token included) nor its memory; its
children are exec'd and dumpable again, with the token removed from their environment. Run it as the
container's PID 1 (no ``init`` in front of it: an init process would hold the token in its own environment;
the agent reaps orphans itself). The platform keeps other Spaces from reaching the control port (Docker:
per-Space networks; Kubernetes: NetworkPolicy), and the per-container token refuses anyone else who does.
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__":  # only zygote.py from our folder: never shadow the app's modules by ours
    _here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _here]
    sys.path.append(_here)

import argparse
import contextlib
import hashlib
import hmac
import http.server
import json
import re
import select
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.parse
from collections.abc import MutableMapping
from typing import Any

if __package__:
    from . import zygote
else:  # run as a script, beside zygote.py
    import zygote  # type: ignore[no-redef]

MAX_BODY = 64 * 1024
TOKEN_VAR = "SPACEYARD_AGENT_TOKEN"
TOKEN_FILE_VAR = "SPACEYARD_AGENT_TOKEN_FILE"
SCRUB_PREFIX = "SPACEYARD_AGENT_"
PYTHON_NAME = re.compile(r"python(\d+(\.\d+)?)?")
REQUEST_TIMEOUT = 30.0
"""Seconds a control connection may stay silent before it is dropped."""
MAX_WAIT = 600.0
ANNOUNCES = hasattr(zygote, "_announce_ready")
"""This zygote.py lets a forked app announce that it listens (a third fd: a readiness pipe)."""
SIGNED = "Spaceyard-Signed"
"""The ``Authorization`` scheme of a signed request (the token itself never sent; see the module docstring)."""
PROOF_HEADER = "X-Spaceyard-Proof"
SIGNED_WINDOW = 300.0
"""Seconds a signed request's time may differ from the agent's clock (its nonce is remembered that long)."""
MAX_NONCES = 4096


def signature(token: str, *parts: str) -> str:
    """HMAC-SHA256 of ``parts`` (joined by newlines) keyed by the token, in hex: both sides of a signed request."""
    return hmac.new(token.encode(), "\n".join(parts).encode(), hashlib.sha256).hexdigest()


def body_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _log(message: str) -> None:
    print(f"spaceyard-agent: {message}", file=sys.stderr, flush=True)


def take_token(environ: MutableMapping[str, str]) -> str:
    """The token, from the file or the variable; every ``SPACEYARD_AGENT_*`` variable removed from ``environ``."""
    token = environ.get(TOKEN_VAR, "")
    path = environ.get(TOKEN_FILE_VAR, "")
    for key in [k for k in environ if k.startswith(SCRUB_PREFIX)]:
        del environ[key]
    if path:
        with open(path, encoding="utf-8") as f:
            token = f.read().strip()
        with contextlib.suppress(OSError):
            os.unlink(path)
    return token


def blank_argument(secret: str) -> bool:
    """Overwrite ``secret`` in this process's own command line (``/proc/self/cmdline`` reads it from our
    memory: ``arg_start``/``arg_end`` of ``/proc/self/stat``). ``False`` if it could not be done."""
    needle = secret.encode()
    try:
        with open("/proc/self/stat", "rb") as f:
            fields = f.read().rpartition(b")")[2].split()
        start, end = int(fields[45]), int(fields[46])  # fields 48 and 49; the split starts at field 3
        with open("/proc/self/mem", "r+b", buffering=0) as mem:
            mem.seek(start)
            data = mem.read(end - start)
            at = data.find(needle)
            while at >= 0:
                mem.seek(start + at)
                mem.write(b"x" * len(needle))
                at = data.find(needle, at + 1)
        with open("/proc/self/cmdline", "rb") as f:
            return needle not in f.read()
    except (OSError, ValueError, IndexError):
        return False


def no_dump() -> bool:
    """``prctl(PR_SET_DUMPABLE, 0)``: ``/proc/self/{environ,mem,...}`` readable by root only, no ptrace by the
    same uid. ``False`` if it could not be done (no ``ctypes`` in this Python)."""
    try:
        import ctypes

        return bool(ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0) == 0)  # PR_SET_DUMPABLE = 4
    except (ImportError, OSError, AttributeError):
        return False


def oom_kills() -> int | None:
    """Processes the OOM killer ended in our memory cgroup (cgroup v2 ``memory.events``, v1
    ``memory.oom_control``), ``None`` if neither can be read."""
    for path in ("/sys/fs/cgroup/memory.events", "/sys/fs/cgroup/memory/memory.oom_control"):
        try:
            with open(path, encoding="ascii") as f:
                for line in f:
                    name, _, value = line.partition(" ")
                    if name == "oom_kill":
                        return int(value)
        except (OSError, ValueError):
            continue
    return None


def probe(port: int, timeout: float = 10.0) -> bool:
    """``GET /`` on 127.0.0.1:``port`` answers below 500 within ``timeout``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            sock.sendall(
                b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: spaceyard-health\r\nConnection: close\r\n\r\n"
            )
            line = sock.makefile("rb").readline(256).split()
    except OSError:
        return False
    return len(line) >= 2 and line[0].startswith(b"HTTP/") and line[1].isdigit() and int(line[1]) < 500


def memory(pid: int) -> tuple[int, int] | None:
    """(private, PSS) bytes of ``pid`` from ``/proc/PID/smaps_rollup``; ``None`` if it cannot be read."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as f:
            text = f.read()
    except OSError:
        return None
    fields: dict[str, int] = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        parts = rest.split()
        if len(parts) == 2 and parts[1] == "kB":
            fields[name.strip()] = int(parts[0]) * 1024
    if "Pss" not in fields:
        return None
    return fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0), fields["Pss"]


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (by ``/proc/*/stat``'s parent pid)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rpartition(")")[2].split()[1])
        parents.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(parents.get(current, []))
    return found


def tree_memory(pid: int) -> tuple[int, int] | None:
    total: tuple[int, int] | None = None
    for p in descendants(pid):
        m = memory(p)
        if m is not None:
            total = (m[0], m[1]) if total is None else (total[0] + m[0], total[1] + m[1])
    return total


class App:
    """One run of the app."""

    def __init__(self, pid: int, mode: str, pidfd: int) -> None:
        self.pid = pid
        self.mode = mode
        self.pidfd = pidfd
        self.started_at = time.time()
        self.exit_code: int | None = None
        self.ended = threading.Event()
        self.announced: bool | None = None
        """``True``: the app said it listens; ``False``: not yet; ``None``: it will not say (probe it)."""
        self.decided = threading.Event()
        self.answered = False
        """The app answered a health probe once (failures count from then on)."""
        self.failures = 0
        self.healthy: bool | None = None
        """``None`` until the first health probe answered (or without health checks)."""
        self._fd_lock = threading.Lock()

    def running(self) -> bool:
        if self.ended.is_set():
            return False
        with self._fd_lock:
            gone = self.pidfd >= 0 and bool(select.select([self.pidfd], [], [], 0)[0])
        if gone:
            # A forked app ended: its code follows from the warm parent, unless that is gone too.
            if not self.ended.wait(2.0):
                self.end(None)
            return False
        return True

    def read_announcement(self, fd: int) -> None:
        """Thread: the readiness pipe's one byte (it listens), or its end without one (it cannot say)."""
        try:
            data = os.read(fd, 1)
        except OSError:
            data = b""
        finally:
            os.close(fd)
        self.announced = True if data else None
        self.decided.set()

    def wait_announced(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds until the app said it listens, cannot say, or ended."""
        deadline = time.monotonic() + timeout
        while self.announced is False and not self.decided.wait(min(0.1, max(deadline - time.monotonic(), 0))):
            if time.monotonic() >= deadline or not self.running():
                return

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the app to end; whether it did."""
        deadline = time.monotonic() + timeout
        while self.running():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.ended.wait(min(left, 0.1))
        return True

    def end(self, code: int | None) -> None:
        if self.ended.is_set():
            return
        self.exit_code = code
        self.ended.set()
        with self._fd_lock:
            if self.pidfd >= 0:
                with contextlib.suppress(OSError):
                    os.close(self.pidfd)
                self.pidfd = -1

    def describe(self) -> dict[str, Any]:
        running = self.running()
        return {
            "pid": self.pid,
            "running": running,
            "exit_code": self.exit_code,
            "mode": self.mode,
            "started_at": self.started_at,
            "healthy": self.healthy,
            "announced": self.announced,
        }


class Agent:
    def __init__(self, app_argv: list[str], preload: list[str], env: dict[str, str], quiet_queue: bool) -> None:
        self.app_argv = app_argv
        self.preload = preload
        self.env = env
        self.quiet_queue = quiet_queue
        self.lock = threading.RLock()
        self.children = threading.Condition()
        self.app: App | None = None
        self.zygote_proc: subprocess.Popen[bytes] | None = None
        self.zygote_sock: socket.socket | None = None
        self.hello: dict[str, Any] | None = None
        self.warm_error = ""
        self.warm_ready = threading.Event()
        self._replies: dict[int, dict[str, Any]] = {}
        self._reply_cv = threading.Condition()
        self._seq = 0
        self._cold: dict[int, tuple[App, subprocess.Popen[bytes]]] = {}
        self.python = self._python()

    # ------------------------------------------------------------------ warm parent

    def _python(self) -> str | None:
        """The app's interpreter if the app is ``python SCRIPT.py ...``, else ``None`` (not forkable)."""
        argv = self.app_argv
        if len(argv) < 2 or not PYTHON_NAME.fullmatch(os.path.basename(argv[0])):
            return None
        if argv[1].startswith("-") or not argv[1].endswith(".py"):
            return None
        return shutil.which(argv[0], path=self.env.get("PATH", os.defpath))

    def start_warm(self) -> None:
        """Start the warm parent (in the background: the hello arrives on the reader thread)."""
        self.warm_ready.clear()
        if not self.preload:
            self.warm_error = "no preload modules"
            self.warm_ready.set()
            return
        if self.python is None:
            self.warm_error = f"the app is not `python SCRIPT.py` ({' '.join(self.app_argv[:3])})"
            self.warm_ready.set()
            return
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "zygote.py")
        try:
            with self.children:
                self.zygote_proc = subprocess.Popen(
                    [self.python, script, str(theirs.fileno()), *self.preload],
                    env=self.env,
                    stdin=subprocess.DEVNULL,
                    stdout=sys.stderr.fileno(),
                    stderr=sys.stderr.fileno(),
                    pass_fds=(theirs.fileno(),),
                    start_new_session=True,
                )
                self.children.notify_all()
        except OSError as exc:
            ours.close()
            self.warm_error = f"could not start the warm parent: {exc}"
            self.warm_ready.set()
            return
        finally:
            theirs.close()
        self.zygote_sock = ours
        self.hello = None
        self.warm_error = ""
        threading.Thread(target=self._read_zygote, args=(ours,), daemon=True).start()

    def _read_zygote(self, sock: socket.socket) -> None:
        while True:
            try:
                data = sock.recv(zygote.MAX_PACKET)
            except OSError:
                data = b""
            if not data:
                self._zygote_lost(sock, "the warm parent exited")
                return
            message = json.loads(data)
            kind = message.get("type")
            if kind == "hello":
                self.hello = message
                self.warm_ready.set()
            elif kind == "error":
                self.warm_error = str(message.get("message", "preload failed")).strip().splitlines()[-1]
                _log(f"the warm parent could not preload: {self.warm_error}")
                self.warm_ready.set()
            elif kind in ("forked", "fork_failed"):
                with self._reply_cv:
                    self._replies[int(message["id"])] = message
                    self._reply_cv.notify_all()
            elif kind == "exit":
                with self.lock:
                    app = self.app
                if app is not None and app.pid == int(message["pid"]):
                    app.end(int(message["code"]))

    def _zygote_lost(self, sock: socket.socket, reason: str) -> None:
        with self.lock:
            if self.zygote_sock is sock:
                self.zygote_sock = None
                self.hello = None
                if not self.warm_error:
                    self.warm_error = reason
            with contextlib.suppress(OSError):
                sock.close()
        with self._reply_cv:
            self._reply_cv.notify_all()
        self.warm_ready.set()

    @property
    def warm(self) -> bool:
        return self.hello is not None and self.zygote_sock is not None

    def _fork(self, env: dict[str, str]) -> App:
        sock = self.zygote_sock
        assert sock is not None and self.python is not None
        cwd = os.getcwd()
        request = {
            "argv": self.app_argv[1:],
            "orig_argv": self.app_argv,
            "cwd": cwd,
            "env": env,
            "app_path": os.path.join(cwd, self.app_argv[1]),
            "quiet_queue": self.quiet_queue,
        }
        self._seq += 1
        seq = self._seq
        payload = zygote.HEADER.pack(seq) + json.dumps(request).encode()
        fds = [sys.stdout.fileno(), sys.stderr.fileno()]
        ready_r, ready_w = os.pipe() if ANNOUNCES else (-1, -1)
        if ready_w >= 0:  # the child writes a byte once it listens (zygote._announce_ready)
            fds.append(ready_w)
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            sock.sendmsg([payload], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, bytes(_fd_array(fds)))])
            deadline = time.monotonic() + 15.0
            with self._reply_cv:
                while seq not in self._replies:
                    if self.zygote_sock is not sock or time.monotonic() > deadline:
                        raise OSError("the warm parent did not fork")
                    self._reply_cv.wait(0.5)
                reply = self._replies.pop(seq)
            if reply["type"] != "forked":
                raise OSError(str(reply.get("message", "fork failed")))
        except BaseException:
            if ready_r >= 0:
                os.close(ready_r)
            raise
        finally:
            if ready_w >= 0:
                os.close(ready_w)
        pid = int(reply["pid"])
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:
            pidfd = -1
        app = App(pid, "fork", pidfd)
        if ready_r >= 0:
            app.announced = False
            threading.Thread(target=app.read_announcement, args=(ready_r,), daemon=True).start()
        return app

    # ------------------------------------------------------------------ app

    def start_app(self, overlay: dict[str, str], wait_warm: float) -> dict[str, Any]:
        with self.lock:
            if self.app is not None and self.app.running():
                return {"pid": self.app.pid, "mode": self.app.mode, "reason": ""}
            if not self.warm and self.preload and self.python is not None and self.warm_ready.is_set():
                proc = self.zygote_proc
                if self.hello is None and (proc is None or not self._warm_failed_for_good()):
                    self.start_warm()  # it died (or never ran): warm a new one, for the next start
            env = {**self.env, **overlay}
            for key in [k for k in env if k.startswith(SCRUB_PREFIX)]:
                del env[key]
        if not self.warm_ready.is_set():
            self.warm_ready.wait(wait_warm)
        with self.lock:
            if self.app is not None and self.app.running():  # started meanwhile by a concurrent request
                return {"pid": self.app.pid, "mode": self.app.mode, "reason": ""}
            reason = ""
            if not self.warm:
                reason = self.warm_error or "the warm parent is still warming up"
            else:
                assert self.hello is not None
                blockers = zygote.fork_blockers(
                    self.env, env, self.hello.get("reads", {}), self.hello.get("iterated", [])
                )
                if blockers:
                    reason = "a fork would not behave like a cold start: " + "; ".join(blockers[:3])
            if not reason:
                try:
                    self.app = self._fork(env)
                    return {"pid": self.app.pid, "mode": "fork", "reason": ""}
                except OSError as exc:
                    reason = f"the fork failed: {exc}"
            self.app = self._exec(env)
            return {"pid": self.app.pid, "mode": "cold", "reason": reason}

    def _warm_failed_for_good(self) -> bool:
        """A preload that failed fails again: only a warm parent that had come up is re-created."""
        return bool(self.warm_error) and not self.warm_error.startswith("the warm parent exited")

    def _exec(self, env: dict[str, str]) -> App:
        sys.stdout.flush()
        sys.stderr.flush()
        with self.children:
            proc = subprocess.Popen(self.app_argv, env=env, stdin=subprocess.DEVNULL, start_new_session=True)
            app = App(proc.pid, "cold", -1)
            self._cold[proc.pid] = (app, proc)  # the reaper waits for it (and sets its returncode: Popen never does)
            self.children.notify_all()
        return app

    def stop_app(self, grace: float) -> int | None:
        with self.lock:
            app = self.app
        if app is None:
            return None
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
            if not app.running():
                break
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(app.pid, sig)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(app.pid, sig)
            app.wait(wait)
        return app.exit_code

    def status(self, wait: float, ready: float = 0.0, measure: bool = True) -> dict[str, Any]:
        with self.lock:
            app = self.app
        if ready > 0 and app is not None:
            app.wait_announced(min(ready, MAX_WAIT))
        if wait > 0 and app is not None:
            app.wait(min(wait, MAX_WAIT))
        warm_mem = None
        proc = self.zygote_proc
        if measure and self.warm and proc is not None:
            warm_mem = memory(proc.pid)
        app_mem = tree_memory(app.pid) if measure and app is not None and app.running() else None
        own = memory(os.getpid()) if measure else None
        return {
            "warm": self.warm,
            "warm_error": self.warm_error,
            "app": app.describe() if app is not None else None,
            "warm_private_bytes": warm_mem[0] if warm_mem else None,
            "app_private_bytes": app_mem[0] if app_mem else None,
            "warm_pss_bytes": warm_mem[1] if warm_mem else None,
            "app_pss_bytes": app_mem[1] if app_mem else None,
            "agent_private_bytes": own[0] if own else None,
            "oom_kills": oom_kills(),
        }

    def check_health(self, port: int, interval: float, retries: int = 3) -> None:
        """Thread: probe the running app every ``interval`` seconds (every 0.5 s until it first answers)."""
        while True:
            app = self.app
            if app is None or not app.running():
                time.sleep(min(interval, 0.5))
                continue
            ok = probe(port, min(10.0, interval))
            if ok:
                app.answered, app.failures, app.healthy = True, 0, True
            elif app.answered:
                app.failures += 1
                if app.failures >= retries:
                    app.healthy = False
            time.sleep(interval if app.answered else 0.5)

    def reap(self) -> None:
        """Thread: wait for our children (cold apps, the warm parent; orphans too when we are PID 1)."""
        while True:
            try:
                pid, status = os.waitpid(-1, 0)
            except ChildProcessError:
                with self.children:
                    self.children.wait(1.0)
                continue
            except InterruptedError:
                continue
            code = os.waitstatus_to_exitcode(status)
            with self.children:  # held while a child is spawned and recorded
                cold = self._cold.pop(pid, None)
                proc = self.zygote_proc
            if cold is not None:
                cold[1].returncode = code
                cold[0].end(code)
            elif proc is not None and pid == proc.pid:
                proc.returncode = code
                sock = self.zygote_sock
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)

    def shutdown(self, grace: float) -> int:
        app = self.app
        code = self.stop_app(grace) if app is not None and app.running() else None
        sock, proc = self.zygote_sock, self.zygote_proc
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        if code is None:
            return 0
        return 128 - code if code < 0 else code


def _fd_array(fds: list[int]) -> Any:
    import array

    return array.array("i", fds)


# ---------------------------------------------------------------------------------------- HTTP


class Handler(http.server.BaseHTTPRequestHandler):
    server: Server
    protocol_version = "HTTP/1.1"
    timeout = REQUEST_TIMEOUT
    _nonce = ""
    _raw: bytes | None = None

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
        pass  # the container log is the app's

    def _answer(self, code: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        if self._nonce:  # a signed request: prove that this answer comes from the holder of the token
            proof = signature(self.server.token, "answer", self._nonce, str(code), body_digest(data))
            self.send_header(PROOF_HEADER, proof)
        self.end_headers()
        self.wfile.write(data)
        self.close_connection = True

    def _raw_body(self) -> bytes | None:
        """The request's body (read once), ``None`` if its length is not a number or beyond :data:`MAX_BODY`."""
        if self._raw is None:
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
            if length < 0 or length > MAX_BODY:
                return None
            self._raw = self.rfile.read(length) if length else b""
        return self._raw

    def _authorized(self) -> bool:
        self._nonce, self._raw = "", None
        given = self.headers.get("Authorization", "")
        token = self.server.token
        if given.startswith(SIGNED + " "):
            ok = bool(token) and self._signed(given[len(SIGNED) + 1 :])
        else:
            ok = bool(token) and hmac.compare_digest(given.encode(), ("Bearer " + token).encode())
        if not ok:
            self._nonce = ""
            self._answer(401, {"error": "unauthorized"})
        return ok

    def _signed(self, credentials: str) -> bool:
        """``ts=T,nonce=N,mac=M`` with ``M = signature(token, "request", METHOD, PATH, T, N, sha256(body))``,
        ``T`` within :data:`SIGNED_WINDOW` of now and ``N`` not seen before."""
        fields = dict(part.strip().partition("=")[::2] for part in credentials.split(","))
        ts, nonce, mac = fields.get("ts", ""), fields.get("nonce", ""), fields.get("mac", "")
        try:
            skew = abs(time.time() - float(ts))
        except ValueError:
            return False
        raw = self._raw_body()
        if not (skew <= SIGNED_WINDOW and 16 <= len(nonce) <= 64 and nonce.isalnum() and raw is not None):
            return False
        expected = signature(self.server.token, "request", self.command, self.path, ts, nonce, body_digest(raw))
        if not hmac.compare_digest(mac.encode(), expected.encode()) or not self.server.fresh(nonce):
            return False
        self._nonce = nonce
        return True

    def _body(self) -> dict[str, Any] | None:
        raw = self._raw_body()
        if raw is None:
            self._answer(413, {"error": f"the body must be at most {MAX_BODY} bytes"})
            return None
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = None
        if not isinstance(body, dict):
            self._answer(400, {"error": "the body must be a JSON object"})
            return None
        return body

    def do_GET(self) -> None:
        if not self._authorized():
            return
        url = urllib.parse.urlsplit(self.path)
        if url.path != "/status":
            self._answer(404, {"error": "not found"})
            return
        query = urllib.parse.parse_qs(url.query)
        try:
            wait, ready = (float(query.get(name, ["0"])[0]) for name in ("wait", "ready"))
        except ValueError:
            self._answer(400, {"error": "wait and ready must be numbers of seconds"})
            return
        memory = query.get("memory", ["1"])[0] != "0"
        status = self.server.agent.status(wait if wait == wait else 0.0, ready if ready == ready else 0.0, memory)
        self._answer(200, status)

    def do_POST(self) -> None:
        if not self._authorized():
            return
        body = self._body()
        if body is None:
            return
        agent = self.server.agent
        try:
            if self.path == "/app/start":
                overlay = body.get("env") or {}
                if not isinstance(overlay, dict) or not all(
                    isinstance(k, str) and isinstance(v, str) for k, v in overlay.items()
                ):
                    self._answer(400, {"error": "env must map names to strings"})
                    return
                wait_warm = float(body.get("wait_warm", 60.0))
                self._answer(200, agent.start_app(overlay, min(max(wait_warm, 0.0), MAX_WAIT)))
            elif self.path == "/app/stop":
                grace = float(body.get("grace", self.server.stop_grace))
                self._answer(200, {"exit_code": agent.stop_app(min(max(grace, 0.0), MAX_WAIT))})
            else:
                self._answer(404, {"error": "not found"})
        except (TypeError, ValueError) as exc:
            self._answer(400, {"error": str(exc)})
        except OSError as exc:
            _log(f"could not start the app: {exc}")
            self._answer(500, {"error": f"could not start the app: {exc}"})

    def do_PUT(self) -> None:
        if self._authorized():
            self._answer(405, {"error": "method not allowed"})

    do_DELETE = do_PATCH = do_PUT


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], agent: Agent, token: str, stop_grace: float) -> None:
        self.agent = agent
        self.token = token
        self.stop_grace = stop_grace
        self._nonces: dict[str, float] = {}
        self._nonce_lock = threading.Lock()
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.address_family = family
        super().__init__(address, Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away mid-answer (a long poll given up) is no error for the container log."""
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)

    def fresh(self, nonce: str) -> bool:
        """Whether ``nonce`` was not seen within :data:`SIGNED_WINDOW` (and remember it): no replays."""
        now = time.monotonic()
        with self._nonce_lock:
            for seen in [n for n, until in self._nonces.items() if until < now]:
                del self._nonces[seen]
            if nonce in self._nonces or len(self._nonces) >= MAX_NONCES:
                return False
            self._nonces[nonce] = now + 2 * SIGNED_WINDOW
            return True


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="agent.py")
    parser.add_argument("--control-port", type=int, required=True)
    parser.add_argument("--control-host", default="0.0.0.0")
    parser.add_argument("--preload", action="append", default=[])
    parser.add_argument("--autostart", action="store_true")
    parser.add_argument("--quiet-queue", action="store_true")
    parser.add_argument("--stop-grace", type=float, default=5.0)
    parser.add_argument("--setup", default="")
    parser.add_argument("--health-port", type=int, default=0)
    parser.add_argument("--health-interval", type=float, default=30.0)
    parser.add_argument("--token", default="")
    parser.add_argument("app", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    app_argv = args.app[1:] if args.app[:1] == ["--"] else args.app
    if not app_argv:
        parser.error("the app's command line is missing (after --)")
    if not no_dump():
        _log("could not make the agent non-dumpable: processes of its uid can read its token in /proc")
    token = take_token(os.environ)  # type: ignore[arg-type]  # (os._Environ is a MutableMapping)
    if args.token:
        token = args.token
        if not blank_argument(token):
            _log("could not blank --token in the agent's command line: its uid can read it in /proc")
    if not token:
        _log(f"no token ({TOKEN_VAR} or {TOKEN_FILE_VAR}): refusing to serve")
        return 2
    env = dict(os.environ)
    if args.setup:  # before the reaper thread: this wait must not race it
        setup = subprocess.run(["/bin/sh", "-c", args.setup], env=env, stdin=subprocess.DEVNULL, check=False)
        if setup.returncode:
            _log(f"the setup command exited with {setup.returncode}")
    agent = Agent(app_argv, list(args.preload), env, args.quiet_queue)
    server = Server((args.control_host, args.control_port), agent, token, args.stop_grace)
    threading.Thread(target=agent.reap, daemon=True).start()
    if args.health_port and args.health_interval > 0:
        health = (args.health_port, args.health_interval)
        threading.Thread(target=agent.check_health, args=health, daemon=True).start()
    agent.start_warm()
    stopping = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    threading.Thread(target=server.serve_forever, args=(1.0,), daemon=True).start()
    if args.autostart:

        def autostart() -> None:
            try:
                agent.start_app({}, MAX_WAIT)
            except OSError as exc:
                _log(f"could not start the app: {exc}")

        threading.Thread(target=autostart, daemon=True).start()
    while not stopping.wait(3600):
        pass
    server.shutdown()
    return agent.shutdown(args.stop_grace)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
