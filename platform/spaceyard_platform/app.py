"""The platform process: ``create_app(settings)`` returns the ASGI app uvicorn serves.

Requests for apps (``OWNER-NAME.<apps domain>`` or ``/apps/OWNER/NAME/``) are handled by the
:class:`~spaceyard_platform.gateway.proxy.Gateway` before FastAPI sees them; everything else is the
control plane (Hub API, git, pages, metrics). Start-up migrates the database, makes sure the admin user
exists, starts the embedded build worker (unless turned off), and rebuilds routes from the database.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import select
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp

from spaceyard_builder.hubstore import HubStore
from spaceyard_builder.logstores import create_log_store
from spaceyard_runtime.api import Runtime
from spaceyard_runtime.factory import create_runtime
from spaceyard_runtime.flavors import load_flavors

from . import githttp, hardware, metrics, oplog, spacetokens
from .api import commits as commits_api
from .api import files as files_api
from .api import history as history_api
from .api import hubrepos as hubrepos_api
from .api import lfs as lfs_api
from .api import lifecycle as lifecycle_api
from .api import logs as logs_api
from .api import repos as repos_api
from .api import settings_api
from .api import spaces as spaces_api
from .api import storage as storage_api
from .api import unsupported as unsupported_api
from .api import users as users_api
from .auth import can_read, create_token, ensure_user, resolve_token
from .buildqueue import CeleryBuildQueue
from .crypto import SecretBox, hash_token, load_or_create_key, new_token
from .db.models import Space, Token
from .db.session import Database
from .deployer import Deployer
from .deps import Services, repo_store
from .embeddedworker import EmbeddedWorker
from .errors import PlatformError, Unauthorized, header_value
from .gateway.access import AppAccess, secure_origin
from .gateway.activity import ActivityTable
from .gateway.proxy import Gateway
from .gateway.routes import InMemoryRouteTable
from .gateway.timing import GatewayMetrics
from .hubrelay import HubRelay
from .limits import BodyLimit
from .private import prepare_data_dir
from .repos import RepoStore
from .sessions import resolve_session, resolve_session_ref
from .settings import Settings
from .web import appauth, editing, explore, filepages, forms, newspace, rawfiles, render, repopages, signin, spacepages
from .xet import api as xet_api

log = logging.getLogger("spaceyard")


class DbAuthorizer:
    """Answers the gateway's question for private Spaces: may this token/session read it?"""

    def __init__(self, db: Database) -> None:
        self.db = db

    def can_read(self, space_id: str, token: str | None, session: str | None) -> bool:
        owner, _, name = space_id.partition("/")
        with self.db.session() as s:
            space = s.scalar(select(Space).where(Space.owner == owner, Space.name == name))
            if space is None:
                return False
            if not space.private:
                return True
            principal = resolve_token(s, token)
            if principal is None:
                signed_in = resolve_session(s, session)
                principal = signed_in.principal if signed_in else None
            return principal is not None and can_read(s, principal, space)

    def can_read_grant(self, space_id: str, session_ref: str) -> bool:
        owner, _, name = space_id.partition("/")
        with self.db.session() as s:
            space = s.scalar(select(Space).where(Space.owner == owner, Space.name == name))
            if space is None:
                return False
            signed_in = resolve_session_ref(s, session_ref)
            return signed_in is not None and can_read(s, signed_in.principal, space)


def bootstrap_admin(db: Database, settings: Settings) -> str:
    """Make sure user ``admin`` exists with a working token; return that token."""
    token_file = settings.data_dir / "admin.token"
    token = settings.admin_token or (token_file.read_text().strip() if token_file.exists() else None)
    with db.session() as s:
        admin = ensure_user(s, "admin", is_admin=True)
        if token is None:
            token = new_token()
        if s.scalar(select(Token).where(Token.token_hash == hash_token(token))) is None:
            create_token(s, admin, name="admin", role="write", value=token)
    if not settings.admin_token:
        fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(token + "\n")
    return token


def platform_error_response(request: Request, exc: PlatformError) -> Response:
    headers = dict(exc.headers)
    if exc.code:
        headers["X-Error-Code"] = exc.code
    headers["X-Error-Message"] = header_value(str(exc).splitlines()[0][:500] if str(exc) else "")
    if "text/html" in request.headers.get("accept", "") and not request.url.path.startswith("/api/"):
        body = f"<!doctype html><title>{exc.status}</title><h1>{exc.status}</h1><p>{_escape(str(exc))}</p>"
        return HTMLResponse(body, status_code=exc.status, headers=headers)
    return JSONResponse({"error": str(exc)}, status_code=exc.status, headers=headers)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def create_app(settings: Settings | None = None, *, runtime: Runtime | None = None) -> ASGIApp:
    """The platform for ``settings`` (the one settings root; read from the environment when omitted).
    ``runtime`` runs the Spaces instead of the backend ``settings.runtime().runtime`` names (a plugin, or a
    test's instrumented runtime); the app closes it on shutdown as it would its own."""
    settings = settings or Settings()
    oplog.configure(settings.log_format)
    render.TEMPLATES.env.globals["flavor_unavailable"] = hardware.for_page
    # Everything is built here, wired explicitly; the lifespan only starts and stops it.
    prepare_data_dir(settings)
    db = Database(settings.resolved_database_url)
    builder_settings = settings.builder()
    log_store = create_log_store(builder_settings)
    secret = load_or_create_key(settings.secret_key, settings.data_dir)
    secretbox = SecretBox(secret)
    access = AppAccess(secret, secure_origin=secure_origin(settings.resolved_public_url, settings.resolved_apps_domain))
    flavors = load_flavors(settings.flavors_file)
    repos = RepoStore(settings.data_dir / "repos")
    routes = InMemoryRouteTable()
    activity = ActivityTable()
    runtime = runtime or create_runtime(settings.runtime())
    hub_store = HubStore(settings.data_dir / "hubcache", builder_settings.hub_cache_max_bytes)
    metrics.HUB_CACHE.stats = hub_store.stats
    deployer = Deployer(
        settings,
        db,
        repos,
        routes,
        runtime,
        log_store,
        CeleryBuildQueue(builder_settings),
        secretbox,
        flavors,
        activity=activity,
    )
    services = Services(settings, db, repos, routes, log_store, secretbox, deployer, flavors, access)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(db.migrate)
        admin_token = await asyncio.to_thread(bootstrap_admin, db, settings)
        for store in (repos, repo_store(repos, "model"), repo_store(repos, "dataset")):
            await asyncio.to_thread(store.harden)
        worker = (
            EmbeddedWorker(settings, grace=settings.worker_stop_grace, on_death=deployer.requeue)
            if settings.embedded_worker
            else None
        )
        if worker is not None:
            worker.start()
        app.state.services = services
        app.state.admin_token = admin_token
        app.state.worker = worker
        await deployer.start()
        try:
            yield
        finally:
            await deployer.aclose()
            if worker is not None:
                await asyncio.to_thread(worker.stop)
            db.engine.dispose()

    app = FastAPI(
        title="Spaceyard", version="0.1.0", lifespan=lifespan, docs_url="/api/docs", openapi_url="/api/openapi.json"
    )
    app.add_exception_handler(PlatformError, platform_error_response)  # type: ignore[arg-type]
    control_plane = BodyLimit(app, settings)
    relay = HubRelay(
        control_plane, settings, space_token=lambda value: spacetokens.is_valid(db, value), store=hub_store
    )
    runtime.attach_hub(relay)  # HF_ENDPOINT inside Spaces (hubrelay.py)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        return JSONResponse(
            {"error": str(exc.errors())}, status_code=400, headers={"X-Error-Message": "Invalid request"}
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        """Unmatched routes and methods answer in the Hub's error shape too."""
        error = PlatformError(str(exc.detail), headers=dict(exc.headers or {}))
        error.status = exc.status_code
        return platform_error_response(request, error)

    @app.get("/metrics", include_in_schema=False)
    def _metrics(request: Request) -> Response:
        if settings.metrics_token:
            given = (request.headers.get("authorization") or "").removeprefix("Bearer ").strip()
            if not hmac.compare_digest(given.encode(), settings.metrics_token.encode()):
                raise Unauthorized("/metrics needs the SPACEYARD_METRICS_TOKEN as a Bearer token")
            return Response(generate_latest(metrics.REGISTRY), media_type=CONTENT_TYPE_LATEST)

        def is_public(space_id: str) -> bool:
            route = routes.by_id(space_id)
            return route is not None and not route.private

        view = metrics.PublicView(metrics.REGISTRY, is_public)
        return Response(generate_latest(view), media_type=CONTENT_TYPE_LATEST)  # type: ignore[arg-type]

    @app.get("/api/health", include_in_schema=False)
    def _health() -> dict[str, Any]:
        return {"ok": True}

    app.mount("/static", StaticFiles(directory=str(render.STATIC_DIR)), name="static")
    for router in (
        unsupported_api.first_router,
        githttp.router,
        xet_api.router,
        settings_api.router,
        files_api.router,
        hubrepos_api.router,
        history_api.router,
        lfs_api.router,
        commits_api.router,
        repos_api.router,
        users_api.router,
        logs_api.router,
        lifecycle_api.router,
        storage_api.router,
        spaces_api.router,
        signin.router,
        explore.router,
        newspace.router,
        spacepages.router,
        filepages.router,
        rawfiles.router,
        editing.router,
        forms.router,
        appauth.router,
        hubrepos_api.late_router,
        unsupported_api.router,
        repopages.router,  # last: a model's page is /OWNER/NAME
    ):
        app.include_router(router)
    gateway = Gateway(
        control_plane,
        routes,
        settings,
        activity=activity,
        waker=deployer,
        authorizer=DbAuthorizer(db),
        access=access,
    )
    return GatewayMetrics(gateway)


def app_factory() -> ASGIApp:
    """Entry point for ``uvicorn --factory spaceyard_platform.app:app_factory``."""
    return create_app(Settings())
