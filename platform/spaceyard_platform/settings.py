"""Platform settings, read from ``SPACEYARD_*`` environment variables (and ``spaceyard up`` flags).

The embedded default needs nothing else: SQLite under ``DATA_DIR``, an embedded build queue, the
local runtime. Each production service is one variable: ``SPACEYARD_DATABASE_URL`` (PostgreSQL),
``SPACEYARD_REDIS_URL`` (Celery broker + Redis Streams logs), ``SPACEYARD_RUNTIME=docker|kubernetes``
and ``SPACEYARD_BUILD_ENGINE=docker``. ``docs/settings.md`` lists every field.

**One root.** :class:`Settings` is the only settings object of a platform process: it is built once (by
``spaceyard up``, ``create_app`` or a test) and passed down explicitly. It holds the builder's and the
runtime's settings (:meth:`Settings.builder`, :meth:`Settings.runtime`), read from the same environment
at the same moment, or given in code (``Settings(runtime_settings=RuntimeSettings(runtime="docker"))``).
The values both sides share — ``data_dir``, ``redis_url``, ``flavors_file`` — are the platform's: they are
copied into the parts, so one value reaches every layer. Builder and runtime never import the platform;
they receive their part by value (the embedded worker process through its environment,
:func:`spaceyard_platform.embeddedworker.worker_env`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict

from spaceyard_builder.settings import BuilderSettings
from spaceyard_runtime.settings import RuntimeSettings

from .names import default_subdomain

COMPOSED = ("builder_settings", "runtime_settings")
"""Fields holding another package's settings: given in code or built from the same variables, never
read as one variable themselves."""


class _FlatEnv(EnvSettingsSource):
    """The environment, minus the composed parts (their own fields are read from the same variables)."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        if field_name in COMPOSED:
            return None, field_name, False
        return super().get_field_value(field, field_name)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SPACEYARD_", extra="ignore")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, _FlatEnv(settings_cls), dotenv_settings, file_secret_settings

    host: str = Field("127.0.0.1", description="Address the server listens on.")
    port: int = Field(8000, description="Port the server listens on (spaceyard up --port).")

    @field_validator("data_dir", mode="after")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        """State paths are absolute from here on: the sandboxes bind-mount them and children change directory."""
        return value.absolute() if value is not None else None

    data_dir: Path = Field(Path(".data"), description="Directory that holds all state.")
    database_url: str | None = Field(
        None, description="SQLAlchemy URL; default sqlite:///DATA_DIR/spaceyard.db. PostgreSQL in production."
    )
    redis_url: str | None = Field(None, description="Redis URL for the build queue and logs (optional).")
    admin_token: str | None = Field(
        None, description="Fixes the access token of the admin user 'admin' (otherwise one is generated)."
    )
    public_url: str | None = Field(
        None, description="Base URL people use to reach Spaceyard; default http://localhost:PORT."
    )
    apps_domain: str | None = Field(
        None,
        description="Apps are served at OWNER-NAME.<apps_domain>; default 'localhost:PORT' "
        "(browsers resolve *.localhost to this machine).",
    )
    secret_key: str | None = Field(
        None, description="Key that encrypts secrets at rest; default: generated once into DATA_DIR/secret.key."
    )
    flavors_file: Path | None = Field(
        None, description="YAML file of hardware flavors; default: the built-in Hub-named flavors."
    )
    default_sleep_time: int = Field(
        172800, description="Seconds of inactivity before a Space sleeps, unless it sets its own; -1 = never."
    )
    deep_sleep_after: int = Field(
        3600,
        description="Seconds a sleeping Space sleeps lightly (a warm parent kept, the wake is a fork) before "
        "deep sleep (nothing kept, the wake is a cold start), unless it sets its own; -1 = never, 0 = at once.",
    )
    idle_check_interval: float = Field(1.0, description="Seconds between idle checks.")
    gc_interval: float = Field(
        3600.0,
        description="Seconds between collections of exported commits (and, when they live in DATA_DIR, "
        "environments) no Space uses; also refreshes spaceyard_disk_bytes. 0 = only `spaceyard gc`.",
    )
    gc_grace: float = Field(
        3600.0,
        description="Exports and environments of builds from the last this-many seconds are never collected "
        "(a replaced version may still serve its visitors).",
    )
    sleep_busy_max: float = Field(
        3600.0,
        description="A Space does not sleep while requests or websockets to it are open; if they stay open "
        "with no traffic, it sleeps anyway this many seconds after its sleep time.",
    )
    wake_timeout: float = Field(60.0, description="Seconds a request is held while its Space wakes, then 503.")
    version_grace: float = Field(
        30.0,
        description="Seconds a replaced version keeps running after a swap, serving the visitors whose "
        "session started on it (cookie spaceyard_version), so no in-flight Gradio job or session is lost.",
    )
    upstream_connect_timeout: float = Field(5.0, description="Seconds to connect to an app.")
    stream_idle_timeout: float = Field(
        300.0, description="Seconds a proxied response or websocket may stay silent before it is closed."
    )
    host_style: Literal["auto", "subdomain", "path"] = Field(
        "auto",
        description="What the API returns as a Space's `host` (gradio_client connects there): subdomain "
        "(OWNER-NAME.<apps_domain>) or path (<public_url>/apps/OWNER/NAME). auto = path while apps_domain is "
        "localhost, since most non-browser clients cannot resolve *.localhost.",
    )
    inline_upload_limit: int = Field(
        50 * 1024 * 1024,
        description="Files up to this many bytes are committed inline by huggingface_hub; larger ones go "
        "through Xet (hf_xet) or, with HF_HUB_DISABLE_XET=1, the LFS batch protocol (see docs/hub-api.md).",
    )
    xet_token_ttl: int = Field(
        900,
        description="Seconds a Xet CAS token (xet-read-token / xet-write-token) is valid; clients refresh "
        "it before it expires.",
        ge=60,
        le=86400,
    )
    forwarded_allow_ips: str | None = Field(
        None,
        description="Comma-separated addresses of a reverse proxy in front of Spaceyard whose X-Forwarded-* "
        "headers are trusted; unset = trust none (visitors cannot spoof their address).",
    )
    max_header_bytes: int = Field(
        64 * 1024,
        description="Largest request head (request line + headers) in bytes; larger ones get 431 and the "
        "connection is closed. Applies to apps too.",
    )
    header_timeout: float = Field(
        15.0,
        description="Seconds a client has to send a request's head after connecting (or after starting the next "
        "request on a kept-alive connection); then 408 and the connection is closed. 0 = no limit.",
    )
    max_pending_per_address: int = Field(
        64,
        description="Connections one client address may have open while still sending their request head "
        "(slow clients); more get 429 at once. Trusted proxies (forwarded_allow_ips) are exempt. 0 = no limit.",
    )
    keep_alive_timeout: int = Field(
        5, description="Seconds an idle kept-alive connection stays open (uvicorn timeout_keep_alive)."
    )
    max_connections: int | None = Field(
        10000,
        description="Concurrent connections and requests the server accepts before answering 503 "
        "(uvicorn limit_concurrency). Unset = no limit.",
    )
    space_hub_url: str | None = Field(
        None,
        description="HF_ENDPOINT given to Spaces on runtimes without a Hub relay. Default: the public URL. The "
        "local and Docker runtimes, and Kubernetes with SPACEYARD_KUBERNETES_HUB_RELAY_PORT (the chart), replace "
        "it with their relay's address.",
    )
    hub_relay_port: int = Field(
        7850,
        description="Port of the Hub relay inside each Space's box (local runtime): the app's HF_ENDPOINT is "
        "http://127.0.0.1:PORT there, serving only the Hub's read endpoints (docs/security.md).",
    )
    hub_relay_max_connections: int = Field(
        16, description="Connections one Space may have open to its Hub relay at once (more get 503)."
    )
    max_api_body: int = Field(
        1024 * 1024,
        description="Largest request body in bytes for the API and the web forms (JSON, form posts, "
        "validate-yaml); the endpoints below have their own limits. 413 above it.",
    )
    max_commit_body: int = Field(
        2 * 1024**3,
        description="Largest Hub API commit (NDJSON with inline base64 files), in bytes. One line (one file) "
        "is also at most 4/3 x inline_upload_limit + 1 MiB.",
    )
    max_git_body: int = Field(5 * 1024**3, description="Largest git smart HTTP request body (a push's pack), in bytes.")
    max_lfs_upload: int = Field(
        50 * 1024**3, description="Largest LFS object uploaded through the basic transfer, in bytes."
    )
    metrics_token: str | None = Field(
        None,
        description="Bearer token /metrics requires; then it lists every Space by id. Unset: /metrics is open "
        'and private Spaces appear only summed as space="(private)".',
    )
    log_format: Literal["text", "json"] = Field(
        "text",
        description="Operator event lines (push, build, stage change) on standard output: text (logfmt) or json.",
    )
    embedded_worker: bool = Field(
        True,
        description="spaceyard up also starts a build worker process, supervised: restarted when it dies, "
        "killed with the platform (turn off with external workers).",
    )
    worker_stop_grace: float = Field(
        10.0,
        description="Seconds a stopping platform lets the embedded worker's running build go on before killing "
        "it; a build cut off this way is started again by the next platform, not failed.",
    )

    storage_tiers: dict[str, int] = Field(
        {"small": 20 * 1000**3, "medium": 150 * 1000**3, "large": 1000**4},
        description="Persistent storage tiers a Space may request (request_space_storage), name -> size in "
        "bytes of its /data: the Hub's small (20 GB), medium (150 GB), large (1 TB). JSON.",
    )

    builder_settings: BuilderSettings = Field(
        default_factory=BuilderSettings,
        description="The builder's settings (its own SPACEYARD_* variables, listed below), or given in code.",
    )
    runtime_settings: RuntimeSettings = Field(
        default_factory=RuntimeSettings,
        description="The runtime's settings (its own SPACEYARD_* variables, listed below), or given in code: "
        "RuntimeSettings(runtime='docker') chooses the backend without the environment.",
    )

    @model_validator(mode="after")
    def _hand_down(self) -> Settings:
        """The shared values are the platform's (see the module docstring)."""
        self.builder_settings = self.builder_settings.model_copy(
            update={"data_dir": self.data_dir, "redis_url": self.redis_url, "hub_url": self.builder_hub_url}
        )
        self.runtime_settings = self.runtime_settings.model_copy(
            update={"data_dir": self.data_dir, "flavors_file": self.flavors_file}
        )
        return self

    @property
    def builder_hub_url(self) -> str:
        """Where this platform's build workers reach its Hub (``preload_from_hub``): the builder part's own
        ``SPACEYARD_HUB_URL``, else this server's own address (the embedded worker runs on this machine)."""
        if self.builder_settings.hub_url:
            return self.builder_settings.hub_url
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{self.port}"

    @property
    def resolved_public_url(self) -> str:
        return (self.public_url or f"http://localhost:{self.port}").rstrip("/")

    @property
    def resolved_apps_domain(self) -> str:
        return self.apps_domain or f"localhost:{self.port}"

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'spaceyard.db').resolve()}"

    def app_url(self, space_id: str, style: str | None = None, label: str | None = None) -> str:
        """Where a Space's app is served; ``style`` overrides host_style (``subdomain`` for browsers);
        ``label`` is the Space's stored subdomain (``Space.app_label``)."""
        style = style or self.host_style
        if style == "auto":
            style = "path" if self.resolved_apps_domain.split(":")[0] == "localhost" else "subdomain"
        if style == "path":
            return f"{self.resolved_public_url}/apps/{space_id}"
        scheme = self.resolved_public_url.split("://")[0]
        return f"{scheme}://{label or default_subdomain(space_id)}.{self.resolved_apps_domain}"

    def builder(self) -> BuilderSettings:
        """The builder's part of this root (the same object every call)."""
        return self.builder_settings

    def runtime(self) -> RuntimeSettings:
        """The runtime's part of this root (the same object every call)."""
        return self.runtime_settings
