"""A Space environment with requirements of its own starts from the shared SDK layer (real uv, real Gradio).

The layer is the plain Gradio environment (the ``gradio_env`` fixture); the Space adds ``six`` and moves
``tomlkit`` to another version, so uv both adds and replaces files in a tree of hard links.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from spaceyard_builder.api import BuildRequest
from spaceyard_builder.engines import compile_progress, sdklayer
from spaceyard_builder.engines.local import COMPILE_LIST, READY_MARKER, LocalEngine, _uv
from spaceyard_builder.settings import BuilderSettings
from spaceyard_builder.spaceconfig import SpaceConfig
from tests.conftest import GRADIO_VERSION

CONFIG = SpaceConfig(sdk="gradio", sdk_version=GRADIO_VERSION)
SITE = Path("lib") / "python3.11" / "site-packages"
REQUIREMENTS = "six==1.17.0\ntomlkit==0.13.3\n"


def fingerprint(env: Path) -> dict[str, tuple[int, str]]:
    """Inode and content hash of every file of ``tomlkit`` and ``gradio/__init__.py`` (with its bytecode)."""
    site = env / SITE
    paths = [*sorted((site / "tomlkit").rglob("*")), site / "gradio" / "__init__.py"]
    paths += sorted((site / "gradio" / "__pycache__").glob("__init__.*"))
    return {
        str(p.relative_to(env)): (p.stat().st_ino, hashlib.sha256(p.read_bytes()).hexdigest())
        for p in paths
        if p.is_file()
    }


@pytest.fixture(scope="module")
def space_env(
    gradio_env: Path, shared_env_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path, str]:
    """(layer, the Space's environment built on it, build log) in a new environments directory whose layer
    is a hard-link copy of ``gradio_env`` (so every run builds the Space's environment for real)."""
    tmp = tmp_path_factory.mktemp("layered")
    cache = LocalEngine(BuilderSettings(data_dir=tmp, env_dir=shared_env_dir)).uv_cache()
    engine = LocalEngine(BuilderSettings(data_dir=tmp, env_dir=tmp / "envs", uv_cache_dir=cache))
    layer = tmp / "envs" / gradio_env.name
    layer.mkdir(parents=True)
    sdklayer.link_copy(gradio_env, layer)
    shutil.copy(gradio_env / READY_MARKER, layer / READY_MARKER)
    shutil.copytree(shared_env_dir / ".resolutions", tmp / "envs" / ".resolutions")
    (tmp / "src").mkdir()
    (tmp / "src" / "requirements.txt").write_text(REQUIREMENTS)
    request = BuildRequest(build_id="layered", space_id="h18/layered", revision="0" * 40, repo="", log_key="x")
    log: list[str] = []
    artifact = engine.build(request, tmp / "src", CONFIG, log.append)
    return layer, Path(artifact.id), "\n".join(log)


def test_the_platform_learns_the_layer_to_warm_without_resolving(space_env: tuple[Path, Path, str]) -> None:
    layer, env, _ = space_env
    engine = LocalEngine(BuilderSettings(data_dir=layer.parents[1], env_dir=layer.parent))
    assert engine.warm_base(CONFIG) == str(layer)  # from the stored resolution and the marker: no uv, no network
    assert engine.warm_base(SpaceConfig(sdk="streamlit")) is None
    assert engine.warm_base(SpaceConfig(sdk="gradio", sdk_version="9.9.9")) is None  # never built here
    empty = LocalEngine(BuilderSettings(data_dir=env.parents[2], env_dir=env.parents[2] / "none"))
    assert empty.warm_base(CONFIG) is None


def test_a_space_environment_shares_the_layer_and_compiles_only_the_difference(
    space_env: tuple[Path, Path, str],
) -> None:
    gradio_env, env, log = space_env
    assert env != gradio_env and env.parent == gradio_env.parent
    assert f"Starting from the SDK layer {gradio_env.name}" in log  # every long step says what it does
    assert "files of the SDK layer in" in log and "RUN pip sync" in log
    # only the distributions uv added are compiled (from their RECORD), not a walk of the layer's ~4,000 files
    assert re.search(r"Compiled bytecode of \d+ files in [\d.]+s", log), log
    assert int(re.findall(r"Compiling bytecode: (\d+) files", log)[0]) < 200, log
    assert "from uv's cache" in log or "RUN pip sync" in log  # offline first; from the index when it must
    assert not (env / COMPILE_LIST).exists()
    ours, layer = env / SITE, gradio_env / SITE
    assert (ours / "gradio" / "__init__.py").stat().st_ino == (layer / "gradio" / "__init__.py").stat().st_ino
    assert (ours / "tomlkit" / "api.py").stat().st_ino != (layer / "tomlkit" / "api.py").stat().st_ino
    out = subprocess.run(
        [str(env / "bin" / "python"), "-c", "import six, tomlkit, gradio; print(tomlkit.__version__, gradio.__file__)"],
        capture_output=True, text=True, check=True, timeout=120, env={"PATH": "/usr/bin:/bin"},
    ).stdout.split()  # fmt: skip
    assert out == ["0.13.3", str(ours / "gradio" / "__init__.py")]
    for source in [ours / "six.py", *(ours / "tomlkit").glob("*.py"), ours / "gradio" / "__init__.py"]:
        assert not compile_progress._stale(str(source)), source  # bytecode present and matching the source
    for script in (env / "bin").iterdir():
        if script.is_file() and not script.is_symlink() and b"\0" not in script.read_bytes()[:1024]:
            assert str(gradio_env) not in script.read_text(), script  # every path rewritten to its own
    assert str(gradio_env) not in (env / "pyvenv.cfg").read_text()


def test_changing_one_environment_never_touches_the_layer_or_another(
    space_env: tuple[Path, Path, str], tmp_path: Path
) -> None:
    gradio_env, env, _ = space_env
    before = {gradio_env: fingerprint(gradio_env), env: fingerprint(env)}
    other = tmp_path / "other"
    other.mkdir()
    sdklayer.link_copy(env, other)
    uv = _uv()
    py = str(other / "bin" / "python")
    clean = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    for args in (["install", "tomlkit==0.14.0", "six==1.16.0"], ["uninstall", "gradio"]):
        subprocess.run([uv, "pip", *args, "--python", py, "--quiet"], check=True, env=clean, timeout=300)
    compiled = subprocess.run(
        compile_progress.command(sys.executable, other / "lib"), capture_output=True, text=True, timeout=300
    )
    assert compiled.returncode == 0, compiled.stderr
    assert not (other / SITE / "gradio" / "__init__.py").exists()
    assert {gradio_env: fingerprint(gradio_env), env: fingerprint(env)} == before
