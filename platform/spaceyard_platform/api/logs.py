"""Live logs as server-sent events, like the Hub: ``GET /api/spaces/{id}/logs/build|run``.

Each event is ``id: <entry id>`` + ``data: {"data": "<line>", "timestamp": "<iso>"}``; a reconnecting
client resumes after ``Last-Event-ID``; comment lines keep the connection alive. The stream ends when
the log is complete (a finished build), or follows forever (a running app).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session

from .. import hostpaths
from ..auth import Principal
from ..db.models import Space
from ..deps import PrincipalDep, Services, ServicesDep, SessionDep
from .common import readable_space

router = APIRouter(prefix="/api/spaces")

HEARTBEAT = 10.0


def log_key(space: Space, kind: str) -> str | None:
    if kind == "build":
        return f"build/{space.latest_build_id}" if space.latest_build_id else None
    return space.run_log_key


def resolve_log(session: Session, principal: Principal | None, owner: str, name: str, kind: str) -> str | None:
    return log_key(readable_space(session, principal, owner, name), kind)


async def sse_events(svc: Services, key: str | None, after: str | None) -> AsyncIterator[bytes]:
    yield b": spaceyard log stream\n\n"
    if key is None:
        return
    clean = hostpaths.for_settings(svc.settings).clean  # visitors read these: no paths of this machine
    async for entry in svc.log_store.follow(key, after=after, heartbeat=HEARTBEAT):
        if entry is None:
            yield b": keep-alive\n\n"
            continue
        payload = json.dumps({"data": clean(entry.data), "timestamp": entry.timestamp}, ensure_ascii=False)
        yield f"id: {entry.id}\ndata: {payload}\n\n".encode()


@router.get("/{owner}/{name}/logs/{kind}")
def stream_logs(
    owner: str,
    name: str,
    kind: Literal["build", "run"],
    request: Request,
    svc: ServicesDep,
    session: SessionDep,
    principal: PrincipalDep,
) -> StreamingResponse:
    key = resolve_log(session, principal, owner, name, kind)
    after = request.headers.get("last-event-id") or None
    return StreamingResponse(
        sse_events(svc, key, after),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
