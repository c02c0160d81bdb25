"""Operator events: one structured line per push, finished build and stage change, plus their metrics.

Lines go to the server's standard output through the ``spaceyard.events`` logger, as logfmt
(``event=build space=admin/hello result=ok duration_s=12.3 ...``) or, with ``SPACEYARD_LOG_FORMAT=json``,
as one JSON object per line (``{"ts": ..., "event": "build", ...}``) for log shippers. Metrics
registered here (``/metrics``): ``spaceyard_errors_total{stage}`` (every entry into CONFIG_ERROR,
NO_APP_FILE, BUILD_ERROR or RUNTIME_ERROR), ``spaceyard_stage_changes_total{stage}`` and
``spaceyard_build_queue_depth`` (builds requested by this platform process and not finished yet).
The deployer calls :func:`pushed`, :func:`build_requested`, :func:`build_finished` and
:func:`stage_changed`; nothing here decides anything.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from prometheus_client import Counter, Gauge

from .lifecycle import stages
from .metrics import REGISTRY

ERROR_STAGES = frozenset(s.value for s in stages.ERRORS)

ERRORS = Counter("spaceyard_errors_total", "Entries into an error stage", ["stage"], registry=REGISTRY)
STAGE_CHANGES = Counter("spaceyard_stage_changes_total", "Stage changes, by new stage", ["stage"], registry=REGISTRY)
QUEUE_DEPTH = Gauge(
    "spaceyard_build_queue_depth", "Builds requested and not finished yet (this platform process)", registry=REGISTRY
)
for _stage in sorted(ERROR_STAGES):
    ERRORS.labels(stage=_stage)  # every error stage is a series from the start (0), so rate() works

log = logging.getLogger("spaceyard.events")


def _logfmt_value(value: Any) -> str:
    text = "true" if value is True else "false" if value is False else str(value)
    if text == "" or any(c in text for c in ' "=\n\t'):
        return json.dumps(text, ensure_ascii=False)
    return text


class EventFormatter(logging.Formatter):
    def __init__(self, as_json: bool) -> None:
        super().__init__()
        self.as_json = as_json

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = dict(getattr(record, "fields", {}))
        ts = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        if self.as_json:
            return json.dumps({"ts": ts, "event": record.getMessage(), **fields}, ensure_ascii=False, default=str)
        parts = [f"ts={ts}", f"event={record.getMessage()}"]
        parts += [f"{k}={_logfmt_value(v)}" for k, v in fields.items() if v is not None]
        return "spaceyard " + " ".join(parts)


def configure(log_format: str) -> None:
    """Send events to standard output in ``log_format`` (text or json); idempotent."""
    for handler in list(log.handlers):
        if getattr(handler, "_spaceyard_events", False):
            log.removeHandler(handler)
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(EventFormatter(log_format == "json"))
    handler._spaceyard_events = True  # type: ignore[attr-defined]
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False


def emit(event: str, **fields: Any) -> None:
    log.info(event, extra={"fields": fields})


def pushed(space_id: str, revision: str, pusher: str | None) -> None:
    emit("push", space=space_id, sha=revision, pusher=pusher)


def build_requested(space_id: str, build_id: str, revision: str, no_cache: bool) -> None:
    QUEUE_DEPTH.inc()
    emit("build_queued", space=space_id, build=build_id, sha=revision, no_cache=no_cache)


def build_finished(space_id: str, build_id: str, ok: bool, stage: str, duration: float, cache_hit: bool) -> None:
    QUEUE_DEPTH.dec()
    emit(
        "build", space=space_id, build=build_id, result="ok" if ok else stage, duration_s=round(duration, 3),
        cache_hit=cache_hit,
    )  # fmt: skip


def stage_changed(space_id: str, old: str | None, new: str, reason: str | None) -> None:
    if old == new:
        return
    STAGE_CHANGES.labels(stage=new).inc()
    if new in ERROR_STAGES:
        ERRORS.labels(stage=new).inc()
    first = (reason or "").strip().splitlines()
    emit("stage", space=space_id, old=old, new=new, reason=first[0][:300] if first else None)
