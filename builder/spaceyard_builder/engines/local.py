"""Local engine: one content-addressed Python environment per distinct set of dependencies, built with uv.

The environment id is a hash of what it contains: the interpreter version and the lock that uv resolves
from the SDK, its version and extras, ``pre-requirements.txt`` and ``requirements.txt`` (see
``resolution``); the environment is installed from that lock. A push that only changes app
code, or a second Space with the same dependencies, finds the environment already built and installs
nothing. A new environment with requirements of its own starts as a hard-link copy of its SDK layer (the
plain SDK environment, built once per machine with its bytecode; see ``sdklayer``), so only the difference
is installed and compiled. Environments are built in a temporary directory and renamed into place, under a file lock, so
concurrent builds of the same environment coalesce and a crash never leaves a half-built one behind.

What the local engine cannot do, and what it does instead (said in the build log):

* ``packages.txt`` (apt packages): not installed; the build goes on with the machine's system packages.
  Use the docker engine to honour it.
* a ``python_version`` the machine has no interpreter for (uv cannot download interpreters here): the
  build uses the platform's own interpreter instead.
* ``sdk: docker``: needs the docker engine; the build fails with BUILD_ERROR saying so.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from .. import cancel
from ..api import Artifact, BuildEngine, BuildLog, BuildRequest
from ..errors import BuildFailed
from ..lifeline import die_with_parent
from ..spaceconfig import SpaceConfig
from ..walls import BuildWalls, create_walls, public_text
from . import compile_progress, ffmpeg_tool, resolution, sdklayer
from .resolution import Resolution

ENGINE_VERSION = "3"
SDK_PACKAGES = {"gradio": "gradio", "streamlit": "streamlit"}
SDK_EXTRAS = {"gradio": ("spaces",)}
"""Installed with the SDK, as on the Hub: Gradio's Spaces hot-reloader needs ``spaces`` when SPACE_ID is set."""
READY_MARKER = ".spaceyard-env.json"
COMPILE_LIST = ".spaceyard-compile.txt"
"""In an environment being built on its layer: the files to compile (removed before it is ready)."""


def remove_partial(root: Path, name: str) -> int:
    """Remove the temporary directories ``root/.NAME.*`` of builds that died mid-way; call with NAME's lock
    held (or from :func:`sweep_partial`). Returns how many were removed."""
    removed = 0
    for tmp in root.glob(f".{name}.*"):
        if tmp.is_dir() and not tmp.is_symlink():
            shutil.rmtree(tmp, ignore_errors=True)
            removed += 1
    return removed


def sweep_partial(root: Path) -> int:
    """Remove every half-built directory under ``root`` whose build is no longer running (its lock is free).

    Temporary directories are ``.NAME.<random>`` beside a ``.NAME.lock`` that the builder holds while it
    writes them, so a free lock means the writer is dead (the kernel released its lock)."""
    removed = 0
    if not root.is_dir():
        return 0
    for lockfile in root.glob(".*.lock"):
        name = lockfile.name[1 : -len(".lock")]
        with open(lockfile, "a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # being built right now
            removed += remove_partial(root, name)
    return removed


def _uv() -> str:
    """The uv binary itself (not a shim script: it runs inside the build's walls)."""
    with contextlib.suppress(ImportError, FileNotFoundError):
        from uv import find_uv_bin  # the uv wheel is a dependency

        return os.path.realpath(find_uv_bin())
    candidate = Path(sys.executable).parent / "uv"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("uv")
    if found:
        return os.path.realpath(found)
    raise BuildFailed("uv is not installed")


def _scratch_copy(commit: Path) -> Path:
    """A copy of the commit the build may write into (setuptools writes ``*.egg-info`` next to a local
    package): new directories, files hard-linked where possible (still owned by root, so read-only to the
    build user; the exported commit the app runs stays exactly the pushed one)."""
    scratch = Path(tempfile.mkdtemp(prefix=f".build-{commit.name[:12]}.", dir=commit.parent))

    def link(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    shutil.copytree(commit, scratch, symlinks=True, dirs_exist_ok=True, copy_function=link)
    scratch.chmod(0o755)
    return scratch


def _finder_env() -> dict[str, str]:
    """For ``uv python find`` (the worker's own search path; no Space code runs): no platform variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPACEYARD_") and k != "VIRTUAL_ENV"}
    env["UV_PYTHON_DOWNLOADS"] = "never"
    return env


class LocalEngine(BuildEngine):
    name = "local"

    @property
    def walls(self) -> BuildWalls:
        walls: BuildWalls | None = getattr(self, "_walls", None)
        if walls is None:
            walls = self._walls = create_walls(self.settings.build_sandbox)
        return walls

    _deadline: float | None = None
    """``time.monotonic()`` by which the current build must be done (``build_timeout`` after it started)."""
    _cancelled: Callable[[], bool] | None = None
    """Whether the platform cancelled the current build (:mod:`spaceyard_builder.cancel`)."""

    def uv_cache(self) -> Path:
        """The uv cache builds use: ``uv_cache_dir``, else one next to the environments, owned by the build user
        (sandboxed builds), or uv's own default (``none``)."""
        if self.settings.uv_cache_dir:
            return self.settings.uv_cache_dir
        if self.walls.name == "none":
            return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "uv"
        return self.settings.envs_root.resolve().parent / "uv-cache-build"

    def _uv_env(self, cache: Path | None = None) -> dict[str, str]:
        """A clean environment (never the worker's own: no platform variable or secret reaches a build), with
        ``cache`` (default: the shared one) as uv's cache."""
        return self.walls.env(cache or self.uv_cache())

    def _run(
        self,
        args: list[str],
        log: BuildLog,
        what: str,
        *,
        cwd: Path | None = None,
        ro: list[Path] | None = None,
        rw: list[Path] | None = None,
        public: dict[str, str] | None = None,
        cache: Path | None = None,
    ) -> None:
        """Run one build step inside the walls (cwd: the commit), its output to the log with host paths
        replaced by public names (``public``): the log and the error are public for a public Space."""
        public = public or {}
        shown = " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(args))
        log(public_text(f"--> RUN {shown.removeprefix('uv ')}", public))
        workdir = cwd or Path("/")
        argv = self.walls.command(args, cwd=workdir, ro=ro or [], rw=rw or [])
        proc = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=self._uv_env(cache),
            cwd=workdir,
            text=True,
            bufsize=1,
            preexec_fn=die_with_parent(),  # installers die with the worker
            process_group=0,  # ended as a group: what uv starts (build backends) goes with it
        )

        def kill_group() -> None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)

        deadline = self._deadline if self._deadline is not None else time.monotonic() + self.settings.build_timeout
        expired = threading.Event()
        cancelled = threading.Event()
        done = threading.Event()
        is_cancelled = self._cancelled

        def watch() -> None:  # the deadline, and a cancel asked by the platform (the Space was deleted)
            while not done.wait(min(cancel.POLL, max(0.0, deadline - time.monotonic()))):
                if time.monotonic() >= deadline:
                    expired.set()
                elif is_cancelled is not None and is_cancelled():
                    cancelled.set()
                else:
                    continue
                kill_group()
                return

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        tail: list[str] = []
        assert proc.stdout is not None
        try:
            for raw in proc.stdout:
                line = public_text(raw.rstrip("\n"), public)
                log(line)
                tail = (tail + [line])[-15:]
            rc = proc.wait()
        finally:
            done.set()
            watcher.join()
            kill_group()  # a step that ended (or was killed) leaves nothing of its own running
        if cancelled.is_set():
            raise BuildFailed(f"{what}: {cancel.REASON}")
        if expired.is_set():
            raise BuildFailed(
                f"{what} did not finish within the build deadline ({self.settings.build_timeout:g} s, "
                "SPACEYARD_BUILD_TIMEOUT)"
            )
        if rc != 0:
            detail = "\n".join(t for t in tail if t.strip())
            raise BuildFailed(f"{what} failed (exit {rc}):\n{detail}")

    def resolve_python(self, config: SpaceConfig, log: BuildLog) -> tuple[str, str]:
        """Return (interpreter path, version) for the Space's python_version, or the platform's own."""
        own = (sys.executable, "{}.{}.{}".format(*sys.version_info[:3]))
        wanted = config.python_version
        if not wanted:
            return own
        proc = subprocess.run(
            [_uv(), "python", "find", "--no-project", wanted], capture_output=True, text=True, env=_finder_env()
        )
        path = proc.stdout.strip()
        if proc.returncode == 0 and path:
            ver = subprocess.run(
                [path, "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"], capture_output=True, text=True
            ).stdout.strip()
            return path, ver
        log(
            f"WARNING: python_version {wanted} is not installed on this machine and cannot be downloaded; "
            f"building with Python {own[1]} instead"
        )
        return own

    def resolution(
        self, config: SpaceConfig, source: Path | None, python_version: str, log: BuildLog, refresh: bool = False
    ) -> resolution.Resolution:
        """The Space's resolution; with ``source`` None, that of the plain SDK environment (its SDK layer)."""

        def read(name: str) -> str:
            p = source / name if source is not None else None
            return p.read_text(encoding="utf-8", errors="replace") if p is not None and p.exists() else ""

        sdk_version = config.sdk_version or self.settings.default_sdk_versions.get(config.sdk, "")
        return resolution.resolve(
            uv=_uv(),
            # Resolution runs no Space code (--no-build, no options or URLs) and stays outside the walls, with
            # the worker's own uv cache: it must not write root-owned files into the build user's cache.
            uv_env=_finder_env(),
            cache_dir=self.settings.envs_root / ".resolutions",
            engine=ENGINE_VERSION,
            python=python_version,
            sdk=config.sdk,
            sdk_specs=self._sdk_specs(config),
            sdk_version=sdk_version,
            files={name: read(name) for name in ("pre-requirements.txt", "requirements.txt")},
            log=log,
            refresh=refresh,
        )

    def warm_base(self, config: SpaceConfig) -> str | None:
        """The SDK layer of ``config`` if this machine has built it (its stored resolution and its marker):
        the environment every resolved build of this SDK version starts from, or ends as."""
        if config.sdk not in SDK_PACKAGES or config.python_version:
            return None  # another interpreter: finding it runs uv; not worth it before the build
        python_version = "{}.{}.{}".format(*sys.version_info[:3])
        layer = resolution.stored(
            uv_env=_finder_env(),
            cache_dir=self.settings.envs_root / ".resolutions",
            engine=ENGINE_VERSION,
            python=python_version,
            sdk_specs=self._sdk_specs(config),
            files={"pre-requirements.txt": "", "requirements.txt": ""},
        )
        if layer is None:
            return None
        path = self.settings.envs_root / layer.env_id
        return str(path) if self.artifact_exists(str(path)) else None

    def env_id(self, config: SpaceConfig, source: Path, python_version: str) -> str:
        return self.resolution(config, source, python_version, lambda line: None).env_id

    def _sdk_specs(self, config: SpaceConfig) -> list[str]:
        sdk_pkg = SDK_PACKAGES.get(config.sdk)
        if not sdk_pkg:
            return []
        version = config.sdk_version or self.settings.default_sdk_versions.get(config.sdk)
        return [f"{sdk_pkg}=={version}" if version else sdk_pkg, *SDK_EXTRAS.get(config.sdk, ())]

    def artifact_exists(self, artifact_id: str) -> bool:
        return (Path(artifact_id) / READY_MARKER).exists()

    def build(self, request: BuildRequest, source: Path, config: SpaceConfig, log: BuildLog) -> Artifact:
        if config.sdk == "docker":
            raise BuildFailed(
                "sdk: docker needs the docker build engine (SPACEYARD_BUILD_ENGINE=docker); "
                "this server builds local Python environments only"
            )
        if config.sdk == "static":
            log("--> static Space: no environment to build, files are served as they are")
            return Artifact(id=f"static:{source}", cache_hit=True)
        packages = source / "packages.txt"
        if packages.exists():
            names = " ".join(packages.read_text().split())
            if names:
                log(
                    f"WARNING: packages.txt asks for system packages ({names}); the local engine cannot install "
                    "them, so the app gets this machine's packages. Use SPACEYARD_BUILD_ENGINE=docker to honour it."
                )
        self._deadline = time.monotonic() + self.settings.build_timeout
        self._cancelled = cancel.BuildCancel(self.settings).checker(request.build_id)
        python, python_version = self.resolve_python(config, log)
        resolved = self.resolution(config, source, python_version, log, refresh=request.no_cache)
        env_id = resolved.env_id
        root = self.settings.envs_root
        target = root / env_id
        if self.artifact_exists(str(target)) and not request.no_cache:
            log(f"--> Reusing environment {env_id} (Python {python_version}): nothing to install")
            ffmpeg_tool.provide(target, _uv(), root, _finder_env(), log)
            return Artifact(id=str(target), cache_hit=True)
        base = None if request.no_cache else self._sdk_layer(config, source, python, python_version, resolved, log)
        built = self._ensure(target, python, python_version, config, source, request, log, resolved.lock, base)
        ffmpeg_tool.provide(target, _uv(), root, _finder_env(), log)
        return Artifact(id=str(target), cache_hit=not built)

    def _sdk_layer(
        self,
        config: SpaceConfig,
        source: Path,
        python: str,
        python_version: str,
        resolved: Resolution,
        log: BuildLog,
    ) -> Path | None:
        """The SDK layer a new resolved environment starts from, built first if this machine has none;
        None when there is nothing to share (no SDK, unresolved requirements, or it is the layer itself)."""
        if resolved.lock is None or config.sdk not in SDK_PACKAGES:
            return None
        layer = self.resolution(config, None, python_version, lambda line: None)
        if layer.lock is None or layer.env_id == resolved.env_id:
            return None
        path = self.settings.envs_root / layer.env_id
        if not self.artifact_exists(str(path)):
            log(
                f"--> Building the SDK layer {layer.env_id} ({' '.join(self._sdk_specs(config))}, Python "
                f"{python_version}) once for this machine: later Spaces on this SDK version start from it"
            )
            request = BuildRequest(build_id="sdk-layer", space_id="", revision="", repo="", log_key="")
            self._ensure(path, python, python_version, config, source, request, log, layer.lock, None)
        return path

    def _ensure(
        self,
        target: Path,
        python: str,
        python_version: str,
        config: SpaceConfig,
        source: Path,
        request: BuildRequest,
        log: BuildLog,
        lock_text: str | None,
        base: Path | None,
    ) -> bool:
        """Build ``target`` unless it exists, coalescing with a concurrent build of it under its file lock;
        returns whether this call built it."""
        root, env_id = target.parent, target.name
        root.mkdir(parents=True, exist_ok=True)
        with open(root / f".{env_id}.lock", "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                log(f"--> Environment {env_id} is being built by another build; waiting for it")
                fcntl.flock(lock, fcntl.LOCK_EX)
            if self.artifact_exists(str(target)) and not request.no_cache:
                log(f"--> Reusing environment {env_id}, built meanwhile")
                return False
            if remove_partial(root, env_id):
                log(f"--> Removed a half-built copy of environment {env_id} left by a build that stopped")
            self._create(target, python, python_version, config, source, request, log, lock_text, base)
        return True

    def _sync_offline(self, sync: list[str], log: BuildLog, walls: dict[str, object]) -> bool:
        """``uv pip sync --offline``; False when uv's cache lacks something (the caller syncs online)."""
        what = "Installing the resolved dependencies from uv's cache"
        try:
            self._run([*sync, "--offline"], log, what, **walls)  # type: ignore[arg-type]
        except BuildFailed as exc:
            if not str(exc).startswith(f"{what} failed (exit"):
                raise  # cancelled or past the deadline: not a cache miss
            log("--> Not everything is in uv's cache: installing from the index")
            return False
        return True

    def _start_from(self, base: Path, tmp: Path, log: BuildLog) -> bool:
        """Make ``tmp`` a hard-link copy of the SDK layer ``base``; False (``tmp`` emptied again) if it cannot."""
        started = time.monotonic()
        log(f"--> Starting from the SDK layer {base.name} (hard links: nothing copied)")
        try:
            linked = sdklayer.link_copy(base, tmp)
        except OSError as e:
            log(f"--> Could not link the SDK layer ({e.strerror or e}): building the environment from scratch")
            for entry in tmp.iterdir():
                shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
            return False
        self.walls.prepare([], scratch=(tmp,))  # its directories the build user's; shared files as they are
        log(f"--> Linked {linked} files of the SDK layer in {time.monotonic() - started:.1f}s")
        return True

    def _create(
        self,
        target: Path,
        python: str,
        python_version: str,
        config: SpaceConfig,
        source: Path,
        request: BuildRequest,
        log: BuildLog,
        lock: str | None = None,
        base: Path | None = None,
    ) -> None:
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        private_cache: Path | None = None
        try:
            uv = _uv()
            python = os.path.realpath(python)
            # A build that installs the requirements as written (``lock`` is None: local paths, URLs, options, a
            # set not resolvable without building) runs the Space's own build code (a setup.py): it gets a uv
            # cache of its own, so it can neither reach nor poison the shared cache, whose files every locked
            # environment (and the SDK layer) shares by hard link. A locked build runs no Space code at all
            # (wheels only, ``--no-build``; bytecode compiled with ``-I -S``, so no installed .pth runs).
            private_cache = (
                None
                if lock is not None
                else Path(tempfile.mkdtemp(prefix=f".{target.name}.uv-cache.", dir=target.parent))
            )
            cache = self.uv_cache() if private_cache is None else private_cache
            commit = source.resolve()
            source = scratch = _scratch_copy(commit)
            self.walls.prepare([tmp, cache], scratch=(scratch,))
            walls = {
                "cwd": scratch,
                "ro": [Path(python).parents[1], Path(uv), Path(compile_progress.__file__).resolve()],
                "rw": [tmp, cache, scratch],
                "cache": cache,
                "public": {
                    str(tmp): "/env",
                    str(target): "/env",
                    str(scratch): "/app",
                    str(commit): "/app",
                    str(cache): "/uv-cache",
                    str(self.settings.data_dir.resolve()): "/data",
                    python: "python",
                },
            }
            if base is not None and not self._start_from(base, tmp, log):
                base = None
            if base is None:
                venv = [uv, "venv", "--quiet", "--python", python, str(tmp)]
                self._run(venv, log, "Creating the environment", **walls)  # type: ignore[arg-type]
            py = str(tmp / "bin" / "python")
            no_cache = ["--no-cache"] if request.no_cache else []
            if lock is not None:
                # Exactly the resolved set: the environment is what its id says.
                (tmp / "spaceyard-lock.txt").write_text(lock)
                sync = [uv, "pip", "sync", "--no-build", "--python", py, *no_cache, str(tmp / "spaceyard-lock.txt")]
                # On the layer only the difference is installed, just resolved, so uv's cache usually holds it:
                # offline first (exact pins: the cache has the same files the index would), which saves uv a
                # round trip to the index for each of the lock's packages; from the index if that fails.
                if base is None or request.no_cache or not self._sync_offline(sync, log, walls):
                    self._run(sync, log, "Installing the resolved dependencies", **walls)  # type: ignore[arg-type]
            for name in ("pre-requirements.txt", "requirements.txt"):
                if lock is None and (source / name).exists() and (source / name).read_text().strip():
                    self._run(
                        [uv, "pip", "install", "--python", py, *no_cache, "-r", name],
                        log,
                        f"Installing {name}",
                        **walls,  # type: ignore[arg-type]
                    )
            sdk_pkg = SDK_PACKAGES.get(config.sdk)
            if sdk_pkg and lock is None:
                version = config.sdk_version or self.settings.default_sdk_versions.get(config.sdk)
                spec = f"{sdk_pkg}=={version}" if version else sdk_pkg
                # Installed last, as on the Hub, so the Space's sdk_version wins over its requirements.
                extras = SDK_EXTRAS.get(config.sdk, ())
                self._run(
                    [uv, "pip", "install", "--python", py, *no_cache, spec, *extras],
                    log,
                    f"Installing {spec}",
                    **walls,  # type: ignore[arg-type]
                )
            # Bytecode is compiled now so that imports at start and wake are fast (PYTHONDONTWRITEBYTECODE). On
            # the layer, only the distributions uv added (the layer's files have theirs): no walk of every file.
            added = sdklayer.added_sources(base, tmp) if base is not None and lock is not None else None
            only = None
            if added is not None:
                only = tmp / COMPILE_LIST  # a new file in our own directory (never one of the commit's)
                only.write_text("".join(f"{path}\n" for path in added))
            self._run(
                compile_progress.command(py, tmp / "lib", only),
                log,
                "Compiling bytecode",
                **walls,  # type: ignore[arg-type]
            )
            if only is not None:
                only.unlink()
            (tmp / READY_MARKER).write_text(
                json.dumps({"python": python_version, "sdk": config.sdk, "sdk_version": config.sdk_version})
            )
            # venv scripts embed their own path: rewrite them for the final location before the rename (as
            # new files: one may be a hard link shared with the SDK layer).
            for script in [tmp / "pyvenv.cfg", *(tmp / "bin").iterdir()]:
                if script.is_file() and not script.is_symlink():
                    sdklayer.replace_text(script, str(tmp), str(target))
            if target.exists():
                shutil.rmtree(target)
            tmp.chmod(0o755)  # mkdtemp made it 0700: apps run as their own users and must read it
            tmp.rename(target)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
            if "scratch" in locals():
                shutil.rmtree(scratch, ignore_errors=True)
            if private_cache is not None:
                shutil.rmtree(private_cache, ignore_errors=True)
