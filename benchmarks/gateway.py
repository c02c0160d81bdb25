"""Gateway data-path benchmark: direct vs the Spaceyard gateway vs nginx, one command.

    .venv/bin/python benchmarks/gateway.py [--duration 5] [--no-write]

* upstream: a raw ASGI app under uvicorn (uvloop + httptools): ``Hello, world!``, an event stream
  (``/sse``, one event every 20 ms carrying its emit time) and a websocket echo (``/ws``);
* gateway: ``Gateway(FastAPI(), routes, settings)`` under uvicorn, uvloop, httptools, one worker — as
  the platform serves it — with one route to the upstream, reached by its subdomain Host header;
* nginx (Debian ``nginx-light``, installed with apt-get when missing, like ``wrk``): one worker, its own
  config on a loopback port, upstream keep-alive, ``proxy_buffering off`` (streams like the gateway).

wrk (``-t1 --latency``) runs pinned to cpu0; upstream and proxy share cpu1 (the machine has two cores).
SSE latency = receipt time in the client minus the upstream's emit time (same CLOCK_MONOTONIC);
websocket RTT = 64-byte text echo round trips from one client. Results go to ``docs/benchmarks.md``
under ``## Gateway`` (via ``benchmarks/_report.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

SERVER_CPU = "1"
CLIENT_CPU = "0"
SSE_INTERVAL = 0.02
SSE_EVENTS = 150
WS_WARMUP = 300
WS_ROUNDS = 3000
VERSION = "bench-v1"
COOKIE = f"spaceyard_version={VERSION}; theme=dark"
"""A returning visitor's cookies (the gateway's version stamp and one of the app's), sent to every target."""


# -- the upstream: raw ASGI -----------------------------------------------------------------------


async def upstream_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    kind = scope["type"]
    if kind == "http":
        if scope["path"] == "/sse":
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")],
                }
            )
            for _ in range(SSE_EVENTS):
                await asyncio.sleep(SSE_INTERVAL)
                await send(
                    {"type": "http.response.body", "body": b"data: %d\n\n" % time.monotonic_ns(), "more_body": True}
                )
            await send({"type": "http.response.body", "body": b""})
            return
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", b"13")],
            }
        )
        await send({"type": "http.response.body", "body": b"Hello, world!"})
    elif kind == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        while True:
            msg = await receive()
            if msg["type"] == "websocket.receive":
                if msg.get("text") is not None:
                    await send({"type": "websocket.send", "text": msg["text"]})
                else:
                    await send({"type": "websocket.send", "bytes": msg["bytes"]})
            else:
                return


def serve_upstream(port: int) -> None:
    import uvicorn

    uvicorn.run(
        upstream_app,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        lifespan="off",
        log_level="warning",
        access_log=False,
        ws_per_message_deflate=False,
    )


def serve_gateway(port: int, upstream_port: int) -> None:
    """The gateway as ``spaceyard up`` serves it: metrics around it, the head-limited httptools protocol
    (``limits.http_protocol``), the server's GC tuning (``serving.tune_gc``), no proxy-headers middleware,
    no access log; the route carries a version
    like every deployed Space (visitors are stamped and pinned)."""
    import uvicorn
    from fastapi import FastAPI

    from spaceyard_platform.gateway.proxy import Gateway
    from spaceyard_platform.gateway.routes import InMemoryRouteTable, RouteSpec
    from spaceyard_platform.gateway.timing import GatewayMetrics
    from spaceyard_platform.limits import http_protocol
    from spaceyard_platform.serving import tune_gc
    from spaceyard_platform.settings import Settings
    from spaceyard_runtime.api import Endpoint

    settings = Settings(port=port)
    routes = InMemoryRouteTable()
    routes.add_route(
        RouteSpec(
            space_id="bench/hello",
            stage="RUNNING",
            upstream=Endpoint("127.0.0.1", upstream_port),
            version=VERSION,
        )
    )
    served = GatewayMetrics(Gateway(FastAPI(), routes, settings))
    tune_gc()
    uvicorn.run(
        served,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http=http_protocol(settings),
        workers=1,
        log_level="warning",
        access_log=False,
        proxy_headers=False,
        ws="websockets-sansio",
        ws_per_message_deflate=False,
        timeout_keep_alive=settings.keep_alive_timeout,
        h11_max_incomplete_event_size=settings.max_header_bytes,
    )


# -- helpers --------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


@contextmanager
def process(args: list[str], port: int, log: Path, cpu: str = SERVER_CPU) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(["taskset", "-c", cpu, *args], stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_port(port)
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


def ensure_tools() -> None:
    missing = [pkg for tool, pkg in (("nginx", "nginx-light"), ("wrk", "wrk")) if not shutil.which(tool)]
    if missing:
        subprocess.run(["apt-get", "install", "-y", *missing], check=True)


NGINX_CONF = """
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    upstream app {{ server 127.0.0.1:{upstream}; keepalive 256; }}
    map $http_upgrade $connection_upgrade {{ default upgrade; '' ''; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Host $host;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_buffering off;
            proxy_read_timeout 300s;
        }}
    }}
}}
"""


def to_ms(value: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", value)
    if not m:
        raise ValueError(value)
    number, unit = float(m.group(1)), m.group(2)
    return number / 1000 if unit == "us" else number if unit == "ms" else number * 1000


def cpu_seconds(pid: int) -> tuple[float, float]:
    """User and system CPU seconds of ``pid`` and its descendants (nginx's worker) so far."""
    tick = os.sysconf("SC_CLK_TCK")
    user = system = 0.0
    todo = [pid]
    while todo:
        current = todo.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            user += int(fields[11]) / tick
            system += int(fields[12]) / tick
            for task in Path(f"/proc/{current}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, IndexError, ValueError):
            continue
    return user, system


def wrk(
    url: str, connections: int, duration: float, host: str | None = None, pids: dict[str, int] | None = None
) -> dict[str, float]:
    """One wrk run; with ``pids`` (role -> process) also each role's CPU microseconds per request."""
    pids = pids or {}
    args = ["taskset", "-c", CLIENT_CPU, "wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s", "--latency"]
    if host:
        args += ["-H", f"Host: {host}"]
    args += ["-H", f"Cookie: {COOKIE}"]
    before = {role: cpu_seconds(pid) for role, pid in pids.items()}
    out = subprocess.run([*args, url], capture_output=True, text=True, check=True).stdout
    after = {role: cpu_seconds(pid) for role, pid in pids.items()}
    lat = dict(re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", out, re.M))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    count = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise RuntimeError(f"wrk saw errors against {url}:\n{out}")
    result = {"rps": rps, "p50": to_ms(lat["50"]), "p99": to_ms(lat["99"]), "count": count}
    for role, (user, system) in after.items():
        result[f"{role}_user"] = (user - before[role][0]) / count * 1e6
        result[f"{role}_sys"] = (system - before[role][1]) / count * 1e6
    return result


async def sse_latencies(port: int, host: str) -> list[float]:
    """Milliseconds from the upstream's emit to receipt here, one value per event."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET /sse HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n\r\n".encode())
    await writer.drain()
    out: list[float] = []
    buf = b""
    while len(out) < SSE_EVENTS:
        data = await reader.read(65536)
        now = time.monotonic_ns()
        if not data:
            break
        buf += data
        for ts in re.findall(rb"data: (\d+)\n\n", buf):
            out.append((now - int(ts)) / 1e6)
        buf = buf[buf.rfind(b"\n\n") + 2 :] if b"\n\n" in buf else buf
    writer.close()
    return out[5:]  # skip the first events (connection setup)


async def ws_rtts(port: int, host: str) -> list[float]:
    import aiohttp

    out: list[float] = []
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(f"http://127.0.0.1:{port}/ws", headers={"Host": host}, compress=0) as ws,
    ):
        payload = "x" * 64
        for i in range(WS_WARMUP + WS_ROUNDS):
            start = time.perf_counter_ns()
            await ws.send_str(payload)
            await ws.receive_str()
            if i >= WS_WARMUP:
                out.append((time.perf_counter_ns() - start) / 1e6)
    return out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run_async(coro: Any) -> Any:
    try:
        import uvloop

        return uvloop.run(coro)
    except ImportError:  # pragma: no cover
        return asyncio.run(coro)


# -- the benchmark --------------------------------------------------------------------------------


def bench(duration: float, repeat: int) -> dict[str, Any]:
    ensure_tools()
    os.sched_setaffinity(0, {int(CLIENT_CPU)})
    work = Path(tempfile.mkdtemp(prefix="spaceyard-bench-"))
    up_port, gw_port, ng_port = free_port(), free_port(), free_port()
    py = sys.executable
    me = str(Path(__file__).resolve())
    (work / "nginx.conf").write_text(NGINX_CONF.format(dir=work, upstream=up_port, port=ng_port))
    gw_host = f"bench-hello.localhost:{gw_port}"
    results: dict[str, Any] = {"http": {}, "http_best": {}, "sse": {}, "ws": {}, "ws_best": {}}
    with (
        process([py, me, "serve-upstream", str(up_port)], up_port, work / "upstream.log") as upstream,
        process([py, me, "serve-gateway", str(gw_port), str(up_port)], gw_port, work / "gateway.log") as gateway,
        process(
            ["nginx", "-p", str(work), "-e", str(work / "error.log"), "-c", str(work / "nginx.conf")],
            ng_port,
            work / "nginx.log",
        ) as nginx,
    ):
        targets = {
            "direct": (f"http://127.0.0.1:{up_port}/", f"127.0.0.1:{up_port}"),
            "nginx": (f"http://127.0.0.1:{ng_port}/", f"127.0.0.1:{ng_port}"),
            "gateway": (f"http://127.0.0.1:{gw_port}/", gw_host),
        }
        pids = {
            "direct": {"upstream": upstream.pid},
            "nginx": {"proxy": nginx.pid, "upstream": upstream.pid},
            "gateway": {"proxy": gateway.pid, "upstream": upstream.pid},
        }
        for url, host in targets.values():  # warm up pools and caches
            wrk(url, 50, 1, host)
        runs: dict[tuple[str, int], list[dict[str, float]]] = {}
        for _ in range(repeat):  # interleaved, so noise from other work on the machine is spread evenly
            for conns in (1, 50):
                for name, (url, host) in targets.items():
                    runs.setdefault((name, conns), []).append(wrk(url, conns, duration, host, pids[name]))
                    print(name, conns, runs[(name, conns)][-1], flush=True)
        for key, values in runs.items():
            results["http"][key] = {m: statistics.median(v[m] for v in values) for m in values[0]}
            results["http_best"][key] = {
                "rps": max(v["rps"] for v in values),
                "p50": min(v["p50"] for v in values),
                "p99": min(v["p99"] for v in values),
            }
        for _ in range(repeat):
            for name, (_, host) in targets.items():
                port = int(host.rsplit(":", 1)[1]) if name != "gateway" else gw_port
                sse = run_async(sse_latencies(port, host))
                ws = run_async(ws_rtts(port, host))
                results["sse"].setdefault(name, []).extend(sse)
                results["ws"].setdefault(name, []).extend(ws)
                results["ws_best"][name] = min(results["ws_best"].get(name, 1e9), pct(ws, 0.5))
                print(name, "sse p50", pct(sse, 0.5), "ws p50", pct(ws, 0.5), flush=True)
    shutil.rmtree(work, ignore_errors=True)
    return results


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def nginx_version() -> str:
    out = subprocess.run(["nginx", "-v"], capture_output=True, text=True)
    return (out.stderr or out.stdout).strip().split("/")[-1]


def _http_tables(http: dict[tuple[str, int], dict[str, float]]) -> list[str]:
    lines = [
        "| path | c=1 req/s | c=1 p50 | c=1 p99 | c=50 req/s | c=50 p50 | c=50 p99 |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in ("direct", "nginx", "gateway"):
        a, b = http[(name, 1)], http[(name, 50)]
        lines.append(
            f"| {name} | {a['rps']:,.0f} | {a['p50']:.3f} ms | {a['p99']:.3f} ms | "
            f"{b['rps']:,.0f} | {b['p50']:.3f} ms | {b['p99']:.3f} ms |"
        )
    lines += [
        "",
        "| added over direct | c=1 p50 | c=1 p99 | c=50 p50 | c=50 p99 | req/s vs nginx c=1 | c=50 |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in ("nginx", "gateway"):
        row = [name]
        for conns in (1, 50):
            for q in ("p50", "p99"):
                row.append(f"{http[(name, conns)][q] - http[('direct', conns)][q]:+.3f} ms")
        for conns in (1, 50):
            row.append(f"{http[(name, conns)]['rps'] / http[('nginx', conns)]['rps']:.2f}x")
        lines.append("| " + " | ".join(row) + " |")
    return lines


def _cpu_table(http: dict[tuple[str, int], dict[str, float]]) -> list[str]:
    lines = [
        "| path | c | proxy user | proxy sys | proxy total | upstream user | upstream sys |",
        "|---|---|---|---|---|---|---|",
    ]
    for conns in (1, 50):
        for name in ("direct", "nginx", "gateway"):
            r = http[(name, conns)]
            proxy = (
                f"{r['proxy_user']:.1f} µs | {r['proxy_sys']:.1f} µs | {r['proxy_user'] + r['proxy_sys']:.1f} µs"
                if "proxy_user" in r
                else "— | — | —"
            )
            lines.append(f"| {name} | {conns} | {proxy} | {r['upstream_user']:.1f} µs | {r['upstream_sys']:.1f} µs |")
    return lines


def _budget(http: dict[tuple[str, int], dict[str, float]]) -> list[str]:
    """What 0.75x nginx at c=50 would allow the gateway, from the CPU times measured in this run."""
    n, g, d = http[("nginx", 50)], http[("gateway", 50)], http[("direct", 50)]
    nginx_pair = n["proxy_user"] + n["proxy_sys"] + n["upstream_user"] + n["upstream_sys"]
    upstream_behind_gateway = g["upstream_user"] + g["upstream_sys"]
    gateway = g["proxy_user"] + g["proxy_sys"]
    budget = nginx_pair / 0.75 - upstream_behind_gateway
    server_alone = d["upstream_user"] + d["upstream_sys"]
    ratio = g["rps"] / n["rps"]
    added = http[("gateway", 1)]["p50"] - http[("direct", 1)]["p50"]
    return [
        f"- Throughput: **{ratio:.2f}x** nginx at c=50 in this run ({'met' if ratio >= 0.75 else '**not met**'}); "
        f"from the CPU times (req/s = 1 / CPU per request of proxy + upstream on the shared core, which load "
        f"from other work disturbs less) **{nginx_pair / (gateway + upstream_behind_gateway):.2f}x**. Added p50 at "
        f"c=1 **{added:+.3f} ms** ({'met' if added <= 0.12 else '**not met**'}).",
        f"- The budget: proxy and upstream share one core, so req/s = 1 / (proxy + upstream CPU per request). nginx "
        f"and its upstream cost {nginx_pair:.0f} µs per request; 0.75x of nginx's req/s allows {nginx_pair / 0.75:.0f} "
        f"µs for the pair, and the upstream behind the gateway takes {upstream_behind_gateway:.0f} µs of it, "
        f"leaving **{budget:.0f} µs for the gateway**, which costs **{gateway:.0f} µs**. The same uvicorn serving "
        f"`Hello, world!` itself (the direct row: the server half of a proxy and nothing else — parse, ASGI "
        f"task, one response) costs {server_alone:.0f} µs: a gateway built on an ASGI server spends about "
        "that before it forwards a byte, and then does the same again as a client of the app (a write, a "
        "read, a parse, futures). nginx does both halves in C for "
        f"{n['proxy_user'] + n['proxy_sys']:.0f} µs. Where the gateway's microseconds go, bucket by bucket: the "
        "*Gateway profile* section below.",
    ]


def _goals(http: dict[tuple[str, int], dict[str, float]], ws_added: float) -> list[tuple[str, bool, str]]:
    g1, g50, d1, d50 = http[("gateway", 1)], http[("gateway", 50)], http[("direct", 1)], http[("direct", 50)]
    n1, n50 = http[("nginx", 1)], http[("nginx", 50)]
    return [
        ("added p50 <= 0.3 ms at c=1", g1["p50"] - d1["p50"] <= 0.3, f"{g1['p50'] - d1['p50']:+.3f} ms"),
        ("added p50 <= 0.3 ms at c=50", g50["p50"] - d50["p50"] <= 0.3, f"{g50['p50'] - d50['p50']:+.3f} ms"),
        ("added p99 <= 1.5 ms at c=1", g1["p99"] - d1["p99"] <= 1.5, f"{g1['p99'] - d1['p99']:+.3f} ms"),
        ("added p99 <= 1.5 ms at c=50", g50["p99"] - d50["p99"] <= 1.5, f"{g50['p99'] - d50['p99']:+.3f} ms"),
        ("throughput >= 0.5x nginx at c=1", g1["rps"] >= 0.5 * n1["rps"], f"{g1['rps'] / n1['rps']:.2f}x"),
        ("throughput >= 0.5x nginx at c=50", g50["rps"] >= 0.5 * n50["rps"], f"{g50['rps'] / n50['rps']:.2f}x"),
        ("ws RTT added <= 0.1 ms (p50)", ws_added <= 0.1, f"{ws_added:+.3f} ms"),
    ]


def report(results: dict[str, Any], duration: float, repeat: int) -> str:
    import aiohttp
    import uvicorn

    lines = [
        f"Measured by `benchmarks/gateway.py` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: "
        f"{os.cpu_count()} vCPU ({cpu_model()}), Python {sys.version.split()[0]}, uvicorn {uvicorn.__version__} "
        f"(uvloop + httptools, websockets-sansio, 1 worker), aiohttp {aiohttp.__version__}, nginx "
        f"{nginx_version()} (1 worker, upstream keep-alive, `proxy_buffering off`). Upstream: raw ASGI "
        f"`Hello, world!` under uvicorn. `wrk -t1 -d{round(duration)}s --latency` pinned to cpu0, {repeat} "
        "interleaved runs per cell; upstream and proxy share cpu1, so c=50 rows measure proxy + upstream on one "
        "core. The gateway is reached by its subdomain (`Host: bench-hello.localhost:PORT`). Other engineers' "
        "work on this 2-core machine adds noise, mostly to p99 (it hits direct, nginx and gateway alike), so both "
        f"the median of the {repeat} runs and the best run (highest req/s, lowest latencies) are shown.",
        "",
        f"### HTTP: hello world, median of {repeat} runs",
        "",
        *_http_tables(results["http"]),
        "",
        f"CPU time per request (median of the {repeat} runs; `/proc/PID/stat`, nginx's worker included; "
        "1 tick = 10 ms, so each cell is good to about a microsecond):",
        "",
        *_cpu_table(results["http"]),
        "",
        f"### HTTP: hello world, best of {repeat} runs",
        "",
        *_http_tables(results["http_best"]),
    ]

    sse, ws, ws_best = results["sse"], results["ws"], results["ws_best"]
    lines += [
        "",
        "### Streaming and websockets",
        "",
        f"SSE: {SSE_EVENTS} events per run, one every {SSE_INTERVAL * 1000:.0f} ms; latency = receipt minus the "
        f"upstream's emit time. Websocket: {WS_ROUNDS} round trips of a 64-byte text message per run after "
        f"{WS_WARMUP} warm-up, one client. Samples of the {repeat} runs pooled; *best p50* = best run's median.",
        "",
        "| path | SSE p50 | SSE p99 | ws RTT p50 | ws RTT p99 | ws added p50 | ws best p50 | ws added (best) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in ("direct", "nginx", "gateway"):
        lines.append(
            f"| {name} | {pct(sse[name], 0.5):.3f} ms | {pct(sse[name], 0.99):.3f} ms | "
            f"{pct(ws[name], 0.5):.3f} ms | {pct(ws[name], 0.99):.3f} ms | "
            f"{pct(ws[name], 0.5) - pct(ws['direct'], 0.5):+.3f} ms | {ws_best[name]:.3f} ms | "
            f"{ws_best[name] - ws_best['direct']:+.3f} ms |"
        )

    median_goals = _goals(results["http"], pct(ws["gateway"], 0.5) - pct(ws["direct"], 0.5))
    best_goals = _goals(results["http_best"], ws_best["gateway"] - ws_best["direct"])
    lines += [
        "",
        "### Goals",
        "",
        "| goal | median runs | met | best runs | met |",
        "|---|---|---|---|---|",
    ]
    for (goal, ok, value), (_, ok_b, value_b) in zip(median_goals, best_goals, strict=True):
        lines.append(f"| {goal} | {value} | {'yes' if ok else '**no**'} | {value_b} | {'yes' if ok_b else '**no**'} |")
    lines += [
        "",
        "### Against the issue 18 goal (>= 0.75x nginx req/s at c=50, <= +0.12 ms added p50 at c=1)",
        "",
        *_budget(results["http"]),
        "",
        "### Notes",
        "",
        "- Since 2026-12-02 the gateway is served as `spaceyard up` serves it: the metrics wrapper "
        "(`gateway/timing.py`), the head-limited httptools protocol (`limits.py`, `serving.py`), the server's GC "
        "tuning, a route with a version (every deployed Space has one: visitors are stamped and pinned) and a "
        f"returning visitor's cookies (`{COOKIE}`, sent to all three targets; the gateway strips and reads them). "
        "Earlier tables measured a bare `Gateway` under plain httptools with an unversioned route, so they are "
        "not comparable one to one.",
        "- Before and after the issue 18 data-path work, this benchmark on 2026-12-02 (other helpers' builds and "
        "tests kept the 2 cores at load average 4-16 all afternoon; that inflates every CPU time, Python's more "
        "than nginx's, and swung req/s by up to 10x between runs: direct c=50 from 700 to 33,000 req/s). Gateway "
        "CPU per request at c=50, and as a multiple of nginx's in the same run: before (commit e674a58) 133 µs = "
        "4.1x nginx (16:48 UTC, load 4-8) and 223 µs = 5.6x (17:51, load 8-10); after 98 µs = 3.2x (17:47, load "
        "6-8). The CPU-derived req/s ratio at c=50 went from 0.38x (0.28x in the loaded run) to 0.44x; "
        "interleaved A/B runs of both gateways against one upstream (load 11-16) gave 242-340 µs before and "
        "221-268 µs after. Measured req/s ratios in those runs (before 0.52x and 0.14x, after the table above) "
        "say more about the load than about the gateway.",
        "- wrk is a closed loop: at c=50 the p50 is about 50 / throughput, so *added p50 at c=50* can only be "
        "small if the proxy costs (almost) nothing next to the upstream on the shared core; nginx itself adds "
        "about a millisecond there in most runs. The c=50 latency goals are out of reach for a Python proxy "
        "sharing one core with its upstream; c=1 added latency and the throughput ratios are the meaningful "
        "numbers, and p99 differences smaller than the run-to-run noise (several ms here) mean nothing.",
        "- Plain HTTP goes through the gateway's own pooled HTTP/1.1 client (`gateway/upstream.py`, asyncio "
        "protocol + llhttp). The first version used aiohttp's client as the issue suggested; measured the same "
        "way on the same day (commit b27c2c2, 3 s runs): c=1 +0.30 ms p50, 1,886 req/s (0.47x nginx); c=50 "
        "4,486 req/s (0.24x nginx) — the published ~0.3 ms / ~4.5k req/s aiohttp ceiling. Websockets still use "
        "aiohttp's client.",
        "- uvicorn's access log costs the gateway about 30% of its throughput (c=50: ~10.9k -> ~7.7k req/s; "
        "c=1 p50 +0.05 ms, quick A/B on this machine). The numbers above are without it "
        "(`access_log=False`); the gateway counts requests per Space in `spaceyard_gateway_requests_total`.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "serve-upstream":
        serve_upstream(int(sys.argv[2]))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "serve-gateway":
        serve_gateway(int(sys.argv[2]), int(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run")
    parser.add_argument("--repeat", type=int, default=3, help="wrk runs per cell (median reported)")
    parser.add_argument("--no-write", action="store_true", help="print the table, do not touch docs/benchmarks.md")
    args = parser.parse_args()
    results = bench(args.duration, args.repeat)
    markdown = report(results, args.duration, args.repeat)
    print(markdown)
    if not args.no_write:
        from _report import write_section

        print("written to", write_section("Gateway", markdown))


if __name__ == "__main__":
    main()
