"""Push to RUNNING, end to end, for a fresh Gradio Space with a new small requirement, on a machine that has
built that SDK version once (the SDK layer is there).

    .venv/bin/python benchmarks/push_running.py [--runs 3] [--extra numpy] [--no-write]

A real ``spaceyard up`` (embedded worker, local runtime in its walls) on a new environments directory.
Setup (timed, not counted): the plain ``hello-gradio`` pushed once, which builds the SDK layer. Then,
``--runs`` times: a new Space, ``hello-gradio`` with ``requirements.txt`` = ``--extra``, ``git push``, and
its stage polled every 20 ms until ``RUNNING`` at that commit. Phases: the push itself (``git push``
returns), build (until the stage leaves ``BUILDING``), start (until ``RUNNING``: the Space's first start is
cold, it has no warm parent yet). Between runs the new environment and its stored resolution are deleted,
so each run resolves and installs as a first push does. The build log's lines, with their arrival time,
show what prints during the long steps. Writes ``## Push to RUNNING`` in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._report import write_section  # noqa: E402
from tests.conftest import free_port  # noqa: E402
from tests.support import Server, git, push, read_sse, start_server, working_copy  # noqa: E402

PHASES = ("git push", "build", "start (cold)", "push to RUNNING")


def stage_of(server: Server, space_id: str) -> tuple[str, str | None]:
    r = server.api("GET", f"/api/spaces/{space_id}/runtime")
    data = r.json() if r.status_code == 200 else {}
    return str(data.get("stage", "")), data.get("sha")


def one_push(server: Server, tmp: Path, space_id: str, extra: str) -> dict[str, float]:
    server.create_space(space_id)
    wc = working_copy(tmp / space_id.replace("/", "-"), "hello-gradio")
    (wc / "requirements.txt").write_text(extra + "\n")
    git(wc, "add", "-A")
    git(wc, "commit", "-q", "-m", "requirement")
    sha = git(wc, "rev-parse", "HEAD").stdout.strip()
    seen: dict[str, float] = {}
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            stage, at = stage_of(server, space_id)
            now = time.perf_counter()
            if stage == "BUILDING":
                seen.setdefault("building", now)
            elif "building" in seen and stage in ("APP_STARTING", "RUNNING_APP_STARTING"):
                seen.setdefault("built", now)
            if stage == "RUNNING" and at == sha:
                seen.setdefault("built", now)
                seen["running"] = now
                return
            if stage.endswith("ERROR"):
                seen["error"] = now
                return
            time.sleep(0.02)

    watcher = threading.Thread(target=watch, daemon=True)
    t0 = time.perf_counter()
    watcher.start()
    push(server, wc, space_id)
    pushed = time.perf_counter()
    watcher.join(600)
    done.set()
    if "running" not in seen:
        raise SystemExit(f"{space_id} did not reach RUNNING: {stage_of(server, space_id)}")
    return {
        "git push": pushed - t0,
        "build": seen["built"] - pushed,
        "start (cold)": seen["running"] - seen["built"],
        "push to RUNNING": seen["running"] - t0,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--extra", default="numpy")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    samples: list[dict[str, float]] = []
    log_lines: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-push-") as tmp_name:
        tmp = Path(tmp_name)
        envs = tmp / "envs"
        server = start_server(tmp / "data", free_port(), envs)
        try:
            t = time.perf_counter()
            server.create_space("admin/layer")
            wc = working_copy(tmp / "layer", "hello-gradio")
            push(server, wc, "admin/layer")
            server.wait_stage("admin/layer", {"RUNNING"}, sha=git(wc, "rev-parse", "HEAD").stdout.strip(), timeout=900)
            layer_seconds = time.perf_counter() - t
            print(f"SDK layer (first plain push to RUNNING) in {layer_seconds:.1f} s", flush=True)
            kept = set(envs.iterdir()) | set((envs / ".resolutions").iterdir())
            for i in range(args.runs):
                space_id = f"admin/fresh-{i}"
                samples.append(one_push(server, tmp, space_id, args.extra))
                print(f"run {i + 1}: " + ", ".join(f"{k} {v:.2f} s" for k, v in samples[-1].items()), flush=True)
                if i == args.runs - 1:
                    log_lines = read_sse(f"{server.url}/api/spaces/{space_id}/logs/build", quiet=1.0)
                for new in set(envs.iterdir()) - kept:
                    if new.is_dir() and new.name != ".resolutions":
                        shutil.rmtree(new, ignore_errors=True)
                for new in set((envs / ".resolutions").iterdir()) - kept:
                    new.unlink(missing_ok=True)
        finally:
            server.stop()
    rows = [
        f"| {name} | {statistics.median(s[name] for s in samples):.2f} s | {min(s[name] for s in samples):.2f} s |"
        f" {max(s[name] for s in samples):.2f} s |"
        for name in PHASES
    ]
    shown = "\n".join(f"    {line}" for line in log_lines[-25:])
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    md = f"""`benchmarks/push_running.py --runs {args.runs} --extra {args.extra}`, {when}: a real `spaceyard up`
(embedded worker, local runtime in its walls), new environments directory; the SDK layer built once by a
plain `hello-gradio` push ({layer_seconds:.0f} s, not counted); then per run a new Space with `hello-gradio` +
`requirements.txt` = `{args.extra}`, `git push` to `RUNNING` at that commit (stage polled every 20 ms). Its
environment and stored resolution are deleted between runs. Python {platform.python_version()}, 2 CPUs
shared (1-min load {os.getloadavg()[0]:.1f} at the end).

| phase | p50 | min | max |
|---|---|---|---|
{chr(10).join(rows)}

The last run's build log (what a user sees while it builds):

{shown}
"""
    print(md)
    if not args.no_write:
        write_section("Push to RUNNING", md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
