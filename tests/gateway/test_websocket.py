"""Websockets through the gateway: frames both ways, subprotocols, close codes in both directions."""

from __future__ import annotations

import socket
import time

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect
from websockets.typing import Subprotocol

from spaceyard_runtime.api import Endpoint
from tests.conftest import free_port

from .conftest import GatewayServer, Upstream


def test_echo_text_and_binary(gateway: GatewayServer, upstream: Upstream) -> None:
    gateway.add("wendy/echo", upstream.endpoint)
    with connect(f"ws://127.0.0.1:{gateway.port}/apps/wendy/echo/ws", subprotocols=[Subprotocol("chat.v1")]) as ws:
        assert ws.subprotocol == "chat.v1"  # the visitor's offer reached the app, the app's choice came back
        ws.send("hello")
        assert ws.recv(timeout=5) == "hello"
        payload = bytes(range(256)) * 1000
        ws.send(payload)
        assert ws.recv(timeout=5) == payload
        for i in range(50):
            ws.send(f"m{i}")
        assert [ws.recv(timeout=5) for _ in range(50)] == [f"m{i}" for i in range(50)]


def test_subdomain_form(gateway: GatewayServer, upstream: Upstream) -> None:
    gateway.add("wendy/echo2", upstream.endpoint)
    sock = socket.create_connection(("127.0.0.1", gateway.port))  # *.localhost does not resolve in Python
    with connect(f"ws://{gateway.host('wendy-echo2')}/ws", sock=sock) as ws:
        ws.send("sub")
        assert ws.recv(timeout=5) == "sub"


def test_app_close_code_reaches_the_visitor(gateway: GatewayServer, upstream: Upstream) -> None:
    gateway.add("wendy/closer", upstream.endpoint)
    with connect(f"ws://127.0.0.1:{gateway.port}/apps/wendy/closer/ws") as ws:
        ws.send("close:4001")
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=5)
    assert info.value.rcvd is not None
    assert info.value.rcvd.code == 4001
    assert info.value.rcvd.reason == "bye"


def test_app_vanishing_closes_the_visitor_socket(gateway: GatewayServer, upstream: Upstream) -> None:
    gateway.add("wendy/vanish", upstream.endpoint)
    with connect(f"ws://127.0.0.1:{gateway.port}/apps/wendy/vanish/ws") as ws:
        ws.send("drop")
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=5)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1011


def test_visitor_close_code_reaches_the_app(gateway: GatewayServer, upstream: Upstream) -> None:
    gateway.add("wendy/leaver", upstream.endpoint)
    before = len(upstream.state.ws_client_close)
    with connect(f"ws://127.0.0.1:{gateway.port}/apps/wendy/leaver/ws") as ws:
        ws.send("x")
        ws.recv(timeout=5)
        ws.close(code=4002, reason="done")
    deadline = time.monotonic() + 5
    while len(upstream.state.ws_client_close) == before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert upstream.state.ws_client_close[before:] == [4002]


def test_unknown_space_and_dead_app_refuse_the_handshake(gateway: GatewayServer) -> None:
    with pytest.raises(InvalidStatus) as info:
        connect(f"ws://127.0.0.1:{gateway.port}/apps/nobody/none/ws")
    assert info.value.response.status_code == 404
    gateway.add("wendy/dead", Endpoint("127.0.0.1", free_port()))
    with pytest.raises(InvalidStatus) as info:
        connect(f"ws://127.0.0.1:{gateway.port}/apps/wendy/dead/ws")
    assert info.value.response.status_code == 502


def test_private_space_websocket(gateway: GatewayServer, upstream: Upstream) -> None:
    class Authorizer:
        def can_read(self, space_id: str, token: str | None, session: str | None) -> bool:
            return token == "ws-token"

        def can_read_grant(self, space_id: str, session_ref: str) -> bool:
            return False

    gateway.configure(authorizer=Authorizer())
    route = gateway.add("wendy/private", upstream.endpoint, private=True)
    url = f"ws://127.0.0.1:{gateway.port}/apps/wendy/private/ws"
    with pytest.raises(InvalidStatus) as info:
        connect(url)
    assert info.value.response.status_code == 404
    before = route.last_activity
    with connect(url, additional_headers={"Authorization": "Bearer ws-token"}) as ws:
        ws.send("secret")
        assert ws.recv(timeout=5) == "secret"
    assert route.last_activity > before  # frames count as activity
