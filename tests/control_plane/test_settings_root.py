"""One settings root: the platform's Settings holds the builder's and runtime's parts, read once, handed down
by value (to the embedded worker through its environment), and choosable in code without the environment."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from starlette.types import Message

from spaceyard_builder.settings import BuilderSettings
from spaceyard_platform.app import create_app
from spaceyard_platform.embeddedworker import worker_env
from spaceyard_platform.settings import Settings
from spaceyard_runtime.settings import RuntimeSettings
from tests.control_plane.doubles import FakeRuntime


def test_parts_come_from_the_same_variables(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SPACEYARD_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SPACEYARD_RUNTIME", "docker")
    monkeypatch.setenv("SPACEYARD_BUILD_TIMEOUT", "12")
    monkeypatch.setenv("SPACEYARD_REDIS_URL", "redis://127.0.0.1:1/0")
    settings = Settings()
    assert settings.runtime().runtime == "docker"
    assert settings.builder().build_timeout == 12.0
    assert settings.builder() is settings.builder(), "one builder part, not one per call"
    assert settings.builder().data_dir == settings.runtime().data_dir == settings.data_dir == tmp_path
    assert settings.builder().redis_url == "redis://127.0.0.1:1/0"
    monkeypatch.setenv("SPACEYARD_BUILD_TIMEOUT", "99")
    assert settings.builder().build_timeout == 12.0, "read once, when the root is built"


def test_runtime_and_engine_chosen_in_code(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SPACEYARD_RUNTIME", "local")
    monkeypatch.setenv("SPACEYARD_BUILD_ENGINE", "local")
    monkeypatch.setenv("SPACEYARD_RUNTIME_SETTINGS", "not json")  # the parts are never one variable
    settings = Settings(
        data_dir=tmp_path,
        flavors_file=tmp_path / "flavors.yaml",
        runtime_settings=RuntimeSettings(runtime="kubernetes", data_dir=tmp_path / "ignored"),
        builder_settings=BuilderSettings(build_engine="docker", redis_url="redis://ignored"),
    )
    assert settings.runtime().runtime == "kubernetes"
    assert settings.builder().build_engine == "docker"
    # the shared values are the platform's
    assert settings.runtime().data_dir == tmp_path
    assert settings.runtime().flavors_file == tmp_path / "flavors.yaml"
    assert settings.builder().redis_url is None


def test_worker_gets_the_builder_part_by_value(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SPACEYARD_ENV_DIR", str(tmp_path / "stale"))
    part = BuilderSettings(
        build_engine="docker",
        build_timeout=42.5,
        default_sdk_versions={"gradio": "1.2.3"},
        env_dir=None,
        engine_factory="x.y:z",
    )
    env = worker_env(Settings(data_dir=tmp_path, builder_settings=part))
    assert "SPACEYARD_ENV_DIR" not in env, "a value the root leaves unset is unset in the worker too"
    monkeypatch.delenv("SPACEYARD_ENV_DIR")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    seen = BuilderSettings()  # what the worker process reads at start
    assert seen.model_dump() == {**part.model_dump(), "data_dir": tmp_path}


class ClosingRuntime(FakeRuntime):
    def __init__(self) -> None:
        super().__init__()
        self.closed = False

    async def aclose(self) -> None:
        self.closed = True


async def test_app_factory_takes_a_runtime_instance(tmp_path: Path) -> None:
    runtime = ClosingRuntime()
    app = create_app(Settings(data_dir=tmp_path, embedded_worker=False, gc_interval=0), runtime=runtime)
    received: asyncio.Queue[Message] = asyncio.Queue()
    sent: asyncio.Queue[Message] = asyncio.Queue()
    await received.put({"type": "lifespan.startup"})

    async def receive() -> Message:
        return await received.get()

    async def send(message: Message) -> None:
        await sent.put(message)

    async def serve() -> None:
        await app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, receive, send)

    task = asyncio.create_task(serve())
    assert (await asyncio.wait_for(sent.get(), 30))["type"] == "lifespan.startup.complete"
    assert not runtime.closed
    await received.put({"type": "lifespan.shutdown"})
    assert (await asyncio.wait_for(sent.get(), 30))["type"] == "lifespan.shutdown.complete"
    await task
    assert runtime.closed, "the app ran (and closed) the runtime it was given, not one from the environment"
