"""Resolve ``RuntimeSettings.runtime`` to a backend class: the only place that knows the names."""

from __future__ import annotations

import importlib

from .api import Runtime
from .settings import RuntimeSettings

BACKENDS: dict[str, str] = {
    "local": "spaceyard_runtime.local:LocalRuntime",
    "docker": "spaceyard_runtime.docker:DockerRuntime",
    "kubernetes": "spaceyard_runtime.kubernetes.runtime:KubernetesRuntime",
}


def runtime_class(name: str) -> type[Runtime]:
    module_name, _, attr = BACKENDS[name].partition(":")
    cls: type[Runtime] = getattr(importlib.import_module(module_name), attr)
    assert issubclass(cls, Runtime)
    return cls


def create_runtime(settings: RuntimeSettings) -> Runtime:
    return runtime_class(settings.runtime)(settings)  # type: ignore[call-arg]
