"""Reading and changing a repository's history and refs with git: commit pages, refs, branches, tags, diffs.

Used by the Hub API (``api/history.py``) and the web pages; revisions given by clients are resolved by
:mod:`spaceyard_platform.revisions` before they reach these functions (they take full shas and ref names).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from .db.models import RepoRow
from .errors import Conflict
from .repos import GitError, RepoStore

ZERO = "0" * 40
_FIELDS = ("%H", "%P", "%an", "%ae", "%aI", "%cI", "%s", "%b")


def _format() -> tuple[str, str, str]:
    """A log format whose separators a commit message cannot contain (they are random per call)."""
    sep, record = f"<{secrets.token_hex(8)}>", f"<{secrets.token_hex(8)}>"
    return f"--format={record}{sep.join(_FIELDS)}", sep, record


@dataclass(frozen=True)
class Commit:
    id: str
    parents: list[str]
    author: str
    author_email: str
    authored: str
    committed: str
    title: str
    message: str


@dataclass(frozen=True)
class Ref:
    name: str
    ref: str
    target: str


@dataclass
class FileDiff:
    path: str
    old_path: str
    status: str  # A, M, D, R, ...
    added: int = 0
    removed: int = 0
    binary: bool = False
    lines: list[tuple[str, str]] = field(default_factory=list)  # (kind: "+", "-", " ", "@", text)
    truncated: bool = False


def _parse_commits(out: bytes, sep: str, record: str) -> list[Commit]:
    commits = []
    for rec in out.decode(errors="replace").split(record):
        parts = rec.rstrip("\n").split(sep)
        if len(parts) != len(_FIELDS):
            continue
        sha, parents, author, email, authored, committed, title, body = parts
        commits.append(Commit(sha, parents.split(), author, email, authored, committed, title, body.strip()))
    return commits


def count(repos: RepoStore, space: RepoRow, sha: str) -> int:
    return int(repos.git(space.owner, space.name, "rev-list", "--count", revs=[sha]).strip() or 0)


def commits(repos: RepoStore, space: RepoRow, sha: str, skip: int = 0, limit: int = 50) -> list[Commit]:
    """Commits reachable from ``sha``, newest first (git's order), ``limit`` of them after ``skip``."""
    fmt, sep, record = _format()
    out = repos.git(space.owner, space.name, "log", fmt, f"--skip={max(0, skip)}", f"-{max(1, limit)}", revs=[sha])
    return _parse_commits(out, sep, record)


def commit(repos: RepoStore, space: RepoRow, sha: str) -> Commit | None:
    fmt, sep, record = _format()
    out = repos.git(space.owner, space.name, "log", "-1", fmt, revs=[sha], check=False)
    found = _parse_commits(out, sep, record)
    return found[0] if found else None


def refs(repos: RepoStore, space: RepoRow, kind: str) -> list[Ref]:
    """Branches (``heads``) or tags (``tags``) with the commit each points to (annotated tags peeled)."""
    out = repos.git(
        space.owner,
        space.name,
        "for-each-ref",
        "--format=%(refname)%00%(objectname)%00%(*objectname)",
        revs=[f"refs/{kind}/"],
    )
    found = []
    for line in out.decode(errors="replace").splitlines():
        ref, target, peeled = line.split("\0")
        found.append(Ref(ref.removeprefix(f"refs/{kind}/"), ref, peeled or target))
    return sorted(found, key=lambda r: r.name)


def create_ref(repos: RepoStore, space: RepoRow, ref: str, sha: str, message: str | None = None) -> None:
    """Create ``ref`` at ``sha``; Conflict when it exists. Tags with a message are annotated."""
    if repos.resolve(space.owner, space.name, ref) is not None:
        raise Conflict(f"Reference already exists: {ref}")
    target = sha
    if message and ref.startswith("refs/tags/"):
        tag = ref.removeprefix("refs/tags/")
        body = f"object {sha}\ntype commit\ntag {tag}\ntagger Spaceyard <noreply@spaceyard> 0 +0000\n\n{message}\n"
        out = repos.git(space.owner, space.name, "hash-object", "-t", "tag", "-w", "--stdin", input=body.encode())
        target = out.decode().strip()
    try:
        repos.git(space.owner, space.name, "update-ref", revs=[ref, target, ZERO])
    except GitError as exc:
        raise Conflict(f"Reference already exists or conflicts with another one: {ref}") from exc


def delete_ref(repos: RepoStore, space: RepoRow, ref: str) -> bool:
    current = repos.git(space.owner, space.name, "rev-parse", "--verify", "--quiet", revs=[ref], check=False).strip()
    if not current:
        return False
    repos.git(space.owner, space.name, "update-ref", "-d", revs=[ref, current.decode()])
    return True


MAX_DIFF_LINES = 3000
MAX_DIFF_FILES = 100  # files whose patch is shown (one git process each); the others get their counts only


def diff(repos: RepoStore, space: RepoRow, c: Commit) -> list[FileDiff]:
    """Per-file changes of ``c`` against its first parent (or the empty tree for a root commit)."""
    base = c.parents[0] if c.parents else "4b825dc642cb6eb9a060e54bf8d69288fbee4904"  # git's empty tree
    stat = repos.git(space.owner, space.name, "diff-tree", "-r", "-z", "-M", "--numstat", revs=[base, c.id])
    names = repos.git(space.owner, space.name, "diff-tree", "-r", "-z", "-M", "--name-status", revs=[base, c.id])
    files: list[FileDiff] = []
    parts = names.decode(errors="replace").split("\0")
    i = 0
    while i < len(parts) - 1:
        status = parts[i]
        if status.startswith(("R", "C")):
            files.append(FileDiff(path=parts[i + 2], old_path=parts[i + 1], status=status[0]))
            i += 3
        elif status:
            files.append(FileDiff(path=parts[i + 1], old_path=parts[i + 1], status=status[0]))
            i += 2
        else:
            i += 1
    by_path = {f.path: f for f in files}
    sparts = stat.decode(errors="replace").split("\0")
    j = 0
    while j < len(sparts):
        rec = sparts[j]
        if not rec:
            j += 1
            continue
        added, removed, path = rec.split("\t", 2)
        if not path:  # rename: the two paths follow
            path = sparts[j + 2]
            j += 2
        j += 1
        f = by_path.get(path)
        if f is not None:
            f.binary = added == "-"
            f.added = 0 if f.binary else int(added)
            f.removed = 0 if f.binary else int(removed)
    budget, patches = MAX_DIFF_LINES, MAX_DIFF_FILES
    for f in files:
        if f.binary:
            continue
        if budget <= 0 or patches <= 0:
            f.truncated = True
            continue
        patches -= 1
        patch = repos.git(
            space.owner,
            space.name,
            "diff-tree",
            "-p",
            "-M",
            "--no-color",
            revs=[base, c.id],
            paths=[f.old_path, f.path],
        )
        body = False
        for line in patch.decode(errors="replace").splitlines():
            if line.startswith("@@"):
                body = True
                f.lines.append(("@", line))
            elif body and line[:1] in ("+", "-", " "):
                f.lines.append((line[0], line[1:]))
            elif body and line.startswith("\\"):
                continue
            if len(f.lines) >= budget:
                f.truncated = True
                break
        budget -= len(f.lines)
    return files
