"""What a sleeping Space costs in memory on the local runtime: light sleep (its warm parent) vs awake
(forked app) vs a cold app, measured as the runtime's memory budget measures it.

    .venv/bin/python benchmarks/sleep_memory.py [--spaces 4] [--no-write]

``--spaces`` Spaces share one environment (the sample ``hello-gradio``), each with its own warm parent in
its own box (the default walls, ``bwrap``). For each: the box's memory while it sleeps lightly (the warm
parent alone: ``Runtime.sleep_cost``), while awake after one API call (warm parent + forked app), and a cold
app's box (``fast_wake`` off). PSS, USS (private) and RSS summed over every process of the box, from
``/proc/PID/smaps_rollup`` (:mod:`spaceyard_runtime.procmem`). Writes ``## Sleep memory`` in
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
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from _report import write_section  # noqa: E402
from wake import SAMPLE, build_env  # noqa: E402

from spaceyard_runtime import procmem  # noqa: E402
from spaceyard_runtime.api import AppHandle, AppSpec  # noqa: E402
from spaceyard_runtime.local import LocalRuntime  # noqa: E402
from spaceyard_runtime.netns import open_connection  # noqa: E402
from spaceyard_runtime.settings import RuntimeSettings  # noqa: E402

MIB = 2**20


def box_usage(rt: LocalRuntime, handle: AppHandle) -> procmem.Usage:
    app = rt.processes.get(handle.backend_id)
    assert app is not None and app.box is not None
    return procmem.total(rt.sandbox.pids(app.box))


async def one_call(handle: AppHandle) -> None:
    """``POST /gradio_api/call/greet`` over the box's network, so the app has served once."""
    body = b'{"data": ["bench"]}'
    reader, writer = await open_connection(handle.endpoint.host, handle.endpoint.port, handle.endpoint.netns)
    writer.write(
        b"POST /gradio_api/call/greet HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        + body
    )
    await writer.drain()
    answer = await reader.read()
    writer.close()
    assert b" 200 " in answer.split(b"\r\n", 1)[0], answer[:200]


def row(label: str, values: list[procmem.Usage]) -> str:
    def med(attr: str) -> str:
        return f"{statistics.median(getattr(v, attr) for v in values) / MIB:.1f}"

    return f"| {label} | {med('pss')} | {med('uss')} | {med('rss')} |"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spaces", type=int, default=4)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="spaceyard-sleepmem-"))
    env = build_env(work)
    base = AppSpec(space_id="bench/mem-0", revision="0" * 40, sdk="gradio", artifact=str(env), app_dir=SAMPLE)
    specs = [replace(base, space_id=f"bench/mem-{i}", slug="", source_folder="") for i in range(args.spaces)]
    settings = RuntimeSettings(data_dir=work / "fork", fast_wake=True)
    rt = LocalRuntime(settings)
    cold_rt = LocalRuntime(RuntimeSettings(data_dir=work / "cold", fast_wake=False))
    light: list[procmem.Usage] = []
    awake: list[procmem.Usage] = []
    cold: list[procmem.Usage] = []
    light_all: procmem.Usage = procmem.Usage()
    try:
        for spec in specs:
            assert await rt.prewarm(spec)
        for spec in specs:  # awake: warm parent + forked app, after one call
            handle = await rt.start(spec, lambda _: None)
            assert handle.start_mode == "fork"
            await rt.wait_ready(handle, 120)
            await one_call(handle)
            await asyncio.sleep(1.0)
            awake.append(box_usage(rt, handle))
            await rt.suspend(handle)
            await asyncio.sleep(0.5)
            cost = await rt.sleep_cost(handle)
            light.append(procmem.total(rt.sandbox.pids(rt.warm.box(rt.zygote_key(spec)))))  # type: ignore[arg-type]
            assert cost is not None and cost > 0
        light_all = procmem.Usage(pss=sum(rt.warm.cost(rt.zygote_key(s)) for s in specs))
        for spec in specs[:2]:
            handle = await cold_rt.start(spec, lambda _: None)
            assert handle.start_mode == "cold"
            await cold_rt.wait_ready(handle, 180)
            await one_call(handle)
            await asyncio.sleep(1.0)
            cold.append(box_usage(cold_rt, handle))
            await cold_rt.stop(handle)
    finally:
        await rt.aclose()
        await cold_rt.aclose()
    per_sleeper = statistics.median(u.pss for u in light) / MIB
    budget = settings.light_sleep_memory_mib
    forked_app = statistics.median(a.pss - s.pss for a, s in zip(awake, light, strict=True))
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    md = f"""`benchmarks/sleep_memory.py --spaces {args.spaces}`, {when}: {args.spaces} Spaces of the sample
`hello-gradio` on one environment, each with its own warm parent in its own box (`bwrap`), local runtime,
Python {platform.python_version()}, 2 CPUs (1-min load {os.getloadavg()[0]:.1f} at the end). Memory of every
process in the Space's box, MiB, median over the Spaces (cold: 2 apps):

| Space | PSS | private (USS) | RSS |
|---|---|---|---|
{row("light sleep: the warm parent alone (`sleep_cost`)", light)}
{row("awake, forked: warm parent + app, after one call", awake)}
| of which the forked app (the difference; PSS only adds up) | {forked_app / MIB:.1f} | | |
{row("awake, cold start (no warm parent), after one call", cold)}

All {args.spaces} light sleepers together: {light_all.pss / MIB:.0f} MiB PSS. With the default
`SPACEYARD_LIGHT_SLEEP_MEMORY_MIB={budget}`, about **{int(budget // per_sleeper)}** such Spaces sleep lightly
at once (every wake a fork); past that the least recently used go to deep sleep (a cold wake). A warm
parent's pages are its own (the Python heap of the imported SDK): warm parents of one environment share
almost nothing, and a light sleeper costs about what an awake cold app does; while its app runs, the two
share most pages (the forked app adds little PSS; private memory moves to "shared" for both).
"""
    print(md)
    if not args.no_write:
        write_section("Sleep memory", md)


if __name__ == "__main__":
    asyncio.run(main())
