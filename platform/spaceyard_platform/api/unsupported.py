"""Hub endpoints the clients call that Spaceyard does not implement: each answers with a clear error.

:data:`UNSUPPORTED` is the single source: the routes below are made from it, the table in
``docs/hub-api.md`` is rendered from it (:func:`markdown_table`, checked by a test), and
``tests/hub/test_unsupported.py`` calls every entry's example with the real client.

* Features Spaceyard lacks answer ``501`` with ``X-Error-Message: ... is not supported by Spaceyard``
  (the client raises ``HfHubHTTPError`` showing it).
* Kernel repositories answer ``404 RepoNotFound`` with a message saying Spaceyard hosts models, datasets
  and Spaces only, so ``kernel_info`` raises ``RepositoryNotFoundError`` with it.
* Any other ``/api/...`` path answers ``404`` with an ``X-Error-Message`` naming it (not a bare
  ``{"detail": "Not Found"}``), so a typo is told apart from a missing feature.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fastapi import APIRouter, Request

from ..errors import NotFound, PlatformError, RepoNotFound

DOC_BEGIN = "<!-- unsupported-table:begin (generated from api/unsupported.py; tests check it) -->"
DOC_END = "<!-- unsupported-table:end -->"
ALL = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
HOSTED_ONLY = "Spaceyard hosts models, datasets and Spaces: {kind} repositories are not supported"


class NotSupported(PlatformError):
    status = 501
    code = "NotSupported"


@dataclass(frozen=True)
class Unsupported:
    feature: str
    calls: str  # the client calls that reach it
    methods: tuple[str, ...]
    paths: tuple[str, ...]  # FastAPI route patterns
    example: tuple[str, str]  # (method, concrete path) the test calls
    status: int = 501
    message: str = ""
    first: bool = False  # routed before the supported endpoints (its path would otherwise look like a Space)

    @property
    def text(self) -> str:
        return (
            self.message or f"{self.feature} {'are' if self.feature.endswith('s') else 'is'} not supported by Spaceyard"
        )


def _repos(kind: str, prefix: str, calls: str, example: str) -> Unsupported:
    return Unsupported(
        f"{kind.capitalize()} repositories",
        calls,
        ALL,
        (f"/api/{prefix}/{{rest:path}}",),
        ("GET", example),
        status=404,
        message=HOSTED_ONLY.format(kind=kind),
    )


UNSUPPORTED: tuple[Unsupported, ...] = (
    Unsupported(
        "Discussions and pull requests",
        "`get_repo_discussions`, `create_discussion`, `create_pull_request`, `comment_discussion`, "
        "`merge_pull_request`",
        ALL,
        ("/api/spaces/{owner}/{name}/discussions", "/api/spaces/{owner}/{name}/discussions/{rest:path}"),
        ("GET", "/api/spaces/{space}/discussions"),
    ),
    Unsupported(
        "Likes",
        "`unlike`, `list_repo_likers`, `list_liked_repos`",
        ALL,
        ("/api/spaces/{owner}/{name}/like", "/api/spaces/{owner}/{name}/likers", "/api/users/{user}/likes"),
        ("POST", "/api/spaces/{space}/like"),
    ),
    Unsupported(
        "Dev Mode",
        "`enable_space_dev_mode`, `disable_space_dev_mode`",
        ALL,
        ("/api/spaces/{owner}/{name}/dev-mode",),
        ("POST", "/api/spaces/{space}/dev-mode"),
    ),
    Unsupported(
        "Persistent storage and volumes",
        "`set_space_volumes`, `delete_space_volumes` (and older clients' `request_space_storage`)",
        ALL,
        ("/api/spaces/{owner}/{name}/storage", "/api/spaces/{owner}/{name}/volumes"),
        ("PUT", "/api/spaces/{space}/volumes"),
    ),
    Unsupported(
        "Space templates",
        "`list_space_templates`",
        ALL,
        ("/api/spaces/templates",),
        ("GET", "/api/spaces/templates"),
    ),
    Unsupported(
        "Semantic search",
        "`search_spaces`",
        ALL,
        ("/api/spaces/semantic-search",),
        ("GET", "/api/spaces/semantic-search?q=demo"),
    ),
    Unsupported(
        "ZeroGPU",
        "`get_zero_gpu_quota`",
        ALL,
        ("/api/spaces/zero-gpu/quota",),
        ("GET", "/api/spaces/zero-gpu/quota"),
        first=True,
    ),
    Unsupported(
        "Squashing history",
        "`super_squash_history`",
        ALL,
        ("/api/spaces/{owner}/{name}/super-squash/{rest:path}",),
        ("POST", "/api/spaces/{space}/super-squash/main"),
    ),
    Unsupported(
        "LFS file management",
        "`list_lfs_files`, `permanently_delete_lfs_files`",
        ALL,
        ("/api/spaces/{owner}/{name}/lfs-files", "/api/spaces/{owner}/{name}/lfs-files/{rest:path}"),
        ("GET", "/api/spaces/{space}/lfs-files"),
    ),
    Unsupported(
        "Gated repositories",
        "`list_pending_access_requests`, `accept_access_request`, `grant_access`, ...",
        ALL,
        ("/api/spaces/{owner}/{name}/user-access-request/{rest:path}",),
        ("GET", "/api/spaces/{space}/user-access-request/pending"),
    ),
    _repos("kernel", "kernels", "`kernel_info`, ... (repo_type kernel)", "/api/kernels/{space}"),
    Unsupported(
        "Buckets",
        "`create_bucket`, `list_buckets`, `list_bucket_tree`, ...",
        ALL,
        ("/api/buckets", "/api/buckets/{rest:path}"),
        ("GET", "/api/buckets/someone"),
    ),
    Unsupported(
        "Collections",
        "`get_collection`, `create_collection`, `add_collection_item`, ...",
        ALL,
        ("/api/collections", "/api/collections/{rest:path}"),
        ("GET", "/api/collections"),
    ),
    Unsupported(
        "Jobs",
        "`run_job`, `list_jobs`, `create_scheduled_job`, `hf jobs ...`",
        ALL,
        ("/api/jobs/{rest:path}", "/api/scheduled-jobs/{rest:path}"),
        ("GET", "/api/jobs/someone"),
    ),
    Unsupported(
        "Webhooks",
        "`create_webhook`, `list_webhooks`, ...",
        ALL,
        ("/api/settings/webhooks", "/api/settings/webhooks/{rest:path}"),
        ("GET", "/api/settings/webhooks"),
    ),
    Unsupported(
        "Storage usage of repositories",
        "`list_user_repos`, `hf repos ls`",
        ALL,
        ("/api/settings/repositories", "/api/organizations/{org}/settings/repositories"),
        ("GET", "/api/settings/repositories"),
        message="Listing repositories with their storage usage is not supported by Spaceyard",
    ),
    Unsupported(
        "Papers",
        "`paper_info`, `list_papers`, `list_daily_papers`",
        ALL,
        ("/api/papers/{rest:path}", "/api/daily_papers"),
        ("GET", "/api/daily_papers"),
    ),
    Unsupported(
        "Profiles, followers and members",
        "`get_user_overview`, `list_user_followers`, `list_user_following`, `get_organization_overview`, "
        "`list_organization_members`, `list_organization_followers`",
        ALL,
        (
            "/api/users/{user}/overview",
            "/api/users/{user}/followers",
            "/api/users/{user}/following",
            "/api/organizations/{org}/overview",
            "/api/organizations/{org}/members",
            "/api/organizations/{org}/followers",
        ),
        ("GET", "/api/users/someone/overview"),
    ),
)


def _handler(entry: Unsupported) -> Callable[[Request], None]:
    def unsupported(request: Request) -> None:
        if entry.status == 404:
            raise RepoNotFound(entry.text)
        raise NotSupported(entry.text)

    return unsupported


def _router(first: bool) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    for entry in UNSUPPORTED:
        if entry.first == first:
            for path in entry.paths:
                router.add_api_route(path, _handler(entry), methods=list(entry.methods))
    return router


first_router = _router(first=True)
"""Included before the supported endpoints."""

router = _router(first=False)
"""Included after every supported endpoint (so it never shadows one), with the ``/api`` catch-all last."""


@router.api_route("/api/{rest:path}", methods=list(ALL))
def unknown_api(rest: str, request: Request) -> None:
    raise NotFound(
        f"Spaceyard has no endpoint {request.method} /api/{rest[:200]}: see docs/hub-api.md for what it supports"
    )


def markdown_table() -> str:
    lines = [
        "| Feature | Client calls | Endpoints | Status | X-Error-Message |",
        "|---|---|---|---|---|",
    ]
    for e in UNSUPPORTED:
        paths = "<br>".join(f"`{p.replace('{rest:path}', '...')}`" for p in e.paths)
        lines.append(f"| {e.feature} | {e.calls} | {paths} | {e.status} | {e.text} |")
    return "\n".join(lines)
