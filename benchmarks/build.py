"""Build times of the local engine (uv environments) and the docker engine (BuildKit images), side by side.

    .venv/bin/python benchmarks/build.py [--runs 3] [--sample hello-streamlit] [--engines local,docker]

Three scenarios, each timed through the real pipeline (``run_build``: git export, README, engine), the
median of ``--runs`` runs reported with the range:

* **fresh**: an artifact that does not exist yet. Local: a new, empty environments directory. Docker:
  ``no_cache`` (``docker build --no-cache``). Both keep their package download cache warm (uv's cache;
  the BuildKit cache mount), so this is "install everything", not "download everything".
* **app-only**: a new commit that only changes ``app.py``. Local: the environment id is unchanged, so it
  is a cache hit. Docker: a new image whose dependency layers are all reused; only ``COPY`` runs.
* **no-change**: the same commit built again: both engines find their artifact by content hash and
  return without installing or calling ``docker build``.

Docker needs a running dockerd and the base image (``python -m spaceyard_builder.baseimage``, done by
this script if missing). The table goes to ``docs/benchmarks.md`` under ``## Builds``.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from _report import write_section  # noqa: E402

from spaceyard_builder.api import BuildEngine, BuildRequest, BuildResult  # noqa: E402
from spaceyard_builder.baseimage import DEFAULT_TAG, ensure_base_image  # noqa: E402
from spaceyard_builder.engines.docker import DockerEngine  # noqa: E402
from spaceyard_builder.engines.local import LocalEngine  # noqa: E402
from spaceyard_builder.logs import FileLogStore  # noqa: E402
from spaceyard_builder.pipeline import run_build  # noqa: E402
from spaceyard_builder.settings import BuilderSettings  # noqa: E402

SCENARIOS = ("fresh", "app-only", "no-change")


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


class Repo:
    """A working copy of the sample plus a bare repository the pipeline exports from."""

    def __init__(self, sample: Path, root: Path) -> None:
        self.work = root / "work"
        shutil.copytree(sample, self.work)
        self.bare = root / "repo.git"
        git("init", "-q", "-b", "main", cwd=self.work)
        git("init", "-q", "--bare", str(self.bare), cwd=root)
        self.sha = self.commit("initial")

    def commit(self, message: str) -> str:
        git("add", "-A", ".", cwd=self.work)
        git("-c", "user.email=b@example.com", "-c", "user.name=bench", "commit", "-q", "--allow-empty", "-m", message,
            cwd=self.work)  # fmt: skip
        git("push", "-q", "--force", str(self.bare), "HEAD:refs/heads/main", cwd=self.work)
        self.sha = git("rev-parse", "HEAD", cwd=self.work)
        return self.sha

    def change_app(self) -> str:
        app = self.work / "app.py"
        app.write_text(app.read_text() + f"\n# benchmark edit {uuid.uuid4().hex}\n")
        return self.commit("app-only change")


def timed_build(
    engine: BuildEngine, settings: BuilderSettings, repo: Repo, sha: str, *, no_cache: bool = False
) -> tuple[float, BuildResult]:
    store = FileLogStore(settings.data_dir / "logs")
    build_id = f"bench-{uuid.uuid4().hex[:10]}"
    request = BuildRequest(
        build_id=build_id,
        space_id="bench/space",
        revision=sha,
        repo=str(repo.bare),
        log_key=f"build/{build_id}",
        no_cache=no_cache,
    )
    start = time.perf_counter()
    result = run_build(request, settings, store, engine=engine)
    elapsed = time.perf_counter() - start
    if not result.ok:
        tail = "\n".join(e.data for e in store.read(request.log_key)[-30:])
        raise SystemExit(f"build failed: {result.stage} {result.reason}\n{tail}")
    return elapsed, result


def bench_engine(
    name: str, make: Callable[[Path], tuple[BuildEngine, BuilderSettings]], sample: Path, runs: int
) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {s: [] for s in SCENARIOS}
    for i in range(runs):
        with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as tmp:
            root = Path(tmp)
            engine, settings = make(root)
            repo = Repo(sample, root / "repo")
            t, r = timed_build(engine, settings, repo, repo.sha, no_cache=name == "docker")
            times["fresh"].append(t)
            assert not r.cache_hit
            fresh_artifact = r.artifact
            t, r = timed_build(engine, settings, repo, repo.change_app())
            times["app-only"].append(t)
            t, r = timed_build(engine, settings, repo, repo.sha)
            times["no-change"].append(t)
            assert r.cache_hit
            if isinstance(engine, DockerEngine):  # --no-cache layers are not shared: do not keep them
                for artifact in {r.artifact, fresh_artifact}:
                    engine.client.images.remove(artifact)
        print(f"{name} run {i + 1}/{runs}: " + ", ".join(f"{s} {times[s][-1]:.2f}s" for s in SCENARIOS), flush=True)
    return times


def fmt(values: list[float]) -> str:
    if not values:
        return "-"

    def one(v: float) -> str:
        return f"{v * 1000:.0f} ms" if v < 1 else f"{v:.2f} s"

    return f"**{one(statistics.median(values))}** ({one(min(values))} - {one(max(values))})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sample", default="hello-streamlit")
    parser.add_argument("--engines", default="local,docker")
    parser.add_argument("--base-image", default=DEFAULT_TAG)
    parser.add_argument("--no-write", action="store_true", help="print the table, do not touch docs/benchmarks.md")
    args = parser.parse_args()
    sample = ROOT / "sample_spaces" / args.sample
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]

    def make_local(root: Path) -> tuple[BuildEngine, BuilderSettings]:
        settings = BuilderSettings(data_dir=root / "data", env_dir=root / "envs")
        return LocalEngine(settings), settings

    def make_docker(root: Path) -> tuple[BuildEngine, BuilderSettings]:
        # Its own image repository: never re-tags an image the tests or a running platform use.
        settings = BuilderSettings(
            data_dir=root / "data",
            build_engine="docker",
            docker_base_image=args.base_image,
            docker_image_repository="spaceyard/bench",
        )
        return DockerEngine(settings), settings

    if "docker" in engines:
        ensure_base_image(args.base_image)
    results: dict[str, dict[str, list[float]]] = {}
    for name in engines:
        results[name] = bench_engine(name, make_local if name == "local" else make_docker, sample, args.runs)

    labels = {"local": "local engine (uv environment)", "docker": "docker engine (BuildKit image)"}
    what = {
        "fresh": "fresh build (new artifact, warm download cache)",
        "app-only": "app-only commit",
        "no-change": "no-change rebuild (cache hit)",
    }
    header = "| scenario | " + " | ".join(labels[e] for e in engines) + " |"
    lines = [header, "|---|" + "---|" * len(engines)]
    for s in SCENARIOS:
        lines.append(f"| {what[s]} | " + " | ".join(fmt(results[e][s]) for e in engines) + " |")
    cpu = platform.processor() or platform.machine()
    md = (
        f"`benchmarks/build.py --runs {args.runs} --sample {args.sample}`: sample `{args.sample}` "
        f"(sdk pinned in its README), time of `run_build` (git export + README + engine), median of "
        f"{args.runs} runs (min-max). {cpu}, {__import__('os').cpu_count()} CPUs, Python "
        f"{platform.python_version()}; docker base image `{args.base_image}`.\n\n" + "\n".join(lines) + "\n\n"
        "* fresh: local = new environments directory, uv cache warm; docker = `docker build --no-cache`, "
        "BuildKit uv cache mount warm. Neither downloads much; both install and compile bytecode.\n"
        "* app-only: local reuses the environment (the code is not part of it); docker builds a new image "
        "whose dependency layers are all `CACHED` (only `COPY` of the app runs).\n"
        "* no-change: both engines compute the content hash, find the artifact and return; docker does not "
        "call `docker build` (goal <= 2 s)."
    )
    print(md)
    if not args.no_write:
        print(f"written to {write_section('Builds', md)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
