"""Host paths are rewritten to the paths a Hub Space shows, and nothing else is touched."""

from __future__ import annotations

from pathlib import Path

from spaceyard_platform.hostpaths import HostPaths


def test_paths_of_this_machine_become_hub_paths(tmp_path: Path) -> None:
    data, envs = tmp_path / "data", tmp_path / "cache" / "envs"
    hp = HostPaths(data, envs, interpreter_prefix="/opt/py/3.11")
    sha = "0123456789abcdef0123456789abcdef01234567"
    env_id = "03b1d7f1413be193c1004e14776e3e94"
    text = (
        f'File "{data}/sources/admin--x/{sha}/app.py", line 4\n'
        f"{envs}/{env_id}/lib/python3.11/site-packages/gradio/blocks.py\n"
        f"{envs}/.{env_id}.tmp123/bin\n"
        f"{data}/queue/broker.db\n"
        "/opt/py/3.11/lib/python3.11/asyncio/base_events.py\n"
        "/opt/py/3.11x/other and /home/user/app stay\n"
    )
    assert hp.clean(text).splitlines() == [
        'File "/home/user/app/app.py", line 4',
        "/home/user/.venv/lib/python3.11/site-packages/gradio/blocks.py",
        f"$ENV_DIR/.{env_id}.tmp123/bin",
        "$DATA_DIR/queue/broker.db",
        "/usr/local/lib/python3.11/asyncio/base_events.py",
        "/opt/py/3.11x/other and /home/user/app stay",
    ]
    assert hp.clean("") == ""
