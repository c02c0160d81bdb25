"""docs/settings.md is generated from the settings classes and must stay in step with them."""

from __future__ import annotations

from pathlib import Path

from spaceyard_platform.settings_doc import settings_markdown

ROOT = Path(__file__).resolve().parent.parent


def test_settings_reference_is_current() -> None:
    current = (ROOT / "docs" / "settings.md").read_text()
    assert current == settings_markdown(), "regenerate with: spaceyard settings > docs/settings.md"


def test_every_setting_is_described() -> None:
    for line in settings_markdown().splitlines():
        if line.startswith("| `SPACEYARD_"):
            assert not line.rstrip().endswith("|  |"), f"undocumented setting: {line}"
