"""Runtime settings, read from ``SPACEYARD_*`` environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class RuntimeSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SPACEYARD_", extra="ignore")

    runtime: Literal["local", "docker", "kubernetes"] = Field(
        "local", description="Where Spaces run: local processes, Docker containers, or Kubernetes."
    )
    data_dir: Path = Field(Path(".data"), description="Root of all state (shared with the platform).")
    app_host: str = Field("127.0.0.1", description="Address local apps bind to.")
    readiness_interval: float = Field(0.05, description="Seconds between readiness probes (<= 0.05).")
    start_timeout: float = Field(300.0, description="Seconds an app may take to answer HTTP before RUNTIME_ERROR.")
    stop_grace: float = Field(5.0, description="Seconds between SIGTERM and SIGKILL when stopping an app.")
    fast_wake: bool = Field(True, description="Local runtime: fork apps from a warm parent that has imported the SDK.")
    docker_url: str = Field("unix:///var/run/docker.sock", description="Docker engine socket.")
    kubernetes_namespace: str = Field("spaceyard-spaces", description="Namespace Spaces run in.")

    @property
    def runtime_dir(self) -> Path:
        return self.data_dir / "runtime"
