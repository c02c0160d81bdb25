"""The build queue: a Celery app whose one task runs :func:`spaceyard_builder.pipeline.run_build`.

Broker and result backend come from :class:`BuilderSettings`: Redis when ``SPACEYARD_REDIS_URL`` is
set, otherwise an embedded SQLite broker under ``DATA_DIR/queue`` (no server needed). Builds go to the
queue ``celery_queue``.

Delivery guarantees (what makes a build run to completion exactly once, or fail with a reason):

* tasks are ``acks_late`` and rejected (re-queued) on worker loss, with a prefetch of one: a message is
  acknowledged only after its build has finished and its result is stored.
* Redis: if the worker dies (``kill -9``, OOM, machine lost) its message is delivered again to another
  worker once ``celery_visibility_timeout`` (30 s) has passed without a keep-alive. While a build runs,
  a heartbeat thread renews its message every third of that timeout (it moves the message's entry in
  kombu's ``unacked_index``), so a long build is never delivered twice while its worker lives, and a
  dead worker's build is re-delivered within about 40 s. Workers sweep for expired messages every
  quarter of the timeout.
* the embedded SQLite broker never re-delivers a message whose consumer died (kombu keeps it invisible
  forever), so the platform re-submits, from its database of builds, every build not finished when its
  supervised worker dies or the platform starts (``Deployer.requeue``).
* the task id is the build id, and the task is idempotent by build id: it first looks up the stored
  result of that id, and a build that already finished (a re-delivery after the result was stored, or
  a duplicate submit) returns that result without building again;
* a per-build lock (Redis lock with a short TTL renewed by the heartbeat, or a file lock with the
  SQLite broker) keeps two deliveries of the same build from running at once. A dead worker's lock
  expires within ``LOCK_TTL`` seconds; the next attempt then restarts the build cleanly: sources and
  environments are built in temporary directories and renamed into place, the temporary directories
  of dead builds are removed (at worker start and before each environment build), and the build log
  says it restarted. After ``build_attempts`` starts the build fails with ``BUILD_ERROR`` saying the
  worker kept dying (a build that gets the worker OOM-killed must not loop forever).

Run a worker: ``celery -A spaceyard_builder.worker worker --pool=solo`` (``spaceyard up`` starts one).
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import redis
from celery import Celery
from celery.signals import worker_ready

from . import embeddedqueue
from .api import BuildEngine, BuildRequest, BuildResult, SecretSource
from .engines.local import sweep_partial
from .logstores import create_log_store
from .pipeline import run_build
from .settings import BuilderSettings

BUILD_TASK = "spaceyard.build"
LOCK_TTL = 30.0
"""Seconds a build lock outlives a dead worker (renewed every third of it while the build runs)."""


UNACKED_INDEX = "unacked_index"
"""kombu's Redis sorted set of delivered, unacknowledged messages, scored by delivery time."""


def visibility_timeout(settings: BuilderSettings) -> float:
    return max(3.0, settings.celery_visibility_timeout)


def celery_config(settings: BuilderSettings) -> dict[str, Any]:
    if settings.redis_url:
        broker, backend = settings.redis_url, settings.redis_url
        vt = visibility_timeout(settings)
        transport: dict[str, Any] = {
            "visibility_timeout": vt,
            # kombu sweeps for expired unacked messages every interval * throttle seconds (default 10 * 10):
            # sweep every call, at a quarter of the timeout (1-10 s), so re-delivery follows the timeout.
            "unacked_restore_interval": int(max(1, min(10, vt / 4))),
            "unacked_restore_throttle": 1,
        }
    else:
        queue = (settings.data_dir / "queue").resolve()
        queue.mkdir(parents=True, exist_ok=True, mode=0o700)
        for db_file in ("broker.db", "results.db"):  # private before SQLite creates them (0644 otherwise)
            os.close(os.open(queue / db_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
            os.chmod(queue / db_file, 0o600)
        broker = embeddedqueue.broker_url(str(queue / "broker.db"))
        backend = f"db+sqlite:///{queue / 'results.db'}"
        transport = {}
    return {
        "broker_url": broker,
        "result_backend": backend,
        "broker_transport_options": transport,
        "task_default_queue": settings.celery_queue,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_track_started": True,
        "worker_prefetch_multiplier": 1,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_expires": 7 * 24 * 3600,
        "broker_connection_retry_on_startup": True,
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        "worker_hijack_root_logger": False,
    }


def make_engine(settings: BuilderSettings) -> BuildEngine | None:
    """The engine of ``settings.engine_factory``, or ``None`` for the ``build_engine`` default."""
    if not settings.engine_factory:
        return None
    module_name, _, attr = settings.engine_factory.partition(":")
    factory = getattr(importlib.import_module(module_name), attr)
    engine: BuildEngine = factory(settings)
    return engine


class BuildGuard:
    """Per-build-id mutual exclusion and attempt counting, on Redis or on local files."""

    def __init__(self, settings: BuilderSettings) -> None:
        self.settings = settings
        self.ttl = min(LOCK_TTL, max(visibility_timeout(settings), 3.0))
        self.redis = redis.Redis.from_url(settings.redis_url) if settings.redis_url else None

    def _key(self, build_id: str, what: str) -> str:
        return f"spaceyard:build:{build_id}:{what}"

    @contextlib.contextmanager
    def hold(self, build_id: str, delivery_tag: str | None = None) -> Iterator[None]:
        """Hold the build's lock; on Redis, also keep its message from being re-delivered while we live."""
        if self.redis is None:
            root = self.settings.data_dir / "builds"
            root.mkdir(parents=True, exist_ok=True)
            with open(root / f"{build_id}.lock", "w") as f:
                fcntl.flock(f, fcntl.LOCK_EX)  # released by the kernel if this process dies
                yield
            return
        lock = self.redis.lock(self._key(build_id, "lock"), timeout=self.ttl, thread_local=False)
        lock.acquire(blocking=True)
        done = threading.Event()

        client = self.redis
        interval = min(self.ttl, visibility_timeout(self.settings)) / 3

        def heartbeat() -> None:
            while not done.wait(interval):
                with contextlib.suppress(Exception):
                    lock.extend(self.ttl, replace_ttl=True)
                if delivery_tag:
                    with contextlib.suppress(Exception):  # XX: never re-adds a message acked meanwhile
                        client.zadd(UNACKED_INDEX, {delivery_tag: time.time()}, xx=True)

        beat = threading.Thread(target=heartbeat, daemon=True)
        beat.start()
        try:
            yield
        finally:
            done.set()
            beat.join()
            with contextlib.suppress(Exception):
                lock.release()

    def attempt(self, build_id: str) -> int:
        """Count one more attempt at this build; returns its number (1 = first)."""
        if self.redis is None:
            path = self.settings.data_dir / "builds" / f"{build_id}.attempts"
            n = int(path.read_text() or 0) + 1 if path.exists() else 1
            path.write_text(str(n))
            return n
        key = self._key(build_id, "attempts")
        n = int(self.redis.incr(key))
        self.redis.expire(key, 7 * 24 * 3600)
        return n


def make_secret_source(settings: BuilderSettings) -> SecretSource:
    module_name, _, attr = settings.secret_source.partition(":")
    source_cls = getattr(importlib.import_module(module_name), attr)
    source = source_cls(settings)
    if not isinstance(source, SecretSource):
        raise TypeError(f"{settings.secret_source} is not a SecretSource")
    return source


def with_secrets(req: BuildRequest, settings: BuilderSettings, source: SecretSource | None = None) -> BuildRequest:
    """The request with its secrets read from ``source`` (default: a new one of ``settings.secret_source``),
    only when it names a Space."""
    if not req.secrets_ref:
        return req
    source = source or make_secret_source(settings)
    return req.model_copy(update={"secrets": source.secrets(req.secrets_ref)})


def make_celery(settings: BuilderSettings | None = None) -> Celery:
    settings = settings or BuilderSettings()
    celery = Celery("spaceyard")
    celery.conf.update(celery_config(settings))
    secret_sources: list[SecretSource] = []  # made at the first build that needs it, then kept

    def secret_source() -> SecretSource:
        if not secret_sources:
            secret_sources.append(make_secret_source(settings))
        return secret_sources[0]

    def finished(task: Any, build_id: str) -> dict[str, Any] | None:
        meta = task.backend.get_task_meta(build_id)
        if meta.get("status") == "SUCCESS" and isinstance(meta.get("result"), dict):
            result: dict[str, Any] = meta["result"]
            return result
        return None

    @celery.task(  # type: ignore[untyped-decorator]
        name=BUILD_TASK, bind=True, acks_late=True, reject_on_worker_lost=True
    )
    def build(self: Any, request: dict[str, Any]) -> dict[str, Any]:
        req = BuildRequest.model_validate(request)
        stored = finished(self, req.build_id)
        if stored is not None:
            return stored
        guard = BuildGuard(settings)
        tag = (getattr(self.request, "properties", None) or {}).get("delivery_tag")
        with guard.hold(req.build_id, str(tag) if tag else None):
            stored = finished(self, req.build_id)  # a duplicate finished while we waited for the lock
            if stored is not None:
                return stored
            attempt = guard.attempt(req.build_id)
            log_store = create_log_store(settings)
            if attempt > settings.build_attempts:
                reason = (
                    f"the build worker stopped {attempt - 1} times while running this build (killed, out of "
                    "memory or restarted); not trying again"
                )
                log_store.append(req.log_key, f"--> BUILD_ERROR: {reason}")
                log_store.close(req.log_key)
                failed = BuildResult(
                    build_id=req.build_id, space_id=req.space_id, revision=req.revision, ok=False,
                    stage="BUILD_ERROR", reason=reason,
                )  # fmt: skip
                return failed.model_dump()
            if attempt > 1:
                log_store.append(
                    req.log_key, f"--> Build restarted (attempt {attempt}): the previous worker stopped mid-build"
                )
            try:
                req = with_secrets(req, settings, secret_source())
            except Exception as exc:  # the build must still end with a reason
                log_store.append(req.log_key, f"--> BUILD_ERROR: could not read the Space's secrets: {exc}")
                log_store.close(req.log_key)
                return BuildResult(
                    build_id=req.build_id, space_id=req.space_id, revision=req.revision, ok=False,
                    stage="BUILD_ERROR", reason=f"could not read the Space's secrets: {exc}",
                ).model_dump()  # fmt: skip
            result: BuildResult = run_build(req, settings, log_store, engine=make_engine(settings))
            return result.model_dump()

    return celery


def sweep(settings: BuilderSettings) -> int:
    """Remove what builds that died left half-done: temporary environments and exported sources."""
    removed = sweep_partial(settings.envs_root)
    sources = settings.data_dir / "sources"
    if sources.is_dir():
        for space_dir in sources.iterdir():
            if space_dir.is_dir():
                removed += sweep_partial(space_dir)
    return removed


SETTINGS = BuilderSettings()
"""The worker process's settings, read once at start (the embedded worker's environment carries the
platform's values: ``spaceyard_platform.embeddedworker.worker_env``)."""


@worker_ready.connect(weak=False)  # type: ignore[untyped-decorator]
def _sweep_on_start(**_: Any) -> None:
    with contextlib.suppress(OSError):
        sweep(SETTINGS)


app = make_celery(SETTINGS)
