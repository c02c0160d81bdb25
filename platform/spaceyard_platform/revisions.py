"""Every revision a client names goes through here: a branch, a tag, ``refs/heads/x``, ``refs/tags/x``
or a (full or abbreviated) commit sha, for reading; an existing branch, for committing; a valid new
ref name, for creating branches and tags.

One place so that validation is uniform (the API, the pages and git all ask the same question).
"""

from __future__ import annotations

from . import gitsafe
from .db.models import RepoRow
from .errors import BadRequest, RevisionNotFound
from .repos import BRANCH, RepoStore


def resolve(repos: RepoStore, space: RepoRow, rev: str) -> str | None:
    """The commit ``rev`` names; None for ``main`` of an empty repository; RevisionNotFound otherwise."""
    gitsafe.check_revision(rev)
    sha = repos.resolve(space.owner, space.name, rev)
    if sha is None:
        if rev in (BRANCH, f"refs/heads/{BRANCH}") and repos.head(space.owner, space.name) is None:
            return None
        raise RevisionNotFound(f"Invalid rev id: {rev[:100]}")
    return sha


def commit_branch(repos: RepoStore, space: RepoRow, rev: str) -> str:
    """The branch a commit to ``rev`` goes to: ``main`` or another existing branch (not a tag or sha)."""
    name = rev.removeprefix("refs/heads/")
    if name == BRANCH:
        return name
    if not gitsafe.is_ref_name(name) or repos.resolve(space.owner, space.name, f"refs/heads/{name}") is None:
        raise RevisionNotFound(f"Invalid rev id: {rev[:100]} (commits go to an existing branch, usually main)")
    return name


def new_ref_name(kind: str, name: str) -> str:
    """``refs/heads/<name>`` or ``refs/tags/<name>`` for a branch/tag to create; BadRequest if git refuses it."""
    ref = f"refs/{kind}/{name}"
    ok = gitsafe.is_ref_name(name) and gitsafe.is_ref_name(ref) and not name.startswith("refs/") and name != "HEAD"
    if not ok:
        raise BadRequest(f"Invalid {'branch' if kind == 'heads' else 'tag'} name: {name[:100]!r}")
    return ref
