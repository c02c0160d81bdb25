"""Platform errors. Each carries the HTTP status and the Hub's ``X-Error-Code`` so that the unmodified
``huggingface_hub`` client raises its own exception types (``RepositoryNotFoundError``, ...).

PlatformError                     base; ``status``, ``code``, user-facing message
├── NotFound                      404 (``RepoNotFound`` for Spaces: also for private ones you cannot see)
│   ├── RevisionNotFound          404 ``RevisionNotFound``
│   └── EntryNotFound             404 ``EntryNotFound``
├── Unauthorized                  401 (no or invalid credentials)
├── Forbidden                     403 (valid credentials, not allowed)
├── Conflict                      409 (already exists)
└── BadRequest                    400 (invalid input: unknown flavor, bad name, ...)
"""

from __future__ import annotations


def header_value(text: str) -> str:
    """``text`` as a valid HTTP header value: printable ASCII, anything else escaped (``\\x00``, ``\\u00e9``)."""
    escaped = text.encode("ascii", errors="backslashreplace").decode("ascii")
    return "".join(c if " " <= c <= "~" else f"\\x{ord(c):02x}" for c in escaped)


class PlatformError(Exception):
    status = 500
    code: str | None = None

    def __init__(self, message: str, *, code: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.headers = headers or {}

    @property
    def message(self) -> str:
        return str(self)


class NotFound(PlatformError):
    status = 404


class RepoNotFound(NotFound):
    code = "RepoNotFound"


class RevisionNotFound(NotFound):
    code = "RevisionNotFound"


class EntryNotFound(NotFound):
    code = "EntryNotFound"


class Unauthorized(PlatformError):
    status = 401


class Forbidden(PlatformError):
    status = 403


class Conflict(PlatformError):
    status = 409


class BadRequest(PlatformError):
    status = 400
