"""Gateway latency and status per Space, measured around the gateway (which stays untouched).

For every HTTP request the gateway answers for a Space (subdomain or path form, the gateway's own
matching), ``spaceyard_gateway_latency_seconds{space}`` observes the time from the request to the
response start (the app's time to first byte plus the gateway's, a held wake included) and
``spaceyard_gateway_responses_total{space,code}`` counts the status. Requests for the platform itself
and websockets pass straight through. Private Spaces are summed into one label by /metrics' public view.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import Counter, Histogram

from ..metrics import FIRST_BYTE, REGISTRY
from .asgi import Message, Receive, Scope, Send
from .proxy import Gateway

LATENCY = Histogram(
    "spaceyard_gateway_latency_seconds",
    "Time from a request for a Space to its response start, through the gateway",
    ["space"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
    registry=REGISTRY,
)
RESPONSES = Counter(
    "spaceyard_gateway_responses", "Responses for Spaces by status code", ["space", "code"], registry=REGISTRY
)


class GatewayMetrics:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self._latency: dict[str, Any] = {}  # per-Space children, so a request skips labels() lookups
        self._responses: dict[tuple[str, int], Any] = {}

    def _observe(self, space: str, status: int, seconds: float) -> None:
        latency = self._latency.get(space)
        if latency is None:
            latency = self._latency[space] = LATENCY.labels(space=space)
        latency.observe(seconds)
        counter = self._responses.get((space, status))
        if counter is None:
            counter = self._responses[(space, status)] = RESPONSES.labels(space=space, code=str(status))
        counter.inc()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.gateway(scope, receive, send)
            return
        match = self.gateway.match(scope)
        if match is None or match.route is None:
            await self.gateway.dispatch(scope, receive, send, match)
            return
        space = match.route.space_id
        started = time.perf_counter()

        async def timed_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                self._observe(space, int(message.get("status", 0)), time.perf_counter() - started)
                FIRST_BYTE.fire(space)
            await send(message)

        await self.gateway.dispatch(scope, receive, timed_send, match)
