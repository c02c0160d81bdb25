"""The ``FROM`` lines of a Dockerfile: which images a build starts from, and the text with them pinned.

Pure functions (no I/O), used by the buildah builder (:mod:`.buildah`) to check every base image
against what the build may pull (the cluster's own registry) before anything runs, and to pin each one
to its digest, so that the image's content hash covers the bases it was built on.

:func:`from_lines` reads the instructions as BuildKit does for this purpose: line continuations,
comments, parser directives, global ``ARG``\\ s before the first ``FROM`` (their defaults overridden by
the build arguments), ``${NAME}``, ``$NAME``, ``${NAME:-default}`` and ``${NAME:+alt}`` in the image,
``--platform=...`` flags, ``AS <stage>``; a ``FROM`` naming an earlier stage or ``scratch`` is no image.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import BuildFailed

_VAR = re.compile(
    r"\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?::(?P<op>[-+])(?P<word>[^}]*))?\}|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)

_FROM = re.compile(r"^(?P<head>\s*FROM\s+(?:--\S+\s+)*)(?P<image>[^\s\\]+)(?P<tail>.*)$", re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True)
class FromLine:
    """One ``FROM``: the instruction's first physical line (0-based), the image it names after
    substitution (``None``: an earlier stage or ``scratch``), the text written, and its stage name."""

    line: int
    image: str | None
    written: str
    stage: str | None


def _instructions(text: str) -> list[tuple[int, str]]:
    """(first line, logical instruction) pairs: continuations joined, comments and blank lines dropped."""
    out: list[tuple[int, str]] = []
    escape = "\\"
    lines = text.splitlines()
    for line in lines[:5]:  # parser directives come first: `# escape=`` ` changes the continuation character
        m = re.match(r"^#\s*escape\s*=\s*(\S)\s*$", line, re.IGNORECASE)
        if m:
            escape = m.group(1)
    current: list[str] = []
    start = 0
    for i, line in enumerate(lines):
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if current and stripped.startswith("#"):
            continue  # comments inside a continued instruction are skipped
        if not current:
            start = i
        if stripped.endswith(escape):
            current.append(stripped[:-1])
            continue
        current.append(stripped)
        out.append((start, " ".join(current)))
        current = []
    if current:
        out.append((start, " ".join(current)))
    return out


def substitute(word: str, values: dict[str, str]) -> str:
    def one(m: re.Match[str]) -> str:
        name = m.group("braced") or m.group("bare")
        value = values.get(name, "")
        if m.group("op") == "-":
            return value or m.group("word")
        if m.group("op") == "+":
            return m.group("word") if value else ""
        return value

    return _VAR.sub(one, word)


def from_lines(text: str, build_args: dict[str, str]) -> list[FromLine]:
    """Every ``FROM`` of ``text``; see the module docstring. A Dockerfile without one is ``BuildFailed``."""
    globals_: dict[str, str] = {}
    stages: set[str] = set()
    found: list[FromLine] = []
    for line, instruction in _instructions(text):
        keyword, _, rest = instruction.partition(" ")
        keyword = keyword.upper()
        if keyword == "ARG" and not found:
            for decl in rest.split():
                name, eq, default = decl.partition("=")
                globals_[name] = build_args.get(name, default.strip("\"'") if eq else "")
        if keyword != "FROM":
            continue
        words = [w for w in rest.split() if not w.startswith("--")]
        if not words:
            raise BuildFailed(f"Dockerfile line {line + 1}: FROM names no image")
        written = words[0]
        image = substitute(written, globals_).strip()
        stage = words[2].lower() if len(words) >= 3 and words[1].upper() == "AS" else None
        if not image:
            raise BuildFailed(f"Dockerfile line {line + 1}: FROM {written} is empty once its build arguments are set")
        is_image = image.lower() not in stages and image.lower() != "scratch"
        found.append(FromLine(line, image if is_image else None, written, stage))
        if stage:
            stages.add(stage)
    if not found:
        raise BuildFailed("the Dockerfile has no FROM instruction")
    return found


def pin(text: str, pinned: dict[int, str]) -> str:
    """``text`` with the image of the ``FROM`` starting at each line of ``pinned`` replaced (``{line: image}``)."""
    lines = text.splitlines(keepends=True)
    for line, image in pinned.items():
        m = _FROM.match(lines[line])
        if m is None:
            raise BuildFailed(f"Dockerfile line {line + 1}: write FROM and its image on one line")
        lines[line] = m.group("head") + image + m.group("tail")
    return "".join(lines)


__all__ = ["FromLine", "from_lines", "pin", "substitute"]
