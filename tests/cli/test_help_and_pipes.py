"""Every command's --help shows an example; output to a pipe carries no colour codes and no markup."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from spaceyard_platform import clientconfig
from tests.support import Server

SPACEYARD = str(Path(sys.executable).parent / "spaceyard")
COMMANDS = [
    [],
    ["up"],
    ["create"],
    ["push"],
    ["status"],
    ["logs"],
    ["worker"],
    ["settings"],
    ["token"],
    ["token", "create"],
    ["token", "show"],
]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPACEYARD_", "HF_"))}
    return {**env, **extra}


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "spaceyard")
def test_help_has_an_example(command: list[str]) -> None:
    proc = subprocess.run([SPACEYARD, *command, "--help"], capture_output=True, text=True, env=clean_env())
    assert proc.returncode == 0, proc.stderr
    assert "Example: spaceyard" in proc.stdout or "Example: " in proc.stdout, proc.stdout


def test_piped_logs_are_plain_text(server: Server) -> None:
    server.create_space("admin/cli-pipe", sdk="static")
    env = clean_env(SPACEYARD_URL=server.url, SPACEYARD_TOKEN=server.token)
    proc = subprocess.run(
        [SPACEYARD, "logs", "admin/cli-pipe", "--build"], capture_output=True, text=True, env=env, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert "\x1b[" not in proc.stdout and "[dim]" not in proc.stdout


def test_a_piped_error_is_one_plain_line(tmp_path: Path) -> None:
    env = clean_env(SPACEYARD_URL="http://127.0.0.1:9", SPACEYARD_DATA_DIR=str(tmp_path))
    proc = subprocess.run([SPACEYARD, "create", "admin/x"], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        "error: no Spaceyard at http://127.0.0.1:9 (from --url or SPACEYARD_URL): "
        "start it with `spaceyard up` or pass --url"
    ]


def test_the_recorded_token_only_goes_to_the_recorded_server(tmp_path: Path) -> None:
    data = tmp_path / "root" / ".data"
    clientconfig.record(data, "http://127.0.0.1:19500", "sy_recorded_token")
    below = tmp_path / "root" / "a" / "b"
    below.mkdir(parents=True)
    cfg = clientconfig.resolve(None, None, env={}, cwd=below)
    assert (cfg.url, cfg.token) == ("http://127.0.0.1:19500", "sy_recorded_token")
    other = clientconfig.resolve("http://evil.example", None, env={"HF_TOKEN": "hf_x"}, cwd=below)
    assert (other.url, other.token, other.token_source) == ("http://evil.example", "hf_x", "HF_TOKEN")
    none = clientconfig.resolve("http://evil.example", None, env={}, cwd=below)
    assert none.token is None
    explicit = clientconfig.resolve(None, "sy_mine", env={}, cwd=below)
    assert (explicit.url, explicit.token) == ("http://127.0.0.1:19500", "sy_mine")
    assert (data / "cli.json").stat().st_mode & 0o777 == 0o600
