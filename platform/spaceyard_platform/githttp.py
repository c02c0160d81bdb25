"""Git smart HTTP (protocol v0/v2 over stateless RPC) for ``/spaces/OWNER/NAME(.git)``, models at
``/OWNER/NAME(.git)`` and datasets at ``/datasets/OWNER/NAME(.git)``, as on the Hub.

The real ``git upload-pack`` / ``git receive-pack`` do the work; this module authenticates, streams
request and response bodies without holding them in memory, and tells the deployer when a Space's
``main`` moved so the pushed commit gets built (a model's or dataset's new head is only recorded).
"""

from __future__ import annotations

import asyncio
import tempfile
import zlib
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse

from . import gitsafe, repokinds
from .auth import Principal, can_read, can_write, resolve_token, token_from_headers
from .db.models import RepoRow
from .deps import services_of
from .errors import Forbidden, RepoNotFound, Unauthorized
from .services.hubrepos import after_push
from .services.lookup import find_repo

router = APIRouter(include_in_schema=False)

SERVICES = ("git-upload-pack", "git-receive-pack")
SPOOL_IN_MEMORY = 4 * 1024 * 1024
CHALLENGE = {"WWW-Authenticate": 'Basic realm="Spaceyard"'}


def _pkt(line: str) -> bytes:
    data = line.encode()
    return f"{len(data) + 4:04x}".encode() + data


def _authorize(request: Request, owner: str, repo: str, service: str) -> tuple[RepoRow, Principal | None]:
    svc = services_of(request)
    name = repo.removesuffix(".git")
    kind = repokinds.of_path(request.url.path)
    where = f"{kind.prefix}{owner}/{name}"
    token = token_from_headers(request.headers.get("authorization"))
    with svc.db.session() as session:
        principal = resolve_token(session, token)
        if token and principal is None:
            raise Unauthorized(
                "Invalid credentials: use your Spaceyard access token as the password", headers=CHALLENGE
            )
        space = find_repo(session, kind.name, owner, name)
        visible = space is not None and can_read(session, principal, space)
        if not visible:
            if principal is None:
                raise Unauthorized("Authentication required", headers=CHALLENGE)
            raise RepoNotFound(f"Repository not found: {where}")
        assert space is not None
        if service == "git-receive-pack" and not can_write(session, principal, space):
            if principal is None:
                raise Unauthorized("Authentication required to push", headers=CHALLENGE)
            raise Forbidden(f"You do not have write access to {where}")
        return space, principal


async def info_refs(request: Request, owner: str, repo: str, service: str = "") -> Response:
    if service not in SERVICES:
        raise Forbidden("Only the smart HTTP protocol is supported (git >= 1.6.6)")
    space, _ = await asyncio.to_thread(_authorize, request, owner, repo, service)
    svc = services_of(request)
    args = [
        service.removeprefix("git-"),
        "--stateless-rpc",
        "--advertise-refs",
        str(svc.store(space.kind).path(space.owner, space.name).absolute()),
    ]
    env = _git_env(request)
    proc = await asyncio.create_subprocess_exec(
        "git", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env
    )
    out, _ = await proc.communicate()
    body = out
    if "version=2" not in request.headers.get("git-protocol", ""):
        body = _pkt(f"# service={service}\n") + b"0000" + out
    return Response(
        body,
        media_type=f"application/x-{service}-advertisement",
        headers={"Cache-Control": "no-cache, max-age=0, must-revalidate", "Expires": "Fri, 01 Jan 1980 00:00:00 GMT"},
    )


def _git_env(request: Request) -> dict[str, str]:
    proto = request.headers.get("git-protocol", "")
    # Only the protocol negotiation a git client sends (version=2, and key=value pairs joined by ':').
    extra = {"GIT_PROTOCOL": proto} if proto and all(c.isalnum() or c in "=:._-" for c in proto) else {}
    return gitsafe.git_env(extra)


async def _request_body(request: Request) -> AsyncIterator[bytes]:
    gzip = request.headers.get("content-encoding", "").lower() == "gzip"
    decomp = zlib.decompressobj(16 + zlib.MAX_WBITS) if gzip else None
    async for chunk in request.stream():
        if decomp is not None:
            chunk = decomp.decompress(chunk)
        if chunk:
            yield chunk
    if decomp is not None:
        tail = decomp.flush()
        if tail:
            yield tail


async def rpc(request: Request, owner: str, repo: str) -> Response:
    service = request.url.path.rsplit("/", 1)[-1]
    if service not in SERVICES:
        raise RepoNotFound("Not found")
    space, principal = await asyncio.to_thread(_authorize, request, owner, repo, service)
    svc = services_of(request)
    repos = svc.store(space.kind)
    before = await asyncio.to_thread(repos.head, space.owner, space.name)
    # git clients send the whole request before reading the answer: take it all first (memory-bounded),
    # so that reading the body never races with the streaming response listening for disconnects.
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115 - closed by feed()
    async for chunk in _request_body(request):
        await asyncio.to_thread(spool.write, chunk)
    spool.seek(0)
    proc = await asyncio.create_subprocess_exec(
        "git",
        service.removeprefix("git-"),
        "--stateless-rpc",
        str(repos.path(space.owner, space.name).absolute()),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        env=_git_env(request),
    )
    assert proc.stdin is not None and proc.stdout is not None

    async def feed() -> None:
        assert proc.stdin is not None
        try:
            while chunk := await asyncio.to_thread(spool.read, 65536):
                proc.stdin.write(chunk)
                await proc.stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            proc.stdin.close()
            spool.close()

    feeder = asyncio.create_task(feed())

    async def body() -> AsyncIterator[bytes]:
        assert proc.stdout is not None
        try:
            while chunk := await proc.stdout.read(65536):
                yield chunk
            await feeder
            await proc.wait()
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            if service == "git-receive-pack":
                after = await asyncio.to_thread(repos.head, space.owner, space.name)
                if after and after != before:
                    await after_push(svc, space, after, principal.name if principal else None)

    return StreamingResponse(
        body(), media_type=f"application/x-{service}-result", headers={"Cache-Control": "no-cache, max-age=0"}
    )


# Spaces first: their literal /spaces/ prefix wins over a model's /{owner}/{repo}.
for _kind in (repokinds.SPACE, repokinds.DATASET, repokinds.MODEL):
    router.add_api_route(f"/{_kind.prefix}{{owner}}/{{repo}}/info/refs", info_refs, methods=["GET"])
    for _service in SERVICES:
        router.add_api_route(f"/{_kind.prefix}{{owner}}/{{repo}}/{_service}", rpc, methods=["POST"])
