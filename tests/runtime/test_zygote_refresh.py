"""A forked child recomputes environment-derived constants (``zygote.REFRESH``): the new values reach
the modules and default arguments that hold the old ones, and nothing that merely looks the same."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from spaceyard_runtime import zygote

CONSTANTS = """
import os
OFFLINE = os.environ.get("FAKEHUB_OFFLINE") == "1"
DISABLED = False
ETAG_TIMEOUT = int(os.environ.get("FAKEHUB_ETAG_TIMEOUT", "10"))
ENDPOINT = os.environ.get("FAKEHUB_ENDPOINT", "https://hub.example/")
"""

API = """
from .constants import DISABLED, ENDPOINT, OFFLINE


def call(endpoint: str = ENDPOINT, batch: bool = False, timeout: int = 10) -> tuple[str, bool, int]:
    return endpoint, batch, timeout
"""


@pytest.fixture
def fakehub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[ModuleType, ModuleType]]:
    package = tmp_path / "fakehub"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "constants.py").write_text(CONSTANTS)
    (package / "api.py").write_text(API)
    for key in ("FAKEHUB_OFFLINE", "FAKEHUB_ETAG_TIMEOUT", "FAKEHUB_ENDPOINT"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(zygote, "REFRESH", {"fakehub.constants": None})
    constants, api = importlib.import_module("fakehub.constants"), importlib.import_module("fakehub.api")
    monkeypatch.setattr(zygote, "_PREPARED", zygote._prepare_refresh())  # in the warm parent
    yield constants, api
    for name in ("fakehub", "fakehub.constants", "fakehub.api"):
        sys.modules.pop(name, None)


def test_the_childs_values_reach_their_holders_and_nothing_that_only_looks_the_same(
    fakehub: tuple[ModuleType, ModuleType], monkeypatch: pytest.MonkeyPatch
) -> None:
    constants, api = fakehub
    # the child's environment (a Space with HF_HUB_OFFLINE=1, its relay, a longer etag timeout)
    monkeypatch.setenv("FAKEHUB_OFFLINE", "1")
    monkeypatch.setenv("FAKEHUB_ETAG_TIMEOUT", "600")
    monkeypatch.setenv("FAKEHUB_ENDPOINT", "http://relay:7850")
    zygote._refresh_modules()
    assert (constants.OFFLINE, constants.ETAG_TIMEOUT, constants.ENDPOINT) == (True, 600, "http://relay:7850")
    assert api.OFFLINE is True and api.ENDPOINT == "http://relay:7850", "imported copies get the new values"
    assert api.DISABLED is False, "another constant that was False too stays False"
    # the default that *is* the constant follows it; a literal False or 10 elsewhere is not the constant
    assert api.call() == ("http://relay:7850", False, 10)
