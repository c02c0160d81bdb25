"""Where a fork wake's time goes, phase by phase, on the local runtime (inside the walls, the default).

    .venv/bin/python benchmarks/wake_phases.py [--wakes 15] [--no-write]

Each wake of the sample ``hello-gradio`` (its warm parent ready, the app stopped after each wake):

* ``fork``: ``runtime.start`` (plan, Hub cache, the fork request to the warm parent and its answer);
* ``app built``: until the app prints its last line before ``demo.launch()`` (the child's refresh of
  environment-derived modules, ``app.py`` building its Blocks);
* ``listening``: until a TCP connect to the app's port succeeds (Gradio's launch: uvicorn in a thread);
* ``first 200 on /``: until ``GET /`` answers 200 (what readiness waits for: Gradio renders its page);
* ``/config``: one ``GET /config`` after that, to its first byte (the gateway's held request, typically).

Probes every 2 ms here. A second series times ``start`` + ``runtime.wait_ready`` + ``/config`` as the
deployer and the gateway do it, alternating readiness by announcement (now) and by probing ``GET /`` every
``readiness_interval`` (before). Writes ``## Wake phases`` in
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from _report import write_section  # noqa: E402
from wake import SAMPLE, build_env  # noqa: E402

from spaceyard_runtime.api import AppHandle, AppSpec  # noqa: E402
from spaceyard_runtime.local import LocalRuntime, probe_http  # noqa: E402
from spaceyard_runtime.netns import open_connection  # noqa: E402
from spaceyard_runtime.settings import RuntimeSettings  # noqa: E402

PHASES = ("fork", "app built", "listening", "first 200 on /", "/config")


async def connects(handle: AppHandle) -> bool:
    try:
        _, writer = await open_connection(handle.endpoint.host, handle.endpoint.port, handle.endpoint.netns)
    except OSError:
        return False
    writer.close()
    return True


async def first_byte(handle: AppHandle, path: str) -> None:
    reader, writer = await open_connection(handle.endpoint.host, handle.endpoint.port, handle.endpoint.netns)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    line = await reader.readline()
    assert b" 200 " in line, line
    writer.close()


async def until(check, step: float = 0.002, timeout: float = 60.0) -> float:  # type: ignore[no-untyped-def]
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if await check():
            return time.perf_counter()
        await asyncio.sleep(step)
    raise TimeoutError


async def one_wake(rt: LocalRuntime, spec: AppSpec) -> dict[str, float]:
    built: list[float] = []

    def sink(line: str) -> None:
        if "starting" in line and not built:
            built.append(time.perf_counter())

    t0 = time.perf_counter()
    handle = await rt.start(spec, sink)
    t_fork = time.perf_counter()
    assert handle.start_mode == "fork", handle.start_mode
    t_listen = await until(lambda: connects(handle))
    t_200 = await until(lambda: _ok(handle))
    t = time.perf_counter()
    await first_byte(handle, "/config")
    t_config = time.perf_counter()
    await rt.stop(handle)
    t_built = built[0] if built else t_listen
    return {
        "fork": t_fork - t0,
        "app built": t_built - t_fork,
        "listening": t_listen - t_built,
        "first 200 on /": t_200 - t_listen,
        "/config": t_config - t,
        "total": t_200 - t0,
    }


async def _ok(handle: AppHandle) -> bool:
    return await probe_http(handle.endpoint.host, handle.endpoint.port, netns=handle.endpoint.netns) == 200


async def ready_wake(rt: LocalRuntime, spec: AppSpec, announce: bool) -> float:
    t0 = time.perf_counter()
    handle = await rt.start(spec, lambda _: None)
    app = rt.processes.get(handle.backend_id)
    assert app is not None and app.announced is not None
    if not announce:  # as before: GET / every readiness_interval
        app.announced.cancel()
        app.announced = None
    await rt.wait_ready(handle, 60)
    await first_byte(handle, "/config")
    elapsed = time.perf_counter() - t0
    await rt.stop(handle)
    return elapsed


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wakes", type=int, default=15)
    parser.add_argument("--sandbox", default="bwrap")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="spaceyard-phases-"))
    env = build_env(work)
    spec = AppSpec(space_id="bench/hello-gradio", revision="0" * 40, sdk="gradio", artifact=str(env), app_dir=SAMPLE)
    rt = LocalRuntime(RuntimeSettings(data_dir=work / "data", fast_wake=True, local_sandbox=args.sandbox))
    try:
        assert await rt.prewarm(spec)
        await one_wake(rt, spec)  # not counted
        samples = [await one_wake(rt, spec) for _ in range(args.wakes)]
        ready: dict[bool, list[float]] = {True: [], False: []}
        for _ in range(args.wakes):
            for announce in (True, False):
                ready[announce].append(await ready_wake(rt, spec, announce))
    finally:
        await rt.aclose()
    rows = [
        f"| {name} | {statistics.median(s[name] for s in samples) * 1000:.0f} ms |"
        f" {min(s[name] for s in samples) * 1000:.0f} ms | {max(s[name] for s in samples) * 1000:.0f} ms |"
        for name in (*PHASES, "total")
    ]
    ready_rows = [
        f"| {label} | {statistics.median(ready[k]) * 1000:.0f} ms | {min(ready[k]) * 1000:.0f} ms |"
        f" {max(ready[k]) * 1000:.0f} ms |"
        for k, label in ((False, "probe `GET /` every 50 ms (before)"), (True, "the app announces it listens (now)"))
    ]
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    md = f"""`benchmarks/wake_phases.py --wakes {args.wakes}`, {when}: sample `hello-gradio` forked from its warm
parent, local runtime, sandbox `{args.sandbox}`, Python {platform.python_version()}, 2 CPUs shared (1-min load
{load:.1f} at start, {os.getloadavg()[0]:.1f} at end). Probes every 2 ms; "total" = start to first 200 on `/`.

| phase | p50 | min | max |
|---|---|---|---|
{chr(10).join(rows)}

As the deployer does it (`start` + `wait_ready` + one `/config`, to its first byte), alternating in the same
run:

| readiness | p50 | min | max |
|---|---|---|---|
{chr(10).join(ready_rows)}
"""
    print(md)
    if not args.no_write:
        write_section("Wake phases", md)


if __name__ == "__main__":
    asyncio.run(main())
