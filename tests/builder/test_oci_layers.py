"""Reproducible layers and image references of the oci engine (fast: no registry, no cluster)."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
import time
from pathlib import Path

import pytest

from spaceyard_builder.engines import steps
from spaceyard_builder.errors import BuildFailed
from spaceyard_builder.oci import layers
from spaceyard_builder.oci.registry import ImageRef


def _tree(root: Path) -> Path:
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "a.py").write_text("print('a')\n")
    (root / "run.sh").write_text("#!/bin/sh\n")
    (root / "run.sh").chmod(0o755)
    (root / "link").symlink_to("pkg/a.py")
    (root / ".spaceyard-complete").write_text("")
    return root


def test_the_same_tree_gives_the_same_digest_whatever_its_owner_and_times(tmp_path: Path) -> None:
    one, two = _tree(tmp_path / "one"), _tree(tmp_path / "two")
    os.utime(two / "pkg" / "a.py", (1, 1))
    skip = frozenset({".spaceyard-complete"})
    first = layers.write_layer(layers.tree_members(one, "home/user/app", 1000, 1000, skip), tmp_path / "1.tgz")
    second = layers.write_layer(layers.tree_members(two, "home/user/app", 1000, 1000, skip), tmp_path / "2.tgz")
    assert first == second
    blob = (tmp_path / "1.tgz").read_bytes()
    assert first.digest == "sha256:" + hashlib.sha256(blob).hexdigest() and first.size == len(blob)
    assert first.diff_id == "sha256:" + hashlib.sha256(gzip.decompress(blob)).hexdigest()
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert sorted(members) == [
        "home/user/app/link",
        "home/user/app/pkg",
        "home/user/app/pkg/a.py",
        "home/user/app/run.sh",
    ]
    assert members["home/user/app/run.sh"].mode == 0o755 and members["home/user/app/run.sh"].uid == 1000
    assert members["home/user/app/link"].issym() and members["home/user/app/link"].linkname == "pkg/a.py"
    assert all(m.mtime == 0 and m.uname == "" for m in members.values())


def test_kept_mtimes_change_the_digest(tmp_path: Path) -> None:
    """Bytecode records its source's mtime: the environment layer keeps them (and so differs by them)."""
    one = _tree(tmp_path / "one")
    a = layers.write_layer(layers.tree_members(one, "x"), tmp_path / "a.tgz", mtime=None)
    os.utime(one / "pkg" / "a.py", (5, 5))
    b = layers.write_layer(layers.tree_members(one, "x"), tmp_path / "b.tgz", mtime=None)
    assert a.digest != b.digest
    with tarfile.open(tmp_path / "b.tgz") as tar:
        assert tar.getmember("x/pkg/a.py").mtime == 5


def test_extract_applies_whiteouts_and_refuses_escapes(tmp_path: Path) -> None:
    root = tmp_path / "root"
    base = [layers.dir_member("etc"), layers.file_member("etc/keep", b"k"), layers.file_member("etc/gone", b"g")]
    layers.write_layer(base, tmp_path / "base.tgz")
    upper = [layers.file_member("etc/.wh.gone", b""), layers.file_member("etc/new", b"n")]
    top = layers.write_layer(upper, tmp_path / "top.tgz")
    root.mkdir()
    with (tmp_path / "base.tgz").open("rb") as f:
        layers.extract_layer(f, root)
    with (tmp_path / "top.tgz").open("rb") as f:
        assert layers.extract_layer(f, root) == top.diff_id
    assert sorted(p.name for p in (root / "etc").iterdir()) == ["keep", "new"]
    layers.write_layer([layers.file_member("../outside", b"x")], tmp_path / "evil.tgz")
    with (tmp_path / "evil.tgz").open("rb") as f, pytest.raises(ValueError, match="leaves the root"):
        layers.extract_layer(f, root)
    assert not (tmp_path / "outside").exists()
    link = tarfile.TarInfo("etc/up")
    link.type, link.linkname = tarfile.SYMTYPE, str(tmp_path)
    layers.write_layer([(link, None), layers.file_member("etc/up/outside", b"x")], tmp_path / "via-link.tgz")
    with (tmp_path / "via-link.tgz").open("rb") as f, pytest.raises(ValueError, match="through a link"):
        layers.extract_layer(f, root)
    assert not (tmp_path / "outside").exists()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "127.0.0.1:5000/spaceyard/python:3.11-bookworm-r2",
            ("127.0.0.1:5000", "spaceyard/python", "3.11-bookworm-r2"),
        ),
        ("spaceyard/python:3.11", ("reg.local:5000", "spaceyard/python", "3.11")),
        ("ghcr.io/Org/App", ("ghcr.io", "org/app", "latest")),
        ("localhost/a/b@sha256:" + "0" * 64, ("localhost", "a/b", "sha256:" + "0" * 64)),
        ("reg.local:5000/space:tag", ("reg.local:5000", "space", "tag")),
    ],
)
def test_image_references(text: str, expected: tuple[str, str, str]) -> None:
    ref = ImageRef.parse(text, default_host="reg.local:5000")
    assert (ref.host, ref.repository, ref.reference) == expected
    assert ImageRef.parse(str(ref)) == ref


def test_a_name_without_a_registry_needs_one() -> None:
    with pytest.raises(BuildFailed, match="SPACEYARD_REGISTRY"):
        ImageRef.parse("python:3.11-slim")


def test_a_cancelled_step_is_killed_and_ends_the_build(tmp_path: Path) -> None:
    """Deleting a Space cancels its build (``spaceyard_builder.cancel``): the running step is killed within
    a poll and the build ends with the reason (the oci engine's steps run through ``run_step``)."""
    asked = time.monotonic() + 0.3
    lines: list[str] = []
    with pytest.raises(BuildFailed, match="cancelled: the Space was deleted"):
        steps.run_step(
            ["sleep", "600"],
            announce="sleep",
            what="Sleeping",
            log=lines.append,
            env=dict(os.environ),
            cwd=tmp_path,
            deadline=time.monotonic() + 600,
            timeout_setting=600,
            cancelled=lambda: time.monotonic() > asked,
        )
