"""HTTP side of Xet: the Hub's token endpoints and the CAS API (Xet protocol specification, "CAS API").

* ``GET /api/spaces/{id}/xet-{read|write}-token/{rev}`` -> ``{accessToken, exp, casUrl}`` (and the
  ``X-Xet-*`` headers huggingface_hub reads); write tokens need write access to the Space.
* CAS, at ``casUrl`` = ``<public url>/xet-cas``, with ``Authorization: Bearer xet_...``:
  ``POST|HEAD /v1/xorbs/default/{hash}``, ``POST /v1/shards`` and ``/v2/shards`` (NDJSON events),
  ``GET /v2/reconstructions/{file}`` and ``/v1/...`` (``Range`` supported), ``GET /v1/reconstructions?file_id=``
  (batch), ``HEAD /v1/files/{file}``, ``GET /v1/chunks/default-merkledb/{hash}`` (global dedup: a shard of the
  xorbs holding that chunk, chunk hashes HMAC-protected). Deduplication spans every Space: a shard
  may reference any stored xorb whose chunk hashes the uploader proves it knows (verification hashes).
* Xorb data: ``GET /xet-cas/xorb/{hash}?t=...`` — a signed, short-lived URL for one byte range.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from collections.abc import AsyncIterator, Generator
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from .. import repokinds
from ..deps import PrincipalDep, Services, ServicesDep, SessionDep
from ..errors import BadRequest, Forbidden, NotFound, PlatformError, Unauthorized
from . import cas, hashing, tokens
from .content import store_of
from .store import CasStore

router = APIRouter()
CAS = "/xet-cas"
URL_TTL = 600


class RangeError(PlatformError):
    status = 416


class PayloadTooLarge(PlatformError):
    status = 413


def _base(request: Request, svc: Services) -> str:
    from ..api.common import public_base

    return public_base(request, svc)


# ---------------------------------------------------------------------------------------- Hub tokens
def _token_response(request: Request, svc: Services, scope: str, write: bool) -> Response:
    token, grant = tokens.issue(svc.secretbox, scope, write, svc.settings.xet_token_ttl)
    cas_url = _base(request, svc) + CAS
    return JSONResponse(
        {"accessToken": token, "exp": grant.expires, "casUrl": cas_url},
        headers={
            "X-Xet-Cas-Url": cas_url,
            "X-Xet-Access-Token": token,
            "X-Xet-Token-Expiration": str(grant.expires),
            "Cache-Control": "no-store",
        },
    )


def xet_write_token(
    owner: str, name: str, rest: str, request: Request, svc: ServicesDep, session: SessionDep, principal: PrincipalDep
) -> Response:
    from ..api.commits import branch_of
    from ..api.common import writable_row

    space = writable_row(session, principal, request, owner, name)
    if rest != "None":  # huggingface_hub sends "None" when it will open a pull request
        branch_of(space, svc, rest)
    return _token_response(request, svc, space.id, write=True)


def xet_read_token(
    owner: str, name: str, request: Request, svc: ServicesDep, session: SessionDep, principal: PrincipalDep
) -> Response:
    from ..api.common import readable_row

    space = readable_row(session, principal, request, owner, name)
    return _token_response(request, svc, space.id, write=False)


for _path in repokinds.paths("/api/<api>/{owner}/{name}/xet-write-token/{rest:path}"):
    router.add_api_route(_path, xet_write_token, methods=["GET"])
for _path in repokinds.paths("/api/<api>/{owner}/{name}/xet-read-token/{rest:path}"):
    router.add_api_route(_path, xet_read_token, methods=["GET"])


# ------------------------------------------------------------------------------------------ CAS auth
def _grant(request: Request, svc: Services, write: bool) -> tokens.XetGrant:
    grant = tokens.verify(svc.secretbox, request.headers.get("authorization"))
    if grant is None:
        raise Unauthorized(
            "A valid, unexpired Xet token is required (Authorization: Bearer xet_...); "
            "get one from /api/spaces/OWNER/NAME/xet-read-token/main or xet-write-token/main"
        )
    if write and not grant.write:
        raise Forbidden("This Xet token is read-only: uploads need a token from xet-write-token")
    return grant


def _hash(value: str) -> bytes:
    try:
        return hashing.from_hex(value)
    except ValueError as exc:
        raise BadRequest(f"Malformed hash {value[:80]!r}: expected 64 lowercase hex digits") from exc


def _prefix(prefix: str, *expected: str) -> None:
    if prefix not in expected:
        raise BadRequest(f"Unknown prefix {prefix[:40]!r}: expected {' or '.join(expected)}")


async def _spool(request: Request, store: CasStore, limit: int, what: str) -> Path:
    """The request body in a temporary file, refusing more than ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"A {what} is at most {limit} bytes; this one is {declared}")
    fd, name = tempfile.mkstemp(dir=store.scratch(), prefix=f".{what}-")
    size = 0
    try:
        with os.fdopen(fd, "wb") as out:
            async for block in request.stream():
                size += len(block)
                if size > limit:
                    raise PayloadTooLarge(f"A {what} is at most {limit} bytes")
                await asyncio.to_thread(out.write, block)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return Path(name)


# --------------------------------------------------------------------------------------------- xorbs
@router.post(CAS + "/v1/xorbs/{prefix}/{xorb}")
async def upload_xorb(prefix: str, xorb: str, request: Request, svc: ServicesDep) -> Any:
    _grant(request, svc, write=True)
    _prefix(prefix, "default")
    key = _hash(xorb)
    store = store_of(svc)
    body = await _spool(request, store, cas.MAX_XORB_BYTES, "xorb")
    try:
        inserted = await asyncio.to_thread(cas.ingest_xorb, store, key, body)
    except cas.Invalid as exc:
        raise BadRequest(str(exc)) from exc
    finally:
        body.unlink(missing_ok=True)
    return {"was_inserted": inserted}


@router.head(CAS + "/v1/xorbs/{prefix}/{xorb}")
def head_xorb(prefix: str, xorb: str, request: Request, svc: ServicesDep) -> Response:
    _grant(request, svc, write=False)
    _prefix(prefix, "default")
    size = store_of(svc).xorb_size(_hash(xorb))
    if size is None:
        raise NotFound("No such xorb")
    return Response(headers={"Content-Length": str(size)})


@router.get(CAS + "/xorb/{xorb}")
def xorb_data(xorb: str, request: Request, svc: ServicesDep, t: str = "") -> Response:
    """Signed xorb bytes: the URL's token names the xorb and the byte range it may serve."""
    signed = tokens.signed_range(svc.secretbox, t, xorb)
    if signed is None:
        raise Forbidden("This xorb URL is invalid or has expired: ask for the reconstruction again")
    first, last = signed
    header = request.headers.get("range")
    if header:
        try:
            first, end = cas.parse_range(header, last + 1)
        except (cas.Invalid, cas.RangeNotSatisfiable) as exc:
            raise Forbidden(f"The Range must lie within the signed range {signed[0]}-{signed[1]}") from exc
        last = end - 1
        if first < signed[0]:
            raise Forbidden(f"The Range must lie within the signed range {signed[0]}-{signed[1]}")
    store = store_of(svc)
    key = _hash(xorb)
    size = store.xorb_size(key)
    if size is None or last >= size:
        raise NotFound("No such xorb range")
    return StreamingResponse(
        _iterate(store.read_xorb(key, first, last + 1)),
        status_code=206,
        headers={"Content-Range": f"bytes {first}-{last}/{size}", "Content-Length": str(last - first + 1)},
        media_type="application/octet-stream",
    )


async def _iterate(blocks: Generator[bytes]) -> AsyncIterator[bytes]:
    try:
        while True:
            block = await asyncio.to_thread(next, blocks, None)
            if block is None:
                return
            yield block
    finally:
        blocks.close()  # a client that hangs up must not keep the xorb open


# -------------------------------------------------------------------------------------------- shards
async def _register(request: Request, svc: Services) -> bool:
    grant = _grant(request, svc, write=True)
    store = store_of(svc)
    body = await _spool(request, store, cas.MAX_SHARD_BYTES, "shard")
    try:

        def run() -> bool:
            with body.open("rb") as f:
                return cas.register_shard(store, grant.scope, f, body.stat().st_size)

        return await asyncio.to_thread(run)
    finally:
        body.unlink(missing_ok=True)


@router.post(CAS + "/v1/shards")
async def upload_shard(request: Request, svc: ServicesDep) -> Any:
    try:
        new = await _register(request, svc)
    except cas.Invalid as exc:
        raise BadRequest(str(exc)) from exc
    return {"result": 1 if new else 0}


@router.post(CAS + "/v2/shards")
async def upload_shard_stream(request: Request, svc: ServicesDep) -> Any:
    """The streaming variant: same checks; success or failure is the last NDJSON event."""
    try:
        new = await _register(request, svc)
        events = [{"type": "committing", "stage": "syncing"}, {"type": "result", "result": 1 if new else 0}]
    except cas.Invalid as exc:
        events = [{"type": "error", "message": str(exc), "retryable": False}]
    body = "".join(json.dumps(e) + "\n" for e in events)
    return Response(body, media_type="application/x-ndjson", headers={"Cache-Control": "no-cache"})


# ------------------------------------------------------------------------------------ reconstruction
def _readable_file(svc: Services, grant: tokens.XetGrant, file_id: str) -> Any:
    store = store_of(svc)
    key = _hash(file_id)
    record = store.get_file(key) if store.granted(grant.scope, key) else None
    if record is None:
        raise NotFound(f"File {file_id} is not stored for this Space")
    return store, record


def _reconstruction(request: Request, svc: Services, file_id: str) -> tuple[cas.Reconstruction, str]:
    grant = _grant(request, svc, write=False)
    store, record = _readable_file(svc, grant, file_id)
    try:
        start, end = cas.parse_range(request.headers.get("range"), record.size)
        rec = cas.reconstruct(store, record, start, end)
    except cas.RangeNotSatisfiable as exc:
        raise RangeError(str(exc), headers={"Content-Range": f"bytes */{record.size}"}) from exc
    except cas.Invalid as exc:
        raise BadRequest(str(exc)) from exc
    return rec, _base(request, svc) + CAS


def _url(svc: Services, base: str, fetch: cas.Fetch) -> str:
    x = hashing.to_hex(fetch.xorb)
    return f"{base}/xorb/{x}?t={tokens.sign_range(svc.secretbox, x, fetch.byte_start, fetch.byte_end, URL_TTL)}"


def _terms(rec: cas.Reconstruction) -> list[dict[str, Any]]:
    return [
        {"hash": hashing.to_hex(t.xorb), "unpacked_length": t.unpacked, "range": {"start": t.start, "end": t.end}}
        for t in rec.terms
    ]


def _fetch_info_v1(svc: Services, base: str, rec: cas.Reconstruction) -> dict[str, list[dict[str, Any]]]:
    info: dict[str, list[dict[str, Any]]] = {}
    for f in rec.fetches:
        info.setdefault(hashing.to_hex(f.xorb), []).append(
            {
                "range": {"start": f.start, "end": f.end},
                "url": _url(svc, base, f),
                "url_range": {"start": f.byte_start, "end": f.byte_end},
            }
        )
    return info


@router.get(CAS + "/v2/reconstructions/{file_id}")
def reconstruction_v2(file_id: str, request: Request, svc: ServicesDep) -> Any:
    rec, base = _reconstruction(request, svc, file_id)
    xorbs: dict[str, list[dict[str, Any]]] = {}
    for f in rec.fetches:
        xorbs.setdefault(hashing.to_hex(f.xorb), []).append(
            {
                "url": _url(svc, base, f),
                "ranges": [
                    {"chunks": {"start": f.start, "end": f.end}, "bytes": {"start": f.byte_start, "end": f.byte_end}}
                ],
            }
        )
    return {"offset_into_first_range": rec.offset_into_first_range, "terms": _terms(rec), "xorbs": xorbs}


@router.get(CAS + "/v1/reconstructions/{file_id}")
def reconstruction_v1(file_id: str, request: Request, svc: ServicesDep) -> Any:
    rec, base = _reconstruction(request, svc, file_id)
    return {
        "offset_into_first_range": rec.offset_into_first_range,
        "terms": _terms(rec),
        "fetch_info": _fetch_info_v1(svc, base, rec),
    }


@router.get(CAS + "/v1/reconstructions")
def batch_reconstruction(request: Request, svc: ServicesDep) -> Any:
    grant = _grant(request, svc, write=False)
    ids = list(dict.fromkeys(request.query_params.getlist("file_id")))
    if not ids or len(ids) > 1000:
        raise BadRequest("Pass 1 to 1000 file_id query parameters")
    base = _base(request, svc) + CAS
    files: dict[str, Any] = {}
    fetch_info: dict[str, list[dict[str, Any]]] = {}
    for file_id in ids:
        store, record = _readable_file(svc, grant, file_id)
        rec = cas.reconstruct(store, record, 0, record.size)
        files[file_id] = _terms(rec)
        for x, entries in _fetch_info_v1(svc, base, rec).items():
            fetch_info.setdefault(x, []).extend(entries)
    return {"files": files, "fetch_info": fetch_info}


@router.head(CAS + "/v1/files/{file_id}")
def head_file(file_id: str, request: Request, svc: ServicesDep) -> Response:
    grant = _grant(request, svc, write=False)
    _, record = _readable_file(svc, grant, file_id)
    return Response(headers={"Content-Length": str(record.size)})


@router.get(CAS + "/v1/chunks/{prefix}/{chunk}")
async def global_dedup(prefix: str, chunk: str, request: Request, svc: ServicesDep) -> Response:
    _grant(request, svc, write=False)
    _prefix(prefix, "default-merkledb", "default")  # the specification says the first, hf_xet sends the second
    shard = await asyncio.to_thread(cas.dedup_shard, store_of(svc), _hash(chunk))
    if shard is None:
        raise NotFound("Chunk not tracked by global deduplication")
    return Response(shard, media_type="application/octet-stream")
