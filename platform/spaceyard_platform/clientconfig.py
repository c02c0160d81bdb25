"""Where the ``spaceyard`` client commands find their server and token.

``spaceyard up`` records the URL it serves on and the admin token in ``DATA_DIR/cli.json`` (mode 0600).
Every other command resolves, in order:

* URL: ``--url``, then ``SPACEYARD_URL``, then the recorded URL, then ``http://localhost:PORT``;
* token: ``--token``, then ``SPACEYARD_TOKEN``, then the recorded admin token (only while talking to the
  recorded URL: a token is never sent to another server), then ``HF_TOKEN``.

The data directory is ``SPACEYARD_DATA_DIR`` when set; otherwise ``./.data`` of the current directory or
of the nearest parent that has one (so a command run from a Space's working copy inside the checkout
finds the server started at its root). Each resolved value remembers where it came from, for errors.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

RECORD = "cli.json"


@dataclass(frozen=True)
class ClientConfig:
    url: str
    url_source: str
    token: str | None
    token_source: str | None

    def token_hint(self) -> str:
        """The token as errors show it: a prefix only, and where it came from."""
        if self.token is None:
            return "no token"
        shown = self.token[:6] + "…" if len(self.token) > 10 else "***"
        return f"token {shown} from {self.token_source}"


def local_url(host: str, port: int) -> str:
    """The URL a client on this machine uses for a server listening on ``host:port``."""
    if host in ("", "0.0.0.0", "::", "[::]"):
        host = "127.0.0.1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{port}"


def record(data_dir: Path, url: str, token: str) -> Path:
    """Write ``DATA_DIR/cli.json`` readable by its owner only (it holds the admin token)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / RECORD
    tmp = data_dir / (RECORD + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"url": url, "token": token}, f)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return path


def find_record(env: dict[str, str] | None = None, cwd: Path | None = None) -> Path | None:
    env = dict(os.environ) if env is None else env
    if env.get("SPACEYARD_DATA_DIR"):
        path = Path(env["SPACEYARD_DATA_DIR"]) / RECORD
        return path if path.is_file() else None
    here = (cwd or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        path = folder / ".data" / RECORD
        if path.is_file():
            return path
    return None


def _read(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, str)} if isinstance(data, dict) else {}


def resolve(
    url: str | None, token: str | None, env: dict[str, str] | None = None, cwd: Path | None = None
) -> ClientConfig:
    """``url``/``token`` are the command-line options (typer has already folded in SPACEYARD_URL/TOKEN
    when the option was not given, so the sources say "--url or SPACEYARD_URL")."""
    env = dict(os.environ) if env is None else env
    path = find_record(env, cwd)
    recorded = _read(path) if path else {}
    if url:
        base, url_source = url.rstrip("/"), "--url or SPACEYARD_URL"
    elif recorded.get("url"):
        base, url_source = recorded["url"].rstrip("/"), str(path)
    else:
        base, url_source = f"http://localhost:{env.get('SPACEYARD_PORT', '8000')}", "the default"
    if token:
        return ClientConfig(base, url_source, token, "--token or SPACEYARD_TOKEN")
    if recorded.get("token") and recorded.get("url", "").rstrip("/") == base:
        return ClientConfig(base, url_source, recorded["token"], str(path))
    if env.get("HF_TOKEN"):
        return ClientConfig(base, url_source, env["HF_TOKEN"], "HF_TOKEN")
    return ClientConfig(base, url_source, None, None)
