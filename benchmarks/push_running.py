"""Push to RUNNING, end to end, for a fresh Gradio Space with a new small requirement, on a machine that has
built that SDK version once (the SDK layer is there); and, in the same run, an app-only and a no-change push.

    .venv/bin/python benchmarks/push_running.py [--runs 3] [--extras numpy six==1.17.0] [--settle 8]
        [--before DIR] [--no-write]

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
goes. ``--before DIR`` (a tree of another revision's ``platform/``, ``builder/``, ``runtime/``, e.g.
``git archive REV platform builder runtime | tar -x -C DIR``) runs a second server on that code
(``PYTHONPATH``), every push alternating between the two: a same-run comparison. Writes ``## Push to
RUNNING`` in docs/benchmarks.md.
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


def table(samples: dict[str, dict[str, list[dict[str, float]]]], modes: dict[str, dict[str, list[str]]]) -> str:
    """One row per (push, code), phases as median (min-max)."""
    labels = list(samples)
    rows = ["| push | code | " + " | ".join(PHASES) + " | start mode |", "|---" * (len(PHASES) + 3) + "|"]
    for scenario in samples[labels[0]]:
        for label in labels:
            runs = samples[label][scenario]
            cells = []
            for name in PHASES:
                values = [r[name] for r in runs]
                bold = "**" if name == "push to RUNNING" else ""
                cells.append(f"{bold}{statistics.median(values):.2f} s{bold} ({min(values):.2f}-{max(values):.2f})")
            seen = modes[label][scenario]
            mode = ", ".join(f"{m} {seen.count(m)}" for m in dict.fromkeys(seen))
            rows.append(f"| {scenario} | {label} | " + " | ".join(cells) + f" | {mode} |")
    return "\n".join(rows)


class Side:
    """One server and its Spaces: the code measured (``now``), or the code compared (``before``)."""

    def __init__(self, label: str, tmp: Path, extra_env: dict[str, str] | None) -> None:
        self.label, self.tmp = label, tmp
        self.envs = tmp / "envs"
        self.server = start_server(tmp / "data", free_port(), self.envs, extra_env)
        self.wc = tmp
        self.kept: set[Path] = set()
        self.layer_seconds = 0.0

    def build_layer(self) -> None:
        t = time.perf_counter()
        self.server.create_space("admin/layer")
        wc = working_copy(self.tmp / "layer", "hello-gradio")
        push(self.server, wc, "admin/layer")
        sha = git(wc, "rev-parse", "HEAD").stdout.strip()
        self.server.wait_stage("admin/layer", {"RUNNING"}, sha=sha, timeout=900)
        self.layer_seconds = time.perf_counter() - t
        print(f"{self.label}: SDK layer (first plain push to RUNNING) in {self.layer_seconds:.1f} s", flush=True)
        self.kept = set(self.envs.iterdir()) | set((self.envs / ".resolutions").iterdir())

    def forget_new_environments(self) -> None:
        for new in set(self.envs.iterdir()) - self.kept:
            if new.is_dir() and new.name != ".resolutions":
                shutil.rmtree(new, ignore_errors=True)
        for new in set((self.envs / ".resolutions").iterdir()) - self.kept:
            new.unlink(missing_ok=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--extras", nargs="+", default=["numpy", "six==1.17.0"])
    parser.add_argument("--settle", type=float, default=8.0)
    parser.add_argument(
        "--before",
        type=Path,
        help="a tree with platform/, builder/ and runtime/ of the code to compare (git archive REV platform "
        "builder runtime | tar -x -C DIR): its own server, each push alternating with this code's",
    )
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    scenarios = [f"fresh Space, requirements.txt `{e}`" for e in args.extras] + ["app-only commit", "no-change commit"]
    labels = ["now", *(["before"] if args.before else [])]
    samples: dict[str, dict[str, list[dict[str, float]]]] = {lb: {k: [] for k in scenarios} for lb in labels}
    modes: dict[str, dict[str, list[str]]] = {lb: {k: [] for k in scenarios} for lb in labels}
    log_lines: list[str] = []
    loads = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory(prefix="bench-push-") as tmp_name:
        tmp = Path(tmp_name)
        sides: list[Side] = []
        try:
            for label in labels:
                extra = None
                if label == "before":
                    tree = args.before.resolve()
                    extra = {"PYTHONPATH": os.pathsep.join(str(tree / d) for d in ("platform", "builder", "runtime"))}
                sides.append(Side(label, tmp / label, extra))
            for side in sides:
                side.build_layer()

            def measure(side: Side, scenario: str, wc: Path, space_id: str) -> None:
                time.sleep(args.settle)
                samples[side.label][scenario].append(timed_push(side.server, wc, space_id))
                mode = start_mode(side.server, space_id)
                modes[side.label][scenario].append(mode)
                loads.append(os.getloadavg()[0])
                shown = ", ".join(f"{k} {v:.2f} s" for k, v in samples[side.label][scenario][-1].items())
                print(f"{side.label}: {scenario}: {shown}, start {mode}", flush=True)
                if side.label == "now" and scenario == scenarios[len(args.extras) - 1]:
                    log_lines[:] = read_sse(f"{side.server.url}/api/spaces/{space_id}/logs/build", quiet=1.0)

            for i in range(args.runs):
                order = sides if i % 2 == 0 else sides[::-1]
                for n, extra in enumerate(args.extras):
                    space_id = f"admin/fresh-{i}-{n}"
                    for side in order:
                        side.wc = fresh_space(side.server, side.tmp, space_id, extra)
                        measure(side, scenarios[n], side.wc, space_id)
                for side in order:
                    (side.wc / "app.py").write_text((side.wc / "app.py").read_text() + f"\n# edit {i}\n")
                    git(side.wc, "commit", "-q", "-am", "app only")
                    measure(side, "app-only commit", side.wc, space_id)
                for side in order:
                    git(side.wc, "commit", "-q", "--allow-empty", "-m", "no change")
                    measure(side, "no-change commit", side.wc, space_id)
                for side in sides:
                    side.forget_new_environments()
        finally:
            for side in sides:
                side.server.stop()
    last = scenarios[len(args.extras) - 1]
    shown = "\n".join(f"    {line}" for line in log_lines[-25:])
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    command = f"benchmarks/push_running.py --runs {args.runs} --extras {' '.join(args.extras)} --settle {args.settle:g}"
    if args.before:
        command += " --before DIR"
    layers = ", ".join(f"{s.label} {s.layer_seconds:.0f} s" for s in sides)
    md = f"""`{command}`, {when}: a real `spaceyard up` (embedded worker, local runtime in its
walls) per code measured, each on a new environments directory; the SDK layer built once by a plain
`hello-gradio` push ({layers}, not counted); then per run, in turn, a new Space per requirement
(`hello-gradio` + that `requirements.txt`), then an app-only and a no-change commit pushed to the last one;
`git push` to `RUNNING` at that commit (stage polled every 20 ms), medians (min-max) of {args.runs}, pushes
{args.settle:g} s apart, the two servers alternating (never at once; which goes first alternates by run). New
environments and stored resolutions are deleted between runs. Python {platform.python_version()}, 2 CPUs
shared (1-min load {min(loads):.1f}-{max(loads):.1f} during the run).

{table(samples, modes)}

The last run's build log (now) for `{last}` (what a user sees while it builds):

{shown}
"""
    print(md)
    if not args.no_write:
        write_section("Push to RUNNING", md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
