"""Local engine: one content-addressed Python environment per distinct set of dependencies, built with uv.

The environment id is a hash of what it contains: the interpreter version and the lock that uv resolves
from the SDK, its version and extras, ``pre-requirements.txt`` and ``requirements.txt`` (see
``resolution``); the environment is installed from that lock. A push that only changes app
code, or a second Space with the same dependencies, finds the environment already built and installs
nothing. Environments are built in a temporary directory and renamed into place, under a file lock, so
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
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..api import Artifact, BuildEngine, BuildLog, BuildRequest
from ..errors import BuildFailed
from ..spaceconfig import SpaceConfig
from ..walls import BuildWalls, create_walls
from . import compile_progress, ffmpeg_tool, resolution, steps

ENGINE_VERSION = "3"
SDK_PACKAGES = {"gradio": "gradio", "streamlit": "streamlit"}
SDK_EXTRAS = {"gradio": ("spaces",)}
"""Installed with the SDK, as on the Hub: Gradio's Spaces hot-reloader needs ``spaces`` when SPACE_ID is set."""
READY_MARKER = ".spaceyard-env.json"


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

    def uv_cache(self) -> Path:
        """The uv cache builds use: ``uv_cache_dir``, else one next to the environments, owned by the build user
        (sandboxed builds), or uv's own default (``none``)."""
        if self.settings.uv_cache_dir:
            return self.settings.uv_cache_dir
        if self.walls.name == "none":
            return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "uv"
        return self.settings.envs_root.resolve().parent / "uv-cache-build"

    def _uv_env(self) -> dict[str, str]:
        """A clean environment (never the worker's own: no platform variable or secret reaches a build)."""
        return self.walls.env(self.uv_cache())

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
    ) -> None:
        """Run one build step inside the walls (cwd: the commit), its output to the log with host paths
        replaced by public names (``public``): the log and the error are public for a public Space."""
        workdir = cwd or Path("/")
        deadline = self._deadline if self._deadline is not None else time.monotonic() + self.settings.build_timeout
        steps.run_step(
            self.walls.command(args, cwd=workdir, ro=ro or [], rw=rw or []),
            announce=steps.shown(args),
            what=what,
            log=log,
            env=self._uv_env(),
            cwd=workdir,
            deadline=deadline,
            timeout_setting=self.settings.build_timeout,
            public=public,
        )

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
        self, config: SpaceConfig, source: Path, python_version: str, log: BuildLog, refresh: bool = False
    ) -> resolution.Resolution:
        def read(name: str) -> str:
            p = source / name
            return p.read_text(encoding="utf-8", errors="replace") if p.exists() else ""

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
        python, python_version = self.resolve_python(config, log)
        resolved = self.resolution(config, source, python_version, log, refresh=request.no_cache)
        env_id = resolved.env_id
        root = self.settings.envs_root
        target = root / env_id
        if self.artifact_exists(str(target)) and not request.no_cache:
            log(f"--> Reusing environment {env_id} (Python {python_version}): nothing to install")
            ffmpeg_tool.provide(target, _uv(), root, _finder_env(), log)
            return Artifact(id=str(target), cache_hit=True)
        root.mkdir(parents=True, exist_ok=True)
        with open(root / f".{env_id}.lock", "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                log(f"--> Environment {env_id} is being built by another build; waiting for it")
                fcntl.flock(lock, fcntl.LOCK_EX)
            if self.artifact_exists(str(target)) and not request.no_cache:
                log(f"--> Reusing environment {env_id}, built meanwhile")
                ffmpeg_tool.provide(target, _uv(), root, _finder_env(), log)
                return Artifact(id=str(target), cache_hit=True)
            if remove_partial(root, env_id):
                log(f"--> Removed a half-built copy of environment {env_id} left by a build that stopped")
            self._create(target, python, python_version, config, source, request, log, resolved.lock)
        ffmpeg_tool.provide(target, _uv(), root, _finder_env(), log)
        return Artifact(id=str(target), cache_hit=False)

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
    ) -> None:
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            uv = _uv()
            python = os.path.realpath(python)
            cache = self.uv_cache()
            commit = source.resolve()
            source = scratch = _scratch_copy(commit)
            self.walls.prepare([tmp, cache], scratch=(scratch,))
            walls = {
                "cwd": scratch,
                "ro": [Path(python).parents[1], Path(uv), Path(compile_progress.__file__).resolve()],
                "rw": [tmp, cache, scratch],
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
            self._run([uv, "venv", "--quiet", "--python", python, str(tmp)], log, "Creating the environment", **walls)  # type: ignore[arg-type]
            py = str(tmp / "bin" / "python")
            no_cache = ["--no-cache"] if request.no_cache else []
            if lock is not None:
                # Exactly the resolved set: the environment is what its id says.
                (tmp / "spaceyard-lock.txt").write_text(lock)
                self._run(
                    [uv, "pip", "sync", "--python", py, *no_cache, str(tmp / "spaceyard-lock.txt")],
                    log,
                    "Installing the resolved dependencies",
                    **walls,  # type: ignore[arg-type]
                )
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
            # Bytecode is compiled now so that imports at start and wake are fast (PYTHONDONTWRITEBYTECODE).
            self._run(
                compile_progress.command(py, tmp / "lib"),
                log,
                "Compiling bytecode",
                **walls,  # type: ignore[arg-type]
            )
            (tmp / READY_MARKER).write_text(
                json.dumps({"python": python_version, "sdk": config.sdk, "sdk_version": config.sdk_version})
            )
            # venv scripts embed their own path: rewrite them for the final location before the rename.
            for script in (tmp / "bin").iterdir():
                if script.is_file() and not script.is_symlink():
                    try:
                        text = script.read_text()
                    except UnicodeDecodeError:
                        continue
                    if str(tmp) in text:
                        script.write_text(text.replace(str(tmp), str(target)))
            cfg = tmp / "pyvenv.cfg"
            if target.exists():
                shutil.rmtree(target)
            cfg.write_text(cfg.read_text().replace(str(tmp), str(target)))
            tmp.chmod(0o755)  # mkdtemp made it 0700: apps run as their own users and must read it
            tmp.rename(target)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
            if "scratch" in locals():
                shutil.rmtree(scratch, ignore_errors=True)
