"""One build, start to finish, independent of the queue that runs it: export, configure, build."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from .api import BuildEngine, BuildLog, BuildRequest, BuildResult
from .engines import create_engine
from .errors import BuilderError, BuildFailed, ConfigError, NoAppFileError, TransientBuildError
from .hubstore import HubStore
from .lfs import MissingObjects, smudge_tree
from .logs import LogStore
from .ownership import give_to_data_owner
from .preload import preload
from .settings import BuilderSettings
from .source import TreeItem, export_commit, link_target, list_tree, read_blob, resolve_in_tree
from .spaceconfig import README_PREFIX, SpaceConfig, parse_readme

BUILD_INPUTS = ("requirements.txt", "pre-requirements.txt", "packages.txt", "Dockerfile", ".dockerignore")
"""Files the engines read from the export: they must be regular files, or links inside the commit."""


def source_folder(request: BuildRequest) -> str:
    """The folder the platform named; the builder's one derivation of it (``OWNER--NAME``, the platform's
    rule) serves requests that carry none: queued by an older platform, or made by hand."""
    return request.source_folder or request.space_id.replace("/", "--")


def read_readme(repo: str, items: dict[str, TreeItem]) -> str | None:
    """README.md's text from git (a link is followed only inside the commit); None when there is none."""
    if "README.md" not in items:
        return None
    item = resolve_in_tree(repo, items, "README.md")
    if item is None:
        raise ConfigError(
            "README.md is a symlink to a path outside the repository (or a submodule): Spaceyard reads the "
            "configuration only from a file in the commit"
        )
    return read_blob(repo, item.oid, limit=README_PREFIX).decode("utf-8", errors="replace")


def check_build_inputs(repo: str, items: dict[str, TreeItem], app_file: str, log: Callable[[str], None]) -> None:
    """Build files that are symlinks must stay in the commit; submodules are said in the log."""
    for path in (*BUILD_INPUTS, app_file):
        item = items.get(path)
        if item is not None and item.kind == "symlink" and resolve_in_tree(repo, items, path) is None:
            raise BuildFailed(
                f"{path} is a symlink to {link_target(repo, item)!r}, outside the repository: Spaceyard reads "
                "build files only from the commit (replace the link with the file)"
            )
    for item in items.values():
        if item.kind == "submodule":
            log(
                f"--> warning: {item.path} is a git submodule (commit {item.oid[:12]}); its files are not "
                "included (submodules are not fetched): add them to the Space itself"
            )


def app_files(repo: str, items: dict[str, TreeItem]) -> set[str]:
    """Paths that are files in the commit: regular files and links resolving to one inside it."""
    return {
        p
        for p, item in items.items()
        if item.kind == "file" or (item.kind == "symlink" and resolve_in_tree(repo, items, p))
    }


def check_app_file(config: SpaceConfig, files: set[str]) -> None:
    if config.sdk == "docker":
        if "Dockerfile" not in files:
            raise NoAppFileError("sdk: docker needs a Dockerfile at the root of the repository")
        return
    app_file = config.effective_app_file
    if app_file not in files:
        raise NoAppFileError(
            f"app_file {app_file!r} is not in this commit"
            + ("" if config.app_file else f" (the default for sdk: {config.sdk}; set app_file to change it)")
        )


def checkout_lfs(source: Path, request: BuildRequest, settings: BuilderSettings, log: BuildLog) -> None:
    """After the export: LFS pointer files become their objects' contents (what the app reads)."""
    if "://" in request.repo:
        return
    try:
        smudge_tree(source, settings.data_dir, Path(request.repo), log)
    except MissingObjects as exc:
        raise BuildFailed(str(exc)) from exc


def run_build(
    request: BuildRequest,
    settings: BuilderSettings,
    log_store: LogStore,
    engine: BuildEngine | None = None,
) -> BuildResult:
    """Run a build and return its result; failures are results (``ok=False``), never exceptions.

    A :class:`TransientBuildError` (the engine unreachable, git busy) is retried ``transient_retries``
    times, 1, 2, 4 ... seconds apart, before it becomes the build's ``BUILD_ERROR``."""
    try:
        for attempt in range(settings.transient_retries + 1):
            try:
                return _run_build(request, settings, log_store, engine)
            except TransientBuildError as exc:
                if attempt >= settings.transient_retries:
                    log_store.append(request.log_key, f"--> BUILD_ERROR: {exc}")
                    return BuildResult(
                        build_id=request.build_id,
                        space_id=request.space_id,
                        revision=request.revision,
                        ok=False,
                        stage=exc.stage,
                        reason=f"{exc} (after {attempt + 1} attempts)",
                    )
                delay = 2.0**attempt
                log_store.append(request.log_key, f"--> {exc}; retrying in {delay:g}s")
                time.sleep(delay)
        raise AssertionError("unreachable")
    finally:
        give_to_data_owner(settings.data_dir, [settings.data_dir / "sources" / source_folder(request)])
        log_store.close(request.log_key)


def _preload(
    request: BuildRequest, settings: BuilderSettings, config: SpaceConfig, source: Path, log: BuildLog
) -> None:
    """``preload_from_hub`` into the export, with the Space's own read-only token (``preload.py``)."""
    from .worker import make_secret_source

    token = make_secret_source(settings).hub_token(request.space_id)
    store = HubStore(settings.data_dir / "hubcache", settings.hub_cache_max_bytes)
    preload(config.preload_from_hub, source, settings.hub_url, token, store, log)


def _run_build(
    request: BuildRequest, settings: BuilderSettings, log_store: LogStore, engine: BuildEngine | None
) -> BuildResult:
    started = time.monotonic()

    def log(line: str) -> None:
        log_store.append(request.log_key, line)

    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
    log(f"===== Build Queued at {now} / Commit SHA: {request.revision[:7]} =====")
    base = {"build_id": request.build_id, "space_id": request.space_id, "revision": request.revision}
    config: SpaceConfig | None = None
    try:
        source = export_commit(request.repo, request.revision, settings.data_dir / "sources" / source_folder(request))
        checkout_lfs(source, request, settings, log)
        items = {item.path: item for item in list_tree(request.repo, request.revision)}
        config = parse_readme(read_readme(request.repo, items))
        check_build_inputs(request.repo, items, config.effective_app_file, log)
        check_app_file(config, app_files(request.repo, items))
        log(f"--> sdk: {config.sdk}" + (f" {config.sdk_version}" if config.sdk_version else ""))
        if config.preload_from_hub:
            _preload(request, settings, config, source, log)
        engine = engine or create_engine(settings)
        artifact = engine.build(request, source, config, log)
        duration = time.monotonic() - started
        log(f"--> Build {'reused' if artifact.cache_hit else 'finished'} in {duration:.1f}s: {artifact.id}")
        return BuildResult(
            **base,
            ok=True,
            stage="",
            artifact=artifact.id,
            app_dir=str(source),
            config=config.card_data,
            sdk=config.sdk,
            app_file=config.effective_app_file,
            app_port=config.app_port if config.sdk == "docker" else 7860,
            cache_hit=artifact.cache_hit,
            duration=duration,
        )
    except TransientBuildError:
        raise
    except BuilderError as exc:
        stage = exc.stage
        log(f"--> {stage}: {exc}")
        card = config.card_data if config else {}
        if isinstance(exc, ConfigError):
            card = {}
        return BuildResult(
            **base, ok=False, stage=stage, reason=str(exc), config=card, duration=time.monotonic() - started
        )
    except Exception as exc:  # an engine bug must still end the build with a reason
        log(f"--> BUILD_ERROR: internal error: {exc!r}")
        return BuildResult(
            **base,
            ok=False,
            stage="BUILD_ERROR",
            reason=f"internal build error: {exc}",
            duration=time.monotonic() - started,
        )
