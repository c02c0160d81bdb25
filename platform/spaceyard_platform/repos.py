"""Bare git repositories, one per Space, under ``DATA_DIR/repos/OWNER/NAME.git``; the branch is ``main``.

Everything goes through the real ``git`` binary (plumbing commands), so what the API writes is exactly
what ``git clone`` reads. Every method takes user input as checked values only: revisions pass
:func:`~spaceyard_platform.gitsafe.check_revision` (or are 40/64-hex ids), paths
:func:`~spaceyard_platform.gitsafe.check_repo_path`, and both reach git after ``--end-of-options`` /
``--`` (:func:`~spaceyard_platform.gitsafe.git_argv`). Invalid ones raise ``InvalidRevision`` (404) or
``InvalidPath`` (400), never reach git. Repositories are created with
:data:`~spaceyard_platform.gitsafe.REPO_CONFIG` (objects fsck'ed on receive), and :meth:`RepoStore.harden`
applies it to repositories created before.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from . import gitsafe
from .errors import PlatformError

BRANCH = "main"
MODE_SYMLINK = "120000"
MODE_GITLINK = "160000"


class GitError(PlatformError):
    status = 500


@dataclass(frozen=True)
class TreeEntry:
    path: str
    type: str  # "file" | "directory" | "submodule"
    oid: str
    size: int
    mode: str = "100644"

    @property
    def is_symlink(self) -> bool:
        return self.mode == MODE_SYMLINK


def _component(value: str) -> str:
    if not value or value in (".", "..") or "/" in value or "\0" in value or value.startswith("-"):
        raise gitsafe.InvalidPath(f"Invalid repository name {value[:100]!r}")
    return value


def parse_ls_tree(out: bytes, prefix: str = "") -> list[TreeEntry]:
    """Entries of ``git ls-tree -l -z`` output; gitlinks (submodules) have type ``submodule``."""
    entries = []
    for rec in out.decode(errors="replace").split("\0"):
        if not rec:
            continue
        meta, _, p = rec.partition("\t")
        mode, kind, oid, size = meta.split(maxsplit=3)
        etype = {"tree": "directory", "commit": "submodule"}.get(kind, "file")
        entries.append(
            TreeEntry(path=prefix + p, type=etype, oid=oid, size=0 if size.strip() == "-" else int(size), mode=mode)
        )
    return entries


class RepoStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, owner: str, name: str) -> Path:
        return self.root / _component(owner) / f"{_component(name)}.git"

    def run(
        self,
        owner: str,
        name: str,
        subcommand: str,
        *options: str,
        revs: Iterable[str] = (),
        paths: Iterable[str] | None = None,
        input: bytes | None = None,  # noqa: A002
    ) -> subprocess.CompletedProcess[bytes]:
        """``git SUBCOMMAND *options --end-of-options *revs [-- *paths]`` in this repository."""
        argv = gitsafe.git_argv(subcommand, *options, git_dir=self.path(owner, name), revs=revs, paths=paths)
        return gitsafe.run(argv, input=input)

    def git(
        self,
        owner: str,
        name: str,
        subcommand: str,
        *options: str,
        revs: Iterable[str] = (),
        paths: Iterable[str] | None = None,
        input: bytes | None = None,  # noqa: A002
        check: bool = True,
    ) -> bytes:
        """Like :meth:`run`, returning stdout; a failure raises GitError unless ``check`` is false."""
        proc = self.run(owner, name, subcommand, *options, revs=revs, paths=paths, input=input)
        if check and proc.returncode != 0:
            raise GitError(f"git {subcommand} failed: {proc.stderr.decode(errors='replace').strip()}")
        return proc.stdout

    def init(self, owner: str, name: str) -> Path:
        path = self.path(owner, name)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        subprocess.run(
            ["git", "init", "--quiet", "--bare", f"--initial-branch={BRANCH}", "--", str(path)],
            check=True,
            capture_output=True,
            env=gitsafe.git_env(),
        )
        self._configure(owner, name)
        return path

    def _configure(self, owner: str, name: str) -> None:
        # Smart HTTP: allow pushes over stateless RPC and keep history readable for clones.
        base = (("http.receivepack", "true"), ("receive.denyDeleteCurrent", "true"), ("gc.auto", "0"))
        for key, value in (*base, *gitsafe.REPO_CONFIG):
            self.git(owner, name, "config", revs=[key, value])

    def harden(self) -> int:
        """Apply :data:`gitsafe.REPO_CONFIG` to every existing repository; returns how many were changed."""
        changed = 0
        for git_dir in sorted(self.root.glob("*/*.git")):
            if not (git_dir / "HEAD").exists():
                continue
            argv = gitsafe.git_argv("config", "--get", git_dir=git_dir, revs=["receive.fsckObjects"])
            if gitsafe.run(argv).stdout.strip() == b"true":
                continue
            for key, value in gitsafe.REPO_CONFIG:
                gitsafe.run(gitsafe.git_argv("config", git_dir=git_dir, revs=[key, value]))
            changed += 1
        return changed

    def exists(self, owner: str, name: str) -> bool:
        return (self.path(owner, name) / "HEAD").exists()

    def delete(self, owner: str, name: str) -> None:
        shutil.rmtree(self.path(owner, name), ignore_errors=True)

    def move(self, owner: str, name: str, new_owner: str, new_name: str) -> None:
        dest = self.path(new_owner, new_name)
        dest.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path(owner, name).rename(dest)

    def copy(self, owner: str, name: str, new_owner: str, new_name: str) -> None:
        dest = self.path(new_owner, new_name)
        dest.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        shutil.copytree(self.path(owner, name), dest, symlinks=True)

    def resolve(self, owner: str, name: str, rev: str = BRANCH) -> str | None:
        """The commit a (checked) revision names, or None; an invalid revision raises InvalidRevision."""
        gitsafe.check_revision(rev)
        out = self.git(owner, name, "rev-parse", "--verify", "--quiet", revs=[f"{rev}^{{commit}}"], check=False)
        return out.strip().decode() or None

    def head(self, owner: str, name: str) -> str | None:
        return self.resolve(owner, name, f"refs/heads/{BRANCH}")

    def entry(self, owner: str, name: str, rev: str, path: str) -> TreeEntry | None:
        """The tree entry at ``path`` (not recursive), or None."""
        gitsafe.check_revision(rev)
        clean = gitsafe.check_repo_path(path)
        out = self.git(owner, name, "ls-tree", "-l", "-z", revs=[rev], paths=[clean], check=False)
        return next((e for e in parse_ls_tree(out) if e.path == clean), None)

    def read_file(self, owner: str, name: str, rev: str, path: str, limit: int | None = None) -> bytes | None:
        """The content of the blob at ``path`` (a symlink's target text; never followed), or None; at most
        ``limit`` bytes of it when given."""
        found = self.entry(owner, name, rev, path)
        if found is None or found.type != "file":
            return None
        if limit is not None and found.size > limit:
            argv = gitsafe.git_argv("cat-file", "blob", git_dir=self.path(owner, name), revs=[found.oid])
            with subprocess.Popen(
                argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=gitsafe.git_env()
            ) as reader:
                assert reader.stdout is not None
                data = reader.stdout.read(limit)
                reader.kill()
            return data
        proc = self.run(owner, name, "cat-file", "blob", revs=[found.oid])
        return proc.stdout if proc.returncode == 0 else None

    def list_tree(self, owner: str, name: str, rev: str, path: str = "", recursive: bool = True) -> list[TreeEntry]:
        gitsafe.check_revision(rev)
        clean = gitsafe.check_repo_path(path, allow_root=True)
        args = ["-l", "-z"]
        if recursive:
            args += ["-r", "-t"]
        spec = f"{rev}:{clean}" if clean else rev
        out = self.git(owner, name, "ls-tree", *args, revs=[spec], check=False)
        return parse_ls_tree(out, f"{clean}/" if clean else "")

    def commit_info(self, owner: str, name: str, rev: str) -> dict[str, str] | None:
        gitsafe.check_revision(rev)
        out = self.git(owner, name, "log", "-1", "--format=%H%x00%s%x00%cI%x00%an", revs=[rev], paths=[], check=False)
        if not out.strip():
            return None
        sha, title, date, author = out.decode(errors="replace").rstrip("\n").split("\0")
        return {"id": sha, "title": title, "date": date, "author": author}

    def last_commit(self, owner: str, name: str, rev: str, path: str) -> dict[str, str] | None:
        """The last commit reachable from ``rev`` that touched ``path``."""
        gitsafe.check_revision(rev)
        clean = gitsafe.check_repo_path(path)
        out = self.git(owner, name, "log", "-1", "--format=%H%x00%s%x00%cI", revs=[rev], paths=[clean], check=False)
        if not out.strip():
            return None
        cid, title, date = out.decode(errors="replace").rstrip("\n").split("\0")
        return {"id": cid, "title": title, "date": date}

    def log(self, owner: str, name: str, rev: str = BRANCH, limit: int = 50) -> list[dict[str, str]]:
        gitsafe.check_revision(rev)
        out = self.git(
            owner, name, "log", f"-{int(limit)}", "--format=%H%x00%s%x00%cI%x00%an%x1e", revs=[rev], paths=[],
            check=False,
        )  # fmt: skip
        commits = []
        for rec in out.decode(errors="replace").split("\x1e"):
            rec = rec.strip("\n")
            if rec:
                sha, title, date, author = rec.split("\0")
                commits.append({"id": sha, "title": title, "date": date, "author": author})
        return commits
