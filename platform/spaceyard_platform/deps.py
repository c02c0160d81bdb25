"""The services one platform process holds, and FastAPI dependencies to reach them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from spaceyard_builder.logs import LogStore

from .auth import Principal, resolve_token, token_from_headers
from .crypto import SecretBox
from .db.session import Database
from .gateway.routes import RouteTable
from .repos import RepoStore
from .sessions import CSRF_HEADER, SAFE_METHODS, csrf_ok, resolve_session, session_cookie_name
from .settings import Settings

if TYPE_CHECKING:
    from spaceyard_runtime.api import Flavor

    from .deployer import Deployer
    from .gateway.access import AppAccess


@dataclass
class Services:
    settings: Settings
    db: Database
    repos: RepoStore
    routes: RouteTable
    log_store: LogStore
    secretbox: SecretBox
    deployer: Deployer
    flavors: dict[str, Flavor]
    access: AppAccess | None = None
    """Tickets for the sign-in hop to private apps (the gateway checks what they become)."""

    def store(self, kind: str) -> RepoStore:
        """The bare repositories of one kind (``space``, ``model``, ``dataset``): Spaces' under
        ``DATA_DIR/repos/OWNER/NAME.git``, the others' under ``DATA_DIR/repos/.models/...`` and
        ``.datasets/...`` (an owner name never starts with a dot)."""
        return self.repos if kind == "space" else repo_store(self.repos, kind)


def repo_store(spaces: RepoStore, kind: str) -> RepoStore:
    return RepoStore(spaces.root / f".{kind}s")


def services_of(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc


def get_services(request: Request) -> Services:
    return services_of(request)


def get_session(request: Request) -> Iterator[Session]:
    """A session for one request. Handlers that write call ``session.commit()`` before they answer."""
    with services_of(request).db.sessionmaker() as session:
        yield session
        session.commit()


def request_token(request: Request) -> str | None:
    """The access token of ``Authorization`` (Bearer, or Basic with the token as password).

    The ``spaceyard_session`` cookie is not a token: :func:`get_principal` resolves it as a web session.
    """
    return token_from_headers(request.headers.get("authorization"))


def get_principal(request: Request, session: Annotated[Session, Depends(get_session)]) -> Principal | None:
    """Who is asking: the ``Authorization`` token, else the web session cookie.

    A request that changes something (not GET/HEAD/OPTIONS) counts as signed in by its cookie only
    when it also carries the session's CSRF token in ``X-CSRF-Token``; otherwise it is anonymous.
    """
    token = request_token(request)
    if token is not None:
        return resolve_token(session, token)
    signed_in = resolve_session(session, request.cookies.get(session_cookie_name(services_of(request).settings)))
    if signed_in is None:
        return None
    if request.method not in SAFE_METHODS and not csrf_ok(signed_in, request.headers.get(CSRF_HEADER)):
        return None
    return signed_in.principal


ServicesDep = Annotated[Services, Depends(get_services)]
SessionDep = Annotated[Session, Depends(get_session)]
PrincipalDep = Annotated[Principal | None, Depends(get_principal)]
