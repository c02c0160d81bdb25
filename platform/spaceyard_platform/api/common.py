"""Shared pieces of the API: looking Spaces up with access checks, and the Hub's JSON shapes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import APIRouter, Request
from sqlalchemy.orm import Session

from .. import lfsinfo, repokinds, spacelinks, storage
from ..auth import Principal
from ..db.models import RepoRow, Space
from ..deps import Services
from ..services.lookup import find_space, readable_repo, readable_space, writable_repo, writable_space
from ..timestamps import iso

F = TypeVar("F", bound=Callable[..., Any])

__all__ = ["find_space", "iso", "readable_space", "writable_space"]


def public_base(request: Request, svc: Services) -> str:
    """The base of URLs the API returns: the configured public URL, else the one the client used.

    huggingface_hub parses returned repo URLs against its own endpoint, so an unconfigured server
    answers on whatever host the client called (``localhost`` or ``127.0.0.1``)."""
    if svc.settings.public_url and not request.scope.get("spaceyard.relay"):  # hubrelay: its own address
        return svc.settings.public_url.rstrip("/")
    return str(request.base_url).rstrip("/")


def runtime_json(svc: Services, space: Space) -> dict[str, Any]:
    awake = svc.deployer.current_handle(space.id) is not None
    route = svc.routes.by_id(space.space_id)
    static = space.sdk == "static"
    gc = space.sleep_time if space.sleep_time is not None else svc.settings.default_sleep_time
    data: dict[str, Any] = {
        "stage": space.stage,
        "hardware": {
            "current": None if static else (space.hardware if awake or (route and route.static_root) else None),
            "requested": None if static else space.hardware,
        },
        **storage.runtime_fields(space),
        "gcTimeout": None if static else gc,
        "replicas": {"requested": 1, "current": 1 if awake or static else 0},
        "devMode": False,
        "domains": [{"domain": f"{space.app_label}.{svc.settings.resolved_apps_domain}", "stage": "READY"}],
        "sha": space.head_sha,
    }
    if not static:  # Spaceyard extensions (the Hub has neither)
        deep = space.deep_sleep_after if space.deep_sleep_after is not None else svc.settings.deep_sleep_after
        data["spaceyardDeepSleepAfter"] = deep
        data["spaceyardSleep"] = svc.deployer.sleep_depth(space.id)
    if space.error_message:
        data["errorMessage"] = space.error_message
    return data


def app_host(svc: Services, space: Space) -> str:
    """Where gradio_client connects. A path-style URL ends with '/': the client urljoins 'config' to it."""
    url = svc.settings.app_url(space.space_id, label=space.app_label)
    return url + "/" if "/apps/" in url else url


def readme_card(svc: Services, space: Space, sha: str) -> dict[str, Any]:
    """The YAML front matter of README.md at ``sha`` ({} when there is none, it is invalid, or over the
    limits of :mod:`spaceyard_builder.safeyaml`: the card the API returns is bounded)."""
    from spaceyard_builder.errors import ConfigError
    from spaceyard_builder.spaceconfig import README_PREFIX, front_matter

    raw = svc.repos.read_file(space.owner, space.name, sha, "README.md", limit=README_PREFIX) or b""
    try:
        return front_matter(raw.decode(errors="replace"))
    except ConfigError:
        return {}


def space_json(svc: Services, space: Space, *, siblings: bool = True, blobs: bool = False) -> dict[str, Any]:
    sha = space.head_sha
    card = dict(space.card_data or {})
    if siblings and sha:  # one Space: its README's front matter at the head, like the Hub
        card = readme_card(svc, space, sha) or card
    data: dict[str, Any] = {
        "_id": space.id,
        "id": space.space_id,
        "author": space.owner,
        "sha": sha,
        "lastModified": iso(space.updated_at),
        "createdAt": iso(space.created_at),
        "private": space.private,
        "gated": False,
        "disabled": False,
        "likes": 0,
        "trendingScore": 0,
        "sdk": card.get("sdk") or space.sdk,
        "tags": list(card.get("tags") or []) + [card.get("sdk") or space.sdk],
        "cardData": card,
        "runtime": runtime_json(svc, space),
        "subdomain": space.app_label,
        "host": app_host(svc, space),
        **spacelinks.linked_repos(card),
    }
    if space.duplicated_from:
        data["duplicated_from"] = space.duplicated_from
    if siblings:
        data["siblings"] = lfsinfo.siblings(svc.repos, space, sha, blobs)
    return data


def kind_of(request: Request) -> repokinds.RepoKind:
    """The kind of repository a request's path addresses (``/api/models/...``, ``/datasets/...``, ...)."""
    return repokinds.of_path(request.url.path)


def each_kind(
    router: APIRouter, pattern: str, methods: list[str], kinds: tuple[repokinds.RepoKind, ...] = repokinds.KINDS
) -> Callable[[F], F]:
    """Register the decorated handler at ``pattern`` for each kind (``<api>``/``<prefix>`` filled in,
    :func:`repokinds.paths`); the handler finds its kind with :func:`kind_of`. Spaces first, so their
    literal ``/spaces/`` paths win over a model's ``/{owner}/{name}``."""

    def register(handler: F) -> F:
        for path in repokinds.paths(pattern, tuple(sorted(kinds, key=lambda k: k.prefix == ""))):
            router.add_api_route(path, handler, methods=methods)
        return handler

    return register


def readable_row(session: Session, principal: Principal | None, request: Request, owner: str, name: str) -> RepoRow:
    return readable_repo(session, principal, kind_of(request).name, owner, name)


def writable_row(session: Session, principal: Principal | None, request: Request, owner: str, name: str) -> RepoRow:
    return writable_repo(session, principal, kind_of(request).name, owner, name)
