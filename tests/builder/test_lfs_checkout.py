"""The builder's LFS step on a real bare repository: pointers become contents only for granted objects,
and the export of a repository with LFS attributes (and filters configured) does not run git-lfs, which
would have no remote to download from: the pointers reach the LFS step."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from spaceyard_builder import lfs
from spaceyard_builder.source import export_commit
from tests.support import git


def store(data_dir: Path, content: bytes) -> lfs.Pointer:
    oid = hashlib.sha256(content).hexdigest()
    path = lfs.object_path(data_dir, oid)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    text = lfs.pointer_text(oid, len(content))
    pointer = lfs.parse_pointer(text)
    assert pointer is not None and pointer.oid == oid and pointer.size == len(content)
    return pointer


def test_pointer_parsing() -> None:
    oid = "a" * 64
    assert lfs.parse_pointer(lfs.pointer_text(oid, 5)) == lfs.Pointer(oid, 5, len(lfs.pointer_text(oid, 5)))
    ext = b"version https://git-lfs.github.com/spec/v1\next-0-foo sha256:" + b"b" * 64 + b"\noid sha256:" + oid.encode()
    assert lfs.parse_pointer(ext + b"\nsize 7\n") is not None
    for bad in (
        b"hello",
        lfs.pointer_text(oid, 5) + b"x",
        lfs.pointer_text(oid, 5).replace(b"sha256:", b"md5:"),
        lfs.pointer_text("A" * 64, 5),
        lfs.pointer_text(oid, 5).replace(b"size 5", b"size -5"),
        b"version https://git-lfs.github.com/spec/v1\n" + b"x" * 2000,
    ):
        assert lfs.parse_pointer(bad) is None, bad
    with pytest.raises(ValueError):
        lfs.object_path(Path("/d"), "../../etc/passwd")
    with pytest.raises(ValueError):
        lfs.grant(Path("/d"), "../x")


def test_smudge_replaces_granted_pointers_only(tmp_path: Path) -> None:
    data_dir, repo, tree = tmp_path / "data", tmp_path / "repo.git", tmp_path / "tree"
    repo.mkdir()
    (tree / "sub").mkdir(parents=True)
    mine = store(data_dir, b"my weights")
    theirs = store(data_dir, b"someone else's weights")
    lfs.grant(repo, mine.oid)
    (tree / "sub" / "mine.bin").write_bytes(lfs.pointer_text(mine.oid, mine.size))
    (tree / "theirs.bin").write_bytes(lfs.pointer_text(theirs.oid, theirs.size))
    (tree / "plain.txt").write_bytes(b"not a pointer")
    lines: list[str] = []
    with pytest.raises(lfs.MissingObjects) as missing:
        lfs.smudge_tree(tree, data_dir, repo, lines.append)
    assert missing.value.missing == ["theirs.bin"] and "theirs.bin" in str(missing.value)
    assert (tree / "sub" / "mine.bin").read_bytes() == b"my weights"
    assert (tree / "theirs.bin").read_bytes().startswith(b"version https://git-lfs")
    assert (tree / "plain.txt").read_bytes() == b"not a pointer"
    lfs.grant(repo, theirs.oid)
    assert lfs.smudge_tree(tree, data_dir, repo, lines.append) == 1
    assert lfs.smudge_tree(tree, data_dir, repo, lines.append) == 0  # idempotent
    # an object whose size differs from the pointer's is not used
    (tree / "liar.bin").write_bytes(lfs.pointer_text(mine.oid, mine.size + 1))
    with pytest.raises(lfs.MissingObjects):
        lfs.smudge_tree(tree, data_dir, repo, lines.append)


def test_export_of_an_lfs_repository_does_not_run_git_lfs(tmp_path: Path) -> None:
    wc = tmp_path / "wc"
    wc.mkdir()
    git(wc, "init", "-q", "-b", "main")
    git(wc, "config", "filter.lfs.process", "git-lfs filter-process")
    git(wc, "config", "filter.lfs.required", "true")
    (wc / ".gitattributes").write_text("*.bin filter=lfs diff=lfs merge=lfs -text\n")
    content = os.urandom(1000)
    (wc / "w.bin").write_bytes(content)
    git(wc, "add", "-A")
    git(wc, "commit", "-q", "-m", "lfs")
    sha = git(wc, "rev-parse", "HEAD").stdout.strip()
    bare = tmp_path / "bare.git"
    subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
    git(wc, "push", "-q", "--no-verify", str(bare), "main")
    # what `git lfs install --system` (Debian's package) or a user's config puts in front of git archive
    for key, value in (("process", "git-lfs filter-process"), ("smudge", "git-lfs smudge -- %f"), ("required", "true")):
        git(bare, "config", f"filter.lfs.{key}", value)
    out = export_commit(str(bare), sha, tmp_path / "sources")
    pointer = lfs.parse_pointer((out / "w.bin").read_bytes())
    assert pointer is not None and pointer.oid == hashlib.sha256(content).hexdigest()
