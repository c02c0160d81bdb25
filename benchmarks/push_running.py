"""Push to RUNNING, end to end, for a fresh Gradio Space with a new small requirement, on a machine that has
built that SDK version once (the SDK layer is there); and, in the same run, an app-only and a no-change push.

    .venv/bin/python benchmarks/push_running.py [--runs 3] [--extras numpy six==1.17.0] [--settle 8] [--no-write]

A real ``spaceyard up`` (embedded worker, local runtime in its walls) on a new environments directory.
Setup (timed, not counted): the plain ``hello-gradio`` pushed once, which builds the SDK layer. Then,
``--runs`` times, in turn: for each of ``--extras``, a new Space (``hello-gradio`` with ``requirements.txt``
= that requirement) pushed; then, to the last of them (now RUNNING), an app-only commit (``app.py``
changed) and a no-change commit (``--allow-empty``). Each push: ``git push``, its stage polled every 20 ms
until ``RUNNING`` at that commit. Phases: the push itself (``git push`` returns), build (until the stage
leaves ``BUILDING``), start (until ``RUNNING``), and how the app started (``fork`` or ``cold``, from its run
log). Between runs the new environments and their stored resolutions are deleted, so each run resolves and
installs as a first push does; ``--settle`` seconds between pushes let background work (a warm parent
warmed after a cold start) end. The build log's lines, with their arrival time, show where a build's time
goes. Writes ``## Push to RUNNING`` in docs/benchmarks.md.
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

PHASES = ("git push", "build", "start", "push to RUNNING")


def stage_of(server: Server, space_id: str) -> tuple[str, str | None]:
    r = server.api("GET", f"/api/spaces/{space_id}/runtime")
    data = r.json() if r.status_code == 200 else {}
    return str(data.get("stage", "")), data.get("sha")


def start_mode(server: Server, space_id: str) -> str:
    """How the running version started, from its run log (``fork`` or ``cold``)."""
    mode = "?"
    for line in read_sse(f"{server.url}/api/spaces/{space_id}/logs/run", quiet=0.5):
        if "Fork: from the warm parent" in line:
            mode = "fork"
        elif "Cold start:" in line:
            mode = "cold"
            print(f"  {space_id}: {line[:300]}", flush=True)
    return mode


def timed_push(server: Server, wc: Path, space_id: str) -> dict[str, float]:
    """Push ``wc``'s HEAD and time it to ``RUNNING`` at that commit."""
    sha = git(wc, "rev-parse", "HEAD").stdout.strip()
    seen: dict[str, float] = {}
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            stage, at = stage_of(server, space_id)
            now = time.perf_counter()
            if stage in ("BUILDING", "RUNNING_BUILDING"):
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
        "build": max(seen["built"] - pushed, 0.0),
        "start": seen["running"] - max(seen["built"], pushed),
        "push to RUNNING": seen["running"] - t0,
    }


def fresh_space(server: Server, tmp: Path, space_id: str, extra: str) -> Path:
    server.create_space(space_id)
    wc = working_copy(tmp / space_id.replace("/", "-"), "hello-gradio")
    (wc / "requirements.txt").write_text(extra + "\n")
    git(wc, "add", "-A")
    git(wc, "commit", "-q", "-m", "requirement")
    return wc


def table(samples: dict[str, list[dict[str, float]]], modes: dict[str, list[str]]) -> str:
    rows = ["| push | " + " | ".join(PHASES) + " | start mode |", "|---" * (len(PHASES) + 2) + "|"]
    for scenario, runs in samples.items():
        cells = []
        for name in PHASES:
            values = [r[name] for r in runs]
            med = statistics.median(values)
            bold = "**" if name == "push to RUNNING" else ""
            cells.append(f"{bold}{med:.2f} s{bold} ({min(values):.2f}-{max(values):.2f})")
        counts = {m: modes[scenario].count(m) for m in dict.fromkeys(modes[scenario])}
        rows.append(
            f"| {scenario} | " + " | ".join(cells) + " | " + ", ".join(f"{k} {v}" for k, v in counts.items()) + " |"
        )
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--extras", nargs="+", default=["numpy", "six==1.17.0"])
    parser.add_argument("--settle", type=float, default=8.0)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    scenarios = [f"fresh Space, requirements.txt `{e}`" for e in args.extras] + ["app-only commit", "no-change commit"]
    samples: dict[str, list[dict[str, float]]] = {k: [] for k in scenarios}
    modes: dict[str, list[str]] = {k: [] for k in scenarios}
    log_lines: dict[str, list[str]] = {}
    loads = [os.getloadavg()[0]]
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

            def measure(scenario: str, wc: Path, space_id: str) -> None:
                time.sleep(args.settle)
                samples[scenario].append(timed_push(server, wc, space_id))
                mode = start_mode(server, space_id)
                modes[scenario].append(mode)
                loads.append(os.getloadavg()[0])
                shown = ", ".join(f"{k} {v:.2f} s" for k, v in samples[scenario][-1].items())
                print(f"{scenario}: {shown}, start {mode}", flush=True)
                log_lines[scenario] = read_sse(f"{server.url}/api/spaces/{space_id}/logs/build", quiet=1.0)

            for i in range(args.runs):
                for n, extra in enumerate(args.extras):
                    space_id = f"admin/fresh-{i}-{n}"
                    measure(scenarios[n], fresh_space(server, tmp, space_id, extra), space_id)
                (wc / "app.py").write_text((wc / "app.py").read_text() + f"\n# edit {i}\n")
                git(wc, "commit", "-q", "-am", "app only")
                measure("app-only commit", wc, space_id)
                git(wc, "commit", "-q", "--allow-empty", "-m", "no change")
                measure("no-change commit", wc, space_id)
                for new in set(envs.iterdir()) - kept:
                    if new.is_dir() and new.name != ".resolutions":
                        shutil.rmtree(new, ignore_errors=True)
                for new in set((envs / ".resolutions").iterdir()) - kept:
                    new.unlink(missing_ok=True)
        finally:
            server.stop()
    last = scenarios[len(args.extras) - 1]
    shown = "\n".join(f"    {line}" for line in log_lines.get(last, [])[-25:])
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    command = f"benchmarks/push_running.py --runs {args.runs} --extras {' '.join(args.extras)} --settle {args.settle:g}"
    md = f"""`{command}`, {when}: a real `spaceyard up` (embedded worker, local runtime in its
walls), new environments directory; the SDK layer built once by a plain `hello-gradio` push
({layer_seconds:.0f} s, not counted); then per run, in turn, a new Space per requirement (`hello-gradio` +
that `requirements.txt`), then an app-only and a no-change commit pushed to the last one; `git push` to
`RUNNING` at that commit (stage polled every 20 ms), medians (min-max) of {args.runs}, {args.settle:g} s apart.
New environments and stored resolutions are deleted between runs. Python {platform.python_version()}, 2 CPUs
shared (1-min load {min(loads):.1f}-{max(loads):.1f} during the run).

{table(samples, modes)}

The last run's build log for `{last}` (what a user sees while it builds):

{shown}
"""
    print(md)
    if not args.no_write:
        write_section("Push to RUNNING", md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
