"""One build, start to finish, independent of the queue that runs it: export, configure, build."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

from .api import BuildEngine, BuildLog, BuildRequest, BuildResult
from .engines import create_engine
from .errors import BuilderError, BuildFailed, ConfigError, NoAppFileError
from .lfs import MissingObjects, disable_filters, smudge_tree
from .logs import LogStore
from .settings import BuilderSettings
from .source import export_commit
from .spaceconfig import SpaceConfig, parse_readme


def _slug(space_id: str) -> str:
    return space_id.replace("/", "--")


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


def prepare_lfs(request: BuildRequest) -> None:
    """Before the export: no LFS filter may run in the bare repository (see ``lfs.disable_filters``)."""
    if "://" not in request.repo:
        disable_filters(Path(request.repo))


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
    """Run a build and return its result; failures are results (``ok=False``), never exceptions."""
    started = time.monotonic()

    def log(line: str) -> None:
        log_store.append(request.log_key, line)

    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
    log(f"===== Build Queued at {now} / Commit SHA: {request.revision[:7]} =====")
    base = {"build_id": request.build_id, "space_id": request.space_id, "revision": request.revision}
    config: SpaceConfig | None = None
    try:
        prepare_lfs(request)
        source = export_commit(request.repo, request.revision, settings.data_dir / "sources" / _slug(request.space_id))
        checkout_lfs(source, request, settings, log)
        readme = source / "README.md"
        config = parse_readme(readme.read_text(encoding="utf-8", errors="replace") if readme.exists() else None)
        files = {str(p.relative_to(source)) for p in source.rglob("*") if p.is_file()}
        check_app_file(config, files)
        log(f"--> sdk: {config.sdk}" + (f" {config.sdk_version}" if config.sdk_version else ""))
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
    finally:
        log_store.close(request.log_key)
