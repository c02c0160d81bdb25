"""Walls around build-time code (the local engine's ``uv`` runs, and every ``setup.py`` they execute).

:class:`BuildWalls` is the contract, chosen by ``BuilderSettings.build_sandbox``:

* :meth:`BuildWalls.prepare` readies what a build may write (its environment directory, the uv cache)
  for the user builds run as;
* :meth:`BuildWalls.command` wraps one command line so that it runs inside the walls, with the commit's
  directory as its working directory;
* :meth:`BuildWalls.env` is the whole environment a build command gets: never the worker's own (no
  ``SPACEYARD_*`` variable, no platform secret), only what uv needs and the operator's package-index and
  proxy settings (:data:`PASSED_THROUGH`).

:class:`BwrapBuildWalls` (``bwrap``, the default; needs root) runs the command under bubblewrap in new
pid, IPC, UTS, mount and cgroup namespaces as the unprivileged :data:`BUILD_UID` (``setpriv``: no
capabilities, ``no_new_privs``), seeing the system (``/usr``, a few files of ``/etc``), the interpreter
and the uv binary, the commit read-only, and only its own environment directory and the uv cache
writable: nothing else of ``DATA_DIR`` (no ``secret.key``, no database, no other Space). It keeps the
host's network, since it must reach the package index: what else it may reach is the operator's
firewall (``docs/security.md``). :class:`NoBuildWalls` (``none``) only cleans the environment.

:func:`public_text` removes host paths from what a build prints, since the build log and ``BUILD_ERROR``
are public for a public Space.
"""

from __future__ import annotations

import abc
import contextlib
import os
import shutil
import subprocess
from pathlib import Path

BUILD_UID = 19_999_000
"""The host uid (and gid) every sandboxed build runs as: no account, no Space's app (those start at
20,000,000)."""
PASSED_THROUGH = (
    "UV_INDEX_URL",
    "UV_EXTRA_INDEX_URL",
    "UV_DEFAULT_INDEX",
    "UV_INDEX",
    "UV_NATIVE_TLS",
    "PIP_INDEX_URL",
    "PIP_EXTRA_INDEX_URL",
    "SSL_CERT_FILE",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
)
"""The worker's variables a build gets: where the package index is and how to reach it (operator's)."""
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
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/alternatives",
)


def public_text(text: str, paths: dict[str, str]) -> str:
    """``text`` with each host path in ``paths`` (longest first) replaced by its public name."""
    for path in sorted(paths, key=len, reverse=True):
        if path:
            text = text.replace(path, paths[path])
    return text


class BuildWalls(abc.ABC):
    """Walls around build-time code. See the module docstring for the contract."""

    name = "abstract"

    def env(self, cache_dir: Path | None) -> dict[str, str]:
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": "/tmp",
            "LANG": "C.UTF-8",
            "TMPDIR": "/tmp",
            "UV_PYTHON_DOWNLOADS": "never",
            "UV_NO_PROGRESS": "1",
            "NO_COLOR": "1",
            "PYTHONUNBUFFERED": "1",
        }
        env.update({k: v for k, v in os.environ.items() if k in PASSED_THROUGH})
        if cache_dir is not None:
            env["UV_CACHE_DIR"] = str(cache_dir)
        return env

    @abc.abstractmethod
    def prepare(self, writable: list[Path], scratch: tuple[Path, ...] = ()) -> None:
        """Make ``writable`` (recursively) and the directories of ``scratch`` (a tree of hard links: its
        files stay as they are) the build user's."""

    @abc.abstractmethod
    def command(self, argv: list[str], *, cwd: Path, ro: list[Path], rw: list[Path]) -> list[str]: ...

    def image_command(
        self, argv: list[str], *, root: Path, cwd: str, ro: dict[str, Path], rw: dict[str, Path]
    ) -> list[str]:
        """``argv`` run inside the walls with the directory ``root`` (a base image's filesystem) as ``/``,
        read-only, and host paths bound at the given places inside it (``{place: host path}``; every place
        must exist in ``root``). Used by the oci engine, whose build steps run with the image's own
        interpreter. Walls that cannot change the root refuse with ``BuildFailed``."""
        from .errors import BuildFailed

        raise BuildFailed(
            f"the {self.name!r} build sandbox cannot run build steps inside an image's filesystem; the oci "
            "engine needs SPACEYARD_BUILD_SANDBOX=bwrap"
        )

    def tool_command(self, argv: list[str], *, ro: dict[str, Path], rw: dict[str, Path], network: bool) -> list[str]:
        """``argv``, an image builder run as root (``buildah``: it runs a Dockerfile's ``RUN`` steps as the
        image's root), walled off from the worker: new pid, IPC, UTS, mount and cgroup namespaces showing
        the system (``/usr``, a few files of ``/etc``, ``/sys`` read-only) and only the given paths
        (``{place: host path}``), so that a ``RUN`` step that leaves its chroot finds nothing of the
        worker (no ``DATA_DIR``, no service-account token, no other build). It keeps the worker's
        capabilities (the builder mounts and chowns); ``network=False`` gives it a new, empty network
        namespace. The caller passes the whole environment. Walls that cannot do this refuse."""
        from .errors import BuildFailed

        raise BuildFailed(
            f"the {self.name!r} build sandbox cannot wall off a Dockerfile build; Docker Spaces on the oci "
            "engine need SPACEYARD_BUILD_SANDBOX=bwrap and a root worker"
        )


class NoBuildWalls(BuildWalls):
    """Clean environment only; build-time code runs as the worker's user and sees its files."""

    name = "none"

    def env(self, cache_dir: Path | None) -> dict[str, str]:
        env = super().env(cache_dir)
        env["HOME"] = env["TMPDIR"] = os.environ.get("TMPDIR", "/tmp")
        return env

    def prepare(self, writable: list[Path], scratch: tuple[Path, ...] = ()) -> None:
        for path in writable:
            path.mkdir(parents=True, exist_ok=True)

    def command(self, argv: list[str], *, cwd: Path, ro: list[Path], rw: list[Path]) -> list[str]:
        return argv


class BwrapBuildWalls(BuildWalls):
    name = "bwrap"

    def __init__(self) -> None:
        self.bwrap = shutil.which("bwrap")
        self.setpriv = shutil.which("setpriv")
        self._userns_ok: bool | None = None

    @property
    def rootless(self) -> bool:
        """Not root (a worker in a pod, as uid 1000): the walls are an unprivileged user namespace instead."""
        return os.geteuid() != 0

    def check(self) -> None:
        from .errors import BuildFailed

        if self.rootless:
            if self._userns_ok is None:
                probe = [self.bwrap or "bwrap", *self._userns_flags(), "--ro-bind", "/", "/", "true"]
                self._userns_ok = bool(self.bwrap) and subprocess.run(probe, capture_output=True).returncode == 0
            if not self._userns_ok:
                raise BuildFailed(
                    "the build sandbox needs root, or bubblewrap with unprivileged user namespaces when not root "
                    "(in a Kubernetes pod: seccompProfile Unconfined, see docs/kubernetes.md); set "
                    "SPACEYARD_BUILD_SANDBOX=none to build without walls (trusted Spaces only)"
                )
            return
        if not self.bwrap or not self.setpriv:
            raise BuildFailed(
                "the build sandbox needs root, bubblewrap and setpriv on the build machine; set "
                "SPACEYARD_BUILD_SANDBOX=none to build without walls (trusted Spaces only)"
            )

    @staticmethod
    def _userns_flags() -> list[str]:
        """Rootless: a new user namespace in which the build is BUILD_UID, with no capabilities and no way
        to make further namespaces."""
        uid = str(BUILD_UID)
        return ["--unshare-user", "--uid", uid, "--gid", uid, "--disable-userns", "--cap-drop", "ALL"]

    def _drop(self, setpriv: str) -> list[str]:
        """What runs the command as the build user: ``setpriv`` as root; nothing more in a user namespace."""
        if self.rootless:
            return []
        return [setpriv, f"--reuid={BUILD_UID}", f"--regid={BUILD_UID}", "--clear-groups", "--no-new-privs"] + [
            "--inh-caps=-all",
            "--bounding-set=-all",
        ]

    def prepare(self, writable: list[Path], scratch: tuple[Path, ...] = ()) -> None:
        self.check()
        for path in writable:
            path.mkdir(parents=True, exist_ok=True)
            if self.rootless:
                continue  # our own files: the user namespace maps BUILD_UID to us
            if path.stat().st_uid != BUILD_UID:
                for root, dirs, files in os.walk(path):
                    for entry in (root, *(os.path.join(root, n) for n in dirs + files)):
                        with contextlib.suppress(OSError):
                            os.lchown(entry, BUILD_UID, BUILD_UID)
        for tree in scratch if not self.rootless else ():
            for root, _dirs, _files in os.walk(tree):
                os.lchown(root, BUILD_UID, BUILD_UID)

    @staticmethod
    def _system() -> list[str]:
        """New pid/IPC/UTS/cgroup namespaces showing the host's ``/usr``, a few files of ``/etc``, a fresh
        ``/proc``, ``/dev`` and ``/tmp``."""
        args = ["--die-with-parent", "--new-session", "--unshare-pid", "--unshare-ipc", "--unshare-uts"]
        args += ["--unshare-cgroup-try", "--hostname", "build", "--ro-bind", "/usr", "/usr"]
        for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
            if os.path.islink(top):
                args += ["--symlink", os.readlink(top), top]
            elif os.path.isdir(top):
                args += ["--ro-bind", top, top]
        args += ["--perms", "0755", "--dir", "/etc"]
        for etc in ETC_FILES:
            args += ["--ro-bind-try", etc, etc]
        args += ["--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--tmpfs", "/dev/shm"]
        return [*args, "--perms", "1777", "--tmpfs", "/tmp"]

    def command(self, argv: list[str], *, cwd: Path, ro: list[Path], rw: list[Path]) -> list[str]:
        self.check()
        assert self.bwrap
        args = [self.bwrap, *(self._userns_flags() if self.rootless else []), *self._system()]
        made = {"/", "/usr", "/etc", "/proc", "/dev", "/tmp", "/bin", "/sbin", "/lib", "/lib64"}
        binds = [("--ro-bind", p) for p in ro if not p.is_relative_to("/usr")] + [("--bind", p) for p in rw]
        for _, bound in binds:
            for parent in reversed(bound.parents):
                if str(parent) not in made:
                    made.add(str(parent))
                    args += ["--perms", "0755", "--dir", str(parent)]
        for flag, bound in binds:
            args += [flag, str(bound), str(bound)]
        args += ["--chdir", str(cwd), "--", *self._drop(self.setpriv or "setpriv"), *argv]
        return args

    def image_command(
        self, argv: list[str], *, root: Path, cwd: str, ro: dict[str, Path], rw: dict[str, Path]
    ) -> list[str]:
        self.check()
        assert self.bwrap
        args = [self.bwrap, *(self._userns_flags() if self.rootless else []), "--die-with-parent", "--new-session"]
        args += ["--unshare-pid", "--unshare-ipc"]
        args += ["--unshare-uts", "--unshare-cgroup-try", "--hostname", "build", "--ro-bind", str(root), "/"]
        args += ["--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--tmpfs", "/dev/shm"]
        args += ["--perms", "1777", "--tmpfs", "/tmp"]
        for etc in ("/etc/resolv.conf", "/etc/hosts"):  # the network as the worker sees it
            if (root / etc.lstrip("/")).exists():
                args += ["--ro-bind-try", etc, etc]
        for place, path in ro.items():
            args += ["--ro-bind", str(path), place]
        for place, path in rw.items():
            args += ["--bind", str(path), place]
        # as root, the image's own setpriv (util-linux, essential in Debian-based images) drops to the build user
        args += ["--chdir", cwd, "--", *self._drop("setpriv"), *argv]
        return args

    def tool_command(self, argv: list[str], *, ro: dict[str, Path], rw: dict[str, Path], network: bool) -> list[str]:
        from .errors import BuildFailed

        if self.rootless or not self.bwrap:
            raise BuildFailed(
                "Docker Spaces are built with buildah, which needs a root worker with bubblewrap (the chart's "
                f"worker.buildWalls); this worker runs as uid {os.geteuid()}"
                if self.rootless
                else "Docker Spaces are built with buildah inside bubblewrap: install bubblewrap on the worker"
            )
        args = [self.bwrap, *self._system(), "--cap-add", "ALL", "--ro-bind", "/sys", "/sys"]
        args += [] if network else ["--unshare-net"]
        args += ["--ro-bind-try", "/etc/passwd", "/etc/passwd", "--ro-bind-try", "/etc/group", "/etc/group"]
        args += ["--perms", "1777", "--dir", "/var/tmp"]
        for place, path in ro.items():
            args += ["--ro-bind", str(path), place]
        for place, path in rw.items():
            args += ["--bind", str(path), place]
        return [*args, "--chdir", "/", "--", *argv]


def create_walls(kind: str) -> BuildWalls:
    """The one place that maps ``BuilderSettings.build_sandbox`` to a class."""
    return NoBuildWalls() if kind == "none" else BwrapBuildWalls()


__all__ = ["BUILD_UID", "BuildWalls", "BwrapBuildWalls", "NoBuildWalls", "create_walls", "public_text"]
