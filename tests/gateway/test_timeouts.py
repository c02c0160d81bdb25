"""Idle timeouts: a silent app's response and a silent websocket are cut after stream_idle_timeout."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from spaceyard_platform.gateway.proxy import Gateway
from spaceyard_platform.gateway.routes import InMemoryRouteTable, RouteSpec
from spaceyard_platform.settings import Settings
from tests.conftest import free_port

from .conftest import Upstream, platform_app, serve_in_thread


@pytest.fixture(scope="module")
def impatient(upstream: Upstream) -> Iterator[int]:
    """A second gateway with a 0.5 s idle timeout."""
    port = free_port()
    routes = InMemoryRouteTable()
    routes.add_route(RouteSpec(space_id="quiet/app", stage="RUNNING", upstream=upstream.endpoint))
    settings = Settings(port=port, stream_idle_timeout=0.5)
    server, thread = serve_in_thread(Gateway(platform_app([]), routes, settings), port)
    yield port
    server.should_exit = True
    thread.join(10)


def test_silent_app_response_is_cut(impatient: int) -> None:
    started = time.monotonic()
    received = b""
    # cut short, the response is broken off (no clean end a client would take for the whole body)
    with (
        pytest.raises(httpx.RemoteProtocolError),
        httpx.stream("GET", f"http://127.0.0.1:{impatient}/apps/quiet/app/silent", timeout=30) as r,
    ):
        assert r.status_code == 200
        for chunk in r.iter_bytes():
            received += chunk
    assert received == b"hello\n"
    assert time.monotonic() - started < 10  # cut after the idle timeout, not after the app's minute


def test_silent_websocket_is_closed(impatient: int) -> None:
    with connect(f"ws://127.0.0.1:{impatient}/apps/quiet/app/ws") as ws:
        ws.send("one")
        assert ws.recv(timeout=5) == "one"
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=10)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1001


def test_idle_timer_of_a_reused_upstream_connection_times_each_wait(upstream: Upstream) -> None:
    """One idle timer per upstream connection (upstream.py): armed by an earlier request, it neither
    cuts a later answer that comes within its own idle time nor lets a silent one run forever."""
    port = free_port()
    routes = InMemoryRouteTable()
    routes.add_route(RouteSpec(space_id="pooled/app", stage="RUNNING", upstream=upstream.endpoint))
    server, thread = serve_in_thread(
        Gateway(platform_app([]), routes, Settings(port=port, stream_idle_timeout=2)), port
    )
    late = upstream.state.release_late

    def answered_after(seconds: float) -> httpx.Response:
        late.clear()
        release = threading.Timer(seconds, late.set)
        release.start()
        try:
            return client.get("/late")
        finally:
            release.cancel()

    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}/apps/pooled/app", timeout=30) as client:
            # both on one pooled connection: the timer the first wait armed fires 0.6 s into the second
            for _ in range(2):
                r = answered_after(1.4)
                assert r.status_code == 200 and r.text == "data: released\n\n"
            with pytest.raises(httpx.RemoteProtocolError):  # and a silent answer is still cut
                client.get("/silent")
    finally:
        server.should_exit = True
        thread.join(10)


def test_keep_alive_timer_counts_from_the_last_response(upstream: Upstream) -> None:
    """One keep-alive timer per connection (serving.py): a connection that keeps being used is not
    closed when the timer armed by its first response fires, and an idle one is still closed."""
    port = free_port()
    routes = InMemoryRouteTable()
    routes.add_route(RouteSpec(space_id="kept/app", stage="RUNNING", upstream=upstream.endpoint))
    server, thread = serve_in_thread(Gateway(platform_app([]), routes, Settings(port=port)), port, keep_alive=2)
    request = b"GET /apps/kept/app/download?size=3 HTTP/1.1\r\nHost: x\r\n\r\n"
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
            for pause in (0.0, 1.4, 1.2):  # the first timer fires at 2.0 s, 0.6 s after the second answer
                time.sleep(pause)
                sock.sendall(request)
                answer = b""
                while not answer.endswith(b"\r\n\r\nxxx"):
                    chunk = sock.recv(65536)
                    assert chunk, answer  # closed while in use
                    answer += chunk
                assert answer.startswith(b"HTTP/1.1 200 ")
            assert sock.recv(65536) == b""  # idle for the whole keep-alive time: closed by the server
    finally:
        server.should_exit = True
        thread.join(10)
