"""Builder settings, read from ``SPACEYARD_*`` environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class BuilderSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SPACEYARD_", extra="ignore")

    @field_validator("data_dir", "env_dir", "oci_cache_dir", mode="after")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        """State paths are absolute from here on: the sandboxes bind-mount them and children change directory."""
        return value.absolute() if value is not None else None

    data_dir: Path = Field(Path(".data"), description="Root of all state (shared with the platform).")
    build_engine: Literal["local", "docker", "oci"] = Field(
        "local",
        description="local: content-addressed uv environments; docker: container images built by a Docker "
        "engine; oci: container images assembled without a daemon and pushed to SPACEYARD_REGISTRY (Kubernetes; "
        "no Docker socket, no privileges; Gradio/Streamlit/static Spaces).",
    )
    redis_url: str | None = Field(
        None,
        description="Redis URL. When set, builds are Celery tasks on Redis and logs go to Redis Streams; "
        "otherwise an embedded SQLite broker and file logs are used.",
    )
    env_dir: Path | None = Field(
        None, description="Where local-engine environments live (default DATA_DIR/envs). Shareable."
    )
    uv_cache_dir: Path | None = Field(
        None,
        description="uv cache shared by all builds (default: uv-cache-build next to the environments directory, "
        "owned by the build user; uv's own with build_sandbox=none).",
    )
    build_sandbox: Literal["bwrap", "none"] = Field(
        "bwrap",
        description="Local engine: walls around build-time code (uv, setup.py). bwrap: bubblewrap namespaces as an "
        "unprivileged build user seeing only the commit, its environment and the uv cache (needs root); none: a "
        "clean environment only. See docs/security.md.",
    )
    default_sdk_versions: dict[str, str] = Field(
        default_factory=lambda: {"gradio": "6.31.0", "streamlit": "1.67.0"},
        description="SDK version installed when a Space does not set sdk_version.",
    )
    build_timeout: float = Field(
        1800.0,
        description="Seconds a build may take once a worker runs it: installers are killed and the build "
        "fails (BUILD_ERROR saying so) after that; the platform also stops waiting for it then.",
    )
    build_queue_timeout: float = Field(
        3600.0,
        description="Seconds a build may wait in the queue for a free worker before the platform fails it.",
    )
    build_attempts: int = Field(
        3,
        description="Times a build is started again after its worker died under it (killed, out of memory, "
        "restarted) before it fails with BUILD_ERROR saying so.",
    )
    transient_retries: int = Field(
        2, description="Times an infrastructure error (engine unreachable) is retried within a build, 1, 2, 4 s apart."
    )
    docker_url: str = Field("unix:///var/run/docker.sock", description="Docker engine socket.")
    docker_base_image: str = Field(
        "python:3.11-slim",
        description="Base image for generated Gradio/Streamlit Dockerfiles (and BASE_IMAGE build arg of Docker "
        "Spaces); '{python_version}' in it is replaced by the README's python_version (default 3.11), e.g. "
        "python:{python_version}-slim. The oci engine reads it from a registry: a name without a registry host "
        "is looked up in SPACEYARD_REGISTRY (push or mirror it there).",
    )
    registry: str | None = Field(None, description="Registry to push images to (Kubernetes); none = local.")
    registry_push: str | None = Field(
        None,
        description="oci engine: host[:port] the worker pushes to when it reaches the registry by another name "
        "than the nodes pull from (SPACEYARD_REGISTRY, the name in image references), e.g. a Service name.",
    )
    registry_plain_http: bool = Field(
        False, description="Talk plain HTTP to SPACEYARD_REGISTRY (oci engine; loopback registries always do)."
    )
    registry_username: str | None = Field(
        None, description="oci engine: user for the registry (HTTP Basic, or to get a Bearer token); none = anonymous."
    )
    registry_password: SecretStr | None = Field(None, description="oci engine: password or token of registry_username.")
    oci_cache_dir: Path | None = Field(
        None,
        description="oci engine: where the base image's unpacked filesystem and the uv cache live (default "
        "DATA_DIR/oci). Shareable between workers of one machine; the index of built environment layers is in "
        "the registry.",
    )
    docker_cli: str | None = Field(
        None,
        description="docker CLI used for BuildKit builds (needs `docker buildx` or a CLI older than 23 with "
        "built-in BuildKit); default: the first of `docker`, /usr/bin/docker that can do it.",
    )
    docker_image_repository: str = Field(
        "spaceyard/space", description="Repository of built Space images; the tag is the content hash."
    )
    docker_build_network: str = Field(
        "host",
        description="Network of RUN steps in Dockerfile builds (docker engine; oci engine's buildah: 'host' = the "
        "worker's, 'none' = no network at all). pip needs the network; 'host' works everywhere.",
    )
    dockerfile_build_max_bytes: int = Field(
        20 * 2**30,
        description="oci engine, Docker Spaces: disk a Dockerfile build (buildah's storage, base images included) "
        "may fill; measured while it runs, the build ends with BUILD_ERROR past it.",
    )
    docker_build_ca_bundle: Path | None = Field(
        None,
        description="CA bundle mounted (as a BuildKit secret, never in a layer) into the install steps of generated "
        "Dockerfiles, for egress through a TLS-intercepting proxy. Not needed with the debootstrapped base image.",
    )
    celery_visibility_timeout: float = Field(
        30.0,
        description="Redis broker: seconds after which the build task of a worker that stopped sending "
        "keep-alives (it died) is delivered again to another worker. A running build renews its message "
        "every third of this, so builds may take longer than it.",
    )
    celery_queue: str = Field("spaceyard-builds", description="Celery queue build tasks are sent to and consumed from.")
    engine_factory: str | None = Field(
        None,
        description="'module:callable' returning a BuildEngine for these settings, used instead of build_engine "
        "(plugins; tests use it to run an instrumented engine inside a real worker).",
    )
    secret_source: str = Field(
        "spaceyard_platform.buildsecrets:DatabaseSecretSource",
        description="'module:Class' (a spaceyard_builder.api.SecretSource) from which a worker reads a build's "
        "secrets; the queue carries only the Space's id. The default reads the platform's database "
        "(SPACEYARD_DATABASE_URL or DATA_DIR/spaceyard.db) with its secret key (SPACEYARD_SECRET_KEY or "
        "DATA_DIR/secret.key), so workers need both.",
    )
    hub_url: str | None = Field(
        None,
        description="Where build workers reach this Spaceyard's Hub API (preload_from_hub). The embedded "
        "worker gets the platform's own address on this machine; external workers must set it.",
    )
    hub_cache_max_bytes: int = Field(
        20 * 1024**3,
        description="Size limit of the shared Hub file cache (DATA_DIR/hubcache: preload_from_hub downloads, "
        "stored once by content for every Space); least recently used files past it are evicted.",
    )
    yaml_max_bytes: int = Field(
        64 * 1024,
        description="Largest YAML accepted from users (README front matter, /api/validate-yaml), in bytes; "
        "aliases, nesting and the expanded size are bounded too (docs/security.md).",
    )
    log_max_bytes: int = Field(
        16 * 1024 * 1024,
        description="File log store: a log (a Space's app output since it started, a build) keeps about this "
        "many bytes; past half of it the older half is dropped (0 = no limit). Redis: see redis_log_maxlen.",
    )
    redis_log_prefix: str = Field("spaceyard:log:", description="Prefix of every Redis key of the Redis log store.")
    redis_log_maxlen: int = Field(
        100_000, description="Redis log store: a live log stream keeps at most about this many lines (XADD MAXLEN ~)."
    )

    @property
    def oci_root(self) -> Path:
        return self.oci_cache_dir or (self.data_dir / "oci")

    @property
    def envs_root(self) -> Path:
        return self.env_dir or (self.data_dir / "envs")

    @property
    def log_store(self) -> Literal["file", "redis"]:
        return "redis" if self.redis_url else "file"
