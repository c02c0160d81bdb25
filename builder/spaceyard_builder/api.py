"""The build contract: what the platform asks for and what it gets back.

:class:`BuildRequest` and :class:`BuildResult` cross the task queue as JSON. A :class:`BuildEngine`
turns an exported source tree plus its validated :class:`~spaceyard_builder.spaceconfig.SpaceConfig`
into an *artifact* a runtime can run:

* it is content-addressed: the same inputs give the same artifact id, and building an artifact that
  already exists is a cache hit that installs nothing;
* concurrent builds of the same artifact coalesce (one does the work, the others wait and reuse it);
* every line of progress goes to the ``log`` callable; failures raise a
  :class:`~spaceyard_builder.errors.BuilderError` subclass whose message says what went wrong;
* it never writes secrets into the artifact or the log.

Engines: ``local`` (uv environments, :mod:`spaceyard_builder.engines.local`) and ``docker``
(:mod:`spaceyard_builder.engines.docker`), chosen by ``BuilderSettings.build_engine``.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from .settings import BuilderSettings
from .spaceconfig import SpaceConfig

BuildLog = Callable[[str], None]


class BuildRequest(BaseModel):
    build_id: str
    space_id: str
    revision: str = Field(description="Full commit sha to build: exactly the pushed commit.")
    repo: str = Field(description="Path of the bare git repository, or a git URL the worker can fetch.")
    log_key: str
    variables: dict[str, str] = Field(default_factory=dict)
    secrets: dict[str, str] = Field(
        default_factory=dict,
        description="Build secrets (docker: secret mounts). Never sent through the queue: the worker fills them "
        "in from its SecretSource using secrets_ref.",
    )
    secrets_ref: str | None = Field(
        None, description="Whose secrets the build gets (the Space's id); resolved by the worker's SecretSource."
    )
    no_cache: bool = False
    source_folder: str = Field(
        "",
        description="Folder of the Space's exported commits under DATA_DIR/sources, named by the platform "
        "(spaceyard_platform.names.space_folder); '' (a request queued by an older platform): derived from "
        "space_id by the same rule.",
    )

    def queue_message(self) -> dict[str, Any]:
        """What crosses the queue (and rests in the broker): everything but the secret values."""
        return self.model_dump(exclude={"secrets"})


class BuildResult(BaseModel):
    build_id: str
    space_id: str
    revision: str
    ok: bool
    stage: str = Field(description="Hub stage on failure (CONFIG_ERROR, NO_APP_FILE, BUILD_ERROR); '' on success.")
    reason: str = ""
    artifact: str = ""
    app_dir: str | None = None
    config: dict[str, Any] = Field(default_factory=dict, description="The whole README front matter.")
    sdk: str = ""
    app_file: str = ""
    app_port: int = 7860
    cache_hit: bool = False
    duration: float = 0.0


class Artifact(BaseModel):
    id: str
    cache_hit: bool = False


class SecretSource(abc.ABC):
    """Where a build worker gets a build's secrets, so that they never travel or rest in the queue.

    Contract: ``secrets(ref)`` returns the current, decrypted secrets of the Space ``ref``
    (``BuildRequest.secrets_ref``) as ``{KEY: value}``, or raises when it cannot read them; it keeps no copy
    and logs no value. Chosen by ``BuilderSettings.secret_source`` ("module:Class", constructed with the
    builder settings); the default reads the platform's database with the platform's secret key.
    """

    def __init__(self, settings: BuilderSettings) -> None:
        self.settings = settings

    @abc.abstractmethod
    def secrets(self, ref: str) -> dict[str, str]: ...

    def hub_token(self, space_id: str) -> str | None:
        """The Space's own read-only Hub token (``owner/name``), for ``preload_from_hub``; ``None``: none."""
        return None


class BuildEngine(abc.ABC):
    """Base class of build engines. See the module docstring for the contract."""

    name = "abstract"

    def __init__(self, settings: BuilderSettings) -> None:
        self.settings = settings

    @abc.abstractmethod
    def build(self, request: BuildRequest, source: Path, config: SpaceConfig, log: BuildLog) -> Artifact: ...

    def artifact_exists(self, artifact_id: str) -> bool:
        return False

    def warm_base(self, config: SpaceConfig) -> str | None:
        """An artifact already on this machine that a build of ``config`` starts from (the local engine's
        SDK layer), found without building, resolving or any network: the platform warms the Space's
        runtime on it while the build runs (a build that ends on it, a Space whose requirements the SDK
        already implies, then starts by a fork). None if there is none. Default: None."""
        return None
