"""Export one commit of a bare repository into a read-only source tree, content-addressed by sha."""

from __future__ import annotations

import fcntl
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from .errors import TransientBuildError


def export_commit(repo: str, revision: str, dest_root: Path) -> Path:
    """Return ``dest_root/<revision>`` holding the commit's files (created once, then reused)."""
    dest = dest_root / revision
    if (dest / ".spaceyard-complete").exists():
        return dest
    dest_root.mkdir(parents=True, exist_ok=True)
    with open(dest_root / f".{revision}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (dest / ".spaceyard-complete").exists():
            return dest
        tmp = Path(tempfile.mkdtemp(prefix=f".{revision}.", dir=dest_root))
        try:
            proc = subprocess.run(
                ["git", "--git-dir", repo, "archive", "--format=tar", revision],
                capture_output=True,
                check=False,
            )
            if proc.returncode != 0:
                raise TransientBuildError(
                    f"could not read commit {revision[:12]}: {proc.stderr.decode(errors='replace').strip()}"
                )
            with tempfile.TemporaryFile() as tf:
                tf.write(proc.stdout)
                tf.seek(0)
                with tarfile.open(fileobj=tf) as tar:
                    tar.extractall(tmp, filter="data")
            (tmp / ".spaceyard-complete").touch()
            if dest.exists():
                shutil.rmtree(dest)
            tmp.rename(dest)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return dest
