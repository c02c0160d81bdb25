"""Shared by the benchmarks: write one ``## <title>`` section of ``docs/benchmarks.md``.

Each benchmark owns one section; :func:`write_section` replaces that section (from its ``## `` heading
to the next ``## `` heading) or appends it, and leaves every other section as it is.
"""

from __future__ import annotations

import re
from pathlib import Path

REPORT = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
HEADER = "# Benchmarks\n\nEach section is written by its benchmark script under `benchmarks/`.\n"


def write_section(title: str, markdown: str, path: Path = REPORT) -> Path:
    text = path.read_text() if path.exists() else HEADER
    section = f"## {title}\n\n{markdown.strip()}\n"
    pattern = re.compile(rf"^## {re.escape(title)}[ \t]*\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text, count=1).rstrip("\n") + "\n"
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path
