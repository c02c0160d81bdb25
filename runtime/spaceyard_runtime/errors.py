"""Errors raised by runtimes.

RuntimeBackendError            base of everything in this package (``log_tail``: the app's last lines, or "")
├── AppStartError              the app could not be started at all (bad artifact, no port)
├── AppCrashed                 the app exited before or after becoming ready
│                              (``exit_code``, ``log_tail``)
├── AppStartTimeout            the app did not become ready in time
└── CapacityPending            the backend is waiting for capacity (a GPU node); not a failure

``str(exc)`` is the reason shown to users (``errorMessage`` of the runtime endpoint).
"""

from __future__ import annotations


class RuntimeBackendError(Exception):
    """Base class of runtime errors; the message is user-facing."""

    log_tail: str = ""
    """The app's last output lines when the backend has them (a crash), else empty."""
    exit_code: int | None = None


class AppStartError(RuntimeBackendError):
    pass


class AppCrashed(RuntimeBackendError):
    def __init__(self, message: str, *, exit_code: int | None = None, log_tail: str = "") -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.log_tail = log_tail


class AppStartTimeout(RuntimeBackendError):
    pass


class CapacityPending(RuntimeBackendError):
    pass
