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
* Xet is not implemented: ``GET /api/spaces/{id}/xet-write-token/{rev}`` answers 501 with the fix
  (``HF_HUB_DISABLE_XET=1``); see docs/hub-api.md.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import os
import subprocess
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from spaceyard_builder import lfs

from .. import revisions
from ..auth import Principal
from ..db.models import Space
from ..deps import PrincipalDep, Services, ServicesDep, SessionDep
from ..errors import BadRequest, EntryNotFound, PlatformError
from ..repos import BRANCH
from .common import public_base, readable_space, writable_space
from .files import raw_tail, split_rev

router = APIRouter()

UPLOAD_URL_TTL = 3600
ZERO = "0" * 40
_locks: dict[str, asyncio.Lock] = {}


class PreconditionFailed(PlatformError):
    status = 412


class NotImplementedHere(PlatformError):
    status = 501


# ------------------------------------------------------------------------------------------ helpers
def branch_of(space: Space, svc: Services, rev: str) -> str:
    """The branch a commit goes to; revisions that are not branches are RevisionNotFound."""
    return revisions.commit_branch(svc.repos, space, rev)


def lfs_dir(svc: Services) -> Path:
    return svc.settings.data_dir / "lfs" / "objects"


def lfs_path(svc: Services, oid: str) -> Path:
    if not lfs.is_oid(oid):
        raise BadRequest(f"Invalid LFS oid {oid!r}: expected a sha256 in hex")
    return lfs.object_path(svc.settings.data_dir, oid)


def _lock(space: Space) -> asyncio.Lock:
    return _locks.setdefault(space.id, asyncio.Lock())


def _check_no_pr(request: Request) -> None:
    if request.query_params.get("create_pr", "") in ("1", "true", "True"):
        raise BadRequest("Pull requests are not supported by Spaceyard: commit to main (create_pr=False)")


# ----------------------------------------------------------------------------------------- preupload
@router.post("/api/spaces/{owner}/{name}/preupload/{rest:path}")
async def preupload(
    owner: str, name: str, request: Request, svc: ServicesDep, session: SessionDep, principal: PrincipalDep
) -> Any:
    _check_no_pr(request)
    body = await request.json()
    space = writable_space(session, principal, owner, name)
    rev, _ = split_rev(raw_tail(request, owner, name, "preupload"))
    branch = branch_of(space, svc, rev)
    head = svc.repos.resolve(space.owner, space.name, f"refs/heads/{branch}")
    files = body.get("files") or []
    paths = [str(f.get("path", "")) for f in files]
    oids: dict[str, str] = {}
    if head and paths:
        out = await asyncio.to_thread(
            svc.repos.git, space.owner, space.name, "ls-tree", "-z", head, "--", *paths, check=False
        )
        for rec in out.decode(errors="replace").split("\0"):
            meta, _, path = rec.partition("\t")
            if meta and meta.split()[1] == "blob":
                oids[path] = meta.split()[2]
    answer = []
    for f in files:
        path = str(f.get("path", ""))
        size = int(f.get("size") or 0)
        item: dict[str, Any] = {
            "path": path,
            "uploadMode": "lfs" if size > svc.settings.inline_upload_limit else "regular",
            "shouldIgnore": False,
        }
        if path in oids:
            item["oid"] = oids[path]
        answer.append(item)
    return {"files": answer, "commitOid": head}


@router.post("/api/validate-yaml")
async def validate_yaml(request: Request) -> Any:
    """The client checks a README's front matter before committing it; answer like the Hub."""
    import yaml

    body = await request.json()
    content = str(body.get("content") or "")
    errors: list[dict[str, str]] = []
    if content.startswith("---"):
        _, _, rest = content.partition("\n")
        front, sep, _ = rest.partition("\n---")
        try:
            data = yaml.safe_load(front) if sep else None
            if sep and data is not None and not isinstance(data, dict):
                errors.append({"message": "The metadata must be a YAML mapping"})
        except yaml.YAMLError as exc:
            errors.append({"message": f"Invalid YAML: {exc}"})
    if errors:
        return JSONResponse({"errors": errors, "warnings": []}, status_code=400)
    return {"errors": [], "warnings": []}


# -------------------------------------------------------------------------------------------- commit
async def ndjson_lines(request: Request) -> AsyncIterator[dict[str, Any]]:
    """One JSON object per line; a line (a base64 file) may span many chunks: join them once."""
    pieces: list[bytes] = []
    async for chunk in request.stream():
        while (cut := chunk.find(b"\n")) >= 0:
            line = b"".join([*pieces, chunk[:cut]])
            pieces, chunk = [], chunk[cut + 1 :]
            if line.strip():
                yield json.loads(line)
        if chunk:
            pieces.append(chunk)
    tail = b"".join(pieces)
    if tail.strip():
        yield json.loads(tail)


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
            self.run("read-tree", parent)

    def run(self, *args: str, input: bytes | None = None) -> bytes:  # noqa: A002
        proc = subprocess.run(
            ["git", "--git-dir", str(self.git_dir), *args],
            input=input,
            capture_output=True,
            env=self.env,
            check=False,
        )
        if proc.returncode != 0:
            raise PlatformError(f"git {args[0]} failed: {proc.stderr.decode(errors='replace').strip()}")
        return proc.stdout

    def add_bytes(self, path: str, content: bytes) -> None:
        oid = self.run("hash-object", "-w", "--stdin", input=content).decode().strip()
        self._stage(path, oid)

    def add_file(self, path: str, source: Path) -> None:
        oid = self.run("hash-object", "-w", "--", str(source)).decode().strip()
        self._stage(path, oid)

    def _stage(self, path: str, oid: str) -> None:
        # A file replacing a directory (or the reverse) must first drop what is in the way.
        self.run("update-index", "--add", "--replace", "--cacheinfo", f"100644,{oid},{path}")

    def staged(self, prefix: str = "") -> list[str]:
        args = ["ls-files", "-z"]
        if prefix:
            args += ["--", prefix]
        return [p for p in self.run(*args).decode(errors="replace").split("\0") if p]

    def delete(self, path: str, folder: bool | None) -> None:
        path = path.strip("/")
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
        tree = self.run("write-tree").decode().strip()
        args = ["commit-tree", tree, "-F", "-"]
        if self.parent:
            args[2:2] = ["-p", self.parent]
        return self.run(*args, input=message.encode()).decode().strip()

    def publish(self, branch: str, new: str) -> None:
        """Move the branch from the parent to ``new``, failing if anything moved it meanwhile."""
        proc = subprocess.run(
            ["git", "--git-dir", str(self.git_dir), "update-ref", f"refs/heads/{branch}", new, self.parent or ZERO],
            capture_output=True,
            env=self.env,
            check=False,
        )
        if proc.returncode != 0:
            raise PreconditionFailed("A commit has happened since. Please refresh and try again.")

    def close(self) -> None:
        self.scratch.cleanup()


def _safe_path(path: str) -> str:
    clean = path.strip("/")
    parts = clean.split("/")
    if not clean or any(p in ("", ".", "..", ".git") for p in parts) or "\0" in clean:
        raise BadRequest(f"Invalid path in repo: {path!r}")
    return clean


async def apply_operations(
    svc: Services, writer: GitWriter, lines: AsyncIterator[dict[str, Any]]
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
            obj = lfs_path(svc, str(value.get("oid", "")))
            if not obj.exists() or not lfs.granted(writer.git_dir, str(value.get("oid"))):
                raise BadRequest(f"{path}: LFS object {value.get('oid')} was not uploaded")
            await asyncio.to_thread(writer.add_file, path, obj)
        elif key in ("deletedFile", "deletedFolder", "deletedEntry"):
            folder = {"deletedFile": False, "deletedFolder": True}.get(str(key))
            await asyncio.to_thread(writer.delete, str(value.get("path", "")), folder)
        else:
            raise BadRequest(f"Unknown commit operation {key!r}")
    return header, count


def _open_for_commit(
    svc: Services, session: Session, principal: Principal | None, owner: str, name: str, rev: str
) -> tuple[Space, str]:
    space = writable_space(session, principal, owner, name)
    return space, branch_of(space, svc, rev)


@router.post("/api/spaces/{owner}/{name}/commit/{rest:path}")
async def commit(
    owner: str, name: str, request: Request, svc: ServicesDep, session: SessionDep, principal: PrincipalDep
) -> Any:
    _check_no_pr(request)
    rev, _ = split_rev(raw_tail(request, owner, name, "commit"))
    space, branch = _open_for_commit(svc, session, principal, owner, name, rev)
    pk, space_id = space.id, space.space_id
    session.commit()
    if not request.headers.get("content-type", "").startswith("application/x-ndjson"):
        raise BadRequest("Send the commit as application/x-ndjson (huggingface_hub does)")
    async with _lock(space):
        parent = svc.repos.resolve(space.owner, space.name, f"refs/heads/{branch}")
        writer = await asyncio.to_thread(
            GitWriter, svc.repos.path(space.owner, space.name), parent, principal.name if principal else "anonymous"
        )
        try:
            header, _ = await apply_operations(svc, writer, ndjson_lines(request))
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
        await svc.deployer.on_push(pk, new, pusher=principal.name if principal else None)
    return {
        "success": True,
        "commitOid": new,
        "commitUrl": f"{public_base(request, svc)}/spaces/{space_id}/commit/{new}",
        "hookOutput": "",
    }


@router.get("/api/spaces/{owner}/{name}/xet-write-token/{rest:path}")
@router.get("/api/spaces/{owner}/{name}/xet-read-token/{rest:path}")
def xet_token(owner: str, name: str, session: SessionDep, principal: PrincipalDep) -> Any:
    readable_space(session, principal, owner, name)
    raise NotImplementedHere(
        "Spaceyard does not implement Xet storage. Set HF_HUB_DISABLE_XET=1 to upload large files "
        "through the LFS protocol (see docs/hub-api.md)."
    )
