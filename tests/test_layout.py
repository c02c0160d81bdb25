"""The top-level folders must never shadow the standard library or each other."""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_stdlib_platform_is_not_shadowed() -> None:
    assert platform.__file__ is not None and platform.__file__.endswith("platform.py")
    assert platform.system()


def test_stdlib_platform_from_repo_root() -> None:
    # Starting Python in the repository root puts the root first on sys.path: still the stdlib module.
    out = subprocess.run(
        [sys.executable, "-c", "import platform, uuid; print(platform.__file__); print(platform.system())"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out[0].endswith("platform.py") and out[1] == "Linux"


def test_folders_are_plain_and_hold_one_prefixed_package() -> None:
    for folder in ("platform", "builder", "runtime"):
        assert not (ROOT / folder / "__init__.py").exists(), f"{folder}/__init__.py would shadow imports"
        packages = [p.name for p in (ROOT / folder).iterdir() if (p / "__init__.py").exists()]
        assert packages == [f"spaceyard_{folder}"]


def test_packages_import() -> None:
    import spaceyard_builder
    import spaceyard_platform
    import spaceyard_runtime

    for mod, folder in (
        (spaceyard_platform, "platform"),
        (spaceyard_builder, "builder"),
        (spaceyard_runtime, "runtime"),
    ):
        assert Path(mod.__file__ or "").parent == ROOT / folder / mod.__name__


def test_every_platform_module_has_a_layer() -> None:
    """A new module of the platform gets a place in the import contract (pyproject.toml), or no contract would
    look at it: ``lint-imports`` checks only the modules its layers name."""
    import re
    import tomllib

    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    (layered,) = [c for c in contracts if c.get("containers") == ["spaceyard_platform"]]
    named = {m for layer in layered["layers"] for m in re.split(r"[:|\s\\]+", layer) if m}
    package = ROOT / "platform" / "spaceyard_platform"
    for path in sorted(package.iterdir()):
        name = path.stem
        if name.startswith("_") or not (path.suffix == ".py" or (path / "__init__.py").exists()):
            continue
        if path.is_dir() and name not in named:  # split across layers (xet.api is a router, lifecycle.stages
            # is a value the store uses): then every module of it has a layer of its own
            missing = {f"{name}.{p.stem}" for p in path.glob("*.py") if not p.stem.startswith("_")} - named
            assert not missing, f"add {sorted(missing)} to a layer of the platform's import contract"
            continue
        assert name in named, f"add {name} to a layer of the platform's import contract in pyproject.toml"
