"""Build engines; :func:`create_engine` maps ``BuilderSettings.build_engine`` to a class."""

from __future__ import annotations

import importlib

from ..api import BuildEngine
from ..settings import BuilderSettings

ENGINES: dict[str, str] = {
    "local": "spaceyard_builder.engines.local:LocalEngine",
    "docker": "spaceyard_builder.engines.docker:DockerEngine",
    "oci": "spaceyard_builder.engines.oci:OciEngine",
}


def create_engine(settings: BuilderSettings) -> BuildEngine:
    module_name, _, attr = ENGINES[settings.build_engine].partition(":")
    cls = getattr(importlib.import_module(module_name), attr)
    engine: BuildEngine = cls(settings)
    return engine
