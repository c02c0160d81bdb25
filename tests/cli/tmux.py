"""A real terminal for CLI tests: a private tmux server (its own socket), panes read with capture-pane."""

from __future__ import annotations

import re
import shlex
import subprocess
import time
import uuid
from pathlib import Path


class Tmux:
    """One tmux server on a socket of its own; ``kill()`` ends exactly that server and its panes."""

    def __init__(self, cwd: Path, env: dict[str, str], width: int = 220, height: int = 50) -> None:
        """Each window's shell starts in ``cwd`` with ``env`` exported (empty value = unset)."""
        self.socket = f"spaceyard-test-{uuid.uuid4().hex[:8]}"
        self.cwd = cwd
        self.setup = "; ".join(f"export {k}={shlex.quote(v)}" if v else f"unset {k}" for k, v in env.items())
        self.tmux(
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-s",
            "t",
            "-n",
            "w0",
            "-x",
            str(width),
            "-y",
            str(height),
            "-c",
            str(cwd),
            "bash --norc --noprofile",
        )
        self.tmux("set-option", "-g", "history-limit", "20000")
        self.windows = 1
        self._prepare("w0")

    def _prepare(self, window: str) -> None:
        self.run(window, self.setup + "; clear")

    def tmux(self, *args: str) -> str:
        proc = subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, check=True)
        return proc.stdout

    def new_window(self, cwd: Path | None = None) -> str:
        name = f"w{self.windows}"
        self.windows += 1
        self.tmux(
            "new-window",
            "-d",
            "-t",
            "t:",
            "-n",
            name,
            "-c",
            str(cwd or self.cwd),
            "bash --norc --noprofile",
        )
        self._prepare(name)
        return name

    def send(self, window: str, line: str) -> None:
        self.tmux("send-keys", "-t", f"t:{window}", "-l", line)
        self.tmux("send-keys", "-t", f"t:{window}", "Enter")

    def interrupt(self, window: str) -> None:
        self.tmux("send-keys", "-t", f"t:{window}", "C-c")

    def capture(self, window: str, escapes: bool = False) -> str:
        """The whole pane history; wrapped lines joined (-J), with colours as ANSI escapes when ``escapes``."""
        args = ["capture-pane", "-p", "-J", "-S", "-", "-t", f"t:{window}"]
        if escapes:
            args.insert(1, "-e")
        return self.tmux(*args)

    def wait_for(self, window: str, pattern: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        text = ""
        while time.monotonic() < deadline:
            text = self.capture(window)
            if re.search(pattern, text, re.MULTILINE):
                return text
            time.sleep(0.2)
        raise AssertionError(f"{pattern!r} not in pane {window} after {timeout}s:\n{text}")

    def run(self, window: str, command: str, timeout: float = 60) -> str:
        """Run ``command`` at the prompt and return what it printed (up to its exit-status marker)."""
        marker = uuid.uuid4().hex[:8]
        self.send(window, f'{command}; echo "__done_{marker}_$?"')
        text = self.wait_for(window, rf"^__done_{marker}_\d+$", timeout)
        done = re.search(rf"^__done_{marker}_(\d+)$", text, re.MULTILINE)
        assert done is not None
        self.last_status = int(done.group(1))
        echoed = text.rfind(f"__done_{marker}_$?", 0, done.start())  # the command line as typed
        start = text.find("\n", echoed) + 1 if echoed >= 0 else 0
        return text[start : done.start()]

    def kill(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, check=False)
