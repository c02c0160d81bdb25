"""ffmpeg for local environments, as the Hub's images have it: imageio-ffmpeg's static binary from PyPI.

Gradio's audio and video components (``gr.Audio(format="mp3")``, ``gr.Video``) and pydub call ``ffmpeg``
from ``PATH``. The Hub's images install Debian's; the local engine cannot install system packages, so
it fetches the static Linux build that the ``imageio-ffmpeg`` wheel carries (pinned below), once per
machine into ``ENVS/.tools/``, and hard-links it (or copies it, across filesystems) to ``bin/ffmpeg``
of every Python environment it builds or reuses. The local runtime puts an environment's ``bin`` first
on the app's ``PATH``, so the app finds it like a system ffmpeg. The environment id does not change:
existing environments get the link the next time a build reuses them.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

IMAGEIO_FFMPEG = "imageio-ffmpeg==0.8.1"
NAME = "ffmpeg"


def tool_dir(envs_root: Path) -> Path:
    return envs_root / ".tools" / IMAGEIO_FFMPEG.replace("==", "-")


def _binary_in(folder: Path) -> Path | None:
    found = sorted((folder / "imageio_ffmpeg" / "binaries").glob("ffmpeg-*"))
    return found[0] if found else None


def ensure_binary(uv: str, envs_root: Path, env: Mapping[str, str], log: Callable[[str], None]) -> Path:
    """The static ffmpeg binary, downloaded once (under a file lock) into ``ENVS/.tools``."""
    folder = tool_dir(envs_root)
    binary = _binary_in(folder)
    if binary is not None:
        return binary
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f".{folder.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        binary = _binary_in(folder)
        if binary is not None:
            return binary
        log(f"--> Fetching ffmpeg ({IMAGEIO_FFMPEG}'s static build, once for this machine)")
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
        try:
            proc = subprocess.run(
                [uv, "pip", "install", "--quiet", "--no-deps", "--python", sys.executable, "--target", str(tmp),
                 IMAGEIO_FFMPEG],
                capture_output=True, text=True, env=dict(env), check=False,
            )  # fmt: skip
            found = _binary_in(tmp)
            if proc.returncode != 0 or found is None:
                raise RuntimeError(f"could not fetch {IMAGEIO_FFMPEG}: {proc.stderr.strip()[-500:]}")
            found.chmod(found.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
            tmp.rename(folder)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    binary = _binary_in(folder)
    assert binary is not None
    return binary


def provide(env_dir: Path, uv: str, envs_root: Path, env: Mapping[str, str], log: Callable[[str], None]) -> None:
    """Make ``env_dir/bin/ffmpeg`` exist. Never fails a build: without ffmpeg most apps still run."""
    target = env_dir / "bin" / NAME
    if target.exists():
        return
    try:
        binary = ensure_binary(uv, envs_root, env, log)
        tmp = target.with_name(f".{NAME}.{os.getpid()}")
        try:
            os.link(binary, tmp)
        except OSError:
            shutil.copy2(binary, tmp)
        os.replace(tmp, target)
        log(f"--> ffmpeg on the app's PATH ({IMAGEIO_FFMPEG})")
    except (OSError, RuntimeError) as exc:
        log(f"WARNING: no ffmpeg for this environment ({exc}); audio/video conversions will fail")
