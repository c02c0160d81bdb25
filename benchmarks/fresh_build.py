"""A fresh local build of a Gradio Space with a requirement the SDK does not imply, on a machine that has
built that SDK version once: from the SDK layer (now) vs from scratch (before), same run.

    .venv/bin/python benchmarks/fresh_build.py [--runs 3] [--extra six==1.17.0] [--no-write]

Setup (not timed): a new environments directory, the plain SDK environment of ``hello-gradio`` built in it
(the SDK layer; the uv download cache is warm). Then, alternating, ``--runs`` times each: a new commit of
``hello-gradio`` with ``requirements.txt`` = ``--extra`` built through the real pipeline (``run_build``:
git export, README, resolution, engine) by the local engine as it is (layered) and by the same engine with
the layer turned off (scratch: ``uv venv`` + ``uv pip sync`` + bytecode for everything, the former code).
Between runs the Space's environment and its stored resolution are deleted, so every run resolves with
uv (a network round trip) and installs, as a first push does. Medians with min-max; the table goes to
``docs/benchmarks.md`` under ``## Fresh builds on the SDK layer``.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from _report import write_section  # noqa: E402
from build import Repo, fmt, timed_build  # noqa: E402

from spaceyard_builder.api import BuildLog  # noqa: E402
from spaceyard_builder.engines.local import LocalEngine  # noqa: E402
from spaceyard_builder.engines.resolution import Resolution  # noqa: E402
from spaceyard_builder.settings import BuilderSettings  # noqa: E402
from spaceyard_builder.spaceconfig import SpaceConfig  # noqa: E402


class ScratchEngine(LocalEngine):
    """The local engine without its SDK layer: every new environment from an empty venv (the former code)."""

    def _sdk_layer(
        self,
        config: SpaceConfig,
        source: Path,
        python: str,
        python_version: str,
        resolved: Resolution,
        log: BuildLog,
    ) -> Path | None:
        return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--extra", default="six==1.17.0", help="requirements.txt of the Space")
    parser.add_argument("--no-write", action="store_true", help="print the table, do not touch docs/benchmarks.md")
    args = parser.parse_args()
    sample = ROOT / "sample_spaces" / "hello-gradio"
    times: dict[str, list[float]] = {"layered": [], "scratch": []}
    with tempfile.TemporaryDirectory(prefix="bench-fresh-", dir=os.environ.get("TMPDIR")) as tmp:
        root = Path(tmp)
        settings = BuilderSettings(data_dir=root / "data", env_dir=root / "envs")
        engines = {"layered": LocalEngine(settings), "scratch": ScratchEngine(settings)}
        repo = Repo(sample, root / "repo")
        _, base = timed_build(engines["scratch"], settings, repo, repo.sha)  # the SDK layer, once
        layer = Path(base.artifact)
        print(f"SDK layer {layer.name} built", flush=True)
        kept = set((settings.envs_root / ".resolutions").iterdir())
        (repo.work / "requirements.txt").write_text(args.extra + "\n")
        for i in range(args.runs):
            for name, engine in engines.items():
                t, r = timed_build(engine, settings, repo, repo.commit(f"{name} {i}"))
                assert not r.cache_hit and r.artifact != str(layer), r
                times[name].append(t)
                print(f"run {i + 1}/{args.runs} {name}: {t:.2f}s", flush=True)
                shutil.rmtree(r.artifact)
                for stored in set((settings.envs_root / ".resolutions").iterdir()) - kept:
                    stored.unlink()
    ratio = statistics.median(times["layered"]) / statistics.median(times["scratch"])
    md = (
        f"`benchmarks/fresh_build.py --runs {args.runs} --extra {args.extra}`: `hello-gradio` (gradio "
        f"pinned in its README) with `requirements.txt` = `{args.extra}`, on an environments directory that "
        f"holds the plain Gradio environment (the SDK layer); time of `run_build` (git export + README + "
        f"uncached resolution + engine), median of {args.runs} alternating runs (min-max). "
        f"{platform.machine()}, {os.cpu_count()} CPUs shared with other work, load average "
        f"{os.getloadavg()[0]:.1f} at the end, Python {platform.python_version()}.\n\n"
        "| fresh environment with a new requirement | time |\n|---|---|\n"
        f"| from scratch (before: `uv venv`, `uv pip sync`, bytecode for every file) | {fmt(times['scratch'])} |\n"
        f"| on the SDK layer (now: hard-link copy, `uv pip sync` of the difference, bytecode for new files) "
        f"| {fmt(times['layered'])} |\n\n"
        f"Ratio of medians {ratio:.2f}x. No-change and app-only builds do not reach the engine's install path "
        "(see `## Builds`), so they are unchanged."
    )
    print(md)
    if not args.no_write:
        print(f"written to {write_section('Fresh builds on the SDK layer', md)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
