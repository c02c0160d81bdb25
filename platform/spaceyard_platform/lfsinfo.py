"""What the Hub says about files: the git blob, and for an LFS pointer the real file's sha256 and size.

``git cat-file --batch`` reads every candidate blob (only blobs small enough to be pointers) in one
process; answers are cached by blob id, which never changes meaning.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from threading import Lock
from typing import Any

from spaceyard_builder.lfs import POINTER_MAX, Pointer, parse_pointer

from . import gitsafe
from .db.models import RepoRow
from .repos import RepoStore, TreeEntry

KINDS = {"blob": "file", "tree": "directory", "commit": "submodule"}
_CACHE: OrderedDict[str, Pointer | None] = OrderedDict()
_CACHE_MAX = 50_000
_cache_lock = Lock()


@dataclass(frozen=True)
class PathInfo:
    kind: str  # "file" | "directory" | "submodule"
    oid: str
    size: int
    path: str


def _batch(repos: RepoStore, space: RepoRow, oids: list[str]) -> dict[str, bytes]:
    if not oids:
        return {}
    argv = gitsafe.git_argv("cat-file", "--batch", git_dir=repos.path(space.owner, space.name))
    proc = gitsafe.run(argv, input="".join(f"{o}\n" for o in oids).encode())
    out, pos, found = proc.stdout, 0, {}
    while pos < len(out):
        end = out.index(b"\n", pos)
        header = out[pos:end].split()
        pos = end + 1
        if len(header) < 3 or header[1] == b"missing":
            continue
        size = int(header[2])
        found[header[0].decode()] = out[pos : pos + size]
        pos += size + 1
    return found


def pointers(repos: RepoStore, space: RepoRow, blobs: list[tuple[str, int]]) -> dict[str, Pointer]:
    """The LFS pointers among ``(blob id, size)`` pairs, by blob id."""
    result: dict[str, Pointer] = {}
    todo = []
    with _cache_lock:
        for oid, size in blobs:
            if size > POINTER_MAX:
                continue
            if oid in _CACHE:
                hit = _CACHE[oid]
                if hit is not None:
                    result[oid] = hit
            else:
                todo.append(oid)
    contents = _batch(repos, space, sorted(set(todo)))
    with _cache_lock:
        for oid in set(todo):
            pointer = parse_pointer(contents[oid]) if oid in contents else None
            _CACHE[oid] = pointer
            if pointer is not None:
                result[oid] = pointer
        while len(_CACHE) > _CACHE_MAX:
            _CACHE.popitem(last=False)
    return result


def lfs_json(pointer: Pointer) -> dict[str, Any]:
    """The ``lfs`` object of tree and paths-info entries."""
    return {"oid": pointer.oid, "size": pointer.size, "pointerSize": pointer.pointer_size}


def ls_paths(repos: RepoStore, space: RepoRow, sha: str, paths: list[str]) -> list[PathInfo]:
    """Each existing path of ``paths`` at commit ``sha`` (files, folders, submodules; any depth), in request
    order. A path that cannot be in a tree is :class:`~spaceyard_platform.gitsafe.InvalidPath` (400)."""
    clean: list[str] = []
    for p in paths:
        p = gitsafe.check_repo_path(p, allow_root=True)
        if p and p not in clean and "\n" not in p:
            clean.append(p)
    if not clean:
        return []
    fmt = "--batch-check=%(objectname) %(objecttype) %(objectsize)"
    argv = gitsafe.git_argv("cat-file", fmt, git_dir=repos.path(space.owner, space.name))
    proc = gitsafe.run(argv, input="".join(f"{sha}:{p}\n" for p in clean).encode())
    found = []
    for path, line in zip(clean, proc.stdout.decode(errors="replace").splitlines(), strict=False):
        fields = line.split()
        if len(fields) == 3 and fields[1] in KINDS:
            kind = KINDS[fields[1]]
            found.append(PathInfo(kind, fields[0], int(fields[2]) if kind == "file" else 0, path))
    return found


def siblings(repos: RepoStore, space: RepoRow, sha: str | None, blobs: bool) -> list[dict[str, Any]]:
    """``siblings`` of repo info: every file, with ``size``, ``blobId`` and ``lfs`` when ``blobs``."""
    entries: list[TreeEntry] = repos.list_tree(space.owner, space.name, sha) if sha else []
    files = [e for e in entries if e.type == "file"]
    if not blobs:
        return [{"rfilename": e.path} for e in files]
    lfs = pointers(repos, space, [(e.oid, e.size) for e in files])
    out = []
    for e in files:
        item: dict[str, Any] = {"rfilename": e.path, "size": e.size, "blobId": e.oid}
        pointer = lfs.get(e.oid)
        if pointer is not None:
            item["size"] = pointer.size
            item["lfs"] = {"size": pointer.size, "sha256": pointer.oid, "pointerSize": pointer.pointer_size}
        out.append(item)
    return out
