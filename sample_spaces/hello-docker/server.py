"""A tiny HTTP app for a Docker Space: standard library only, listening on app_port (8080)."""

import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT = int(os.environ.get("PORT", "8080"))


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path.startswith("/api/info"):
            body = json.dumps(
                {"greeting": os.environ.get("GREETING", "Hello"), "uid": os.getuid(), "space": os.environ.get("SPACE_ID")}
            ).encode()
            ctype = "application/json"
        else:
            body = f"<h1>{os.environ.get('GREETING', 'Hello')} from a Docker Space</h1>\n".encode()
            ctype = "text/html; charset=utf-8"
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        print(f"{self.address_string()} {format % args}", flush=True)


if __name__ == "__main__":
    print(f"listening on 0.0.0.0:{PORT}", flush=True)
    ThreadingHTTPServer(("0.0.0.0", PORT), Handler).serve_forever()
