"""Local engine: one content-addressed Python environment per distinct set of dependencies, built with uv.

The environment id is a hash of everything that determines its contents: the interpreter version, the
SDK and its version, ``pre-requirements.txt`` and ``requirements.txt``. A push that only changes app
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

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from ..api import Artifact, BuildEngine, BuildLog, BuildRequest
from ..errors import BuildFailed
from ..spaceconfig import SpaceConfig

ENGINE_VERSION = "2"
SDK_PACKAGES = {"gradio": "gradio", "streamlit": "streamlit"}
SDK_EXTRAS = {"gradio": ("spaces",)}
"""Installed with the SDK, as on the Hub: Gradio's Spaces hot-reloader needs ``spaces`` when SPACE_ID is set."""
READY_MARKER = ".spaceyard-env.json"


def _uv() -> str:
    found = shutil.which("uv")
    if found:
        return found
    candidate = Path(sys.executable).parent / "uv"
    if candidate.exists():
        return str(candidate)
    from uv import find_uv_bin  # the uv wheel is a dependency

    return str(find_uv_bin())


class LocalEngine(BuildEngine):
    name = "local"

    def _uv_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update({"UV_PYTHON_DOWNLOADS": "never", "UV_NO_PROGRESS": "1", "NO_COLOR": "1"})
        env.pop("VIRTUAL_ENV", None)
        if self.settings.uv_cache_dir:
            env["UV_CACHE_DIR"] = str(self.settings.uv_cache_dir)
        return env

    def _run(self, args: list[str], log: BuildLog, what: str) -> None:
        log(f"--> RUN {' '.join(args[1:] if args[0].endswith('uv') else args)}")
        proc = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=self._uv_env(), text=True, bufsize=1
        )
        tail: list[str] = []
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip("\n")
            log(line)
            tail = (tail + [line])[-15:]
        rc = proc.wait(timeout=self.settings.build_timeout)
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
            [_uv(), "python", "find", "--no-project", wanted], capture_output=True, text=True, env=self._uv_env()
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

    def env_id(self, config: SpaceConfig, source: Path, python_version: str) -> str:
        def read(name: str) -> str:
            p = source / name
            return p.read_text(encoding="utf-8", errors="replace") if p.exists() else ""

        sdk_version = config.sdk_version or self.settings.default_sdk_versions.get(config.sdk, "")
        key = {
            "engine": ENGINE_VERSION,
            "python": python_version,
            "sdk": config.sdk,
            "sdk_version": sdk_version,
            "pre-requirements.txt": read("pre-requirements.txt"),
            "requirements.txt": read("requirements.txt"),
        }
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]

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
        python, python_version = self.resolve_python(config, log)
        env_id = self.env_id(config, source, python_version)
        root = self.settings.envs_root
        target = root / env_id
        if self.artifact_exists(str(target)) and not request.no_cache:
            log(f"--> Reusing environment {env_id} (Python {python_version}): nothing to install")
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
                return Artifact(id=str(target), cache_hit=True)
            self._create(target, python, python_version, config, source, request, log)
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
    ) -> None:
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            uv = _uv()
            self._run([uv, "venv", "--quiet", "--python", python, str(tmp)], log, "Creating the environment")
            py = str(tmp / "bin" / "python")
            no_cache = ["--no-cache"] if request.no_cache else []
            for name in ("pre-requirements.txt", "requirements.txt"):
                if (source / name).exists() and (source / name).read_text().strip():
                    self._run(
                        [uv, "pip", "install", "--python", py, *no_cache, "-r", str(source / name)],
                        log,
                        f"Installing {name}",
                    )
            sdk_pkg = SDK_PACKAGES.get(config.sdk)
            if sdk_pkg:
                version = config.sdk_version or self.settings.default_sdk_versions.get(config.sdk)
                spec = f"{sdk_pkg}=={version}" if version else sdk_pkg
                # Installed last, as on the Hub, so the Space's sdk_version wins over its requirements.
                extras = SDK_EXTRAS.get(config.sdk, ())
                self._run(
                    [uv, "pip", "install", "--python", py, *no_cache, spec, *extras], log, f"Installing {spec}"
                )
            # Bytecode is compiled now so that imports at start and wake are fast (PYTHONDONTWRITEBYTECODE).
            self._run([py, "-m", "compileall", "-q", "-j", "0", str(tmp / "lib")], log, "Compiling bytecode")
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
