"""The gateway's HTTP path against real upstreams: routing, headers, access, waking, streaming, static."""

from __future__ import annotations

import asyncio
import hashlib
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from spaceyard_platform.gateway.routes import RouteTable, WakeRefused
from spaceyard_runtime.api import Endpoint
from tests.conftest import free_port

from .conftest import LOOKALIKE_BODY, GatewayServer, Upstream, rss_kib


def echoed(resp: httpx.Response) -> dict[str, str]:
    return {k.lower(): v for k, v in resp.json()["headers"]}


# -- routing ----------------------------------------------------------------------------------------


def test_subdomain_and_path_forms_reach_the_app(gateway: GatewayServer, upstream: Upstream) -> None:
    gateway.add("Alice/Echo_App", upstream.endpoint)
    # subdomain form: Host picks the Space (case-insensitive; with or without the port)
    for host in (gateway.host("alice-echo-app"), gateway.host("ALICE-Echo-App"), "alice-echo-app.localhost"):
        r = httpx.get(f"{gateway.url}/headers/x?q=1", headers={"Host": host})
        assert r.status_code == 200, host
        assert r.json()["path"] == "/headers/x?q=1"
        h = echoed(r)
        assert h["host"] == host
        assert h["x-forwarded-host"] == host
        assert h["x-forwarded-proto"] == "http"
        assert h["x-forwarded-for"] == "127.0.0.1"
        assert "x-forwarded-prefix" not in h
    # path form: prefix stripped, the app told where it lives
    r = httpx.get(f"{gateway.url}/apps/alice/echo_app/headers/a%2Fb?x=%20y")
    assert r.status_code == 200
    assert r.json()["path"] == "/headers/a%2Fb?x=%20y"
    h = echoed(r)
    assert h["x-forwarded-prefix"] == "/apps/alice/echo_app"
    assert h["x-gradio-server"] == f"http://127.0.0.1:{gateway.port}/apps/alice/echo_app"
    assert "x-forwarded-host" not in h  # Gradio 6.31 would drop the prefix if it saw one


def test_everything_else_goes_to_the_platform_app(gateway: GatewayServer) -> None:
    assert httpx.get(f"{gateway.url}/").json() == {"app": "platform"}
    assert httpx.get(f"{gateway.url}/", headers={"Host": f"localhost:{gateway.port}"}).json() == {"app": "platform"}
    assert httpx.get(f"{gateway.url}/apps/bob").json() == {"app": "platform", "owner": "bob"}
    # a host under some other domain is not a Space
    assert httpx.get(f"{gateway.url}/", headers={"Host": "x.example.com"}).json() == {"app": "platform"}
    assert gateway.lifespan_events[0] == "startup"  # lifespan reached the wrapped app


def test_path_form_without_slash_redirects(gateway: GatewayServer, upstream: Upstream) -> None:
    gateway.add("alice/redir", upstream.endpoint)
    r = httpx.get(f"{gateway.url}/apps/alice/redir?a=1")
    assert r.status_code == 308
    assert r.headers["location"] == "/apps/alice/redir/?a=1"
    # an app's absolute redirect stays under the prefix
    r = httpx.get(f"{gateway.url}/apps/alice/redir/redirect")
    assert r.status_code == 302
    assert r.headers["location"] == "/apps/alice/redir/headers"


def test_unknown_space_is_404(gateway: GatewayServer) -> None:
    r = httpx.get(f"{gateway.url}/apps/nobody/nothing/", headers={"Accept": "text/html"})
    assert r.status_code == 404 and "text/html" in r.headers["content-type"]
    r = httpx.get(f"{gateway.url}/", headers={"Host": gateway.host("nobody-nothing")})
    assert r.status_code == 404 and r.json()["status"] == 404


def test_route_changes_apply_on_next_request(gateway: GatewayServer, upstream: Upstream) -> None:
    assert httpx.get(f"{gateway.url}/apps/carol/moving/headers").status_code == 404
    gateway.add("carol/moving", upstream.endpoint)
    assert httpx.get(f"{gateway.url}/apps/carol/moving/headers").status_code == 200
    gateway.routes.remove_route("carol/moving")
    assert httpx.get(f"{gateway.url}/apps/carol/moving/headers").status_code == 404


# -- headers ----------------------------------------------------------------------------------------


def test_hop_by_hop_headers_are_removed_both_ways(gateway: GatewayServer, upstream: Upstream) -> None:
    gateway.add("dave/hops", upstream.endpoint)
    r = httpx.get(
        f"{gateway.url}/apps/dave/hops/headers",
        headers={
            "Connection": "keep-alive, X-Private-Hop",
            "X-Private-Hop": "1",
            "Keep-Alive": "timeout=3",
            "TE": "trailers",
            "Proxy-Authorization": "Basic eA==",
            "X-Forwarded-For": "6.6.6.6",
            "X-Kept": "yes",
        },
    )
    h = echoed(r)
    for name in ("x-private-hop", "keep-alive", "te", "proxy-authorization"):
        assert name not in h, name
    assert h["x-forwarded-for"] == "127.0.0.1"  # never the visitor's claim
    assert h["x-kept"] == "yes"
    # response: the app's Connection-listed header and Keep-Alive are not passed on
    assert "x-hop" not in r.headers
    assert "keep-alive" not in r.headers
    assert len(r.headers.get_list("date")) == 1  # the gateway's, not also the app's
    assert len(r.headers.get_list("server")) <= 1


def test_embedding_allowed_by_default(gateway: GatewayServer, upstream: Upstream) -> None:
    gateway.add("erin/embeddable", upstream.endpoint)
    r = httpx.get(f"{gateway.url}/apps/erin/embeddable/headers")
    assert "x-frame-options" not in r.headers
    # frame-ancestors removed, the rest kept (and the path form's sandbox added)
    assert r.headers.get_list("content-security-policy") == ["default-src 'self'", "sandbox"]


def test_disable_embedding_and_custom_headers(gateway: GatewayServer, upstream: Upstream) -> None:
    gateway.add(
        "erin/closed",
        upstream.endpoint,
        disable_embedding=True,
        custom_headers={"cross-origin-embedder-policy": "require-corp", "cross-origin-opener-policy": "same-origin"},
    )
    r = httpx.get(f"{gateway.url}/apps/erin/closed/headers")
    assert "x-frame-options" not in r.headers
    policies = r.headers.get_list("content-security-policy")
    assert f"frame-ancestors 'self' {gateway.settings.resolved_public_url}" in policies
    assert "default-src 'self'" in policies
    assert r.headers["cross-origin-embedder-policy"] == "require-corp"
    assert r.headers["cross-origin-opener-policy"] == "same-origin"


# -- access -----------------------------------------------------------------------------------------


class Authorizer:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str | None, str | None]] = []

    def can_read(self, space_id: str, token: str | None, session: str | None) -> bool:
        self.calls.append((space_id, token, session))
        return token == "good-token" or session == "good-session"

    def can_read_grant(self, space_id: str, session_ref: str) -> bool:
        self.calls.append((space_id, None, "grant:" + session_ref))
        return session_ref == "good-ref"


def test_private_space(gateway: GatewayServer, upstream: Upstream) -> None:
    authorizer = Authorizer()
    gateway.configure(authorizer=authorizer)
    gateway.add("frank/secret", upstream.endpoint, private=True)
    url = f"{gateway.url}/apps/frank/secret/headers"
    unknown = httpx.get(f"{gateway.url}/apps/frank/nothing/headers")
    denied = httpx.get(url)
    assert denied.status_code == 404
    assert denied.content == unknown.content  # indistinguishable from an unknown Space
    assert httpx.get(url, headers={"Authorization": "Bearer bad"}).status_code == 404
    subdomain = httpx.get(f"{gateway.url}/headers", headers={"Host": gateway.host("frank-secret")})
    assert subdomain.status_code == 404

    ok = httpx.get(url, headers={"Authorization": "Bearer good-token"})
    assert ok.status_code == 200
    assert "authorization" not in echoed(ok)
    ok = httpx.get(url, headers={"x-hf-authorization": "Bearer good-token"})  # what gradio_client sends
    assert ok.status_code == 200
    assert "x-hf-authorization" not in echoed(ok)
    ok = httpx.get(url, headers={"Cookie": "theme=dark; spaceyard_session=good-session; other=1"})
    assert ok.status_code == 200
    assert echoed(ok)["cookie"] == "theme=dark; other=1"  # the platform session never reaches the app
    assert ("frank/secret", "good-token", None) in authorizer.calls
    # one page load = many requests: a "yes" is reused for a few seconds instead of asking again
    calls = len(authorizer.calls)
    for _ in range(5):
        assert httpx.get(url, headers={"Authorization": "Bearer good-token"}).status_code == 200
    assert len(authorizer.calls) == calls
    # public Spaces: the visitor's credentials do not reach the app either
    gateway.add("frank/public", upstream.endpoint)
    r = httpx.get(
        f"{gateway.url}/apps/frank/public/headers",
        headers={
            "Authorization": "Bearer app-token",
            "x-hf-authorization": "Bearer t",
            "Cookie": "spaceyard_session=s",
        },
    )
    assert r.status_code == 200
    assert not {"authorization", "x-hf-authorization", "cookie"} & set(echoed(r))


# -- waking -----------------------------------------------------------------------------------------


class Waker:
    """Wakes like the deployer: publishes the route with its upstream, then returns it."""

    def __init__(
        self,
        routes: RouteTable,
        endpoint: Endpoint | None,
        delay: float = 0.3,
        refuse: WakeRefused | None = None,
    ) -> None:
        self.routes = routes
        self.endpoint = endpoint
        self.delay = delay
        self.refuse = refuse
        self.calls = 0

    async def wake(self, space_id: str) -> Endpoint:
        self.calls += 1
        await asyncio.sleep(self.delay)
        if self.refuse is not None:
            raise self.refuse
        assert self.endpoint is not None
        route = self.routes.by_id(space_id)
        assert route is not None
        self.routes.add_route(replace(route, upstream=self.endpoint))
        return self.endpoint


def test_sleeping_space_is_woken_and_requests_held(gateway: GatewayServer, upstream: Upstream) -> None:
    waker = Waker(gateway.routes, upstream.endpoint, delay=0.5)
    gateway.configure(waker=waker)
    gateway.add("gina/sleepy", None)
    results: list[int] = []

    def visit() -> None:
        results.append(httpx.get(f"{gateway.url}/apps/gina/sleepy/headers", timeout=10).status_code)

    started = time.monotonic()
    threads = [threading.Thread(target=visit) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [200, 200, 200]
    assert time.monotonic() - started >= 0.5  # held while the app woke
    assert waker.calls == 1  # concurrent visitors share one wake
    assert httpx.get(f"{gateway.url}/apps/gina/sleepy/headers").status_code == 200
    assert waker.calls == 1  # awake now: no more waking


def test_wake_refused_page(gateway: GatewayServer) -> None:
    refuse = WakeRefused("The build failed: no app.py", 500, "BUILD_ERROR")
    gateway.configure(waker=Waker(gateway.routes, None, delay=0, refuse=refuse))
    gateway.add("gina/broken", None)
    r = httpx.get(f"{gateway.url}/apps/gina/broken/", headers={"Accept": "text/html,*/*"})
    assert r.status_code == 500
    assert "BUILD_ERROR" in r.text and "The build failed: no app.py" in r.text
    r = httpx.get(f"{gateway.url}/apps/gina/broken/", headers={"Accept": "application/json"})
    assert r.status_code == 500
    assert r.json() == {"error": "The build failed: no app.py", "status": 500, "stage": "BUILD_ERROR"}


def test_waker_bug_is_a_clear_503(gateway: GatewayServer) -> None:
    class Broken:
        async def wake(self, space_id: str) -> Endpoint:
            raise RuntimeError("boom")

    gateway.configure(waker=Broken())
    gateway.add("gina/buggy", None)
    r = httpx.get(f"{gateway.url}/apps/gina/buggy/", headers={"Accept": "application/json"})
    assert r.status_code == 503
    assert r.json()["error"] == "The Space could not be started."


def test_wake_timeout_is_503_with_retry_after(gateway: GatewayServer, upstream: Upstream) -> None:
    gateway.configure(waker=Waker(gateway.routes, upstream.endpoint, delay=60))
    gateway.add("gina/slow", None)
    started = time.monotonic()
    r = httpx.get(f"{gateway.url}/apps/gina/slow/", timeout=30)
    assert r.status_code == 503
    assert r.headers["retry-after"]
    assert time.monotonic() - started < 30


def test_refused_connection_is_502(gateway: GatewayServer) -> None:
    gateway.add("hank/dead", Endpoint("127.0.0.1", free_port()))
    r = httpx.get(f"{gateway.url}/apps/hank/dead/", headers={"Accept": "text/html"}, timeout=10)
    assert r.status_code == 502
    assert "not reachable" in r.text


# -- streaming --------------------------------------------------------------------------------------


def test_event_stream_arrives_event_by_event(gateway: GatewayServer, upstream: Upstream) -> None:
    route = gateway.add("ivy/ticks", upstream.endpoint)
    arrivals: list[float] = []
    with httpx.stream("GET", f"{gateway.url}/apps/ivy/ticks/ticks", timeout=10) as r:
        assert r.headers["content-type"] == "text/event-stream"
        for line in r.iter_lines():
            if line.startswith("data:"):
                arrivals.append(time.monotonic())
                if len(arrivals) == 6:
                    break
    assert route.last_activity >= arrivals[-2]  # streamed chunks count as activity, not just the request
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:], strict=False)]
    # the app emits every 0.1 s: events arrive spread out like that, not in one burst at the end
    assert arrivals[-1] - arrivals[0] >= 0.25
    assert sum(1 for g in gaps if g > 0.03) >= 3


def test_client_disconnect_releases_the_upstream(gateway: GatewayServer, upstream: Upstream) -> None:
    gateway.add("ivy/leaver", upstream.endpoint)
    with httpx.stream("GET", f"{gateway.url}/apps/ivy/leaver/ticks?id=leaver", timeout=10) as r:
        for line in r.iter_lines():
            if line.startswith("data:"):
                break
    assert "leaver" in upstream.state.streams_started
    deadline = time.monotonic() + 5
    while "leaver" not in upstream.state.streams_closed and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "leaver" in upstream.state.streams_closed  # the app saw its stream closed


def test_client_leaving_a_quiet_stream_releases_the_upstream(gateway: GatewayServer, upstream: Upstream) -> None:
    gateway.add("ivy/quiet", upstream.endpoint)
    with httpx.stream("GET", f"{gateway.url}/apps/ivy/quiet/silent?id=quiet", timeout=10) as r:
        for chunk in r.iter_bytes():
            assert chunk == b"hello\n"
            break
    deadline = time.monotonic() + 5
    while "silent:quiet" not in upstream.state.streams_closed and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "silent:quiet" in upstream.state.streams_closed  # not only when the app speaks again


def test_upstream_dying_mid_stream_aborts_the_response(gateway: GatewayServer, upstream: Upstream) -> None:
    """The app breaks its chunked stream off: the visitor's response breaks too (an error, not a clean end
    that would pass a truncated body for a whole one)."""
    gateway.add("ivy/dies", upstream.endpoint)
    received = b""
    with (
        pytest.raises(httpx.RemoteProtocolError),
        httpx.stream("GET", f"{gateway.url}/apps/ivy/dies/die", timeout=10) as r,
    ):
        assert r.status_code == 200 and "content-length" not in r.headers
        for chunk in r.iter_bytes():
            received += chunk
    assert received == b"first part\n"
    # and the gateway is still fine
    assert httpx.get(f"{gateway.url}/apps/ivy/dies/headers").status_code == 200


class RssSampler:
    def __init__(self) -> None:
        self.base = rss_kib()
        self.peak = self.base
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, rss_kib())

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


BIG = 200 * 1024 * 1024


def test_large_upload_and_download_are_streamed(gateway: GatewayServer, upstream: Upstream) -> None:
    """200 MB each way; the process (client + gateway + app all in it) grows by far less than that."""
    gateway.add("jack/big", upstream.endpoint)
    block = bytes(range(256)) * 4096  # 1 MiB

    def body() -> Iterator[bytes]:
        for _ in range(BIG // len(block)):
            yield block

    expected = hashlib.sha256()
    for _ in range(BIG // len(block)):
        expected.update(block)

    with httpx.Client(timeout=60) as client:
        client.get(f"{gateway.url}/apps/jack/big/headers")  # warm up connections
        with RssSampler() as up:
            r = client.post(f"{gateway.url}/apps/jack/big/upload", content=body())
        assert r.status_code == 200
        assert r.json() == {"size": BIG, "sha256": expected.hexdigest()}

        size = 0
        with RssSampler() as down, client.stream("GET", f"{gateway.url}/apps/jack/big/download?size={BIG}") as r:
            assert r.headers["content-length"] == str(BIG)
            for chunk in r.iter_raw():
                size += len(chunk)
        assert size == BIG
    growth_mib = [(s.peak - s.base) / 1024 for s in (up, down)]
    assert max(growth_mib) < 40, growth_mib


# -- static Spaces ----------------------------------------------------------------------------------


@pytest.fixture
def site(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    (root / "dist" / "sub").mkdir(parents=True)
    (root / "dist" / "index.html").write_text("<h1>home</h1>")
    (root / "dist" / "style.css").write_text("h1 { color: red }")
    (root / "dist" / "sub" / "index.html").write_text("<h1>sub</h1>")
    (tmp_path / "secret.txt").write_text("do not serve")
    return root / "dist"


def test_static_space(gateway: GatewayServer, site: Path) -> None:
    gateway.add("kim/site", None, static_root=site, custom_headers={"cross-origin-opener-policy": "same-origin"})
    base = f"{gateway.url}/apps/kim/site"
    r = httpx.get(base + "/")
    assert r.status_code == 200 and r.text == "<h1>home</h1>"
    assert r.headers["content-type"].startswith("text/html")
    assert r.headers["cross-origin-opener-policy"] == "same-origin"
    css = httpx.get(base + "/style.css")
    assert css.headers["content-type"].startswith("text/css")
    assert httpx.get(base + "/sub/").text == "<h1>sub</h1>"
    redirect = httpx.get(base + "/sub")
    assert redirect.status_code in (307, 308) and redirect.headers["location"].endswith("/apps/kim/site/sub/")
    assert httpx.get(base + "/missing.js").status_code == 404
    for evil in ("/..%2fsecret.txt", "/%2e%2e/secret.txt", "/sub/..%2f..%2fsecret.txt"):
        r = httpx.get(base + evil)
        assert r.status_code == 404 and "do not serve" not in r.text, evil
    etag = css.headers["etag"]
    assert httpx.get(base + "/style.css", headers={"If-None-Match": etag}).status_code == 304
    # subdomain form, custom index file
    gateway.add("kim/site2", None, static_root=site.parent, static_index="dist/index.html")
    r = httpx.get(f"{gateway.url}/", headers={"Host": gateway.host("kim-site2")})
    assert r.text == "<h1>home</h1>"
    assert httpx.post(base + "/").status_code == 405


# -- the upstream connection pool -------------------------------------------------------------------


def test_keep_alive_connections_closed_by_the_app_are_not_a_problem(gateway: GatewayServer, upstream: Upstream) -> None:
    """The app closes idle keep-alive connections after 1 s; the gateway's next request still works."""
    gateway.add("lena/idle", upstream.endpoint)
    with httpx.Client() as client:
        for _ in range(3):
            assert client.get(f"{gateway.url}/apps/lena/idle/headers").status_code == 200
            time.sleep(1.2)
        assert client.get(f"{gateway.url}/apps/lena/idle/headers").status_code == 200


def test_head_and_bodies_with_length(gateway: GatewayServer, upstream: Upstream) -> None:
    gateway.add("lena/methods", upstream.endpoint)
    base = f"{gateway.url}/apps/lena/methods"
    with httpx.Client() as client:
        head = client.head(base + "/download?size=1000")
        assert head.status_code == 200 and head.headers["content-length"] == "1000" and head.content == b""
        assert len(client.get(base + "/download?size=1000").content) == 1000  # the connection after HEAD is fine
        r = client.post(base + "/upload", content=b"a" * 12345)
        assert r.json()["size"] == 12345
        r = client.post(base + "/upload", content=b"")
        assert r.json()["size"] == 0
        r = client.put(base + "/headers", content=b"x")
        assert r.json()["method"] == "PUT"
        assert r.json()["path"] == "/headers"


def test_response_head_is_not_held_for_a_late_body(gateway: GatewayServer, upstream: Upstream) -> None:
    """The server writes a head together with the first body chunk (serving.py) only when both are
    ready in the same turn: a stream whose first event comes later shows its head at once."""
    gateway.add("lena/late", upstream.endpoint)
    upstream.state.release_late.clear()
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as sock:
        host = gateway.host("lena-late").encode()
        sock.sendall(b"GET /late HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")
        got = b""
        while b"\r\n\r\n" not in got:  # the head arrives while the app still holds its body back
            chunk = sock.recv(65536)
            assert chunk, got
            got += chunk
        assert got.startswith(b"HTTP/1.1 200 ") and b"released" not in got
        upstream.state.release_late.set()
        while b"data: released" not in got:
            chunk = sock.recv(65536)
            assert chunk, got
            got += chunk
        assert b"never" not in got


def test_body_chunks_that_look_like_heads_stay_body(gateway: GatewayServer, upstream: Upstream) -> None:
    """An app streaming bytes that look like a response head (a smuggled second response with a
    redirect and a platform cookie): the visitor gets them as body, byte for byte, and the kept-alive
    connection stays in step (the next response is the next request's)."""
    gateway.add("lena/lookalike", upstream.endpoint)
    with httpx.Client(headers={"Host": gateway.host("lena-lookalike")}) as client:
        for _ in range(3):
            r = client.get(f"{gateway.url}/lookalike")
            assert r.status_code == 200 and r.content == LOOKALIKE_BODY
            assert "location" not in r.headers and "set-cookie" not in {k.lower() for k in r.headers}
            follow = client.get(f"{gateway.url}/headers")
            assert follow.status_code == 200 and follow.json()["path"] == "/headers"


def test_request_on_a_stale_pooled_connection_is_retried(gateway: GatewayServer) -> None:
    """An app that drops a kept-alive connection when the next request arrives (the keep-alive race)."""
    port = free_port()
    answered: list[int] = []
    ready = threading.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        served = 0
        while True:
            head = await reader.readuntil(b"\r\n\r\n") if not reader.at_eof() else b""
            if not head:
                break
            if served == 1:  # second request on this connection: hang up without an answer
                writer.close()
                return
            served += 1
            answered.append(port)
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-type: text/plain\r\n\r\nok")
            await writer.drain()

    def run() -> None:
        async def main() -> None:
            server = await asyncio.start_server(handle, "127.0.0.1", port)
            ready.set()
            async with server:
                await asyncio.sleep(10)

        asyncio.run(main())

    threading.Thread(target=run, daemon=True).start()
    assert ready.wait(5)
    gateway.add("lena/racy", Endpoint("127.0.0.1", port))
    for _ in range(3):
        r = httpx.get(f"{gateway.url}/apps/lena/racy/")
        assert r.status_code == 200 and r.text == "ok"
    assert len(answered) == 3


def test_requests_are_counted_per_space(gateway: GatewayServer, upstream: Upstream) -> None:
    from spaceyard_platform.gateway.proxy import requests_counter

    def count() -> float:
        for metric in requests_counter().collect():
            for sample in metric.samples:
                if sample.name.endswith("_total") and sample.labels == {"space": "mona/counted"}:
                    return sample.value
        return 0.0

    gateway.add("mona/counted", upstream.endpoint)
    before = count()
    for _ in range(3):
        httpx.get(f"{gateway.url}/apps/mona/counted/headers")
    assert count() == before + 3


def raw_app(handle: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]) -> Endpoint:
    """A raw asyncio server (in its own thread) for behaviours real frameworks smooth over."""
    port = free_port()
    ready = threading.Event()

    def run() -> None:
        async def main() -> None:
            server = await asyncio.start_server(handle, "127.0.0.1", port)
            ready.set()
            async with server:
                await asyncio.sleep(30)

        asyncio.run(main())

    threading.Thread(target=run, daemon=True).start()
    assert ready.wait(5)
    return Endpoint("127.0.0.1", port)


def test_app_refusing_an_upload_early_is_passed_on(gateway: GatewayServer) -> None:
    """The app answers 413 after the headers and stops reading: the visitor gets the 413 at once."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 413 Payload Too Large\r\ncontent-length: 9\r\nconnection: close\r\n\r\ntoo large")
        await writer.drain()
        await asyncio.sleep(20)  # neither reads nor closes
        writer.close()

    gateway.add("lena/refuses", raw_app(handle))
    block = b"z" * (1 << 20)

    def body() -> Iterator[bytes]:
        for _ in range(256):
            yield block

    started = time.monotonic()
    with httpx.Client(timeout=30) as client:
        try:
            r = client.post(f"{gateway.url}/apps/lena/refuses/", content=body())
        except httpx.HTTPError:  # the client may still be writing when the answer comes: read it anyway
            pytest.fail("the visitor should get the app's answer")
    assert r.status_code == 413 and r.text == "too large"
    assert time.monotonic() - started < 15  # not after the app's 20 s or the 30 s idle timeout
