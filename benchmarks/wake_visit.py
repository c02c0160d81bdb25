"""What a visitor feels: a sleeping Space's first byte through a real `spaceyard up` (gateway + deployer +
local runtime), fast wake (fork from the warm parent) against cold start, in the same run.

    .venv/bin/python benchmarks/wake_visit.py [--wakes 20]

Each cycle: wait until the Space is SLEEPING (sleep time 1 s), then time `GET /config` through the
gateway (Host: OWNER-NAME.localhost) to the first byte of the answer. Writes `## Wake through the gateway`
in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._report import write_section  # noqa: E402
from tests.conftest import free_port  # noqa: E402
from tests.support import Server, git, push, start_server, working_copy  # noqa: E402


def first_byte(server: Server, space_id: str) -> float:
    sub = space_id.replace("/", "-")
    started = time.perf_counter()
    with httpx.stream(
        "GET", f"{server.url}/config", headers={"Host": f"{sub}.localhost:{server.port}"}, timeout=60
    ) as r:
        next(r.iter_raw())
        elapsed = time.perf_counter() - started
        assert r.status_code == 200, r.status_code
    return elapsed


def measure(fast_wake: bool, wakes: int, env_dir: Path) -> list[float]:
    with tempfile.TemporaryDirectory() as tmp:
        server = start_server(
            Path(tmp) / "data", free_port(), env_dir, {"SPACEYARD_FAST_WAKE": "true" if fast_wake else "false"}
        )
        try:
            space = "bench/sleepy"
            r = server.api(
                "POST",
                "/api/repos/create",
                json={"name": "sleepy", "organization": "bench", "type": "space", "sdk": "gradio"},
            )
            if r.status_code == 403:  # namespace of its own: create as admin instead
                space = "admin/sleepy"
                server.create_space(space)
            wc = working_copy(Path(tmp), "hello-gradio")
            push(server, wc, space)
            server.wait_stage(space, {"RUNNING"}, sha=git(wc, "rev-parse", "HEAD").stdout.strip(), timeout=600)
            assert server.api("POST", f"/api/spaces/{space}/sleeptime", json={"seconds": 1}).status_code == 200
            samples = []
            for _ in range(wakes + 1):
                server.wait_stage(space, {"SLEEPING"}, timeout=60)
                samples.append(first_byte(server, space))
            return samples[1:]  # the first wake of a fresh server may still be warming the parent
        finally:
            server.stop()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--wakes", type=int, default=20)
    args = parser.parse_args()
    env_dir = ROOT / ".data" / "test-cache" / "envs"
    env_dir.mkdir(parents=True, exist_ok=True)
    fork = measure(True, args.wakes, env_dir)
    cold = measure(False, args.wakes, env_dir)
    rows = []
    for name, values in (("cold start", cold), ("fast wake (fork)", fork)):
        rows.append(
            f"| {name} | {statistics.median(values):.3f} s | {pct(values, 0.99):.3f} s | {min(values):.3f} s |"
            f" {max(values):.3f} s |"
        )
    ratio = statistics.median(cold) / statistics.median(fork)
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    markdown = f"""`benchmarks/wake_visit.py --wakes {args.wakes}`, {when}:
a real `spaceyard up` (local runtime), sample `hello-gradio`; the Space sleeps after 1 s, then `GET /config`
through the gateway by subdomain; time to the first byte. {args.wakes} wakes per mode (the first wake of each
server is not counted), Python {platform.python_version()}, 2 CPUs.

| mode | p50 | p99 | min | max |
|---|---|---|---|---|
{chr(10).join(rows)}

Fast wake is **{ratio:.1f}x** faster at the median. Goal: p50 <= 0.5 s, p99 <= 1 s (stretch 0.3 s).
Compared with `## Wake` (runtime only), the difference is the gateway holding the request, the deployer's
stage changes and readiness probing at 50 ms.
"""
    print(markdown)
    write_section("Wake through the gateway", markdown)


if __name__ == "__main__":
    main()
