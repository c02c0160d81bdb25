"""Pooled upstream connections are reused only while young (upstream.py, ``max_reuse_age``).

Behind a Kubernetes Service a kept-alive connection stays with the pod it first reached: when a rolling
update takes that pod out of the Service, an unbounded connection would keep carrying visitors' requests
to it until it is killed mid-answer. Bounding the age moves traffic to the Service's current pods.
"""

from __future__ import annotations

import asyncio

from spaceyard_platform.gateway.upstream import UpstreamConnection, UpstreamPool

from .conftest import Upstream


async def _get(pool: UpstreamPool, upstream: Upstream) -> UpstreamConnection:
    conn = await pool.acquire(upstream.endpoint.host, upstream.endpoint.port)
    conn.write(b"GET /download?size=3 HTTP/1.1\r\nHost: app\r\n\r\n")
    status, _headers = await conn.response_head()
    assert status == 200
    body = b""
    while chunk := await conn.read():
        body += chunk
    assert body == b"xxx"
    pool.release(conn)
    return conn


async def test_a_pooled_connection_is_reused_while_young_then_replaced(upstream: Upstream) -> None:
    pool = UpstreamPool(5.0, 30.0, max_reuse_age=0.5)
    try:
        first = await _get(pool, upstream)
        assert await _get(pool, upstream) is first  # kept alive and reused at once
        await asyncio.sleep(0.6)
        third = await _get(pool, upstream)  # pooled, but older than the bound: a new connection
        assert third is not first and not first.alive
        assert await _get(pool, upstream) is third
    finally:
        pool.close()
