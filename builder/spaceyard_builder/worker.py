"""The build queue: a Celery app whose one task runs :func:`spaceyard_builder.pipeline.run_build`.

Broker and result backend come from :class:`BuilderSettings`: Redis when ``SPACEYARD_REDIS_URL`` is
set, otherwise an embedded SQLite broker under ``DATA_DIR/queue`` (no server needed). Tasks are
``acks_late`` and rejected on worker loss, so a killed worker's build is delivered again; the task id
is the build id, so a re-delivered build is the same build.

Run a worker: ``celery -A spaceyard_builder.worker worker --pool=solo`` (``spaceyard up`` starts one).
"""

from __future__ import annotations

from typing import Any

from celery import Celery

from .api import BuildRequest
from .logstores import create_log_store
from .pipeline import run_build
from .settings import BuilderSettings

BUILD_TASK = "spaceyard.build"


def celery_config(settings: BuilderSettings) -> dict[str, Any]:
    if settings.redis_url:
        broker, backend = settings.redis_url, settings.redis_url
        transport: dict[str, Any] = {"visibility_timeout": int(settings.build_timeout) + 60}
    else:
        queue = (settings.data_dir / "queue").resolve()
        queue.mkdir(parents=True, exist_ok=True)
        broker = f"sqla+sqlite:///{queue / 'broker.db'}"
        backend = f"db+sqlite:///{queue / 'results.db'}"
        transport = {"polling_interval": 0.1}
    return {
        "broker_url": broker,
        "result_backend": backend,
        "broker_transport_options": transport,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_expires": 7 * 24 * 3600,
        "broker_connection_retry_on_startup": True,
        "worker_hijack_root_logger": False,
    }


def make_celery(settings: BuilderSettings | None = None) -> Celery:
    settings = settings or BuilderSettings()
    celery = Celery("spaceyard")
    celery.conf.update(celery_config(settings))

    @celery.task(name=BUILD_TASK, bind=True, acks_late=True)  # type: ignore[untyped-decorator]
    def build(self: Any, request: dict[str, Any]) -> dict[str, Any]:
        req = BuildRequest.model_validate(request)
        return run_build(req, settings, create_log_store(settings)).model_dump()

    return celery


app = make_celery()
