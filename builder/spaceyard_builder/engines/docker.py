"""Docker engine: one content-addressed container image per distinct build input, built with BuildKit.

What is built:

* ``gradio`` / ``streamlit``: a generated Dockerfile equivalent to the one the Hub generates
  (:func:`generated_dockerfile`): non-root user ``user`` (uid 1000), ``HOME=/home/user``, workdir
  ``/home/user/app``, ``ffmpeg`` (as on the Hub), ``packages.txt`` installed with apt as root, then
  ``pre-requirements.txt``, ``requirements.txt`` and the SDK at its ``sdk_version`` (installed last so
  it wins), then the app code, the Hub's ``ENV`` and port 7860. Python packages go into a virtual environment at
  ``/home/user/.venv`` created with ``python3 -m venv``, which works the same on ``python:3.11-slim``
  (``/usr/local/bin/python3``) and on the debootstrapped base (``/usr/bin/python3``); they are
  installed with uv (itself pip-installed once into the shared base layers) and a BuildKit cache mount,
  with bytecode compiled at build time. Every dependency layer comes *before* ``COPY . /home/user/app``
  and dependency files are bind-mounted (not copied), so a commit that only changes app code reuses
  every dependency layer and rebuilds in seconds.
* ``docker``: the Space's own ``Dockerfile``. ``BASE_IMAGE`` (= ``docker_base_image``) and the Space
  variables are passed as ``--build-arg``; the image must listen on ``app_port``.
* ``static``: nothing; the gateway serves the files (the artifact is ``static:<checkout>``).

Images are tagged ``<docker_image_repository>:<content hash>``, the hash covering the Dockerfile, every
file of the build context (path, mode, content), the build args, the names of the secrets and the
base image id. A rebuild of unchanged input finds the tag and returns without calling ``docker
build`` at all. Builds of the same hash coalesce on a file lock (the Docker engine is per host, so a
host-local lock is the right scope).

Secrets are BuildKit secret mounts (``--secret id=NAME,src=FILE`` from a private temporary directory),
usable as on the Hub with ``RUN --mount=type=secret,id=NAME``. They never reach a layer, the image
config, the build args or the build log (every log line is scrubbed of secret values).

Why the docker CLI and not the ``docker`` Python SDK for the build: the SDK's ``images.build`` speaks the
legacy ``/build`` API, which has no BuildKit session, hence no ``--secret``, no ``RUN --mount`` cache or
bind mounts. The SDK is used for everything else (inspect, tag, push).
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import docker
import docker.errors

from .. import cancel
from ..api import Artifact, BuildEngine, BuildLog, BuildRequest
from ..errors import BuildFailed, EngineMisconfigured, TransientBuildError
from ..framedhash import FramedHash
from ..preload import HUB_DIR
from ..settings import BuilderSettings
from ..spaceconfig import SpaceConfig

ENGINE_VERSION = "1"
APP_PORT = 7860
UV_VERSION = "0.13.9"
VENV = "/home/user/.venv"
SKIP_FILES = {".spaceyard-complete"}
"""Files of the exported checkout that are not part of the Space."""
SDK_REQUIREMENTS = {
    # As on the Hub: `spaces` too, which Gradio needs when SYSTEM=spaces and SPACE_ID are set.
    "gradio": ["gradio[oauth]=={version}", '"uvicorn>=0.14.0"', "spaces==0.51.3"],
    "streamlit": ["streamlit=={version}"],
}
HUB_ENV = {
    "PYTHONPATH": "/home/user/app",
    "PYTHONUNBUFFERED": "1",
    "HF_HUB_ENABLE_HF_TRANSFER": "0",
    "GRADIO_ALLOW_FLAGGING": "never",
    "GRADIO_NUM_PORTS": "1",
    "GRADIO_SERVER_NAME": "0.0.0.0",
    "GRADIO_SERVER_PORT": str(APP_PORT),
    "GRADIO_THEME": "huggingface",
    "GRADIO_ANALYTICS_ENABLED": "False",
    "TQDM_POSITION": "-1",
    "TQDM_MININTERVAL": "1",
    "SYSTEM": "spaces",
}
CA_SECRET = "spaceyard_ca_bundle"
_SECRET_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


def _files(source: Path) -> list[Path]:
    out = []
    for p in sorted(source.rglob("*")):
        rel = p.relative_to(source)
        if rel.parts and rel.parts[0] in SKIP_FILES:
            continue
        if p.is_file() or p.is_symlink():
            out.append(p)
    return out


def _nonempty(path: Path) -> bool:
    return path.is_file() and bool(path.read_text(encoding="utf-8", errors="replace").strip())


def generated_dockerfile(config: SpaceConfig, source: Path, settings: BuilderSettings) -> str:
    """The Dockerfile of a gradio/streamlit Space: the Hub's layout, dependency layers before the code."""
    sdk = config.sdk
    version = config.sdk_version or settings.default_sdk_versions.get(sdk)
    if not version:
        raise BuildFailed(f"no sdk_version given and no default version configured for sdk: {sdk}")
    ca = settings.docker_build_ca_bundle is not None
    # TLS for uv/pip: the base image's system store, or the operator's bundle as a secret mount.
    tls = f"SSL_CERT_FILE=/run/secrets/{CA_SECRET} PIP_CERT=/run/secrets/{CA_SECRET} " if ca else ""
    ca_mount = f"--mount=type=secret,id={CA_SECRET},mode=0444 " if ca else ""
    uv_cache = "--mount=type=cache,target=/home/user/.cache/uv,uid=1000,gid=1000 "
    uv = (
        f"{tls}UV_SYSTEM_CERTS=1 UV_LINK_MODE=copy UV_NO_PROGRESS=1 "
        f"uv pip install --python {VENV}/bin/python --compile-bytecode"
    )
    lines = [
        "# Generated by Spaceyard (docker engine): the Hub's Gradio/Streamlit image layout.",
        "ARG BASE_IMAGE=python:3.11-slim",
        "FROM ${BASE_IMAGE}",
        "ENV DEBIAN_FRONTEND=noninteractive TZ=Etc/UTC",
        "USER root",
        "RUN (getent passwd 1000 >/dev/null || useradd -m -u 1000 user) && mkdir -p /home/user/app "
        "&& chown -R 1000:1000 /home/user",
        # ffmpeg, as in the Hub's images (Gradio's audio/video components call it); the debootstrapped base
        # already has it, python:3.11-slim gets Debian's.
        "RUN command -v ffmpeg >/dev/null || (apt-get update && apt-get install -y --no-install-recommends ffmpeg "
        "&& rm -rf /var/lib/apt/lists/*)",
        # Static part, identical for every Space on this base: shared layers.
        "USER 1000",
        f"ENV HOME=/home/user PATH={VENV}/bin:/home/user/.local/bin:$PATH VIRTUAL_ENV={VENV}",
        "WORKDIR /home/user/app",
        f"RUN {ca_mount}{tls}python3 -m venv {VENV} && {VENV}/bin/python -m pip install --no-cache-dir "
        f"--disable-pip-version-check uv=={UV_VERSION}",
    ]
    if _nonempty(source / "packages.txt"):
        lines += [
            "USER root",
            "## Security warning (as on the Hub): packages.txt runs apt-get as root at build time",
            "RUN --mount=type=bind,source=packages.txt,target=/tmp/packages.txt "
            "apt-get update && xargs -r -a /tmp/packages.txt apt-get install -y --no-install-recommends "
            "&& rm -rf /var/lib/apt/lists/*",
            "USER 1000",
        ]
    for name in ("pre-requirements.txt", "requirements.txt"):
        if _nonempty(source / name):
            lines.append(
                f"RUN --mount=type=bind,source={name},target=/tmp/{name} {ca_mount}{uv_cache}{uv} -r /tmp/{name}"
            )
    sdk_specs = " ".join(s.format(version=version) for s in SDK_REQUIREMENTS[sdk])
    lines.append(f"RUN {ca_mount}{uv_cache}{uv} {sdk_specs}")
    env = hub_env(sdk)
    lines.append("ENV " + " ".join(f"{k}={v}" for k, v in env.items()))
    lines.append(f"EXPOSE {APP_PORT}")
    lines.append("COPY --chown=1000:1000 . /home/user/app")
    lines.append("CMD " + json.dumps(hub_cmd(config, preloaded=(source / HUB_DIR).is_dir())))
    return "\n".join(lines) + "\n"


def hub_env(sdk: str) -> dict[str, str]:
    """The environment the Hub's Gradio/Streamlit images set (also the oci engine's)."""
    env = dict(HUB_ENV)
    if sdk == "streamlit":
        env.update({"STREAMLIT_SERVER_PORT": str(APP_PORT), "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"})
    return env


def hub_cmd(config: SpaceConfig, *, preloaded: bool = False) -> list[str]:
    """The command of a Gradio/Streamlit image (also the oci engine's). ``preloaded``: the export holds
    ``preload_from_hub`` files, linked into the app's Hugging Face cache (a tmpfs) at each start."""
    app_file = config.effective_app_file
    if config.sdk == "gradio":
        cmd = ["python", app_file]
    else:
        cmd = [
            "streamlit", "run", app_file,
            "--server.port", str(APP_PORT),
            "--server.address", "0.0.0.0",
            "--server.headless", "true",
            "--server.enableXsrfProtection", "false",
            "--server.enableCORS", "false",
            "--browser.gatherUsageStats", "false",
        ]  # fmt: skip
    if preloaded:
        cache = "$HOME/.cache/huggingface/hub"
        link = f"mkdir -p {cache} && cp -rs /home/user/app/{HUB_DIR}/. {cache}/"
        cmd = ["sh", "-c", f'{link}; exec "$@"', "sh", *cmd]
    return cmd


@cache
def _buildkit_cli(preferred: str | None) -> list[str]:
    """A docker CLI invocation that can run BuildKit builds with secrets (``buildx build`` or ``build``)."""
    candidates = [preferred] if preferred else []
    candidates += [c for c in (shutil.which("docker"), "/usr/bin/docker") if c and c not in candidates]
    for cli in candidates:
        if not cli or not Path(cli).exists() and shutil.which(cli) is None:
            continue
        if subprocess.run([cli, "buildx", "version"], capture_output=True, check=False).returncode == 0:
            return [cli, "buildx", "build", "--load"]
        ver = subprocess.run(
            [cli, "version", "--format", "{{.Client.Version}}"], capture_output=True, text=True, check=False
        ).stdout.strip()
        m = re.match(r"(\d+)\.", ver)
        if m and int(m.group(1)) < 23:  # the classic CLI embeds a BuildKit client (DOCKER_BUILDKIT=1)
            return [cli, "build"]
    raise EngineMisconfigured(
        "no docker CLI able to run BuildKit builds: install the buildx plugin, or set SPACEYARD_DOCKER_CLI "
        "to a docker CLI older than 23 (e.g. Debian's /usr/bin/docker)"
    )


def _die_with_parent() -> None:
    """In the docker CLI child: get SIGKILL when the worker dies, so a killed build does not run on."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class _Scrubber:
    def __init__(self, secrets: dict[str, str]) -> None:
        # Longest first, so a secret that contains another is replaced whole.
        self.values = sorted((v for v in secrets.values() if v), key=len, reverse=True)

    def __call__(self, line: str) -> str:
        for value in self.values:
            if value in line:
                line = line.replace(value, "***")
        return line


class DockerEngine(BuildEngine):
    name = "docker"

    def __init__(self, settings: BuilderSettings) -> None:
        super().__init__(settings)
        self._client: docker.DockerClient | None = None
        self._lock = threading.Lock()

    @property
    def client(self) -> docker.DockerClient:
        with self._lock:
            if self._client is None:
                try:
                    self._client = docker.DockerClient(base_url=self.settings.docker_url, version="auto")
                except docker.errors.DockerException as exc:
                    raise TransientBuildError(f"the Docker engine is not reachable: {exc}") from exc
            return self._client

    # ------------------------------------------------------------------ inputs

    def dockerfile(self, config: SpaceConfig, source: Path) -> str:
        if config.sdk == "docker":
            return (source / "Dockerfile").read_text(encoding="utf-8", errors="replace")
        return generated_dockerfile(config, source, self.settings)

    def base_image(self, config: SpaceConfig) -> str:
        """``docker_base_image``, with ``{python_version}`` filled from the README (default 3.11)."""
        return self.settings.docker_base_image.replace("{python_version}", config.python_version or "3.11")

    def build_args(self, request: BuildRequest, config: SpaceConfig) -> dict[str, str]:
        args = {"BASE_IMAGE": self.base_image(config)}
        if config.sdk == "docker":
            args.update(request.variables)
            args["BASE_IMAGE"] = request.variables.get("BASE_IMAGE", args["BASE_IMAGE"])
        return args

    def _base_image_id(self, name: str) -> str:
        try:
            return str(self.client.images.get(name).id)
        except docker.errors.ImageNotFound:
            return name
        except docker.errors.APIError as exc:
            raise TransientBuildError(f"the Docker engine failed: {exc}") from exc

    def content_hash(self, dockerfile: str, source: Path, build_args: dict[str, str], secret_names: list[str]) -> str:
        h = FramedHash()
        put = h.put

        put("engine", ENGINE_VERSION, "dockerfile", dockerfile, "base", self._base_image_id(build_args["BASE_IMAGE"]))
        put("args", json.dumps(build_args, sort_keys=True), "secrets", json.dumps(sorted(secret_names)))
        for p in _files(source):
            rel = str(p.relative_to(source))
            if p.is_symlink():
                put("link", rel, os.readlink(p))
            else:
                put("file", rel, oct(p.stat().st_mode & 0o111), p.read_bytes())
        return h.hexdigest()[:32]

    def tag_for(self, content_hash: str) -> str:
        repo = self.settings.docker_image_repository
        if self.settings.registry:
            repo = f"{self.settings.registry.rstrip('/')}/{repo}"
        return f"{repo}:{content_hash}"

    def artifact_exists(self, artifact_id: str) -> bool:
        if artifact_id.startswith("static:"):
            return Path(artifact_id.removeprefix("static:")).exists()
        try:
            self.client.images.get(artifact_id)
            return True
        except docker.errors.ImageNotFound:
            return False

    # ------------------------------------------------------------------ build

    def build(self, request: BuildRequest, source: Path, config: SpaceConfig, log: BuildLog) -> Artifact:
        if config.sdk == "static":
            log("--> static Space: no image to build, files are served as they are")
            return Artifact(id=f"static:{source}", cache_hit=True)
        for name in request.secrets:
            if not _SECRET_NAME.match(name):
                raise BuildFailed(f"secret name {name!r} is not a valid identifier")
        dockerfile = self.dockerfile(config, source)
        args = self.build_args(request, config)
        if (
            config.python_version
            and config.sdk != "docker"
            and "{python_version}" not in self.settings.docker_base_image
        ):
            log(
                f"WARNING: python_version {config.python_version} is not available here; building on "
                f"{args['BASE_IMAGE']} (set SPACEYARD_DOCKER_BASE_IMAGE=python:{{python_version}}-slim to honour it)"
            )
        digest = self.content_hash(dockerfile, source, args, list(request.secrets))
        tag = self.tag_for(digest)
        if not request.no_cache and self.artifact_exists(tag):
            log(f"--> Reusing image {tag}: same Dockerfile and files, nothing to build")
            return Artifact(id=tag, cache_hit=True)
        lock_dir = self.settings.data_dir / "docker" / "locks"
        lock_dir.mkdir(parents=True, exist_ok=True)
        with open(lock_dir / f"{digest}.lock", "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                log(f"--> Image {tag} is being built by another build; waiting for it")
                fcntl.flock(lock, fcntl.LOCK_EX)
                if self.artifact_exists(tag):
                    log(f"--> Reusing image {tag}, built meanwhile")
                    return Artifact(id=tag, cache_hit=True)
            if not request.no_cache and self.artifact_exists(tag):
                log(f"--> Reusing image {tag}, built meanwhile")
                return Artifact(id=tag, cache_hit=True)
            self._docker_build(request, config, source, dockerfile, args, tag, digest, log)
        if self.settings.registry:
            self._push(tag, log)
        return Artifact(id=tag, cache_hit=False)

    def _docker_build(
        self,
        request: BuildRequest,
        config: SpaceConfig,
        source: Path,
        dockerfile: str,
        args: dict[str, str],
        tag: str,
        digest: str,
        log: BuildLog,
    ) -> None:
        scrub = _Scrubber(request.secrets)
        cli = _buildkit_cli(self.settings.docker_cli)
        with tempfile.TemporaryDirectory(prefix="spaceyard-build-") as tmp:
            os.chmod(tmp, 0o700)
            tmpdir = Path(tmp)
            dockerfile_path = tmpdir / "Dockerfile"
            dockerfile_path.write_text(dockerfile, encoding="utf-8")
            ignore = source / ".dockerignore"
            ignore_text = ignore.read_text(encoding="utf-8", errors="replace") if ignore.exists() else ""
            # BuildKit reads <Dockerfile>.dockerignore next to an out-of-context Dockerfile.
            (tmpdir / "Dockerfile.dockerignore").write_text(
                ignore_text + "\n" + "\n".join(SKIP_FILES) + "\n", encoding="utf-8"
            )
            argv = [
                *cli,
                "--progress=plain",
                "--network",
                self.settings.docker_build_network,
                "-f",
                str(dockerfile_path),
                "-t",
                tag,
                "--label",
                f"org.spaceyard.content-hash={digest}",
            ]
            if request.no_cache:
                argv.append("--no-cache")
            for key in args:
                # Values go through the environment, not argv: `--build-arg NAME` reads $NAME.
                argv += ["--build-arg", key]
            env = {k: v for k, v in os.environ.items() if k not in args}
            env.update(args)
            env["DOCKER_BUILDKIT"] = "1"
            env["DOCKER_HOST"] = self.settings.docker_url
            env["BUILDKIT_PROGRESS"] = "plain"
            secrets_dir = tmpdir / "secrets"
            secrets_dir.mkdir(mode=0o700)
            for name, value in request.secrets.items():
                path = secrets_dir / name
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    f.write(value)
                argv += ["--secret", f"id={name},src={path}"]
            if self.settings.docker_build_ca_bundle is not None and config.sdk != "docker":
                argv += ["--secret", f"id={CA_SECRET},src={self.settings.docker_build_ca_bundle}"]
            argv.append(str(source))
            log(f"--> docker build {config.sdk} Space -> {tag}")
            tail: list[str] = []

            def on_line(line: str) -> None:
                nonlocal tail
                line = scrub(line)
                log(line)
                tail = (tail + [line])[-20:]

            cancelled = cancel.BuildCancel(self.settings).checker(request.build_id)
            rc = self._run(argv, env, on_line, cancelled)
            if rc != 0 and cancelled():
                raise BuildFailed(f"docker build: {cancel.REASON}")
            if rc != 0:
                detail = "\n".join(t for t in tail if t.strip())
                raise BuildFailed(f"docker build failed (exit {rc}):\n{detail}")

    def _run(
        self, argv: list[str], env: dict[str, str], on_line: BuildLog, cancelled: Callable[[], bool] | None = None
    ) -> int:
        """Run the docker CLI, its output to ``on_line``; killed at the build timeout or once ``cancelled()``
        (the Space was deleted: BuildKit stops the build when its client goes)."""
        proc = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            text=True,
            bufsize=1,
            errors="replace",
            preexec_fn=_die_with_parent,
        )
        timer = threading.Timer(self.settings.build_timeout, proc.kill)
        timer.start()
        if cancelled is not None:
            cancel.kill_when_cancelled(proc, cancelled)
        try:
            assert proc.stdout is not None
            for raw in proc.stdout:
                on_line(raw.rstrip("\n"))
            return proc.wait()
        finally:
            timer.cancel()
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    def _push(self, tag: str, log: BuildLog) -> None:
        repo, _, version = tag.rpartition(":")
        log(f"--> Pushing image {tag}")
        try:
            for event in self.client.images.push(repo, tag=version, stream=True, decode=True):
                if isinstance(event, dict) and event.get("error"):
                    raise BuildFailed(f"pushing {tag} failed: {event['error']}")
        except docker.errors.APIError as exc:
            raise TransientBuildError(f"pushing {tag} failed: {exc}") from exc

    # ------------------------------------------------------------------ introspection (tests, benchmarks)

    def layers(self, tag: str) -> list[str]:
        """The image's layer diff ids, base first."""
        attrs: dict[str, Any] = self.client.images.get(tag).attrs
        return list(attrs["RootFS"]["Layers"])
