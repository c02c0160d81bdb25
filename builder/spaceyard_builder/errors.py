"""Errors raised while building. Each maps to one Hub stage; ``str(exc)`` is the user-facing reason.

BuilderError                   base
├── ConfigError                README front matter is missing, not YAML, or has bad values -> CONFIG_ERROR
├── NoAppFileError             the app file named by the config is not in the commit       -> NO_APP_FILE
├── BuildFailed                installing dependencies or building the image failed          -> BUILD_ERROR
├── EngineMisconfigured        the machine cannot run this engine (a missing tool): the operator must
│                              fix it, retrying cannot help                                   -> BUILD_ERROR
└── TransientBuildError        infrastructure hiccup (engine unreachable, git busy): the pipeline
                               retries it (``transient_retries`` times, 1, 2, 4 s apart)      -> BUILD_ERROR
"""

from __future__ import annotations


class BuilderError(Exception):
    stage = "BUILD_ERROR"


class ConfigError(BuilderError):
    stage = "CONFIG_ERROR"


class NoAppFileError(BuilderError):
    stage = "NO_APP_FILE"


class BuildFailed(BuilderError):
    stage = "BUILD_ERROR"


class EngineMisconfigured(BuilderError):
    stage = "BUILD_ERROR"


class TransientBuildError(BuilderError):
    stage = "BUILD_ERROR"
