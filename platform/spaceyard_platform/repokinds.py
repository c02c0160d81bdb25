"""The three kinds of repository Spaceyard hosts, and where each lives in URLs, as on the Hub.

Contract (pure values, no I/O):

* :data:`MODEL`, :data:`DATASET`, :data:`SPACE` — a :class:`RepoKind`: ``name`` is the client's
  ``repo_type`` (``model``/``dataset``/``space``), ``api`` the Hub API segment (``/api/models/OWNER/NAME``),
  ``prefix`` the web/git/resolve prefix (``/OWNER/NAME`` for models, ``/datasets/OWNER/NAME``,
  ``/spaces/OWNER/NAME``).
* :func:`named` — ``repo_type`` (``None`` means ``model``, as in huggingface_hub) -> kind; BadRequest otherwise.
* :func:`of_path` — the kind a request path addresses: ``/api/<api>/...``, ``/datasets/...``, ``/spaces/...``,
  anything else a model. Unambiguous because :data:`RESERVED` names cannot own models or datasets.
* :func:`paths` — a route pattern (``<api>`` / ``<prefix>`` placeholders) for each kind, to register one
  handler per kind.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import BadRequest


@dataclass(frozen=True)
class RepoKind:
    name: str
    api: str
    prefix: str
    label: str

    def repo_url(self, base: str, repo_id: str) -> str:
        return f"{base}/{self.prefix}{repo_id}"


MODEL = RepoKind("model", "models", "", "Models")
DATASET = RepoKind("dataset", "datasets", "datasets/", "Datasets")
SPACE = RepoKind("space", "spaces", "spaces/", "Spaces")
KINDS = (MODEL, DATASET, SPACE)
HOSTED = (MODEL, DATASET)
"""The kinds stored in the ``repos`` table (Spaces have their own)."""

RESERVED = frozenset(
    {"api", "apps", "auth", "datasets", "login", "logout", "metrics", "models", "new-space", "settings",
     "spaces", "static", "kernels", "docs", "organizations", "users"}
)  # fmt: skip
"""First path segments that are pages or prefixes: not an owner of a model or dataset."""


def named(repo_type: str | None) -> RepoKind:
    for kind in KINDS:
        if (repo_type or "model") == kind.name:
            return kind
    raise BadRequest(f"Invalid repo type {str(repo_type)[:40]!r}: must be one of model, dataset, space")


def of_path(path: str) -> RepoKind:
    parts = path.split("/")
    head = parts[1] if len(parts) > 1 else ""
    if head == "api" and len(parts) > 2:
        head = parts[2]
        return next((k for k in KINDS if k.api == head), MODEL)
    return {"spaces": SPACE, "datasets": DATASET}.get(head, MODEL)


def paths(pattern: str, kinds: tuple[RepoKind, ...] = KINDS) -> list[str]:
    """``pattern`` with ``<api>`` and ``<prefix>`` filled in for each kind."""
    return [pattern.replace("<api>", k.api).replace("<prefix>", k.prefix) for k in kinds]
