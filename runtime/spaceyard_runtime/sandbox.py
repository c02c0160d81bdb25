"""Walls around one local process tree (an app or a Space's warm parent): one job, build and track them.

:class:`Sandbox` is the contract, chosen by ``RuntimeSettings.local_sandbox``:

* :meth:`Sandbox.create` prepares a :class:`Box` (its directories, its control groups with the memory,
  CPU and process limits of the Space's flavor) before anything runs in it;
* :meth:`Sandbox.command` wraps a command line so that it runs inside the box, and says which file
  descriptors the spawn must pass (the caller closes them once the spawn is done or failed);
* :meth:`Sandbox.started` is called once the wrapped command was spawned: the box learns where its
  network is (``Box.netns``, for :mod:`spaceyard_runtime.netns`);
* :meth:`Sandbox.signal` signals every process of the box (all of them: a process that called ``setsid``
  or forked a hundred times is still in the box's control group), except the ones named in ``keep``;
* :meth:`Sandbox.oom_kills` counts the processes the kernel killed for the box's memory limit;
* :meth:`Sandbox.destroy` ends everything in the box and removes what :meth:`create` made; idempotent;
* :meth:`Sandbox.cleanup` (at start) ends what a previous platform process left behind, however it died.

:class:`BwrapSandbox` (``bwrap``, the default) runs the command under Debian's ``bubblewrap`` as root, in
new pid, network, IPC, UTS, mount and cgroup namespaces, then drops to the Space's own unprivileged host
uid with ``setpriv`` (no capabilities, ``no_new_privs``, an empty bounding set). The mount namespace holds
a tmpfs root with the system (``/usr``, a few files of ``/etc``, a ``passwd`` naming the Space's user),
its own ``/proc``, a minimal ``/dev``, a private ``/tmp`` and ``/dev/shm``, the paths given read-only
(source, environment, interpreter) and read-write (the Space's ``HOME`` and ``TMPDIR``) at the same paths
as on the host, and nothing else: no ``DATA_DIR``, no other Space, no platform process. The network
namespace has only loopback. ``--die-with-parent`` ties the box to the platform process: when the
platform dies, however, the box dies with it. Control groups (v1 ``memory``, ``cpu``, ``pids``; v2 is
not handled) are created under the platform's own, in a root named after ``DATA_DIR``, so a restarted
platform finds and ends whatever is left there (:meth:`cleanup`).

:class:`NoSandbox` (``none``) runs commands as they are, as the platform's user, on the host's network:
only for trusted Spaces, or machines without root or bubblewrap (``docs/security.md``).
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import hashlib
import itertools
import json
import logging
import os
import shutil
import signal as signals
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import netns, procmem
from .errors import AppStartError
from .flavors import oom_message
from .hubpath import HubListener, HubPath

logger = logging.getLogger(__name__)

UID_BASE = 20_000_000
UID_RANGE = 1 << 24
"""Each Space runs as host uid ``UID_BASE + hash(space id) % UID_RANGE`` (and the same gid): no account on
the machine, no other Space (but for a hash collision, about 1 in 8,000 for 2,000 Spaces)."""
APP_PORT = 7860
"""Where a sandboxed app listens, on its own loopback (as on the Hub)."""
ETC_FILES = (
    "/etc/ssl",
    "/etc/ca-certificates",
    "/etc/resolv.conf",
    "/etc/hosts",
    "/etc/nsswitch.conf",
    "/etc/host.conf",
    "/etc/gai.conf",
    "/etc/protocols",
    "/etc/services",
    "/etc/localtime",
    "/etc/timezone",
    "/etc/mime.types",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/alternatives",
    "/etc/fonts",
)
"""What of the host's ``/etc`` a box sees (read-only): certificates, name resolution, time zone, MIME
types, the dynamic linker's cache. Nothing with credentials."""
CONTROLLERS = ("memory", "cpu", "pids")
SHELL_JOIN = 'n=$1; shift; while [ "$n" -gt 0 ]; do echo $$ > "$1" || exit 125; shift; n=$((n-1)); done; exec "$@"'
"""``sh -c`` script: move itself into the box's control groups (``cgroup.procs`` paths), then exec the rest."""
DESTROY_WAIT = 5.0


def free_port(host: str) -> int:
    """A port nobody listens on right now (the app binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def space_uid(space_id: str) -> int:
    digest = hashlib.sha256(space_id.lower().encode()).digest()
    return UID_BASE + int.from_bytes(digest[:8], "big") % UID_RANGE


@dataclass(frozen=True)
class Limits:
    """What the box may use; ``None``: no limit."""

    flavor: str = ""
    memory_bytes: int | None = None
    cpu: float | None = None
    pids: int | None = None

    def oom_message(self) -> str:
        return oom_message(self.flavor, self.memory_bytes or 0)


@dataclass(frozen=True)
class BoxSpec:
    space_id: str
    kind: str
    """``app`` or ``zygote`` (only in names)."""
    ro: tuple[Path, ...] = ()
    """Paths the box sees read-only, at the same place."""
    rw: tuple[Path, ...] = ()
    """Directories the box may write (created, owned by the Space's user)."""
    home: Path | None = None
    limits: Limits = field(default_factory=Limits)
    mounts: tuple[tuple[Path, str], ...] = ()
    """Host directories bound read-write at another path inside the box (the Space's ``/data``)."""
    hub_cache: Path | None = None
    """The Space's Hugging Face cache view (:func:`spaceyard_runtime.hubpath.cache_view`, one of ``ro``):
    the relay served in the box fills it."""


@dataclass
class Box:
    spec: BoxSpec
    name: str
    uid: int
    cgroups: list[Path] = field(default_factory=list)
    netns: str | None = None
    """Token of the box's network namespace (:mod:`spaceyard_runtime.netns`); ``None``: the host's."""
    init_pid: int | None = None
    """Host pid of the box's pid 1."""
    leader_pid: int | None = None
    """Host pid of the process the runtime spawned."""
    oom_base: int = 0
    destroyed: bool = False
    hub: HubListener | None = None
    """The Hub relay served inside the box's network (:mod:`spaceyard_runtime.hubpath`)."""
    _info_r: int | None = None


class Sandbox(abc.ABC):
    """Walls around one local process tree. See the module docstring for the contract."""

    name = "abstract"
    isolated = False
    """Whether boxes have their own network (endpoints carry ``netns``) and their own pid namespace."""
    hub: HubPath | None = None
    """Served on ``127.0.0.1:hub.port`` inside each isolated box's network once it exists."""

    @abc.abstractmethod
    def create(self, spec: BoxSpec) -> Box: ...

    @abc.abstractmethod
    def command(self, box: Box, argv: list[str], cwd: str) -> tuple[list[str], tuple[int, ...]]: ...

    async def started(self, box: Box, leader_pid: int) -> None:
        box.leader_pid = leader_pid

    def exec_env(self, env: dict[str, str], cwd: str) -> dict[str, str]:
        """The environment a process that :meth:`command` starts with ``env`` in ``cwd`` ends up with (what
        the walls add), for an app forked inside a box to get the same. Default: ``env``."""
        return env

    @abc.abstractmethod
    def signal(self, box: Box, sig: int, keep: tuple[int, ...] = ()) -> int: ...

    def oom_kills(self, box: Box) -> int:
        return 0

    def pids(self, box: Box) -> list[int]:
        """Host pids of the box's processes (to measure what it costs). Default: the leader's tree."""
        return procmem.tree(box.leader_pid) if box.leader_pid is not None else []

    @abc.abstractmethod
    async def destroy(self, box: Box) -> None: ...

    def cleanup(self) -> int:
        return 0

    def check(self) -> None:
        """Raise :class:`AppStartError` saying what this machine lacks for these walls. Default: nothing."""

    def close(self) -> None:
        """The runtime shuts down (after destroying its boxes): remove what is left empty. Default: nothing."""

    def app_port(self, host: str) -> int:
        return free_port(host)


class NoSandbox(Sandbox):
    """Commands run as they are, as the platform's user, on the host's network. Trusted Spaces only."""

    name = "none"

    def create(self, spec: BoxSpec) -> Box:
        for path in spec.rw:
            path.mkdir(parents=True, exist_ok=True)
        return Box(spec=spec, name=f"{spec.kind}", uid=os.getuid())

    def command(self, box: Box, argv: list[str], cwd: str) -> tuple[list[str], tuple[int, ...]]:
        return argv, ()

    def signal(self, box: Box, sig: int, keep: tuple[int, ...] = ()) -> int:
        """The leader's process group; nothing for a warm parent's box (``keep``: its children are
        signalled one by one by the warm parent)."""
        if box.leader_pid is None or keep:
            return 0
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(box.leader_pid, sig)
            return 1
        return 0

    async def destroy(self, box: Box) -> None:
        box.destroyed = True


def _own_cgroup(controller: str) -> str:
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, names, path = line.rstrip("\n").split(":", 2)
            if controller in names.split(","):
                return path.lstrip("/")
    return ""


def _nspids(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("NSpid:"):
                    return [int(x) for x in line.split()[1:]]
    except (OSError, ValueError):
        pass
    return []


async def _read_json(fd: int, timeout: float) -> bytes:
    """Read ``fd`` (closing it) until it holds one whole JSON document, EOF, or ``timeout``."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(fd, "rb", buffering=0)
    )
    data = b""
    deadline = loop.time() + timeout
    try:
        while loop.time() < deadline:
            try:
                chunk = await asyncio.wait_for(reader.read(4096), deadline - loop.time())
            except TimeoutError:
                break
            if not chunk:
                break
            data += chunk
            with contextlib.suppress(ValueError):
                json.loads(data)
                break
    finally:
        transport.close()
    return data


def _procs(cgroup: Path) -> list[int]:
    try:
        return [int(x) for x in (cgroup / "cgroup.procs").read_text().split()]
    except (OSError, ValueError):
        return []


class BwrapSandbox(Sandbox):
    """bubblewrap namespaces + an unprivileged uid per Space + cgroup v1 limits (module docstring)."""

    name = "bwrap"
    isolated = True
    _seq = itertools.count(1)

    def __init__(self, data_dir: Path, runtime_dir: Path, cgroup_root: Path = Path("/sys/fs/cgroup")) -> None:
        self.runtime_dir = runtime_dir
        self.tag = "spaceyard-" + hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:12]
        self.cgroup_root = cgroup_root
        self.bwrap = shutil.which("bwrap")
        self.setpriv = shutil.which("setpriv")

    # ------------------------------------------------------------------ checks

    def check(self) -> None:
        """Raise :class:`AppStartError` saying what is missing to build walls on this machine."""
        problems = []
        if os.geteuid() != 0:
            problems.append("the platform does not run as root")
        if not self.bwrap:
            problems.append("bubblewrap (bwrap) is not installed")
        if not self.setpriv:
            problems.append("setpriv (util-linux) is not installed")
        for controller in CONTROLLERS:
            if not (self.cgroup_root / controller / "cgroup.procs").exists():
                problems.append(f"no cgroup v1 {controller} controller at {self.cgroup_root / controller}")
        if problems:
            raise AppStartError(
                "the local sandbox cannot run here: " + "; ".join(problems) + ". Set SPACEYARD_LOCAL_SANDBOX=none to "
                "run Spaces without walls (trusted Spaces only), or use the docker runtime."
            )

    def _roots(self) -> list[Path]:
        roots = []
        for controller in CONTROLLERS:
            own = _own_cgroup(controller)
            base = self.cgroup_root / controller
            roots.append((base / own if own else base) / self.tag)
        return roots

    # ------------------------------------------------------------------ create

    def create(self, spec: BoxSpec) -> Box:
        self.check()
        uid = space_uid(spec.space_id)
        name = f"{spec.kind}-{os.getpid()}-{next(self._seq)}-{int(time.time() * 1000) % 10**8}"
        box = Box(spec=spec, name=name, uid=uid)
        for path in spec.rw:
            path.mkdir(parents=True, exist_ok=True)
            if path.stat().st_uid != uid:  # first use (or a directory made before the walls): the Space's own
                for root, dirs, files in os.walk(path):
                    for entry in (root, *(os.path.join(root, n) for n in dirs + files)):
                        with contextlib.suppress(OSError):
                            os.lchown(entry, uid, uid)
            os.chmod(path, 0o700)
        try:
            for cg_root in self._roots():
                cg = cg_root / name
                cg.mkdir(parents=True, exist_ok=True)
                box.cgroups.append(cg)
            self._limit(box)
        except OSError as exc:
            self._remove_cgroups(box)
            raise AppStartError(f"could not create the app's control groups: {exc}") from exc
        box.oom_base = self.oom_kills(box)
        return box

    def _limit(self, box: Box) -> None:
        limits = box.spec.limits
        for cg in box.cgroups:
            controller = cg.relative_to(self.cgroup_root).parts[0]
            if controller == "memory" and limits.memory_bytes:
                (cg / "memory.limit_in_bytes").write_text(str(limits.memory_bytes))
                with contextlib.suppress(OSError):  # only where swap accounting is on
                    (cg / "memory.memsw.limit_in_bytes").write_text(str(limits.memory_bytes))
            elif controller == "cpu" and limits.cpu:
                (cg / "cpu.cfs_period_us").write_text("100000")
                (cg / "cpu.cfs_quota_us").write_text(str(max(1000, int(limits.cpu * 100000))))
            elif controller == "pids" and limits.pids:
                (cg / "pids.max").write_text(str(limits.pids))

    def _passwd(self, box: Box) -> tuple[Path, Path]:
        where = self.runtime_dir / "sandbox" / str(box.uid)
        where.mkdir(parents=True, exist_ok=True)
        home = box.spec.home or Path("/tmp")
        passwd, group = where / "passwd", where / "group"
        passwd.write_text(f"root:x:0:0::/root:/usr/sbin/nologin\nuser:x:{box.uid}:{box.uid}::{home}:/bin/sh\n")
        group.write_text(f"root:x:0:\nuser:x:{box.uid}:\n")
        return passwd, group

    # ------------------------------------------------------------------ command

    def exec_env(self, env: dict[str, str], cwd: str) -> dict[str, str]:
        """bubblewrap sets ``PWD`` to the directory it starts the command in."""
        return {**env, "PWD": cwd}

    def command(self, box: Box, argv: list[str], cwd: str) -> tuple[list[str], tuple[int, ...]]:
        assert self.bwrap and self.setpriv
        info_r, info_w = os.pipe()
        box._info_r = info_r
        passwd, group = self._passwd(box)
        args = [
            self.bwrap,
            "--die-with-parent",
            "--new-session",
            "--unshare-pid",
            "--unshare-net",
            "--unshare-ipc",
            "--unshare-uts",
            "--unshare-cgroup-try",
            "--hostname",
            "space",
            "--info-fd",
            str(info_w),
            "--ro-bind",
            "/usr",
            "/usr",
        ]
        for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
            if os.path.islink(top):
                args += ["--symlink", os.readlink(top), top]
            elif os.path.isdir(top):
                args += ["--ro-bind", top, top]
        args += ["--perms", "0755", "--dir", "/etc"]
        for etc in ETC_FILES:
            args += ["--ro-bind-try", etc, etc]
        args += ["--ro-bind", str(passwd), "/etc/passwd", "--ro-bind", str(group), "/etc/group"]
        args += ["--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--tmpfs", "/dev/shm"]
        args += ["--perms", "1777", "--tmpfs", "/tmp"]
        made = {"/", "/usr", "/etc", "/proc", "/dev", "/tmp", "/bin", "/sbin", "/lib", "/lib64"}
        binds: list[tuple[str, Path]] = [("--ro-bind", p) for p in box.spec.ro] + [("--bind", p) for p in box.spec.rw]
        for _, bound in binds:
            for parent in reversed(bound.parents):
                if str(parent) not in made:
                    made.add(str(parent))
                    args += ["--perms", "0755", "--dir", str(parent)]
        for flag, bound in binds:
            args += [flag, str(bound), str(bound)]
        for source, inside in box.spec.mounts:
            args += ["--bind", str(source), inside]
        args += ["--chdir", cwd, "--"]
        args += [
            self.setpriv,
            f"--reuid={box.uid}",
            f"--regid={box.uid}",
            "--clear-groups",
            "--no-new-privs",
            "--inh-caps=-all",
            "--bounding-set=-all",
            *argv,
        ]
        procs = [str(cg / "cgroup.procs") for cg in box.cgroups]
        return ["/bin/sh", "-c", SHELL_JOIN, "sh", str(len(procs)), *procs, *args], (info_w,)

    async def started(self, box: Box, leader_pid: int) -> None:
        box.leader_pid = leader_pid
        fd, box._info_r = box._info_r, None
        if fd is None:
            return
        data = await _read_json(fd, 30.0)
        try:
            info = json.loads(data)
            box.init_pid = int(info["child-pid"])
            box.netns = netns.register(box.init_pid)
        except (ValueError, KeyError, TypeError, OSError) as exc:
            raise AppStartError("the sandbox did not come up (see the log above)") from exc
        if self.hub is not None:
            box.hub = await self._serve_hub(box, self.hub)

    @staticmethod
    async def _serve_hub(box: Box, hub: HubPath) -> HubListener:
        """A listening socket on the box's own loopback (made from outside: the box cannot reach out)."""
        sock = netns.socket_in(box.netns)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", hub.port))
            sock.listen(64)
            return await hub.serve(sock, box.spec.space_id, box.spec.hub_cache)
        except BaseException:
            sock.close()
            raise

    # ------------------------------------------------------------------ signals, limits, teardown

    def _box_pids(self, box: Box) -> list[int]:
        pids: set[int] = set()
        for cg in box.cgroups:
            pids.update(_procs(cg))
        return sorted(pids)

    def pids(self, box: Box) -> list[int]:
        return self._box_pids(box) or super().pids(box)

    def signal(self, box: Box, sig: int, keep: tuple[int, ...] = ()) -> int:
        """Signal every process inside the box's pid namespace but its init and the pids (as seen inside
        the box) in ``keep``. The runtime's own bwrap process outside the namespace is left alone."""
        sent = 0
        for pid in self._box_pids(box):
            ns = _nspids(pid)
            if len(ns) < 2 or ns[-1] == 1 or ns[-1] in keep:
                continue
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
                sent += 1
        return sent

    def oom_kills(self, box: Box) -> int:
        for cg in box.cgroups:
            if cg.relative_to(self.cgroup_root).parts[0] == "memory":
                try:
                    for line in (cg / "memory.oom_control").read_text().splitlines():
                        if line.startswith("oom_kill "):
                            return int(line.split()[1])
                except (OSError, ValueError):
                    return 0
        return 0

    async def destroy(self, box: Box) -> None:
        if box.destroyed:
            return
        box.destroyed = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DESTROY_WAIT
        while True:
            pids = self._box_pids(box)
            if not pids or loop.time() > deadline:
                break
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signals.SIGKILL)
            await asyncio.sleep(0.02)
        if box.hub is not None:
            box.hub.close()
        netns.release(box.netns)
        self._remove_cgroups(box)
        if box._info_r is not None:
            os.close(box._info_r)
            box._info_r = None

    def _remove_cgroups(self, box: Box) -> None:
        for cg in box.cgroups:
            with contextlib.suppress(OSError):
                cg.rmdir()

    def cleanup(self) -> int:
        """End every process a previous platform process on this ``DATA_DIR`` left in its boxes."""
        if os.geteuid() != 0:
            return 0
        killed = 0
        for root in self._roots():
            if not root.is_dir():
                continue
            for cg in [p for p in root.iterdir() if p.is_dir()]:
                deadline = time.monotonic() + DESTROY_WAIT
                while (pids := _procs(cg)) and time.monotonic() < deadline:
                    for pid in pids:
                        with contextlib.suppress(ProcessLookupError, PermissionError):
                            os.kill(pid, signals.SIGKILL)
                            killed += 1
                    time.sleep(0.02)
                with contextlib.suppress(OSError):
                    cg.rmdir()
        if killed:
            logger.warning("ended %d process(es) a previous run left in its sandboxes", killed)
        return killed

    def close(self) -> None:
        for root in self._roots():
            with contextlib.suppress(OSError):
                root.rmdir()  # only when empty: boxes of another runtime on this DATA_DIR keep it

    def app_port(self, host: str) -> int:
        return APP_PORT


def create_sandbox(kind: str, data_dir: Path, runtime_dir: Path) -> Sandbox:
    """The one place that maps ``RuntimeSettings.local_sandbox`` to a class."""
    if kind == "none":
        return NoSandbox()
    return BwrapSandbox(data_dir, runtime_dir)


__all__ = ["Box", "BoxSpec", "BwrapSandbox", "Limits", "NoSandbox", "Sandbox", "create_sandbox", "space_uid"]
