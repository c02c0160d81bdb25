"""Export one commit of a bare repository into a source tree, content-addressed by sha, with git itself.

Contract of :func:`export_commit` (commit sha in, directory out): ``dest_root/<sha>`` holds what
``git clone`` would check out for that commit, and nothing is ever written outside it, whatever the
tree holds. The export is ``git read-tree`` into a private temporary index and ``git checkout-index -a``
into an empty directory (git refuses ``..``/``.git`` paths and never writes through a symlink it
created), with a hermetic configuration (no system/global config, no hooks, no replace refs, LFS
smudging off: :data:`EXPORT_CONFIG` is the only config it sees — add filters there). So:

* symlinks are kept as symlinks, including absolute ones and ones pointing outside the commit (the Hub
  keeps them too); the platform never follows them: readers use :func:`list_tree` / :func:`read_blob`
  or :func:`resolve_in_tree`, which resolve links lexically inside the tree only;
* submodules (gitlinks) become empty directories, as in a clone; :func:`list_tree` reports them
  (``TreeItem.kind == "submodule"``) so the build log can say so;
* ``export-ignore`` / ``export-subst`` attributes do not apply (they are ``git archive``'s): the build
  sees the same files as the API and a clone.

The export is created once per sha under a file lock (concurrent builds of one commit coalesce) and
renamed into place when complete (``.spaceyard-complete`` marks it).
"""

from __future__ import annotations

import fcntl
import os
import posixpath
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .errors import BuildFailed, TransientBuildError

COMPLETE = ".spaceyard-complete"
_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
MODE_SYMLINK = "120000"
MODE_GITLINK = "160000"

EXPORT_CONFIG: tuple[tuple[str, str], ...] = (
    ("core.symlinks", "true"),
    ("core.autocrlf", "false"),
    ("core.protectNTFS", "true"),
    ("core.protectHFS", "true"),
    ("core.hooksPath", os.devnull),
    ("core.fsmonitor", "false"),
)
"""The only git config the export sees (``-c`` options); e.g. the LFS filter goes here."""


@dataclass(frozen=True)
class TreeItem:
    path: str
    mode: str
    oid: str

    @property
    def kind(self) -> str:
        """``file``, ``symlink`` or ``submodule``."""
        if self.mode == MODE_SYMLINK:
            return "symlink"
        if self.mode == MODE_GITLINK:
            return "submodule"
        return "file"


def _check_sha(revision: str) -> str:
    if not _SHA.fullmatch(revision):
        raise BuildFailed(f"not a commit id: {revision[:80]!r}")  # bad input: retrying cannot help
    return revision


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "TMPDIR")}
    env.update(
        {
            "HOME": os.devnull,
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_ATTR_NOSYSTEM": "1",
            "GIT_NO_REPLACE_OBJECTS": "1",
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_LFS_SKIP_SMUDGE": "1",
        }
    )
    env.update(extra or {})
    return env


def _git(repo: str, *args: str, env: dict[str, str] | None = None, work_tree: Path | None = None) -> bytes:
    argv = ["git", "--git-dir", repo]
    if work_tree is not None:
        argv += ["--work-tree", str(work_tree)]
    for key, value in EXPORT_CONFIG:
        argv += ["-c", f"{key}={value}"]
    proc = subprocess.run([*argv, *args], capture_output=True, env=_env(env), check=False)
    if proc.returncode != 0:
        raise TransientBuildError(f"git {args[0]} failed: {proc.stderr.decode(errors='replace').strip()[-500:]}")
    return proc.stdout


def list_tree(repo: str, revision: str) -> list[TreeItem]:
    """Every non-directory entry of the commit's tree (files, symlinks, submodules), from git."""
    out = _git(repo, "ls-tree", "-r", "-z", "--full-tree", "--end-of-options", _check_sha(revision))
    items = []
    for rec in out.decode(errors="replace").split("\0"):
        if rec:
            meta, _, path = rec.partition("\t")
            mode, _kind, oid = meta.split()
            items.append(TreeItem(path=path, mode=mode, oid=oid))
    return items


def read_blob(repo: str, oid: str, limit: int | None = None) -> bytes:
    """A blob's content (at most ``limit`` bytes of it)."""
    if limit is None:
        return _git(repo, "cat-file", "blob", "--end-of-options", _check_sha(oid))
    argv = ["git", "--git-dir", repo, "cat-file", "blob", "--end-of-options", _check_sha(oid)]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=_env()) as proc:
        assert proc.stdout is not None
        data = proc.stdout.read(limit)
        proc.kill()
    return data


def resolve_in_tree(repo: str, items: dict[str, TreeItem], path: str, depth: int = 0) -> TreeItem | None:
    """The regular file ``path`` names inside the tree, following symlinks lexically and only within the
    tree; None when it is missing, a submodule, or a link that leaves the commit (absolute or ``..``)."""
    item = items.get(path)
    if item is None or item.kind == "submodule" or depth > 40:
        return None
    if item.kind == "file":
        return item
    target = read_blob(repo, item.oid).decode(errors="replace")
    if target.startswith("/") or "\0" in target:
        return None
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
    if joined == ".." or joined.startswith("../") or joined.startswith("/"):
        return None
    return resolve_in_tree(repo, items, joined, depth + 1)


def link_target(repo: str, item: TreeItem) -> str:
    return read_blob(repo, item.oid).decode(errors="replace")


def export_commit(repo: str, revision: str, dest_root: Path) -> Path:
    """Return ``dest_root/<revision>`` holding the commit's files (created once, then reused)."""
    revision = _check_sha(revision)
    dest = dest_root / revision
    if (dest / COMPLETE).exists():
        return dest
    dest_root.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(dest_root / f".{revision}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (dest / COMPLETE).exists():
            return dest
        tmp = Path(tempfile.mkdtemp(prefix=f".{revision}.", dir=dest_root))
        scratch = Path(tempfile.mkdtemp(prefix="spaceyard-export-index-"))
        try:
            env = {"GIT_INDEX_FILE": str(scratch / "index")}
            _git(repo, "read-tree", "--end-of-options", revision, env=env, work_tree=tmp)
            _git(repo, "checkout-index", "-a", env=env, work_tree=tmp)
            (tmp / COMPLETE).touch()
            if dest.exists() or dest.is_symlink():
                shutil.rmtree(dest)
            tmp.rename(dest)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return dest
