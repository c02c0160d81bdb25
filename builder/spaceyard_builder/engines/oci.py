"""oci engine: Space images assembled without a daemon and pushed to a registry (ko/Jib style).

No Docker socket, no BuildKit, no privileged container: the engine speaks the OCI distribution API to
``SPACEYARD_REGISTRY`` (:mod:`spaceyard_builder.oci.registry`) and writes the layers itself
(:mod:`spaceyard_builder.oci.layers`). The image of a Gradio/Streamlit Space is the base image
(``docker_base_image``, read from the registry) plus three layers, in the Hub's layout (the same
as the docker engine's generated Dockerfile: ``/home/user/app``, a virtual environment at
``/home/user/.venv``, uid 1000, port 7860, the Hub's ``ENV``):

1. **user**: ``/etc/passwd`` and ``/etc/group`` with ``user`` (uid 1000) and ``/home/user``;
2. **environment**: ``/home/user/.venv``, installed by uv from the lock that
   :mod:`~spaceyard_builder.engines.resolution` resolves (as the local engine does), with bytecode
   compiled. It is built *inside the base image's own filesystem*: the engine unpacks the base image
   once (cached by its digest) and runs uv in the build walls with that directory as ``/``, so the
   environment is made by, and for, the image's own interpreter. The walls are the local engine's
   (bubblewrap, the unprivileged build uid, no capabilities): a hostile ``setup.py`` sees the image's
   files, the commit, its environment and the uv cache; nothing of the worker (no ``DATA_DIR``, no
   platform variable);
3. **app**: the commit's files at ``/home/user/app`` (uid 1000).

Content addressing, twice:

* the image's tag is a hash of everything that goes into it (engine version, base manifest digest,
  the environment's id, the Space's SDK settings, every file of the commit): when the registry has
  that tag, the build is done before it starts: nothing is installed, packed or uploaded;
* the environment layer is indexed by (base image, environment id) *in the registry*: a small
  manifest tagged ``env-<key>`` names it, so any worker, on any machine, with an empty disk, finds it.
  A commit that changes only app code, or another Space with the same dependencies, reuses the layer
  the registry already has (no install, no upload); only the small app layer, the config and the
  manifest are sent. Layers are written reproducibly, so every blob is uploaded only if the registry
  lacks its digest, and base layers are mounted across repositories, never re-sent.

``sdk: docker`` Spaces (their own Dockerfile) are built by buildah in the same walls and pushed to the
same registry (:mod:`.buildah`).

Not done by this engine, and said in the build log or as ``BUILD_ERROR``:

* ``packages.txt``: apt packages are not installed (a warning, as with the local engine); the app
  gets the base image's system packages (ffmpeg included);
* a ``python_version`` other than the base image's interpreter: a warning; set
  ``docker_base_image`` to a base with that Python (``{python_version}`` is filled in).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import cancel
from ..api import Artifact, BuildEngine, BuildLog, BuildRequest
from ..errors import BuildFailed
from ..oci import layers
from ..oci.registry import (
    DOCKER_LAYER_GZIP,
    OCI_CONFIG,
    OCI_LAYER_GZIP,
    OCI_MANIFEST,
    ImageRef,
    Registry,
    sha256_digest,
)
from ..preload import HUB_DIR
from ..settings import BuilderSettings
from ..spaceconfig import SpaceConfig
from ..walls import BuildWalls, create_walls
from . import compile_progress, resolution, steps
from .buildah import BuildahBuilder
from .docker import APP_PORT, SDK_REQUIREMENTS, SKIP_FILES, hub_cmd, hub_env
from .local import _uv

ENGINE_VERSION = "2"
UID = 1000
HOME = "/home/user"
VENV = f"{HOME}/.venv"
APP = f"{HOME}/app"
TOOLS = "/opt/spaceyard"
"""Where the uv binary and the build's own files are bound inside the base image's filesystem."""
CA_PLACE = "/run/spaceyard-ca.crt"
ROOT_MARKER = ".spaceyard-rootfs.json"
MOUNT_DIRS = ("proc", "dev", "tmp", VENV, APP, "uv-cache", f"{TOOLS}/build")
MOUNT_FILES = ("etc/resolv.conf", "etc/hosts", f"{TOOLS}/uv", CA_PLACE)
EPOCH = "1970-01-01T00:00:00Z"
LAYER_TYPES = {
    DOCKER_LAYER_GZIP: OCI_LAYER_GZIP,
    "application/vnd.docker.image.rootfs.diff.tar": "application/vnd.oci.image.layer.v1.tar",
}


def _hash(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:32]


@contextlib.contextmanager
def _locked(path: Path, log: BuildLog, busy: str) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(busy)
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield


class _ChunkReader(io.RawIOBase):
    """A readable file over an iterator of byte chunks, hashing what it hands out."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks, self.buffer, self.hash = chunks, b"", hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while not self.buffer:
            try:
                self.buffer = next(self.chunks)
            except StopIteration:
                return 0
        n = min(len(b), len(self.buffer))
        b[:n], self.buffer = self.buffer[:n], self.buffer[n:]
        self.hash.update(b[:n])
        return n


@dataclass(frozen=True)
class _Inside:
    """Where a build step runs: the base image's root, what is bound into it, how its paths are shown."""

    root: Path
    ro: dict[str, Path] = field(default_factory=dict)
    rw: dict[str, Path] = field(default_factory=dict)
    public: dict[str, str] = field(default_factory=dict)
    cwd: str = "/"


class OciEngine(BuildEngine):
    name = "oci"

    def __init__(self, settings: BuilderSettings) -> None:
        super().__init__(settings)
        self._walls: BuildWalls | None = None
        self.last_stats: dict[str, int] = {}
        """What the last build sent to the registry (uploaded_blobs, uploaded_bytes, mounted_blobs, manifests_put)."""
        self._cancelled: Callable[[], bool] | None = None
        """Whether the platform cancelled the current build (:mod:`spaceyard_builder.cancel`)."""

    @property
    def walls(self) -> BuildWalls:
        if self._walls is None:
            self._walls = create_walls(self.settings.build_sandbox)
        return self._walls

    # ------------------------------------------------------------------ settings

    def registry(self) -> Registry:
        if not self.settings.registry:
            raise BuildFailed("the oci engine pushes images to a registry: set SPACEYARD_REGISTRY (host[:port])")
        password = self.settings.registry_password
        return Registry(
            (self.settings.registry_push or self.settings.registry).rstrip("/"),
            plain_http=self.settings.registry_plain_http,
            username=self.settings.registry_username,
            password=password.get_secret_value() if password else None,
        )

    def base_ref(self, config: SpaceConfig) -> ImageRef:
        name = self.settings.docker_base_image.replace("{python_version}", config.python_version or "3.11")
        return ImageRef.parse(name, default_host=(self.settings.registry or "").rstrip("/") or None)

    def target(self, tag: str) -> ImageRef:
        return ImageRef((self.settings.registry or "").rstrip("/"), self.settings.docker_image_repository.lower(), tag)

    def artifact_exists(self, artifact_id: str) -> bool:
        if artifact_id.startswith("static:"):
            return Path(artifact_id.removeprefix("static:")).exists()
        registry = self.registry()
        try:
            return registry.manifest_exists(ImageRef.parse(artifact_id))
        finally:
            registry.close()

    # ------------------------------------------------------------------ build

    def build(self, request: BuildRequest, source: Path, config: SpaceConfig, log: BuildLog) -> Artifact:
        if config.sdk == "static":
            log("--> static Space: no image to build, files are served as they are")
            return Artifact(id=f"static:{source}", cache_hit=True)
        self._cancelled = cancel.BuildCancel(self.settings).checker(request.build_id)
        deadline = time.monotonic() + self.settings.build_timeout
        registry = self.registry()
        try:
            if config.sdk == "docker":
                builder = BuildahBuilder(self.settings, self.walls)
                return builder.build(request, source, log, registry, deadline, self._cancelled)
            return self._build(request, source, config, log, registry, deadline)
        finally:
            self.last_stats = {
                "uploaded_blobs": registry.stats.uploaded_blobs,
                "uploaded_bytes": registry.stats.uploaded_bytes,
                "mounted_blobs": registry.stats.mounted_blobs,
                "manifests_put": registry.stats.manifests_put,
            }
            registry.close()

    def _build(
        self,
        request: BuildRequest,
        source: Path,
        config: SpaceConfig,
        log: BuildLog,
        registry: Registry,
        deadline: float,
    ) -> Artifact:
        base = self.base_ref(config)
        log(f"--> Base image {base}")
        # a base named in another registry is read from there (anonymously), its layers copied, not mounted
        origin = registry if base.host == self.target("x").host else Registry(base.host)
        try:
            return self._assemble(request, source, config, log, registry, deadline, origin, base)
        finally:
            if origin is not registry:
                origin.close()

    def _assemble(
        self,
        request: BuildRequest,
        source: Path,
        config: SpaceConfig,
        log: BuildLog,
        registry: Registry,
        deadline: float,
        origin: Registry,
        base: ImageRef,
    ) -> Artifact:
        manifest, base_digest = origin.manifest(base)
        base_config: dict[str, Any] = json.loads(origin.blob(base.repository, manifest["config"]["digest"]))
        root, python, python_version = self._base_root(origin, base, manifest, log, deadline)
        if config.python_version and not python_version.startswith(config.python_version):
            log(
                f"WARNING: python_version {config.python_version} asked for; the base image has Python "
                f"{python_version} (set SPACEYARD_DOCKER_BASE_IMAGE to a base with {{python_version}} in its name)"
            )
        if (source / "packages.txt").exists() and (source / "packages.txt").read_text(errors="replace").split():
            names = " ".join((source / "packages.txt").read_text(errors="replace").split())
            log(
                f"WARNING: packages.txt asks for system packages ({names}); the oci engine does not install them, so "
                "the app gets the base image's packages. Use SPACEYARD_BUILD_ENGINE=docker to honour it."
            )
        resolved = self._resolve(config, source, python_version, log, refresh=request.no_cache)
        env_key = _hash(ENGINE_VERSION, manifest["config"]["digest"], resolved.env_id)
        image_config = self._image_config(base_config, config, preloaded=(source / HUB_DIR).is_dir())
        tag = _hash(ENGINE_VERSION, base_digest, env_key, image_config, self._files_digest(source))
        ref = self.target(tag)
        if not request.no_cache and registry.manifest_exists(ref):
            log(f"--> Reusing image {ref}: same base, environment and files; nothing to build or upload")
            return Artifact(id=str(ref), cache_hit=True)
        oci = self.settings.oci_root
        with _locked(oci / "locks" / f"image-{tag}.lock", log, f"--> Image {ref} is being built by another build"):
            if not request.no_cache and registry.manifest_exists(ref):
                log(f"--> Reusing image {ref}, built meanwhile")
                return Artifact(id=str(ref), cache_hit=True)
            work = Path(tempfile.mkdtemp(prefix="build.", dir=self._dir("work")))
            try:
                user = self._user_layer(root, work)
                env = self._env_layer(
                    registry, ref, env_key, resolved, root, python, config, source, request, work, log, deadline
                )
                app = layers.write_layer(self._app_members(source), work / "app.tar.gz")
                log(f"--> App layer {app.digest[7:19]} ({app.size / 1e6:.1f} MB)")
                self._push(
                    registry, origin, base, manifest, base_config, image_config, [user, env, app], work, ref, log
                )
                stats = registry.stats
                log(
                    f"--> Pushed {ref}: {stats.uploaded_blobs} blobs uploaded ({stats.uploaded_bytes / 1e6:.1f} MB), "
                    f"{stats.mounted_blobs} mounted from the base image"
                )
            finally:
                shutil.rmtree(work, ignore_errors=True)
        return Artifact(id=str(ref), cache_hit=False)

    def _dir(self, name: str) -> Path:
        path = self.settings.oci_root / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    # ------------------------------------------------------------------ inputs

    def _resolve(
        self, config: SpaceConfig, source: Path, python_version: str, log: BuildLog, refresh: bool
    ) -> resolution.Resolution:
        def read(name: str) -> str:
            p = source / name
            return p.read_text(encoding="utf-8", errors="replace") if p.exists() else ""

        version = config.sdk_version or self.settings.default_sdk_versions.get(config.sdk, "")
        if not version:
            raise BuildFailed(f"no sdk_version given and no default version configured for sdk: {config.sdk}")
        env = {k: v for k, v in os.environ.items() if not k.startswith("SPACEYARD_") and k != "VIRTUAL_ENV"}
        env["UV_PYTHON_DOWNLOADS"] = "never"
        return resolution.resolve(
            uv=_uv(),
            uv_env=env,  # resolution runs no Space code (--no-build): outside the walls
            cache_dir=self.settings.oci_root / "resolutions",
            engine=f"oci{ENGINE_VERSION}",
            python=python_version,
            sdk=config.sdk,
            sdk_specs=self._sdk_specs(config, version),
            sdk_version=version,
            files={name: read(name) for name in ("pre-requirements.txt", "requirements.txt")},
            log=log,
            refresh=refresh,
        )

    @staticmethod
    def _sdk_specs(config: SpaceConfig, version: str) -> list[str]:
        return [s.format(version=version).strip('"') for s in SDK_REQUIREMENTS[config.sdk]]

    @staticmethod
    def _files_digest(source: Path) -> str:
        h = hashlib.sha256()
        for info, content in layers.tree_members(source, "app", skip=frozenset(SKIP_FILES)):
            h.update(f"{info.name}\0{info.type!r}\0{info.mode:o}\0{info.linkname}\0".encode())
            if isinstance(content, Path):
                h.update(content.read_bytes())
        return h.hexdigest()

    def _image_config(self, base_config: dict[str, Any], config: SpaceConfig, *, preloaded: bool) -> dict[str, Any]:
        """The ``config`` section of the image: the base's, with the Hub's environment, user and command."""
        cfg: dict[str, Any] = dict(base_config.get("config") or {})
        env = dict(e.split("=", 1) for e in cfg.get("Env") or [] if "=" in e)
        env.update(hub_env(config.sdk))
        env.update(
            {
                "HOME": HOME,
                "VIRTUAL_ENV": VENV,
                "PATH": f"{VENV}/bin:{HOME}/.local/bin:" + env.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            }
        )
        cfg.update(
            {
                "Env": [f"{k}={v}" for k, v in env.items()],
                "User": str(UID),
                "WorkingDir": APP,
                "Entrypoint": None,
                "Cmd": hub_cmd(config, preloaded=preloaded),
                "ExposedPorts": {f"{APP_PORT}/tcp": {}},
                "Labels": {**(cfg.get("Labels") or {}), "org.spaceyard.engine": f"oci/{ENGINE_VERSION}"},
            }
        )
        return cfg

    # ------------------------------------------------------------------ the base image's filesystem

    def _base_root(
        self, registry: Registry, base: ImageRef, manifest: dict[str, Any], log: BuildLog, deadline: float
    ) -> tuple[Path, str, str]:
        """The base image unpacked (once per image) and its interpreter: (root, python path, version)."""
        key = manifest["config"]["digest"].removeprefix("sha256:")[:32]
        root = self._dir("rootfs") / key
        marker = root / ROOT_MARKER
        if not marker.exists():
            with _locked(root.with_suffix(".lock"), log, "--> The base image is being unpacked by another build"):
                if not marker.exists():
                    self._unpack(registry, base, manifest, root, log)
        info = json.loads(marker.read_text()) if marker.exists() else {}
        if "python" not in info:
            python, version = self._probe_python(root, log, deadline)
            info = {"python": python, "version": version}
            marker.write_text(json.dumps(info))
        return root, info["python"], info["version"]

    def _unpack(self, registry: Registry, base: ImageRef, manifest: dict[str, Any], root: Path, log: BuildLog) -> None:
        started = time.monotonic()
        tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=root.parent))
        try:
            for layer in manifest["layers"]:
                log(f"--> Unpacking base layer {layer['digest'][7:19]} ({layer['size'] / 1e6:.0f} MB), once per base")
                with registry.blob_stream(base.repository, layer["digest"]) as chunks:
                    reader = _ChunkReader(chunks)
                    layers.extract_layer(io.BufferedReader(reader), tmp)  # type: ignore[arg-type]
                    if f"sha256:{reader.hash.hexdigest()}" != layer["digest"]:
                        raise BuildFailed(f"base layer {layer['digest']} does not match its digest")
            for d in MOUNT_DIRS:
                (tmp / d.lstrip("/")).mkdir(parents=True, exist_ok=True)
            for f in MOUNT_FILES:
                place = tmp / f.lstrip("/")
                if place.is_symlink():
                    place.unlink()
                place.parent.mkdir(parents=True, exist_ok=True)
                place.touch()
            tmp.chmod(0o755)
            (tmp / ROOT_MARKER).write_text("{}")
            if root.exists():
                shutil.rmtree(root)
            tmp.rename(root)
            log(f"--> Base image unpacked in {time.monotonic() - started:.1f} s")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _step_env(self) -> tuple[dict[str, str], dict[str, Path]]:
        """The whole environment of a build step, and the CA bundle to bind (the operator's, if set)."""
        env = self.walls.env(Path("/uv-cache"))
        env.update({"UV_LINK_MODE": "copy", "UV_COMPILE_BYTECODE": "0", "PATH": "/usr/local/bin:/usr/bin:/bin"})
        ro: dict[str, Path] = {}
        ca = env.pop("SSL_CERT_FILE", None)
        if ca and Path(ca).is_file():
            ro[CA_PLACE] = Path(ca).resolve()
            env["SSL_CERT_FILE"] = CA_PLACE
        return env, ro

    def _run(
        self,
        argv: list[str],
        what: str,
        log: BuildLog,
        deadline: float,
        inside: _Inside,
    ) -> None:
        env, ca = self._step_env()
        steps.run_step(
            self.walls.image_command(argv, root=inside.root, cwd=inside.cwd, ro={**ca, **inside.ro}, rw=inside.rw),
            announce=steps.shown(argv),
            what=what,
            log=log,
            env=env,
            cwd=Path("/"),
            deadline=deadline,
            timeout_setting=self.settings.build_timeout,
            public=inside.public,
            cancelled=self._cancelled,
        )

    def _probe_python(self, root: Path, log: BuildLog, deadline: float) -> tuple[str, str]:
        out: list[str] = []
        code = "import sys; print('PYTHON', sys.executable, '%d.%d.%d' % sys.version_info[:3])"
        self._run(["python3", "-c", code], "Finding the base image's Python", out.append, deadline, _Inside(root))
        for line in out:
            if line.startswith("PYTHON "):
                _, path, version = line.split()
                log(f"--> The base image's Python: {path} ({version})")
                return path, version
        raise BuildFailed(f"the base image has no usable python3: {' '.join(out)[-300:]}")

    # ------------------------------------------------------------------ layers

    def _user_layer(self, root: Path, work: Path) -> layers.Layer:
        def with_user(name: str, line: str) -> bytes:
            path = root / "etc" / name
            text = path.read_text() if path.exists() else ""
            if any(entry.split(":")[2:3] == [str(UID)] for entry in text.splitlines()):
                return text.encode()
            return (text + ("" if text.endswith("\n") or not text else "\n") + line + "\n").encode()

        members = [
            layers.dir_member("etc"),
            layers.file_member("etc/group", with_user("group", f"user:x:{UID}:")),
            layers.file_member("etc/passwd", with_user("passwd", f"user:x:{UID}:{UID}::{HOME}:/bin/sh")),
            layers.dir_member("home"),
            layers.dir_member(HOME, UID, UID),
        ]
        return layers.write_layer(members, work / "user.tar.gz")

    def _app_members(self, source: Path) -> Iterator[layers.Member]:
        yield layers.dir_member("home")
        yield layers.dir_member(HOME, UID, UID)
        yield layers.dir_member(APP, UID, UID)
        yield from layers.tree_members(source, APP, UID, UID, skip=frozenset(SKIP_FILES))

    def _env_layer(
        self,
        registry: Registry,
        ref: ImageRef,
        env_key: str,
        resolved: resolution.Resolution,
        root: Path,
        python: str,
        config: SpaceConfig,
        source: Path,
        request: BuildRequest,
        work: Path,
        log: BuildLog,
        deadline: float,
    ) -> layers.Layer:
        with _locked(
            self._dir("locks") / f"env-{env_key}.lock", log, "--> The environment is being built by another build"
        ):
            known = None if request.no_cache else self._known_env(registry, ref, env_key)
            if known is not None:
                log(
                    f"--> Reusing environment layer {known.digest[7:19]} ({known.size / 1e6:.0f} MB): "
                    "same base image and dependencies; not installed, not uploaded"
                )
                return known
            venv = work / "venv"
            venv.mkdir()
            self._install(venv, resolved, root, python, config, source, request, work, log, deadline)
            log("--> Packing the environment layer")
            members = [
                layers.dir_member("home"),
                layers.dir_member(HOME, UID, UID),
                layers.dir_member(VENV),
                *layers.tree_members(venv, VENV),
            ]
            layer = layers.write_layer(members, work / "env.tar.gz", mtime=None)
            log(f"--> Environment layer {layer.digest[7:19]} ({layer.size / 1e6:.0f} MB compressed)")
            registry.ensure_blob(ref.repository, layer.digest, work / "env.tar.gz")
            self._remember_env(registry, ref, env_key, layer)
            return layer

    @staticmethod
    def _env_tag(ref: ImageRef, env_key: str) -> ImageRef:
        return ImageRef(ref.host, ref.repository, f"env-{env_key}")

    def _known_env(self, registry: Registry, ref: ImageRef, env_key: str) -> layers.Layer | None:
        """The environment layer built for ``env_key`` before, by any worker: the registry keeps the index
        (a small manifest tagged ``env-<key>`` whose only layer is the environment)."""
        tag = self._env_tag(ref, env_key)
        if not registry.manifest_exists(tag):
            return None
        manifest, _ = registry.manifest(tag)
        (entry,) = manifest["layers"]
        diff_id = (entry.get("annotations") or {}).get("org.spaceyard.diff-id")
        if not diff_id or not registry.blob_exists(ref.repository, entry["digest"]):
            return None
        return layers.Layer(digest=entry["digest"], diff_id=diff_id, size=entry["size"])

    def _remember_env(self, registry: Registry, ref: ImageRef, env_key: str, layer: layers.Layer) -> None:
        config = {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [layer.diff_id]}}
        config_bytes = json.dumps(config, sort_keys=True).encode()
        config_digest = sha256_digest(config_bytes)
        registry.ensure_blob(ref.repository, config_digest, config_bytes)
        body = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config_bytes)},
            "layers": [{**layer.descriptor(), "annotations": {"org.spaceyard.diff-id": layer.diff_id}}],
        }
        registry.put_manifest(self._env_tag(ref, env_key), json.dumps(body, sort_keys=True).encode())

    def _install(
        self,
        venv: Path,
        resolved: resolution.Resolution,
        root: Path,
        python: str,
        config: SpaceConfig,
        source: Path,
        request: BuildRequest,
        work: Path,
        log: BuildLog,
        deadline: float,
    ) -> None:
        """Install the environment into ``venv`` (bound at /home/user/.venv) inside the base image's root."""
        build = work / "build"
        build.mkdir()
        shutil.copy2(compile_progress.__file__, build / "compile_progress.py")
        if resolved.lock is not None:
            (build / "lock.txt").write_text(resolved.lock)
        scratch = work / "app"
        shutil.copytree(source, scratch, symlinks=True, ignore=shutil.ignore_patterns(*SKIP_FILES))
        cache = self.settings.uv_cache_dir or self.settings.oci_root / "uv-cache"
        self.walls.prepare([venv, cache, scratch])
        walls = _Inside(
            root,
            ro={f"{TOOLS}/uv": Path(_uv()), f"{TOOLS}/build": build},
            rw={VENV: venv, "/uv-cache": cache, APP: scratch},
            public={str(work): "/build", str(cache): "/uv-cache", str(root): "", str(self.settings.data_dir): "/data"},
            cwd=APP,
        )
        uv, py = f"{TOOLS}/uv", f"{VENV}/bin/python"
        no_cache = ["--no-cache"] if request.no_cache else []
        venv_argv = [uv, "venv", "--quiet", "--allow-existing", "--python", python, VENV]
        self._run(venv_argv, "Creating the environment", log, deadline, walls)
        if resolved.lock is not None:
            self._run(
                [uv, "pip", "sync", "--python", py, *no_cache, f"{TOOLS}/build/lock.txt"],
                "Installing the resolved dependencies",
                log,
                deadline,
                walls,
            )
        else:
            for name in ("pre-requirements.txt", "requirements.txt"):
                if (source / name).exists() and (source / name).read_text(errors="replace").strip():
                    self._run(
                        [uv, "pip", "install", "--python", py, *no_cache, "-r", name],
                        f"Installing {name}",
                        log,
                        deadline,
                        walls,
                    )
            version = config.sdk_version or self.settings.default_sdk_versions.get(config.sdk, "")
            specs = self._sdk_specs(config, version)
            self._run(
                [uv, "pip", "install", "--python", py, *no_cache, *specs],
                f"Installing {specs[0]}",
                log,
                deadline,
                walls,
            )
        compile_argv = [py, f"{TOOLS}/build/compile_progress.py", f"{VENV}/lib"]
        self._run(compile_argv, "Compiling bytecode", log, deadline, walls)

    # ------------------------------------------------------------------ push

    def _push(
        self,
        registry: Registry,
        origin: Registry,
        base: ImageRef,
        manifest: dict[str, Any],
        base_config: dict[str, Any],
        image_config: dict[str, Any],
        added: list[layers.Layer],
        work: Path,
        ref: ImageRef,
        log: BuildLog,
    ) -> None:
        descriptors = []
        for layer in manifest["layers"]:
            digest = layer["digest"]
            if not registry.blob_exists(ref.repository, digest) and not (
                origin is registry and registry.mount_blob(ref.repository, digest, base.repository)
            ):
                blob = work / "base-layer"
                with origin.blob_stream(base.repository, digest) as chunks, blob.open("wb") as f:
                    for chunk in chunks:
                        f.write(chunk)
                registry.upload_blob(ref.repository, digest, blob)
                blob.unlink()
            descriptors.append({**layer, "mediaType": LAYER_TYPES.get(layer["mediaType"], layer["mediaType"])})
        files = {"user": work / "user.tar.gz", "app": work / "app.tar.gz"}
        for name, layer in zip(("user", "env", "app"), added, strict=True):
            if name in files:
                registry.ensure_blob(ref.repository, layer.digest, files[name])
            descriptors.append(layer.descriptor())
        cfg = {
            key: value
            for key, value in base_config.items()
            if key not in ("config", "container_config", "container", "rootfs", "history", "created")
        }
        history = list(base_config.get("history") or [])
        for name in ("user", "env", "app"):
            history.append({"created": EPOCH, "created_by": f"spaceyard oci engine: {name} layer"})
        cfg.update(
            {
                "created": EPOCH,
                "architecture": base_config.get("architecture", "amd64"),
                "os": base_config.get("os", "linux"),
                "config": image_config,
                "rootfs": {
                    "type": "layers",
                    "diff_ids": [*base_config["rootfs"]["diff_ids"], *(layer.diff_id for layer in added)],
                },
                "history": history,
            }
        )
        config_bytes = json.dumps(cfg, sort_keys=True, separators=(",", ":")).encode()
        config_digest = sha256_digest(config_bytes)
        registry.ensure_blob(ref.repository, config_digest, config_bytes)
        body = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config_bytes)},
            "layers": descriptors,
            "annotations": {"org.opencontainers.image.base.name": str(base)},
        }
        digest = registry.put_manifest(ref, json.dumps(body, sort_keys=True, separators=(",", ":")).encode())
        log(f"--> Manifest {digest[7:19]} -> {ref}")
