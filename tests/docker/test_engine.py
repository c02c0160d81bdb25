"""DockerEngine against a real dockerd: the samples build, caching works, secrets stay secret."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import docker
import pytest

from spaceyard_builder.api import BuildResult
from spaceyard_builder.engines.docker import DockerEngine, generated_dockerfile
from spaceyard_builder.settings import BuilderSettings
from spaceyard_builder.spaceconfig import parse_readme

from .conftest import SAMPLES, BuildFn, git_commit

pytestmark = pytest.mark.docker


def test_streamlit_sample_builds_an_image(streamlit_build: BuildResult, docker_client: docker.DockerClient) -> None:
    assert streamlit_build.sdk == "streamlit" and streamlit_build.app_port == 7860
    image = docker_client.images.get(streamlit_build.artifact)
    config = image.attrs["Config"]
    assert config["User"] == "1000"
    assert config["WorkingDir"] == "/home/user/app"
    env = dict(e.split("=", 1) for e in config["Env"])
    assert env["HOME"] == "/home/user" and env["SYSTEM"] == "spaces" and env["PYTHONPATH"] == "/home/user/app"
    assert "7860/tcp" in config["ExposedPorts"]
    assert config["Cmd"][:3] == ["streamlit", "run", "app.py"]


def test_docker_sample_builds_with_base_image_and_variables(
    docker_build: BuildResult, docker_client: docker.DockerClient, base_image: str
) -> None:
    assert docker_build.sdk == "docker" and docker_build.app_port == 8080
    image = docker_client.images.get(docker_build.artifact)
    env = dict(e.split("=", 1) for e in image.attrs["Config"]["Env"])
    assert env["GREETING"] == "Howdy"  # the Space variable arrived as a build arg
    base = docker_client.images.get(base_image)
    assert image.attrs["RootFS"]["Layers"][0] == base.attrs["RootFS"]["Layers"][0]


def test_static_sample_needs_no_image(static_build: BuildResult) -> None:
    assert static_build.sdk == "static"
    assert static_build.artifact.startswith("static:")
    assert (Path(static_build.artifact.removeprefix("static:")) / "index.html").exists()


def test_generated_dockerfile_puts_dependencies_before_code(tmp_path: Path) -> None:
    src = tmp_path / "s"
    shutil.copytree(SAMPLES / "hello-streamlit", src)
    (src / "requirements.txt").write_text("six\n")
    (src / "pre-requirements.txt").write_text("pip\n")
    (src / "packages.txt").write_text("curl\n")
    text = generated_dockerfile(parse_readme((src / "README.md").read_text()), src, BuilderSettings())
    order = [text.index(s) for s in ("packages.txt", "pre-requirements.txt", "-r /tmp/requirements.txt",
                                     "streamlit==1.67.0", "COPY --chown=1000:1000 . /home/user/app")]  # fmt: skip
    assert order == sorted(order)
    assert "useradd -m -u 1000 user" in text and "USER 1000" in text and "WORKDIR /home/user/app" in text
    assert text.index("apt-get") > text.index("USER root")


def test_no_change_rebuild_is_a_cache_hit_without_docker_build(
    streamlit_build: BuildResult,
    build: BuildFn,
    sample_repo: Callable[[str], tuple[str, str, Path]],
    engine: DockerEngine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_build(*args: object, **kwargs: object) -> int:
        raise AssertionError("docker build must not run for unchanged input")

    monkeypatch.setattr(engine, "_run", no_build)
    repo, sha, _ = sample_repo("hello-streamlit")
    result, log = build(repo, sha, "samples/hello-streamlit")
    assert result.ok and result.cache_hit
    assert result.artifact == streamlit_build.artifact
    assert any("Reusing image" in line for line in log)


def test_app_only_commit_reuses_dependency_layers(
    streamlit_build: BuildResult,
    build: BuildFn,
    engine: DockerEngine,
    docker_client: docker.DockerClient,
    tmp_path: Path,
) -> None:
    work = tmp_path / "hello-streamlit"
    shutil.copytree(SAMPLES / "hello-streamlit", work)
    app = work / "app.py"
    original = app.read_text()
    # Unique app code per run, so both images are really built now (not found from a previous run).
    app.write_text(original + f"\nst.write('build {uuid.uuid4().hex}')\n")
    repo, sha = git_commit(work)
    first, log1 = build(repo, sha, "samples/hello-streamlit-app-change")
    assert first.ok and not first.cache_hit, "\n".join(log1[-30:])
    app.write_text(original + f"\nst.write('build {uuid.uuid4().hex}')\n")
    repo, sha = git_commit(work, Path(repo), "app change only")
    second, log = build(repo, sha, "samples/hello-streamlit-app-change")
    assert second.ok and not second.cache_hit, "\n".join(log[-30:])
    assert second.artifact != first.artifact
    before, after = engine.layers(first.artifact), engine.layers(second.artifact)
    # Every layer but the app code's is the same layer: nothing was reinstalled.
    assert len(before) == len(after)
    assert after[:-1] == before[:-1]
    assert after[-1] != before[-1]
    for image in (first.artifact, second.artifact):  # unique per run: do not let them pile up
        docker_client.images.remove(image)
    install_steps = {line.split()[0] for line in log if "uv pip install" in line and line.startswith("#")}
    assert install_steps
    for step in install_steps:  # each install step of the second build was CACHED, none ran
        assert f"{step} CACHED" in log
    assert any("COPY --chown=1000:1000 . /home/user/app" in line for line in log)


def test_secrets_never_reach_image_history_or_log(
    build: BuildFn, engine: DockerEngine, docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    secret = f"sy-secret-{uuid.uuid4().hex}"
    work = tmp_path / "secret-space"
    work.mkdir()
    (work / "README.md").write_text("---\ntitle: Secret\nsdk: docker\napp_port: 8080\n---\n")
    (work / "Dockerfile").write_text(
        "ARG BASE_IMAGE=python:3.11-slim\n"
        "FROM ${BASE_IMAGE}\n"
        "ARG PUBLIC_VAR=unset\n"
        "COPY nonce.txt /nonce.txt\n"
        "RUN --mount=type=secret,id=API_TOKEN,mode=0444,required=true "
        'echo "token is $(cat /run/secrets/API_TOKEN)" && test -s /run/secrets/API_TOKEN\n'
        'RUN echo "public is $PUBLIC_VAR" > /public.txt\n'
        'CMD ["python3", "-m", "http.server", "8080"]\n'
    )
    # Secret values are not part of the cache key (BuildKit's neither): a nonce makes this a real build.
    (work / "nonce.txt").write_text(uuid.uuid4().hex)
    repo, sha = git_commit(work)
    result, log = build(
        repo, sha, "tests/secret-space", secrets={"API_TOKEN": secret}, variables={"PUBLIC_VAR": "visible"}
    )
    assert result.ok, "\n".join(log[-30:])
    text = "\n".join(log)
    assert secret not in text
    assert "token is ***" in text  # the build used it, and the log shows it scrubbed
    history = subprocess.run(
        ["docker", "history", "--no-trunc", result.artifact], capture_output=True, text=True, check=True
    ).stdout
    assert secret not in history and "API_TOKEN" in history
    inspect = json.dumps(docker_client.images.get(result.artifact).attrs)
    assert secret not in inspect
    # Not in any layer either: search the whole exported image.
    found = False
    tail = b""
    for chunk in docker_client.images.get(result.artifact).save(chunk_size=1 << 20):
        if secret.encode() in tail + chunk:
            found = True
            break
        tail = chunk[-len(secret) :]
    assert not found
    docker_client.images.remove(result.artifact)


def test_concurrent_builds_of_the_same_input_coalesce(
    engine: DockerEngine, docker_client: docker.DockerClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    from spaceyard_builder.api import BuildRequest

    src = tmp_path / "same"
    src.mkdir()
    (src / "README.md").write_text("---\ntitle: Same\nsdk: docker\napp_port: 8080\n---\n")
    (src / "nonce.txt").write_text(uuid.uuid4().hex)
    (src / "Dockerfile").write_text(
        "ARG BASE_IMAGE=python:3.11-slim\nFROM ${BASE_IMAGE}\nCOPY nonce.txt /nonce.txt\nRUN sleep 2\n"
        'CMD ["python3", "-m", "http.server", "8080"]\n'
    )
    config = parse_readme((src / "README.md").read_text())
    real_run = engine._run
    calls: list[int] = []

    def counting_run(*args: object, **kwargs: object) -> int:
        calls.append(1)
        return real_run(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(engine, "_run", counting_run)
    results: list[object] = []
    logs: list[list[str]] = [[], []]

    def one(i: int) -> None:
        request = BuildRequest(build_id=f"c{i}", space_id=f"t/same{i}", revision="1" * 40, repo="", log_key=f"k{i}")
        results.append(engine.build(request, src, config, logs[i].append))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1  # one docker build; the other waited and reused its image
    ids = {r.id for r in results}  # type: ignore[attr-defined]
    assert len(ids) == 1
    assert sorted(r.cache_hit for r in results) == [False, True]  # type: ignore[attr-defined]
    assert any("being built by another build" in line for log in logs for line in log)
    docker_client.images.remove(ids.pop())


def test_base_image_follows_python_version_when_templated() -> None:
    engine = DockerEngine(BuilderSettings(docker_base_image="python:{python_version}-slim"))
    assert engine.base_image(parse_readme("---\nsdk: gradio\npython_version: '3.10'\n---\n")) == "python:3.10-slim"
    assert engine.base_image(parse_readme("---\nsdk: gradio\n---\n")) == "python:3.11-slim"
    fixed = DockerEngine(BuilderSettings(docker_base_image="spaceyard/python:3.11-bookworm"))
    assert fixed.base_image(parse_readme("---\nsdk: gradio\npython_version: '3.10'\n---\n")).endswith("3.11-bookworm")


def test_a_cancelled_docker_build_step_is_killed_at_once(engine: DockerEngine) -> None:
    """Deleting a Space cancels its build (``spaceyard_builder.cancel``): the docker CLI is killed within a
    poll or two (BuildKit stops the build when its client goes), not at the build timeout."""
    lines: list[str] = []
    asked = time.monotonic() + 0.5
    rc = engine._run(["sleep", "600"], dict(os.environ), lines.append, lambda: time.monotonic() > asked)
    assert rc == -signal.SIGKILL  # killed by the cancel watch (the build timeout is far away)
