"""The Git LFS server of each Space: batch API (``basic`` transfer), uploads, verify, downloads, locks.

Used by ``git-lfs`` (``git push`` / ``clone`` / ``fetch`` of a repository with ``*.bin filter=lfs``) and by
``huggingface_hub`` with ``HF_HUB_DISABLE_XET=1``:

* ``POST /spaces/{id}.git/info/lfs/objects/batch`` answers each object with ``actions``. Every action
  URL carries its own short-lived signed token (``?token=``, bound to the Space, the object and the
  action), and objects say ``authenticated: true``: git-lfs then sends no credentials to them (it would
  not for ``verify``), huggingface_hub's own headers are ignored, and nothing else is needed.
* ``upload`` (``PUT``) checks the sha256 and size of what arrives before storing it; ``verify`` (``POST``)
  checks the object is stored for this Space; ``download`` (``GET``, ranges) streams it.
* An object is readable through a Space only if it was uploaded through it (or the Space was copied
  from one that had it): see :mod:`spaceyard_builder.lfs`. Asking to upload an object stored for
  another Space gets an upload action: the uploader proves it has the content.
* Locks (``/info/lfs/locks``): create, list, verify (``ours``/``theirs``) and unlock, kept per Space in
  ``<repo>.git/spaceyard-lfs-locks.json``; writers may lock, anyone who can read may list.

Errors are git-lfs's shape (``{"message": ...}``, ``application/vnd.git-lfs+json``) with the Hub's
``X-Error-Message``; a caller without credentials gets 401 with a Basic challenge, so git retries with
the credentials of the remote URL.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import json
import os
import secrets
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.fernet import InvalidToken
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from spaceyard_builder import lfs

from .. import repokinds
from ..auth import Principal
from ..db.models import HubRepo, RepoRow, Space
from ..deps import PrincipalDep, Services, ServicesDep, SessionDep, services_of
from ..errors import BadRequest, Forbidden, NotFound, PlatformError, Unauthorized
from ..ranges import object_response
from .common import each_kind, public_base, readable_row, writable_row
from .files import json_body

router = APIRouter(include_in_schema=False)

ACTION_TTL = 3600
LFS_JSON = "application/vnd.git-lfs+json"
CHALLENGE = {"WWW-Authenticate": 'Basic realm="Spaceyard"'}
LOCKS_FILE = "spaceyard-lfs-locks.json"
LOCKS_PAGE = 100


class Unprocessable(PlatformError):
    status = 422


# --------------------------------------------------------------------------------------------- helpers
def lfs_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, media_type=LFS_JSON, headers=headers)


def lfs_error(exc: PlatformError) -> JSONResponse:
    headers = {**exc.headers, "X-Error-Message": str(exc).splitlines()[0][:500]}
    if exc.code:
        headers["X-Error-Code"] = exc.code
    if exc.status == 401:
        headers.update(CHALLENGE)
    return lfs_response({"message": str(exc)}, exc.status, headers)


async def answer(work: Callable[[], Awaitable[Any]]) -> Response:
    """Run an LFS handler and turn platform errors into git-lfs's error shape."""
    try:
        result = await work()
    except PlatformError as exc:
        return lfs_error(exc)
    return result if isinstance(result, Response) else lfs_response(result)


def _space_for(
    session: Session, principal: Principal | None, request: Request, owner: str, repo: str, write: bool
) -> RepoRow:
    name = repo.removesuffix(".git")
    try:
        return (
            writable_row(session, principal, request, owner, name)
            if write
            else readable_row(session, principal, request, owner, name)
        )
    except NotFound:
        if principal is None:  # private Spaces are invisible: let git retry with its credentials
            raise Unauthorized("Authentication required") from None
        raise


def git_dir(svc: Services, space: RepoRow) -> Path:
    return svc.store(space.kind).path(space.owner, space.name)


def sign(svc: Services, space: RepoRow, action: str, oid: str, size: int) -> str:
    claims = {"s": space.id, "a": action, "o": oid, "n": size, "e": int(time.time()) + ACTION_TTL}
    return svc.secretbox.encrypt(json.dumps(claims))


def check_signature(svc: Services, token: str, action: str, oid: str) -> dict[str, Any]:
    try:
        claims = json.loads(svc.secretbox.decrypt(token))
    except (InvalidToken, ValueError) as exc:
        raise Forbidden("Invalid or missing LFS action token") from exc
    if not isinstance(claims, dict) or claims.get("a") != action or claims.get("o") != oid:
        raise Forbidden(f"This URL is not for the {action} of object {oid}")
    if claims.get("e", 0) < time.time():
        raise Forbidden("This LFS URL has expired: run the command again")
    return claims


def _space_by_id(svc: Services, space_id: str) -> RepoRow:
    with svc.db.session() as session:
        space: RepoRow | None = session.get(Space, space_id) or session.get(HubRepo, space_id)
        if space is None:
            raise NotFound("The Space of this upload no longer exists")
        session.expunge(space)
        return space


def stored(svc: Services, space: RepoRow, oid: str, size: int) -> Path | None:
    """The object file if this Space may read it and it has ``size`` bytes."""
    return lfs.available(svc.settings.data_dir, git_dir(svc, space), lfs.Pointer(oid, size, 0))


# ----------------------------------------------------------------------------------------------- batch
@each_kind(router, "/<prefix>{owner}/{repo}/info/lfs/objects/batch", ["POST"])
async def batch(
    owner: str, repo: str, request: Request, svc: ServicesDep, session: SessionDep, principal: PrincipalDep
) -> Response:
    async def work() -> Any:
        body = await json_body(request)
        operation = body.get("operation")
        if operation not in ("upload", "download"):
            raise Unprocessable(f"Unknown operation {operation!r}: expected upload or download")
        space = _space_for(session, principal, request, owner, repo, write=operation == "upload")
        transfers = body.get("transfers") or ["basic"]
        if "basic" not in transfers:
            raise Unprocessable("Spaceyard supports the 'basic' LFS transfer only")
        if body.get("hash_algo", "sha256") != "sha256":
            raise Unprocessable("Spaceyard supports the sha256 hash only")
        base = public_base(request, svc)
        objects = [_batch_object(svc, space, operation, obj, base) for obj in body.get("objects") or []]
        return {"transfer": "basic", "objects": objects, "hash_algo": "sha256"}

    return await answer(work)


def _batch_object(svc: Services, space: RepoRow, operation: str, obj: Any, base: str) -> dict[str, Any]:
    oid = str(obj.get("oid", "")) if isinstance(obj, dict) else ""
    raw_size = obj.get("size") if isinstance(obj, dict) else None
    if not lfs.is_oid(oid):
        return {"oid": oid, "size": raw_size, "error": {"code": 422, "message": "oid must be a sha256 in hex"}}
    if not isinstance(raw_size, int) or raw_size < 0:
        return {"oid": oid, "size": raw_size, "error": {"code": 422, "message": "size must be a non-negative integer"}}
    size = raw_size
    entry: dict[str, Any] = {"oid": oid, "size": size, "authenticated": True}
    here = stored(svc, space, oid, size)
    if operation == "upload":
        if here is None:
            upload, verify = sign(svc, space, "upload", oid, size), sign(svc, space, "verify", oid, size)
            entry["actions"] = {
                "upload": {"href": f"{base}/api/lfs-upload/{oid}?token={upload}", "expires_in": ACTION_TTL},
                "verify": {"href": f"{base}/api/lfs/objects/{oid}/verify?token={verify}", "expires_in": ACTION_TTL},
            }
    elif here is None:
        entry["error"] = {
            "code": 404,
            "message": f"Object {oid} does not exist in {repokinds.named(space.kind).prefix}{space.repo_id}",
        }
    else:
        token = sign(svc, space, "download", oid, size)
        entry["actions"] = {
            "download": {"href": f"{base}/api/lfs/objects/{oid}?token={token}", "expires_in": ACTION_TTL}
        }
    return entry


# -------------------------------------------------------------------------------- upload, verify, download
@router.put("/api/lfs-upload/{oid}")
async def upload(oid: str, request: Request, token: str = "") -> Response:
    """The ``upload`` action: the signed token in the URL is the authorisation (body capped by
    ``SPACEYARD_MAX_LFS_UPLOAD``, see :mod:`spaceyard_platform.limits`)."""
    svc = services_of(request)

    async def work() -> Any:
        claims = check_signature(svc, token, "upload", oid)
        space = await asyncio.to_thread(_space_by_id, svc, str(claims.get("s")))
        dest = lfs.object_path(svc.settings.data_dir, oid)
        dest.parent.mkdir(parents=True, exist_ok=True)
        digest, size = hashlib.sha256(), 0
        fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as tmp:
                async for chunk in request.stream():
                    digest.update(chunk)
                    size += len(chunk)
                    if size > claims.get("n", 0):
                        raise BadRequest(f"More than the announced {claims.get('n')} bytes for object {oid}")
                    await asyncio.to_thread(tmp.write, chunk)
            if digest.hexdigest() != oid or size != claims.get("n"):
                raise BadRequest(f"The uploaded content does not match oid {oid} and size {claims.get('n')}")
            os.replace(tmp_name, dest)
        finally:
            Path(tmp_name).unlink(missing_ok=True)
        lfs.grant(git_dir(svc, space), oid)
        return Response(status_code=200)

    return await answer(work)


@router.post("/api/lfs/objects/{oid}/verify")
async def verify_signed(oid: str, request: Request, token: str = "") -> Response:
    """The ``verify`` action: is the object stored for this Space, with the announced size?"""
    svc = services_of(request)

    async def work() -> Any:
        claims = check_signature(svc, token, "verify", oid)
        space = await asyncio.to_thread(_space_by_id, svc, str(claims.get("s")))
        return await _verify(svc, space, request, oid)

    return await answer(work)


@each_kind(router, "/<prefix>{owner}/{repo}/info/lfs/objects/verify", ["POST"])
async def verify(
    owner: str, repo: str, request: Request, svc: ServicesDep, session: SessionDep, principal: PrincipalDep
) -> Response:
    """Verify with the caller's own credentials (older batch answers pointed here)."""

    async def work() -> Any:
        space = _space_for(session, principal, request, owner, repo, write=True)
        return await _verify(svc, space, request, None)

    return await answer(work)


async def _verify(svc: Services, space: RepoRow, request: Request, oid: str | None) -> Any:
    body = await json_body(request)
    got, size = str(body.get("oid", "")), body.get("size")
    if oid is not None and got != oid:
        raise BadRequest(f"This verify URL is for object {oid}, not {got}")
    if not lfs.is_oid(got) or not isinstance(size, int) or stored(svc, space, got, size) is None:
        raise NotFound(
            f"Object {got} of size {size} was not uploaded to {repokinds.named(space.kind).prefix}{space.repo_id}"
        )
    return {"message": "ok"}


@router.get("/api/lfs/objects/{oid}")
async def download(oid: str, request: Request, token: str = "") -> Response:
    """The ``download`` action: the object's bytes (``Range`` supported)."""
    svc = services_of(request)

    async def work() -> Any:
        claims = check_signature(svc, token, "download", oid)
        space = await asyncio.to_thread(_space_by_id, svc, str(claims.get("s")))
        size = int(claims.get("n", -1))
        path = stored(svc, space, oid, size)
        if path is None:
            raise NotFound(f"Object {oid} does not exist in {repokinds.named(space.kind).prefix}{space.repo_id}")
        return object_response(path, size, request.headers.get("range"), {})

    return await answer(work)


# ----------------------------------------------------------------------------------------------- locks
class LockFile:
    """The locks of one Space, in a JSON file inside its bare repository, under an exclusive flock."""

    def __init__(self, repo: Path) -> None:
        self.path = repo / LOCKS_FILE
        self.locks: list[dict[str, Any]] = []

    def __enter__(self) -> LockFile:
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        raw = os.read(self._fd, 10 << 20)
        try:
            locks = json.loads(raw) if raw.strip() else []
        except ValueError:
            locks = []
        self.locks = [lk for lk in locks if isinstance(lk, dict)] if isinstance(locks, list) else []
        return self

    def save(self) -> None:
        data = json.dumps(self.locks).encode()
        os.lseek(self._fd, 0, os.SEEK_SET)
        os.ftruncate(self._fd, 0)
        os.write(self._fd, data)

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)


def _read_locks(repo: Path) -> list[dict[str, Any]]:
    with LockFile(repo) as f:
        return list(f.locks)


def _count(value: object) -> int:
    """A page size from a client: a positive int, or 0 for the default."""
    if isinstance(value, int) and not isinstance(value, bool):
        return max(0, value)
    return int(value) if isinstance(value, str) and value.isdigit() else 0


def _page(locks: list[dict[str, Any]], cursor: str, limit: int) -> tuple[list[dict[str, Any]], str | None]:
    start = int(cursor) if cursor.isdigit() else 0
    size = max(1, min(limit or LOCKS_PAGE, LOCKS_PAGE))
    page = locks[start : start + size]
    return page, (str(start + size) if start + size < len(locks) else None)


@each_kind(router, "/<prefix>{owner}/{repo}/info/lfs/locks", ["GET"])
async def list_locks(
    owner: str, repo: str, request: Request, svc: ServicesDep, session: SessionDep, principal: PrincipalDep
) -> Response:
    async def work() -> Any:
        space = _space_for(session, principal, request, owner, repo, write=False)
        q = request.query_params
        locks = await asyncio.to_thread(_read_locks, git_dir(svc, space))
        locks = [
            lk
            for lk in locks
            if (not q.get("path") or lk["path"] == q["path"]) and (not q.get("id") or lk["id"] == q["id"])
        ]
        page, nxt = _page(locks, q.get("cursor", ""), _count(q.get("limit")))
        return {"locks": page, **({"next_cursor": nxt} if nxt else {})}

    return await answer(work)


@each_kind(router, "/<prefix>{owner}/{repo}/info/lfs/locks", ["POST"])
async def create_lock(
    owner: str, repo: str, request: Request, svc: ServicesDep, session: SessionDep, principal: PrincipalDep
) -> Response:
    async def work() -> Any:
        space = _space_for(session, principal, request, owner, repo, write=True)
        assert principal is not None
        body = await json_body(request)
        path = str(body.get("path") or "")
        if not path or len(path) > 1024 or "\0" in path:
            raise BadRequest("A lock needs the path of a file")

        def create() -> Any:
            with LockFile(git_dir(svc, space)) as f:
                for lk in f.locks:
                    if lk["path"] == path:
                        return lfs_response({"lock": lk, "message": "already created lock"}, 409)
                lock = {
                    "id": secrets.token_hex(8),
                    "path": path,
                    "locked_at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
                    "owner": {"name": principal.name},
                }
                f.locks.append(lock)
                f.save()
                return lfs_response({"lock": lock}, 201)

        return await asyncio.to_thread(create)

    return await answer(work)


@each_kind(router, "/<prefix>{owner}/{repo}/info/lfs/locks/verify", ["POST"])
async def verify_locks(
    owner: str, repo: str, request: Request, svc: ServicesDep, session: SessionDep, principal: PrincipalDep
) -> Response:
    async def work() -> Any:
        space = _space_for(session, principal, request, owner, repo, write=True)
        assert principal is not None
        body = await json_body(request)
        locks = await asyncio.to_thread(_read_locks, git_dir(svc, space))
        page, nxt = _page(locks, str(body.get("cursor") or ""), _count(body.get("limit")))
        ours = [lk for lk in page if lk["owner"]["name"] == principal.name]
        theirs = [lk for lk in page if lk["owner"]["name"] != principal.name]
        return {"ours": ours, "theirs": theirs, **({"next_cursor": nxt} if nxt else {})}

    return await answer(work)


@each_kind(router, "/<prefix>{owner}/{repo}/info/lfs/locks/{lock_id}/unlock", ["POST"])
async def unlock(
    owner: str,
    repo: str,
    lock_id: str,
    request: Request,
    svc: ServicesDep,
    session: SessionDep,
    principal: PrincipalDep,
) -> Response:
    async def work() -> Any:
        space = _space_for(session, principal, request, owner, repo, write=True)
        assert principal is not None
        force = bool((await json_body(request)).get("force"))

        def remove() -> Any:
            with LockFile(git_dir(svc, space)) as f:
                for lk in f.locks:
                    if lk["id"] == lock_id:
                        if lk["owner"]["name"] != principal.name and not force:
                            raise Forbidden(
                                f"{lk['path']} is locked by {lk['owner']['name']}: only they can unlock it "
                                "(or anyone with write access, with --force)"
                            )
                        f.locks.remove(lk)
                        f.save()
                        return {"lock": lk}
            raise NotFound(f"No lock with id {lock_id}")

        return await asyncio.to_thread(remove)

    return await answer(work)
