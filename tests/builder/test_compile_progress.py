"""The local engine's bytecode step reports progress as it goes, and compiles what compileall would."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from spaceyard_builder.engines import compile_progress


def test_compiling_prints_progress_and_writes_bytecode(tmp_path: Path) -> None:
    lib = tmp_path / "lib" / "python3.11" / "site-packages"
    for i in range(450):
        pkg = lib / f"pkg{i // 50}"
        pkg.mkdir(parents=True, exist_ok=True)
        (pkg / f"m{i}.py").write_text(f"VALUE = {i}\n")
    (lib / "broken.py").write_text("def broken(:\n")  # vendored junk must not fail the build
    proc = subprocess.run(
        compile_progress.command(sys.executable, tmp_path / "lib"), capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "Compiling bytecode: 451 files"
    progress = [ln for ln in lines if re.fullmatch(r"Compiling bytecode: \d+/451 files \(\d+%\)", ln)]
    assert len(progress) >= 2
    assert re.fullmatch(
        r"Compiled bytecode of 451 files in [\d.]+s, 1 could not be compiled \(kept as source\)", lines[-1]
    )
    assert len(list(lib.rglob("__pycache__/*.pyc"))) == 450
