"""One build, start to finish, independent of the queue that runs it: export, configure, build."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from .api import BuildEngine, BuildRequest, BuildResult
from .engines import create_engine
from .errors import BuilderError, ConfigError, NoAppFileError, TransientBuildError
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
        log_store.close(request.log_key)


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
        source = export_commit(request.repo, request.revision, settings.data_dir / "sources" / _slug(request.space_id))
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
