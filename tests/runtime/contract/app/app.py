"""The contract suite's app: the standard library only, so that every runtime runs it in a second.

``CONTRACT_MODE`` (from the spec's env) says how it behaves: ``ok`` serves; ``crash`` prints a traceback
and exits 3 before listening; ``slow`` waits a minute before listening. It listens on ``PORT`` of
``GRADIO_SERVER_NAME`` (what every runtime sets for a Gradio Space) and answers:

* ``GET /``: ``contract ok <GREETING>``;
* ``GET /env``: its whole environment as JSON;
* ``GET /boot``: a random id of this process (a restarted app answers another);
* ``GET /exit``: exits with code 7 right after answering.

It prints a line to stdout and one to stderr at start and one per request.
"""

from __future__ import annotations

import http.server
import json
import os
import signal
import sys
import threading
import time
from typing import Any

MODE = os.environ.get("CONTRACT_MODE", "ok")
BOOT = os.urandom(8).hex()


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = f"contract ok {os.environ.get('GREETING', '-')}\n".encode()
        if self.path == "/env":
            body = json.dumps(dict(os.environ)).encode()
        elif self.path == "/boot":
            body = BOOT.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()
        if self.path == "/exit":
            print("exiting with code 7", flush=True)
            threading.Timer(0.1, os._exit, (7,)).start()

    def log_message(self, fmt: str, *args: Any) -> None:
        print(f"request served {self.path}", flush=True)


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # PID 1 in a container ignores it otherwise
    print(f"contract app booting ({MODE})", flush=True)
    print("contract app stderr line", file=sys.stderr, flush=True)
    if MODE == "crash":
        for i in range(60):
            print(f"loading step {i}")
        print("Traceback (most recent call last):")
        print("ModuleNotFoundError: No module named 'contract_missing'", flush=True)
        sys.exit(3)
    if MODE == "slow":
        time.sleep(60)
    host = os.environ.get("GRADIO_SERVER_NAME", "0.0.0.0")
    port = int(os.environ.get("PORT", "7860"))
    server = http.server.ThreadingHTTPServer((host, port), Handler)
    print(f"* Running on local URL:  http://{host}:{port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
