"""What a chatty app costs the other Spaces: p50/p99 of a quiet Space's requests while another Space prints
1,000,000 lines, and how big the chatty Space's run log gets.

One command: ``python benchmarks/chatty_logs.py [--lines N] [--before /path/to/other/venv]``. It starts a
real ``spaceyard up`` (this checkout, and with ``--before`` also the ``spaceyard`` of another virtual
environment, e.g. one with main's code, for a same-run baseline), deploys two copies of the Gradio
sample, measures 200 sequential requests to the quiet one at rest and then during the flood, and
writes the "Chatty app" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._report import write_section
from tests.support import commit_all, push, start_server, working_copy

FLOOD = """

def flood(n: float) -> str:
    import threading

    def run() -> None:
        for i in range(int(n)):
            print(f"chatty line {i} " + "x" * 60)
    threading.Thread(target=run, daemon=True).start()
    return "started"


with demo:
    gr.Button("Flood").click(flood, gr.Number(visible=False), gr.Textbox(visible=False), api_name="flood")
"""


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _latencies(url: str, n: int = 200) -> list[float]:
    out = []
    with httpx.Client(timeout=60) as c:
        for _ in range(n):
            t = time.perf_counter()
            c.get(url).raise_for_status()
            out.append((time.perf_counter() - t) * 1000)
    return out


def _p(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))]


def measure(label: str, venv: Path | None, env_dir: Path, lines: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="chatty-") as tmp_s:
        tmp = Path(tmp_s)
        srv = start_server(tmp / "data", _free_port(), env_dir, {"SPACEYARD_DEFAULT_SLEEP_TIME": "-1"}, venv=venv)
        try:
            for name, extra in (("quiet", "\n# quiet\n"), ("chatty", FLOOD)):
                srv.create_space(f"admin/{name}")
                wc = working_copy(tmp / name, "hello-gradio")
                app = wc / "app.py"
                app.write_text(
                    app.read_text().replace('\nif __name__ == "__main__":', extra + '\nif __name__ == "__main__":')
                )
                sha = commit_all(wc, name)
                push(srv, wc, f"admin/{name}")
                srv.wait_stage(f"admin/{name}", {"RUNNING"}, sha=sha, timeout=300)
            quiet = f"{srv.url}/apps/admin/quiet/config"
            _latencies(quiet, 20)  # warm up
            rest = _latencies(quiet)
            r = httpx.post(f"{srv.url}/apps/admin/chatty/gradio_api/call/flood", json={"data": [lines]}, timeout=60)
            r.raise_for_status()
            httpx.get(f"{srv.url}/apps/admin/chatty/gradio_api/call/flood/{r.json()['event_id']}", timeout=60)
            started = time.monotonic()
            flood = _latencies(quiet)
            during = time.monotonic() - started
            logs = srv.data_dir / "logs" / "run"
            deadline = time.monotonic() + 120
            size = 0
            while time.monotonic() < deadline:  # until the flood's lines have been written (or 2 min)
                new = sum(f.stat().st_size for f in logs.rglob("*") if f.is_file())
                if new == size and new > 0:
                    break
                size = new
                time.sleep(2)
            return {
                "label": label,
                "rest_p50": statistics.median(rest),
                "rest_p99": _p(rest, 0.99),
                "flood_p50": statistics.median(flood),
                "flood_p99": _p(flood, 0.99),
                "flood_s": during,
                "log_mb": size / 1e6,
            }
        finally:
            srv.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--before", type=Path, help="a virtual environment whose spaceyard is the baseline")
    parser.add_argument("--env-dir", type=Path, default=Path.home() / ".cache/spaceyard/test-cache/envs")
    args = parser.parse_args()
    rows = []
    if args.before:
        rows.append(measure(f"before ({args.before})", args.before, args.env_dir, args.lines))
    rows.append(measure("this checkout", None, args.env_dir, args.lines))
    table = [
        "| server | quiet Space p50 / p99 at rest (ms) | during the flood (ms) | chatty run log on disk |",
        "|---|---|---|---|",
    ]
    for r in rows:
        table.append(
            f"| {r['label']} | {r['rest_p50']:.1f} / {r['rest_p99']:.1f} | {r['flood_p50']:.1f} / {r['flood_p99']:.1f} "
            f"| {r['log_mb']:.0f} MB |"
        )
    md = (
        f"`python benchmarks/chatty_logs.py --lines {args.lines}`: 200 sequential `GET /config` of a quiet "
        f"Gradio Space through the gateway, at rest and while another Space prints {args.lines:,} lines of "
        "~75 bytes (2-core machine shared with other work; same-run baseline). Compare each row's flood "
        "with its own rest: the machine's load changed between the runs.\n\n" + "\n".join(table)
    )
    print(md)
    write_section("Chatty app: run logs", md)


if __name__ == "__main__":
    main()
