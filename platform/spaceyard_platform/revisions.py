"""Every revision a client names goes through here: a branch, a tag, ``refs/heads/x``, ``refs/tags/x``
or a (full or abbreviated) commit sha, for reading; an existing branch, for committing; a valid new
ref name, for creating branches and tags.

One place so that validation is uniform (the API, the pages and git all ask the same question).
"""

from __future__ import annotations

import subprocess

from .db.models import Space
from .errors import BadRequest, RevisionNotFound
from .repos import BRANCH, RepoStore

MAX_REV = 255


def _plausible(rev: str) -> bool:
    return (
        0 < len(rev) <= MAX_REV
        and not rev.startswith("-")
        and ".." not in rev
        and not any(c in rev for c in "\0\n\r\t :^~?*[\\@{")
    )


def resolve(repos: RepoStore, space: Space, rev: str) -> str | None:
    """The commit ``rev`` names; None for ``main`` of an empty repository; RevisionNotFound otherwise."""
    if not _plausible(rev):
        raise RevisionNotFound(f"Invalid rev id: {rev[:100]}")
    sha = repos.resolve(space.owner, space.name, rev)
    if sha is None:
        if rev in (BRANCH, f"refs/heads/{BRANCH}") and repos.head(space.owner, space.name) is None:
            return None
        raise RevisionNotFound(f"Invalid rev id: {rev[:100]}")
    return sha


def commit_branch(repos: RepoStore, space: Space, rev: str) -> str:
    """The branch a commit to ``rev`` goes to: ``main`` or another existing branch (not a tag or sha)."""
    name = rev.removeprefix("refs/heads/")
    if name == BRANCH:
        return name
    if not _plausible(name) or repos.resolve(space.owner, space.name, f"refs/heads/{name}") is None:
        raise RevisionNotFound(f"Invalid rev id: {rev[:100]} (commits go to an existing branch, usually main)")
    return name


def new_ref_name(kind: str, name: str) -> str:
    """``refs/heads/<name>`` or ``refs/tags/<name>`` for a branch/tag to create; BadRequest if git refuses it."""
    ok = _plausible(name) and not name.startswith("refs/") and name not in ("HEAD",)
    ref = f"refs/{kind}/{name}"
    if ok:
        ok = subprocess.run(["git", "check-ref-format", ref], capture_output=True, check=False).returncode == 0
    if not ok:
        raise BadRequest(f"Invalid {'branch' if kind == 'heads' else 'tag'} name: {name[:100]!r}")
    return ref
