"""What a visitor feels on the Docker runtime: a sleeping Space's first byte through a real `spaceyard up`
(gateway + deployer + Docker runtime + docker build engine), light sleep (the container and its warm parent
kept, the wake is a fork inside it) against deep sleep (the container removed, the wake is a new container),
in the same run; and what a light sleeper and an awake forked app cost in memory.

    .venv/bin/python benchmarks/docker_wake.py [--wakes 10]

Each cycle: wait until the Space is SLEEPING (sleep time 1 s), then time `GET /config` through the gateway
(Host: OWNER-NAME.localhost) to the first byte of the answer. Deep sleep is had with
``SPACEYARD_LIGHT_SLEEP_MEMORY_MIB=0`` (no budget for light sleepers: every suspend removes the container).
Memory: the container's agent is asked (``GET /status``, with the token from the container's configuration)
while the Space sleeps (warm parent + agent private bytes: what ``sleep_cost`` reports) and right after
each wake (the forked app's private bytes, with its descendants). Writes ``## Wake on Docker`` in
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
from typing import Any

import docker

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._report import write_section  # noqa: E402
from benchmarks.wake_visit import first_byte, pct  # noqa: E402
from benchmarks.wake_visit import measure as local_measure  # noqa: E402
from spaceyard_builder.baseimage import DEFAULT_TAG, ensure_base_image  # noqa: E402
from spaceyard_runtime.agent_client import AgentClient, AgentError, token_in  # noqa: E402
from tests.conftest import free_port  # noqa: E402
from tests.support import git, push, start_server, working_copy  # noqa: E402

SPACE = "bench/docker-sleepy"
MIB = 2**20
AGENT_BYTES: list[int] = []
"""The agent's own private bytes, sampled while the Space slept lightly."""


def agent_status(client: docker.DockerClient) -> dict[str, Any] | None:
    """The Space container's agent status, or ``None`` if there is no running container."""
    found = client.containers.list(filters={"label": f"org.spaceyard.space={SPACE}"})
    if not found:
        return None
    attrs = found[0].attrs
    ip = next((n["IPAddress"] for n in attrs["NetworkSettings"]["Networks"].values() if n.get("IPAddress")), "")
    if not ip:  # being created or removed
        return None
    try:
        return asyncio.run(AgentClient(ip, token_in(attrs["Args"])).status())
    except AgentError:  # the container is going away (deep sleep)
        return None


def phases(metrics: str) -> dict[str, float]:
    """Mean seconds per wake phase (``start``: resume returned; ``ready``: the app answered) by mode, from the
    platform's ``spaceyard_wake_phase_seconds`` histogram."""
    sums: dict[str, float] = {}
    counts: dict[str, float] = {}
    for line in metrics.splitlines():
        for kind, into in (("_sum{", sums), ("_count{", counts)):
            if line.startswith("spaceyard_wake_phase_seconds" + kind):
                labels, _, value = line.partition("} ")
                phase = labels.split('phase="')[1].split('"')[0]
                mode = labels.split('mode="')[1].split('"')[0]
                into[f"{mode} {phase}"] = float(value)
    return {k: sums[k] / counts[k] for k in sums if counts.get(k)}


def measure(light: bool, wakes: int, env_dir: Path) -> tuple[list[float], list[int], list[int], dict[str, float]]:
    """(first-byte seconds, asleep bytes, awake app bytes, mean phase seconds by mode)."""
    client = docker.from_env()
    with tempfile.TemporaryDirectory() as tmp:
        extra = {
            "SPACEYARD_BUILD_ENGINE": "docker",
            "SPACEYARD_RUNTIME": "docker",
            "SPACEYARD_DOCKER_BASE_IMAGE": DEFAULT_TAG,
            "SPACEYARD_LIGHT_SLEEP_MEMORY_MIB": "4096" if light else "0",
        }
        server = start_server(Path(tmp) / "data", free_port(), env_dir, extra)
        try:
            server.create_space(SPACE)
            wc = working_copy(Path(tmp), "hello-gradio")
            push(server, wc, SPACE)
            server.wait_stage(SPACE, {"RUNNING"}, sha=git(wc, "rev-parse", "HEAD").stdout.strip(), timeout=900)
            assert server.api("POST", f"/api/spaces/{SPACE}/sleeptime", json={"seconds": 1}).status_code == 200
            samples: list[float] = []
            asleep: list[int] = []
            agents: list[int] = []
            awake: list[int] = []
            for _ in range(wakes + 1):
                server.wait_stage(SPACE, {"SLEEPING"}, timeout=120)
                time.sleep(0.5)  # the warm parent's pages settle once the app is gone
                status = agent_status(client)
                if status is not None:
                    asleep.append(int(status.get("warm_private_bytes") or 0) + int(status["agent_private_bytes"]))
                    agents.append(int(status["agent_private_bytes"]))
                samples.append(first_byte(server, SPACE))
                status = agent_status(client)
                if status is not None and status.get("app_private_bytes"):
                    awake.append(int(status["app_private_bytes"]))
            split = phases(server.api("GET", "/metrics").text)
            AGENT_BYTES.extend(agents[1:])
            return samples[1:], asleep[1:], awake[1:], split  # the first wake of a server is not counted
        finally:
            server.stop()
            client.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--wakes", type=int, default=10)
    args = parser.parse_args()
    env_dir = ROOT / ".data" / "test-cache" / "envs"
    env_dir.mkdir(parents=True, exist_ok=True)
    ensure_base_image(DEFAULT_TAG)
    load_before = os.getloadavg()
    light, asleep, awake, light_split = measure(True, args.wakes, env_dir)
    print("light sleep wakes:", " ".join(f"{v:.3f}" for v in light), light_split, flush=True)
    deep, _, deep_awake, deep_split = measure(False, args.wakes, env_dir)
    local = local_measure(True, args.wakes, env_dir)  # same-run baseline: the local runtime's fork wake
    load_after = os.getloadavg()
    rows = []
    modes = (
        ("Docker, deep sleep (new container)", deep),
        ("Docker, light sleep (fork in the container)", light),
        ("local runtime, fork (same-run baseline)", local),
    )
    for name, values in modes:
        rows.append(
            f"| {name} | {statistics.median(values):.3f} s | {pct(values, 0.99):.3f} s | {min(values):.3f} s |"
            f" {max(values):.3f} s |"
        )
    ratio = statistics.median(deep) / statistics.median(light)
    light_vs_local = statistics.median(light) / statistics.median(local)
    split = "; ".join(f"{k} {v:.3f} s" for k, v in sorted({**deep_split, **light_split}.items()))
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    light_mem = f"{statistics.median(asleep) / MIB:.1f} MiB" if asleep else "n/a"
    app_mem = f"{statistics.median(awake) / MIB:.1f} MiB" if awake else "n/a"
    deep_app = f"{statistics.median(deep_awake) / MIB:.1f} MiB" if deep_awake else "n/a"
    agent_mem = f"{statistics.median(AGENT_BYTES) / MIB:.1f} MiB" if AGENT_BYTES else "n/a"
    met = statistics.median(light) <= 0.5 and pct(light, 0.99) <= 1.0
    verdict = "met" if met else "**not met** in this run"
    markdown = f"""`benchmarks/docker_wake.py --wakes {args.wakes}`, {when}:
a real `spaceyard up` with the docker build engine and the Docker runtime, sample `hello-gradio`; the Space
sleeps after 1 s, then `GET /config` through the gateway by subdomain; time to the first byte. {args.wakes}
wakes per mode (the first wake of each server is not counted), Python {platform.python_version()},
{os.cpu_count()} CPUs shared with other work: load average {load_before[0]:.1f} at the start,
{load_after[0]:.1f} at the end.

| mode | p50 | p99 | min | max |
|---|---|---|---|---|
{chr(10).join(rows)}

Docker light sleep is **{ratio:.1f}x** faster than deep sleep at the median, {light_vs_local:.2f}x the local
runtime's fork wake in the same run. Goal: p50 <= 0.5 s, p99 <= 1 s from light sleep: {verdict} (the
same-run local fork baseline shows how much the machine's load adds; see the phases below).
Mean phases of the platform's wakes (`spaceyard_wake_phase_seconds`, every wake of the run): {split}.

| memory (private: `Private_Clean + Private_Dirty`, medians) | |
|---|---|
| a light-sleeping Space (its warm parent + the container's agent; what `sleep_cost` reports) | {light_mem} |
| of which the agent itself (stdlib Python, HTTP server threads) | {agent_mem} |
| an awake forked app (with its descendants; pages shared with the warm parent not counted) | {app_mem} |
| an awake app after a deep-sleep wake (forked from the new container's warm parent) | {deep_app} |
| a deep-sleeping Space | 0 (no container) |
"""
    print(markdown)
    write_section("Wake on Docker", markdown)


if __name__ == "__main__":
    main()
