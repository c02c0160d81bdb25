"""Dockerfile builds with buildah, for the oci engine's ``sdk: docker`` Spaces: no daemon, no Docker socket.

:class:`BuildahBuilder` turns a Space's own ``Dockerfile`` into an image in ``SPACEYARD_REGISTRY``:

1. **Bases**: every ``FROM`` (:mod:`.dockerfile`) must name an image of the registry the worker pushes
   to (a Docker Hub name such as ``python:3.11-slim`` is looked up there as ``python`` or
   ``library/python``); anything else is ``BUILD_ERROR`` naming the image and listing what the registry
   has. ``BASE_IMAGE`` is a build argument (``SPACEYARD_DOCKER_BASE_IMAGE``, as with the docker engine),
   so ``FROM ${BASE_IMAGE}`` builds on the cluster's base. Each base is pinned to its digest.
2. **Content addressing**: the image's tag is a hash of the pinned Dockerfile, every file of the
   commit, the build arguments, the secrets' names and the build network: when the registry has that
   tag, nothing is pulled, run or pushed.
3. **Walls** (:meth:`BuildWalls.tool_command`): buildah runs in bubblewrap's new pid, mount, IPC and
   UTS namespaces with a clean environment, seeing the system's ``/usr``, its own storage (a fresh one
   per build, removed after it: no build sees or poisons another's layers), the commit read-only and
   the build's secrets; nothing of the worker (no ``DATA_DIR``, no service-account token, no platform
   variable). ``RUN`` steps run as the image's root in buildah's chroot isolation with a small
   capability set (no ``SYS_ADMIN``, no ``SYS_CHROOT``). Registry credentials are used only by the
   pull and push steps, never by the step that runs the Dockerfile. Network of ``RUN`` steps:
   ``SPACEYARD_DOCKER_BUILD_NETWORK`` (``host``: the worker's, as the docker engine; ``none``: none).
4. **Bounds**: the build deadline (``SPACEYARD_BUILD_TIMEOUT``), the disk the build's storage may
   fill (``SPACEYARD_DOCKERFILE_BUILD_MAX_BYTES``), the build log's own bound; the platform's
   cancel request kills it.
5. **Push** to the registry under that tag; the log of every step streams to the Space's build log,
   with secret values replaced by ``***``.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from ..api import Artifact, BuildLog, BuildRequest
from ..errors import BuildFailed
from ..framedhash import FramedHash
from ..oci.registry import ImageRef, Registry, RegistryError
from ..settings import BuilderSettings
from ..walls import PASSED_THROUGH, BuildWalls
from . import dockerfile, steps
from .docker import _SECRET_NAME, SKIP_FILES

ENGINE_VERSION = "1"
HUB_HOSTS = ("docker.io", "index.docker.io", "registry-1.docker.io")
RUN_CAPS = "CAP_CHOWN,CAP_DAC_OVERRIDE,CAP_FOWNER,CAP_FSETID,CAP_KILL,CAP_SETGID,CAP_SETUID"
"""What a ``RUN`` step may do as the image's root: own and chmod files, switch users (``useradd``,
``su``); not mount, chroot, load modules or trace."""
POLICY = {"default": [{"type": "insecureAcceptAnything"}]}
REGISTRIES_CONF = 'unqualified-search-registries = []\nshort-name-mode = "disabled"\n'
SIZE_POLL = 5.0
_SPACE_TAG = re.compile(r":(docker-)?[0-9a-f]{32}$")
"""Tags of built Space images (content hashes), never listed as bases."""


def _disk_usage(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
    return total


class BuildahBuilder:
    """See the module docstring. One per engine; ``build`` is called per Docker Space build."""

    def __init__(self, settings: BuilderSettings, walls: BuildWalls) -> None:
        self.settings = settings
        self.walls = walls

    # ------------------------------------------------------------------ inputs

    def build_args(self, request: BuildRequest, base_image: str) -> dict[str, str]:
        """``BASE_IMAGE`` and the Space's variables, as the docker engine passes them."""
        return {"BASE_IMAGE": base_image, **request.variables}

    def _pull_host(self) -> str:
        return (self.settings.registry_push or self.settings.registry or "").rstrip("/")

    def resolve_base(self, image: str, registry: Registry) -> ImageRef:
        """The image of the worker's registry that ``image`` (a ``FROM``) names, pinned to its digest."""
        own = {h for h in (self.settings.registry, self.settings.registry_push) if h}
        own = {h.rstrip("/") for h in own}
        name, _, digest = image.partition("@")
        first, _, rest = name.partition("/")
        has_host = bool(rest) and ("." in first or ":" in first or first == "localhost")
        host, path = (first, rest) if has_host else ("docker.io", name)
        if host not in own and host not in HUB_HOSTS:
            raise self._unavailable(image, registry, f"builds here can pull only from {', '.join(sorted(own))}")
        repository, _, tag = path.rpartition(":") if ":" in path.rsplit("/", 1)[-1] else (path, "", "latest")
        candidates = [repository]
        if host in HUB_HOSTS:
            candidates = (
                [repository, f"library/{repository}"]
                if "/" not in repository
                else [repository, repository.removeprefix("library/")]
            )
        spaces = self.settings.docker_image_repository.lower()
        if any(c.lower() == spaces for c in candidates):
            raise BuildFailed(
                f"FROM {image}: images of Spaces ({spaces}) cannot be a base: they may hold another Space's "
                f"private files. Build on the configured base image {self.settings.docker_base_image}."
            )
        for candidate in candidates:
            ref = ImageRef(registry.host, candidate.lower(), digest or tag)
            if registry.manifest_exists(ref):
                _manifest, pinned = registry.manifest(ref)
                return ImageRef(registry.host, ref.repository, pinned)
        raise self._unavailable(image, registry, f"the registry {self.settings.registry} has no such image")

    def _unavailable(self, image: str, registry: Registry, why: str) -> BuildFailed:
        try:
            names = [n for n in registry.images() if not _SPACE_TAG.search(n)]
        except (RegistryError, OSError):
            names = []
        available = ", ".join(names) if names else "(the registry lists none)"
        return BuildFailed(
            f"FROM {image}: {why}; Docker Spaces build only on images of the cluster's registry. Available: "
            f"{available}. `FROM ${{BASE_IMAGE}}` (build argument BASE_IMAGE) builds on the configured base "
            f"image {self.settings.docker_base_image}."
        )

    def content_tag(self, pinned_dockerfile: str, source: Path, args: dict[str, str], secrets: list[str]) -> str:
        h = FramedHash()
        put = h.put

        put("buildah", ENGINE_VERSION, pinned_dockerfile, json.dumps(args, sort_keys=True))
        put(json.dumps(sorted(secrets)), self.settings.docker_build_network)
        for p in sorted(source.rglob("*")):
            rel = p.relative_to(source)
            if rel.parts[0] in SKIP_FILES or not (p.is_file() or p.is_symlink()):
                continue
            if p.is_symlink():
                put("link", str(rel), os.readlink(p))
            else:
                put("file", str(rel), oct(p.stat().st_mode & 0o111), p.read_bytes())
        return "docker-" + h.hexdigest()[:32]

    # ------------------------------------------------------------------ build

    def build(
        self,
        request: BuildRequest,
        source: Path,
        log: BuildLog,
        registry: Registry,
        deadline: float,
        cancelled: Callable[[], bool] | None,
    ) -> Artifact:
        path = source / "Dockerfile"
        if not path.is_file():
            raise BuildFailed("sdk: docker needs a Dockerfile at the root of the Space repository")
        for name in request.secrets:
            if not _SECRET_NAME.match(name):
                raise BuildFailed(f"secret name {name!r} is not a valid identifier")
        text = path.read_text(encoding="utf-8", errors="replace")
        base_image = self.settings.docker_base_image.replace("{python_version}", "3.11")
        args = self.build_args(request, base_image)
        pins: dict[int, str] = {}
        bases: list[ImageRef] = []
        for line in dockerfile.from_lines(text, args):
            if line.image is not None:
                ref = self.resolve_base(line.image, registry)
                log(f"--> FROM {line.written}: {line.image} = {ref}")
                pins[line.line] = str(ref)
                bases.append(ref)
        pinned = dockerfile.pin(text, pins)
        tag = self.content_tag(pinned, source, args, list(request.secrets))
        repository = self.settings.docker_image_repository.lower()
        target = ImageRef((self.settings.registry or "").rstrip("/"), repository, tag)
        pushed = ImageRef(registry.host, target.repository, tag)
        if not request.no_cache and registry.manifest_exists(pushed):
            log(f"--> Reusing image {target}: same Dockerfile, bases, files and arguments; nothing to build")
            return Artifact(id=str(target), cache_hit=True)
        work_root = self.settings.oci_root / "work"
        work_root.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix="buildah.", dir=work_root))
        try:
            self._run_build(request, source, pinned, args, bases, pushed, work, log, deadline, cancelled)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        log(f"--> Pushed {target}")
        return Artifact(id=str(target), cache_hit=False)

    def _run_build(
        self,
        request: BuildRequest,
        source: Path,
        pinned: str,
        args: dict[str, str],
        bases: list[ImageRef],
        pushed: ImageRef,
        work: Path,
        log: BuildLog,
        deadline: float,
        cancelled: Callable[[], bool] | None,
    ) -> None:
        for d in ("storage", "run", "tmp", "secrets", "auth", "conf"):
            (work / d).mkdir(mode=0o700)
        (work / "Dockerfile").write_text(pinned, encoding="utf-8")
        ignore = source / ".dockerignore"
        ignored = ignore.read_text(encoding="utf-8", errors="replace") if ignore.is_file() else ""
        (work / "ignore").write_text(ignored + "\n" + "\n".join(SKIP_FILES) + "\n", encoding="utf-8")
        (work / "conf" / "policy.json").write_text(json.dumps(POLICY))
        (work / "conf" / "registries.conf").write_text(REGISTRIES_CONF)
        for name, value in request.secrets.items():
            fd = os.open(work / "secrets" / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(value)
        auth = work / "auth" / "auth.json"
        auth.write_text(json.dumps({"auths": self._auths()}))
        auth.chmod(0o600)
        storage = ["--root", "/build/storage", "--runroot", "/build/run", "--storage-driver", "vfs"]
        tls = [f"--tls-verify={'false' if self._plain() else 'true'}"]
        common = {"/build/storage": work / "storage", "/build/run": work / "run", "/build/tmp": work / "tmp"}
        conf = {
            "/etc/containers/policy.json": work / "conf" / "policy.json",
            "/etc/containers/registries.conf": work / "conf" / "registries.conf",
        }
        secrets_public = {v: "***" for v in request.secrets.values() if v}
        public = {**secrets_public, str(work): "/build", str(source.resolve()): "/build/context"}
        too_big = self._size_watch(work / "storage")

        def stop() -> bool:
            return too_big() or (cancelled() if cancelled is not None else False)

        def run(argv: list[str], what: str, ro: dict[str, Path], network: bool) -> None:
            try:
                steps.run_step(
                    self.walls.tool_command(argv, ro={**conf, **ro}, rw=common, network=network),
                    announce=steps.shown(argv),
                    what=what,
                    log=log,
                    env=self._env(),
                    cwd=Path("/"),
                    deadline=deadline,
                    timeout_setting=self.settings.build_timeout,
                    public=public,
                    cancelled=stop,
                )
            except BuildFailed:
                if too_big():
                    limit = self.settings.dockerfile_build_max_bytes
                    raise BuildFailed(
                        f"{what}: the build wrote more than {limit / 2**30:g} GiB "
                        "(SPACEYARD_DOCKERFILE_BUILD_MAX_BYTES)"
                    ) from None
                raise

        buildah = shutil.which("buildah") or "buildah"
        with_auth = {"/build/auth/auth.json": auth}
        for base in bases:
            run(
                [buildah, *storage, "pull", *tls, "--authfile", "/build/auth/auth.json", "--quiet", str(base)],
                f"Pulling {base}",
                with_auth,
                network=True,
            )
        bud = [buildah, *storage, "bud", "--isolation", "chroot", "--pull=never", "--layers=false"]
        bud += ["--cap-drop", "ALL", "--cap-add", RUN_CAPS, "--network", "host"]
        bud += ["-f", "/build/Dockerfile", "--ignorefile", "/build/ignore", "-t", str(pushed)]
        if request.no_cache:
            bud.append("--no-cache")
        for key, value in args.items():
            bud += ["--build-arg", f"{key}={value}"]
        for name in request.secrets:
            bud += ["--secret", f"id={name},src=/build/secrets/{name}"]
        ro = {"/build/Dockerfile": work / "Dockerfile", "/build/ignore": work / "ignore"}
        ro |= {"/build/context": source.resolve(), "/build/secrets": work / "secrets"}
        network = self.settings.docker_build_network != "none"
        log(f"--> Building the Dockerfile with buildah (RUN network: {'the worker' if network else 'none'})")
        run([*bud, "/build/context"], "Building the Dockerfile", ro, network=network)
        push = [buildah, *storage, "push", *tls, "--authfile", "/build/auth/auth.json", "--quiet", str(pushed)]
        run([*push, f"docker://{pushed}"], f"Pushing {pushed}", with_auth, network=True)

    def _plain(self) -> bool:
        host = self._pull_host().split(":")[0]
        return self.settings.registry_plain_http or host in ("127.0.0.1", "localhost", "::1")

    def _auths(self) -> dict[str, dict[str, str]]:
        user, password = self.settings.registry_username, self.settings.registry_password
        if not user:
            return {}
        secret = password.get_secret_value() if password else ""
        return {self._pull_host(): {"auth": base64.b64encode(f"{user}:{secret}".encode()).decode()}}

    def _env(self) -> dict[str, str]:
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "HOME": "/build/tmp", "LANG": "C.UTF-8"}
        env |= {"TMPDIR": "/build/tmp", "BUILDAH_FORMAT": "oci", "BUILDAH_ISOLATION": "chroot"}
        env |= {k: v for k, v in os.environ.items() if k in PASSED_THROUGH and k != "SSL_CERT_FILE"}
        return env

    def _size_watch(self, storage: Path) -> Callable[[], bool]:
        """Whether the build's storage grew past its bound (measured at most every :data:`SIZE_POLL` s)."""
        limit = self.settings.dockerfile_build_max_bytes
        state = {"at": 0.0, "over": False}
        lock = threading.Lock()

        def over() -> bool:
            with lock:
                if not state["over"] and time.monotonic() - state["at"] >= SIZE_POLL:
                    state["at"] = time.monotonic()
                    state["over"] = _disk_usage(storage) > limit
                return bool(state["over"])

        return over


__all__ = ["BuildahBuilder"]
