"""Writing to a Space through the Hub API: preupload, NDJSON commits and the LFS batch protocol.

* ``POST /api/spaces/{id}/preupload/{rev}`` says ``regular`` for every file up to
  ``SPACEYARD_INLINE_UPLOAD_LIMIT`` bytes (they travel base64 inside the commit), ``lfs`` above it.
* ``POST /api/spaces/{id}/commit/{rev}`` (``application/x-ndjson``: ``header``, ``file``, ``lfsFile``,
  ``deletedFile``/``deletedFolder``/``deletedEntry``) becomes one real git commit, made with plumbing on
  a temporary index (read-tree, update-index, write-tree, commit-tree) and published with a
  compare-and-swap ``update-ref`` — so it is exactly what ``git clone`` sees — and then built like a push.
* Large files arrive through the LFS batch API (``api/lfs.py``); an ``lfsFile`` operation names an object
  uploaded through this Space and is written into the commit as an ordinary git blob, so clones and
  builds see the real content.
* Xet (``hf_xet``, the client's default): an ``lfsFile`` may name content this Space uploaded to the
  Xet CAS (``spaceyard_platform.xet``); it is rebuilt from its chunks (sha256 checked) into the blob.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import json
import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from spaceyard_builder import lfs

from .. import gitsafe, repokinds, revisions
from ..auth import Principal
from ..db.models import RepoRow
from ..deps import PrincipalDep, Services, ServicesDep, SessionDep
from ..errors import BadRequest, EntryNotFound, PlatformError
from ..limits import BodyTooLarge
from ..repos import BRANCH
from ..services.hubrepos import after_push
from ..xet import content as xet_content
from .common import each_kind, public_base, writable_row
from .files import json_object, raw_tail, split_rev

router = APIRouter()

ZERO = "0" * 40
_locks: dict[str, asyncio.Lock] = {}


class PreconditionFailed(PlatformError):
    status = 412


# ------------------------------------------------------------------------------------------ helpers
def branch_of(space: RepoRow, svc: Services, rev: str) -> str:
    """The branch a commit goes to; revisions that are not branches are RevisionNotFound."""
    return revisions.commit_branch(svc.store(space.kind), space, rev)


def lfs_dir(svc: Services) -> Path:
    return svc.settings.data_dir / "lfs" / "objects"


def lfs_path(svc: Services, oid: str) -> Path:
    if not lfs.is_oid(oid):
        raise BadRequest(f"Invalid LFS oid {oid!r}: expected a sha256 in hex")
    return lfs.object_path(svc.settings.data_dir, oid)


def _lock(space: RepoRow) -> asyncio.Lock:
    return _locks.setdefault(space.id, asyncio.Lock())


def _int(value: Any, what: str) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError, OverflowError) as exc:
        raise BadRequest(f"{what} must be a whole number") from exc


def _check_no_pr(request: Request) -> None:
    if request.query_params.get("create_pr", "") in ("1", "true", "True"):
        raise BadRequest("Pull requests are not supported by Spaceyard: commit to main (create_pr=False)")


# ----------------------------------------------------------------------------------------- preupload
@each_kind(router, "/api/<api>/{owner}/{name}/preupload/{rest:path}", ["POST"])
async def preupload(
    owner: str, name: str, request: Request, svc: ServicesDep, session: SessionDep, principal: PrincipalDep
) -> Any:
    _check_no_pr(request)
    body = json_object(await request.body())
    space = writable_row(session, principal, request, owner, name)
    repos = svc.store(space.kind)
    rev, _ = split_rev(raw_tail(request, owner, name, "preupload"))
    branch = branch_of(space, svc, rev)
    head = repos.resolve(space.owner, space.name, f"refs/heads/{branch}")
    files = body.get("files") or []
    if not isinstance(files, list) or not all(isinstance(f, dict) for f in files):
        raise BadRequest("files must be a list of objects with a path and a size")
    paths = [gitsafe.check_repo_path(str(f.get("path", ""))) for f in files]
    oids: dict[str, str] = {}
    if head and paths:
        out = await asyncio.to_thread(
            repos.git, space.owner, space.name, "ls-tree", "-z", revs=[head], paths=paths, check=False
        )
        for rec in out.decode(errors="replace").split("\0"):
            meta, _, path = rec.partition("\t")
            if meta and meta.split()[1] == "blob":
                oids[path] = meta.split()[2]
    answer = []
    for f, path in zip(files, paths, strict=True):
        size = _int(f.get("size"), "size")
        item: dict[str, Any] = {
            "path": path,
            "uploadMode": "lfs" if size > svc.settings.inline_upload_limit else "regular",
            "shouldIgnore": False,
        }
        if path in oids:
            item["oid"] = oids[path]
        answer.append(item)
    return {"files": answer, "commitOid": head}


def yaml_errors(content: str) -> list[dict[str, str]]:
    """What is wrong with a README's front matter (none when there is no front matter), bounded by
    :mod:`spaceyard_builder.safeyaml`. CPU-bound: run it in a thread."""
    from spaceyard_builder.errors import ConfigError
    from spaceyard_builder.spaceconfig import front_matter

    if not content.lstrip("\ufeff").startswith("---"):
        return []
    try:
        front_matter(content)
    except ConfigError as exc:
        return [{"message": str(exc)}]
    return []


@router.post("/api/validate-yaml")
async def validate_yaml(request: Request) -> Any:
    """The client checks a README's front matter before committing it; answer like the Hub. The body is
    capped (``SPACEYARD_MAX_API_BODY``), the YAML bounded, and the parse runs off the event loop."""
    body = json_object(await request.body())
    content = body.get("content") or ""
    if not isinstance(content, str):
        raise BadRequest("content must be a string (the README's text)")
    errors = await asyncio.to_thread(yaml_errors, content)
    if errors:
        return JSONResponse({"errors": errors, "warnings": []}, status_code=400)
    return {"errors": [], "warnings": []}


# -------------------------------------------------------------------------------------------- commit
async def ndjson_lines(request: Request, max_line: int) -> AsyncIterator[dict[str, Any]]:
    """One JSON object per line; a line (a base64 file) may span many chunks: join them once. A line
    longer than ``max_line`` bytes is a 413 (it would otherwise be held in memory whole)."""
    pieces: list[bytes] = []
    held = 0
    async for chunk in request.stream():
        while (cut := chunk.find(b"\n")) >= 0:
            line = b"".join([*pieces, chunk[:cut]])
            pieces, chunk, held = [], chunk[cut + 1 :], 0
            if line.strip():
                yield _operation(line)
        if chunk:
            pieces.append(chunk)
            held += len(chunk)
            if held > max_line:
                raise BodyTooLarge(
                    f"A commit line (one file) is over {max_line} bytes: files larger than "
                    "SPACEYARD_INLINE_UPLOAD_LIMIT go through LFS (preupload says so)"
                )
    tail = b"".join(pieces)
    if tail.strip():
        yield _operation(tail)


def _operation(line: bytes) -> dict[str, Any]:
    try:
        item = json.loads(line)
    except (ValueError, RecursionError) as exc:
        raise BadRequest(f"Invalid commit line (not JSON): {exc}") from exc
    if not isinstance(item, dict) or not isinstance(item.get("value") or {}, dict):
        raise BadRequest('Each commit line must be a JSON object {"key": ..., "value": {...}}')
    return item


class GitWriter:
    """Builds one commit in a temporary index of a bare repository."""

    def __init__(self, git_dir: Path, parent: str | None, author: str) -> None:
        self.git_dir = git_dir
        self.parent = parent
        # An empty scratch work tree: some index commands refuse to run without one.
        self.scratch = tempfile.TemporaryDirectory(prefix="spaceyard-commit-")
        index = str(Path(self.scratch.name) / "index")
        email = f"{author}@users.noreply.spaceyard"
        self.env = {
            **{k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")},
            "GIT_INDEX_FILE": index,
            "GIT_WORK_TREE": str(Path(self.scratch.name) / "tree"),
            "GIT_AUTHOR_NAME": author,
            "GIT_AUTHOR_EMAIL": email,
            "GIT_COMMITTER_NAME": author,
            "GIT_COMMITTER_EMAIL": email,
        }
        (Path(self.scratch.name) / "tree").mkdir()
        if parent:
            self.run("read-tree", revs=[gitsafe.check_object_id(parent)])

    def _proc(
        self,
        subcommand: str,
        *options: str,
        revs: tuple[str, ...] | list[str] = (),
        input: bytes | None = None,  # noqa: A002
    ) -> Any:
        argv = gitsafe.git_argv(subcommand, *options, git_dir=self.git_dir, revs=revs)
        return gitsafe.run(argv, input=input, env=self.env)

    def run(
        self,
        subcommand: str,
        *options: str,
        revs: tuple[str, ...] | list[str] = (),
        input: bytes | None = None,  # noqa: A002
    ) -> bytes:
        """``git SUBCOMMAND *options --end-of-options *revs`` on the temporary index (options are constants)."""
        proc = self._proc(subcommand, *options, revs=revs, input=input)
        if proc.returncode != 0:
            raise PlatformError(f"git {subcommand} failed: {proc.stderr.decode(errors='replace').strip()}")
        return bytes(proc.stdout)

    def add_bytes(self, path: str, content: bytes) -> None:
        oid = self.run("hash-object", "-w", "--stdin", input=content).decode().strip()
        self._stage(path, oid)

    def add_file(self, path: str, source: Path) -> None:
        oid = self.run("hash-object", "-w", revs=[str(source)]).decode().strip()
        self._stage(path, oid)

    def _stage(self, path: str, oid: str) -> None:
        # A file replacing a directory (or the reverse) must first drop what is in the way. The path goes
        # through stdin, NUL-terminated: never parsed as an option or split on a comma.
        clean = gitsafe.check_repo_path(path)
        record = f"100644 {gitsafe.check_object_id(oid)}\t{clean}\0".encode()
        self.run("update-index", "--add", "--replace", "-z", "--index-info", input=record)

    def staged(self) -> list[str]:
        return [p for p in self.run("ls-files", "-z").decode(errors="replace").split("\0") if p]

    def delete(self, path: str, folder: bool | None) -> None:
        path = gitsafe.check_repo_path(path)
        files = set(self.staged())
        under = [p for p in files if p.startswith(path + "/")]
        if folder is not True and path in files:
            targets = [path]
        elif folder is not False and under:
            targets = under
        else:
            raise EntryNotFound(f"A file with this name doesn't exist: {path}")
        self.run("update-index", "--force-remove", "-z", "--stdin", input=b"\0".join(t.encode() for t in targets))

    def commit(self, message: str) -> str:
        tree = gitsafe.check_object_id(self.run("write-tree").decode().strip())
        parents = ["-p", gitsafe.check_object_id(self.parent)] if self.parent else []
        return self.run("commit-tree", *parents, "-F", "-", revs=[tree], input=message.encode()).decode().strip()

    def publish(self, branch: str, new: str) -> None:
        """Move the branch from the parent to ``new``, failing if anything moved it meanwhile."""
        ref = f"refs/heads/{gitsafe.check_ref_name(branch)}"
        proc = self._proc("update-ref", revs=[ref, gitsafe.check_object_id(new), self.parent or ZERO])
        if proc.returncode != 0:
            raise PreconditionFailed("A commit has happened since. Please refresh and try again.")

    def close(self) -> None:
        self.scratch.cleanup()


def _safe_path(path: str) -> str:
    return gitsafe.check_repo_path(path)


async def apply_operations(
    svc: Services, writer: GitWriter, lines: AsyncIterator[dict[str, Any]], scope: str | None = None
) -> tuple[dict[str, Any], int]:
    header: dict[str, Any] = {}
    count = 0
    async for item in lines:
        key, value = item.get("key"), item.get("value") or {}
        if key == "header":
            header = value
            continue
        count += 1
        if key == "file":
            path = _safe_path(str(value.get("path", "")))
            try:
                content = base64.b64decode(value.get("content") or "", validate=True)
            except (binascii.Error, ValueError) as exc:
                raise BadRequest(f"{path}: content is not valid base64") from exc
            await asyncio.to_thread(writer.add_bytes, path, content)
        elif key == "lfsFile":
            path = _safe_path(str(value.get("path", "")))
            oid = str(value.get("oid", ""))
            obj = lfs_path(svc, oid)
            if obj.exists() and lfs.granted(writer.git_dir, oid):
                await asyncio.to_thread(writer.add_file, path, obj)
            elif not await xet_content.commit_file(svc, oid, scope, functools.partial(writer.add_file, path)):
                raise BadRequest(f"{path}: LFS object {oid} was not uploaded (neither through LFS nor Xet)")
        elif key in ("deletedFile", "deletedFolder", "deletedEntry"):
            folder = {"deletedFile": False, "deletedFolder": True}.get(str(key))
            await asyncio.to_thread(writer.delete, str(value.get("path", "")), folder)
        else:
            raise BadRequest(f"Unknown commit operation {key!r}")
    return header, count


def _open_for_commit(
    svc: Services, session: Session, principal: Principal | None, request: Request, owner: str, name: str, rev: str
) -> tuple[RepoRow, str]:
    space = writable_row(session, principal, request, owner, name)
    return space, branch_of(space, svc, rev)


@each_kind(router, "/api/<api>/{owner}/{name}/commit/{rest:path}", ["POST"])
async def commit(
    owner: str, name: str, request: Request, svc: ServicesDep, session: SessionDep, principal: PrincipalDep
) -> Any:
    _check_no_pr(request)
    rev, _ = split_rev(raw_tail(request, owner, name, "commit"))
    space, branch = _open_for_commit(svc, session, principal, request, owner, name, rev)
    pk, space_id = space.id, space.space_id
    repos = svc.store(space.kind)
    session.commit()
    if not request.headers.get("content-type", "").startswith("application/x-ndjson"):
        raise BadRequest("Send the commit as application/x-ndjson (huggingface_hub does)")
    async with _lock(space):
        parent = repos.resolve(space.owner, space.name, f"refs/heads/{branch}")
        writer = await asyncio.to_thread(
            GitWriter, repos.path(space.owner, space.name), parent, principal.name if principal else "anonymous"
        )
        try:
            max_line = svc.settings.inline_upload_limit * 4 // 3 + (1 << 20)
            header, _ = await apply_operations(svc, writer, ndjson_lines(request, max_line), scope=pk)
            expected = header.get("parentCommit")
            if expected and not (parent or "").startswith(str(expected)):
                raise PreconditionFailed(
                    f"A commit has happened since {expected}: the branch is at {parent}. Please refresh and try again."
                )
            summary = str(header.get("summary") or "").strip()
            if not summary:
                raise BadRequest("The commit message (summary) is empty")
            description = str(header.get("description") or "").strip()
            message = summary + (f"\n\n{description}" if description else "") + "\n"
            new = await asyncio.to_thread(writer.commit, message)
            await asyncio.to_thread(writer.publish, branch, new)
        finally:
            writer.close()
    if branch == BRANCH:
        await after_push(svc, space, new, principal.name if principal else None)
    return {
        "success": True,
        "commitOid": new,
        "commitUrl": f"{public_base(request, svc)}/{repokinds.named(space.kind).prefix}{space_id}/commit/{new}",
        "hookOutput": "",
    }
