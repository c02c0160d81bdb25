"""The Space configuration: YAML front matter of the repository's ``README.md``, as on Hugging Face.

:func:`parse_readme` never guesses silently: anything it cannot read raises
:class:`~spaceyard_builder.errors.ConfigError` with a reason a person can act on. Unknown keys are kept
(``card_data`` is the whole front matter, served as ``cardData``).
"""

from __future__ import annotations

import re
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from . import safeyaml
from .errors import ConfigError

SDKS = ("gradio", "streamlit", "docker", "static")
COLORS = ("red", "yellow", "green", "blue", "indigo", "purple", "pink", "gray")
ALLOWED_CUSTOM_HEADERS = (
    "cross-origin-embedder-policy",
    "cross-origin-opener-policy",
    "cross-origin-resource-policy",
)
DEFAULT_APP_FILE = {"gradio": "app.py", "streamlit": "app.py", "static": "index.html", "docker": ""}

_FRONT_MATTER = re.compile(r"\A\ufeff?---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|\Z)", re.DOTALL)


class SpaceConfig(BaseModel):
    """Validated Space configuration. Field names follow the Hub's keys."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    title: str | None = None
    emoji: str | None = None
    colorFrom: str | None = None
    colorTo: str | None = None
    sdk: Literal["gradio", "streamlit", "docker", "static"]
    sdk_version: str | None = None
    python_version: str | None = None
    app_file: str | None = None
    app_port: int = Field(7860, ge=1, le=65535)
    base_path: str | None = None
    fullWidth: bool = True
    header: Literal["default", "mini"] = "default"
    short_description: str | None = None
    pinned: bool = False
    disable_embedding: bool = False
    custom_headers: dict[str, str] = Field(default_factory=dict)
    startup_duration_timeout: str | None = None
    preload_from_hub: list[str] = Field(default_factory=list)
    license: str | None = None
    tags: list[str] = Field(default_factory=list)

    @field_validator("sdk_version", "python_version", mode="before")
    @classmethod
    def _version_to_str(cls, v: Any) -> Any:
        # YAML reads `python_version: 3.10` as the float 3.1: keep what the user wrote where we can.
        if isinstance(v, float | int):
            return str(v)
        return v

    @field_validator("python_version")
    @classmethod
    def _python_version(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"3\.\d+(\.\d+)?", v):
            raise ValueError(f"python_version must look like 3.x or 3.x.y, not {v!r}")
        return v

    @field_validator("colorFrom", "colorTo")
    @classmethod
    def _color(cls, v: str | None) -> str | None:
        # The Hub's own docs use colours outside the list (orange); accept them, the UI falls back.
        return v.lower() if isinstance(v, str) else v

    @field_validator("custom_headers")
    @classmethod
    def _custom_headers(cls, v: dict[str, str]) -> dict[str, str]:
        for name, value in v.items():
            if name not in ALLOWED_CUSTOM_HEADERS:
                raise ValueError(
                    f"custom_headers may only set {', '.join(ALLOWED_CUSTOM_HEADERS)} (lowercase); got {name!r}"
                )
            if not isinstance(value, str) or value != value.lower():
                raise ValueError(f"custom_headers value for {name} must be a lowercase string")
        return v

    @field_validator("base_path")
    @classmethod
    def _base_path(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith("/"):
            raise ValueError("base_path must start with /")
        return v

    @property
    def effective_app_file(self) -> str:
        return self.app_file or DEFAULT_APP_FILE[self.sdk]

    @property
    def card_data(self) -> dict[str, Any]:
        return self.model_dump(exclude_unset=True, by_alias=True)


def _format_validation_error(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "front matter"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "missing":
            msg = "is required" + (" (one of gradio, streamlit, docker, static)" if loc == "sdk" else "")
        elif err["type"] == "literal_error" and loc == "sdk":
            msg = f"must be one of {', '.join(SDKS)}, not {err.get('input')!r}"
        parts.append(f"{loc}: {msg}")
    return "; ".join(parts)


README_PREFIX = 2 * safeyaml.MAX_BYTES
"""How much of README.md is read to find the front matter (it must fit in the YAML limit anyway)."""


def front_matter(text: str, limits: safeyaml.YamlLimits | None = None) -> dict[str, Any]:
    """Return the README's YAML front matter as a dict (bounded: :mod:`safeyaml`), or raise ConfigError."""
    m = _FRONT_MATTER.match(text)
    if not m:
        raise ConfigError(
            "README.md has no YAML front matter: start it with a '---' line, the settings (sdk: gradio, ...),"
            " and another '---' line"
        )
    try:
        data = safeyaml.load(m.group(1), limits)
    except safeyaml.YamlRefused as exc:
        raise ConfigError(f"README.md front matter refused: {exc}") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 2}, column {mark.column + 1} of README.md" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"README.md front matter is not valid YAML{where}: {problem}") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError("README.md front matter must be a mapping of keys to values")
    return data


def parse_readme(text: str | None) -> SpaceConfig:
    """Parse README.md text into a SpaceConfig, or raise ConfigError with the reason."""
    if text is None:
        raise ConfigError("The repository has no README.md: Spaces are configured by its YAML front matter")
    data = front_matter(text)
    try:
        return SpaceConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError("Invalid README.md front matter: " + _format_validation_error(exc)) from exc
