"""Soak: a real server under pushes, visits, sleeps, wakes and random kills of apps and of the build worker,
for a bounded time; then the table of docs/benchmarks.md "Soak".

One command: ``python benchmarks/soak.py [--spaces 50] [--gradio 5] [--duration 600]``. ``--spaces`` Spaces are
created: ``--gradio`` of them Gradio apps with a 5 s sleep time (so visits keep waking them), the rest static
sites. A loop picks one action at a time: visit (most), push a new commit, kill -9 an app process, kill -9
the build worker. After ``--duration`` seconds it lets things settle for a minute, then counts:

* requests and errors (5xx or no answer, from a Space the API said was serving or sleeping);
* stuck Spaces: in a transient stage (BUILDING, APP_STARTING...) a minute after the load stopped, or
  serving another commit than the API reports;
* leaked processes: anything of the data directory alive after the server stopped;
* disk and memory growth: data directory size, and the RSS of the server and its worker, start vs end.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._report import write_section
from tests.faults.conftest import procs_of, wait_gone, worker_pids
from tests.support import Server, commit_all, push, start_server, working_copy

TRANSIENT = {"BUILDING", "RUNNING_BUILDING", "APP_STARTING", "RUNNING_APP_STARTING"}


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def _apps(data_dir: Path) -> list[int]:
    """App processes (started or forked from a warm parent): those running in an exported commit."""
    sources = str((data_dir / "sources").resolve())
    out = []
    for pid in procs_of(data_dir):
        try:
            if os.readlink(f"/proc/{pid}/cwd").startswith(sources):
                out.append(pid)
        except OSError:
            pass
    return out


def _du_mb(path: Path) -> float:
    return sum(f.lstat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink()) / 2**20


def run(n: int, gradio: int, duration: float, env_dir: Path, seed: int) -> dict[str, object]:
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp_s:
        tmp = Path(tmp_s)
        srv: Server = start_server(tmp / "data", _free_port(), env_dir, {"SPACEYARD_VERSION_GRACE": "3"})
        spaces: dict[str, tuple[Path, str]] = {}
        try:
            for i in range(n):
                kind = "gradio" if i < gradio else "static"
                sid = f"admin/soak-{i:03d}"
                srv.create_space(sid, sdk=kind)
                wc = working_copy(tmp / sid.replace("/", "_"), "hello-gradio" if kind == "gradio" else "hello-static")
                push(srv, wc, sid)
                spaces[sid] = (wc, kind)
            for sid, (_, kind) in spaces.items():
                srv.wait_stage(sid, {"RUNNING"}, timeout=600)
                if kind == "gradio":
                    srv.api("POST", f"/api/spaces/{sid}/sleeptime", json={"seconds": 5})
            main_pids = [srv.proc.pid, *worker_pids(srv.data_dir)]
            rss0, disk0 = _rss_mb(main_pids), _du_mb(srv.data_dir)
            counts = {"visits": 0, "errors": 0, "pushes": 0, "app kills": 0, "worker kills": 0}
            errors: list[str] = []
            end = time.monotonic() + duration
            with httpx.Client(timeout=60) as c:
                while time.monotonic() < end:
                    sid = rng.choice(list(spaces))
                    wc, kind = spaces[sid]
                    roll = rng.random()
                    if roll < 0.05:
                        (wc / "soak.txt").write_text(str(time.time()))
                        commit_all(wc, "soak")
                        push(srv, wc, sid)
                        counts["pushes"] += 1
                    elif roll < 0.07:
                        apps = _apps(srv.data_dir)
                        if apps:
                            os.kill(rng.choice(apps), signal.SIGKILL)
                            counts["app kills"] += 1
                    elif roll < 0.08:
                        workers = worker_pids(srv.data_dir)
                        if workers:
                            os.kill(workers[0], signal.SIGKILL)
                            counts["worker kills"] += 1
                    else:
                        stage = srv.runtime(sid)["stage"]
                        counts["visits"] += 1
                        try:
                            r = c.get(f"{srv.url}/apps/{sid}/")
                            bad = r.status_code >= 500 and stage in ("RUNNING", "SLEEPING")
                        except httpx.HTTPError as exc:
                            bad, r = True, None
                            errors.append(f"{sid}: {exc!r}")
                        if bad:
                            counts["errors"] += 1
                            if r is not None:
                                errors.append(f"{sid} ({stage}): {r.status_code} {r.text[:80]!r}")
                            if stage == "RUNTIME_ERROR":
                                pass
                        if stage == "RUNTIME_ERROR":  # a killed app: its owner restarts it
                            srv.api("POST", f"/api/spaces/{sid}/restart")
            time.sleep(60)
            stuck = []
            for sid in spaces:
                rt = srv.runtime(sid)
                if rt["stage"] in TRANSIENT:
                    stuck.append(f"{sid}: {rt['stage']}")
            rss1, disk1 = _rss_mb([srv.proc.pid, *worker_pids(srv.data_dir)]), _du_mb(srv.data_dir)
        finally:
            srv.stop()
        leaked = wait_gone(srv.data_dir, timeout=20)
        for pid in leaked:
            with __import__("contextlib").suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return {
            **counts,
            "stuck": stuck,
            "leaked": leaked,
            "rss": (rss0, rss1),
            "disk": (disk0, disk1),
            "sample_errors": errors[:5],
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--spaces", type=int, default=50)
    parser.add_argument("--gradio", type=int, default=5)
    parser.add_argument("--duration", type=float, default=600.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--env-dir", type=Path, default=Path.home() / ".cache/spaceyard/test-cache/envs")
    args = parser.parse_args()
    r = run(args.spaces, args.gradio, args.duration, args.env_dir, args.seed)
    rss0, rss1 = r["rss"]  # type: ignore[misc]
    disk0, disk1 = r["disk"]  # type: ignore[misc]
    md = (
        f"`python benchmarks/soak.py --spaces {args.spaces} --gradio {args.gradio} --duration {args.duration:g}`: "
        f"{args.spaces} Spaces ({args.gradio} Gradio with a 5 s sleep time, the rest static), one action at a time "
        "for the duration (visits; 5% pushes, 2% kill -9 of an app, 1% kill -9 of the build worker), then a "
        "minute to settle.\n\n"
        "| requests | errors | pushes | app kills | worker kills | stuck Spaces | leaked processes | disk (MB) | "
        "server + worker RSS (MB) |\n|---|---|---|---|---|---|---|---|---|\n"
        f"| {r['visits']} | {r['errors']} | {r['pushes']} | {r['app kills']} | {r['worker kills']} | "
        f"{len(r['stuck'])} | {len(r['leaked'])} | {disk0:.0f} → {disk1:.0f} | {rss0:.0f} → {rss1:.0f} |\n"  # type: ignore[arg-type]
    )
    if r["stuck"] or r["leaked"] or r["sample_errors"]:
        md += "\nDetails: " + "; ".join(
            [*map(str, r["stuck"]), *(str(x) for x in dict(r["leaked"]).values()), *map(str, r["sample_errors"])]  # type: ignore[call-overload]
        )
    print(md)
    write_section("Soak", md)


if __name__ == "__main__":
    main()
