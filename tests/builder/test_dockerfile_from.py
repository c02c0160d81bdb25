"""Which images a Dockerfile starts from, and the text with them pinned (the buildah builder's input check)."""

from __future__ import annotations

from pathlib import Path

import pytest

from spaceyard_builder.engines.buildah import BuildahBuilder
from spaceyard_builder.engines.dockerfile import from_lines, pin
from spaceyard_builder.errors import BuildFailed
from spaceyard_builder.oci.registry import Registry
from spaceyard_builder.settings import BuilderSettings
from spaceyard_builder.walls import NoBuildWalls

MULTI = """\
# syntax=docker/dockerfile:1
ARG PY=3.11 \\
    FLAVOR
FROM --platform=linux/amd64 python:${PY}-slim AS deps
RUN pip install x
from deps as app
FROM ${BASE_IMAGE:-debian:bookworm}
COPY --from=app / /
FROM scratch
"""


def test_every_from_is_found_with_global_args_and_stage_names() -> None:
    found = from_lines(MULTI, {"PY": "3.12"})
    assert [(f.line, f.image, f.stage) for f in found] == [
        (3, "python:3.12-slim", "deps"),
        (5, None, "app"),  # an earlier stage, no image
        (6, "debian:bookworm", None),  # ${NAME:-default}
        (8, None, None),  # scratch
    ]
    # as with BuildKit, a build argument reaches FROM only if an ARG before the first FROM declares it
    assert from_lines(MULTI, {"BASE_IMAGE": "reg:5000/base:1"})[2].image == "debian:bookworm"
    declared = "ARG BASE_IMAGE=python:3.11-slim\n" + MULTI
    assert from_lines(declared, {"BASE_IMAGE": "reg:5000/base:1"})[2].image == "reg:5000/base:1"


def test_pinning_replaces_only_the_image() -> None:
    text = pin(MULTI, {3: "reg/python@sha256:aa", 6: "reg/debian@sha256:bb"})
    lines = text.splitlines()
    assert lines[3] == "FROM --platform=linux/amd64 reg/python@sha256:aa AS deps"
    assert lines[6] == "FROM reg/debian@sha256:bb"
    assert lines[5] == "from deps as app" and text.count("\n") == MULTI.count("\n")


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("RUN true\n", "no FROM"),
        ("ARG B\nFROM ${B}\n", "empty once its build arguments are set"),
        ("FROM\n", "names no image"),
    ],
)
def test_a_dockerfile_without_a_usable_from_is_a_build_error(text: str, words: str) -> None:
    with pytest.raises(BuildFailed, match=words):
        from_lines(text, {})


@pytest.mark.parametrize(
    "image", ["127.0.0.1:5000/spaceyard/space:0123456789abcdef0123456789abcdef", "spaceyard/space:docker-x"]
)
def test_a_space_image_is_never_a_base(image: str, tmp_path: Path) -> None:
    """Another Space's image may hold its private files: refused before the registry is asked anything."""
    settings = BuilderSettings(data_dir=tmp_path, registry="127.0.0.1:5000")
    registry = Registry("127.0.0.1:9")  # nothing listens there: any request would fail differently
    try:
        with pytest.raises(BuildFailed, match="images of Spaces"):
            BuildahBuilder(settings, NoBuildWalls()).resolve_base(image, registry)
    finally:
        registry.close()
