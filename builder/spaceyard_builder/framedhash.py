"""A SHA-256 over length-prefixed parts: ``("ab", "c")`` and ``("a", "bc")`` never hash alike.

The content tags of image builds (the docker engine's and the buildah step's) are computed with it.
"""

from __future__ import annotations

import hashlib


class FramedHash:
    def __init__(self) -> None:
        self._h = hashlib.sha256()

    def put(self, *parts: str | bytes) -> None:
        """Add each part, UTF-8 encoded if text, after its length (8 bytes, big-endian)."""
        for part in parts:
            data = part.encode() if isinstance(part, str) else part
            self._h.update(len(data).to_bytes(8, "big"))
            self._h.update(data)

    def hexdigest(self) -> str:
        return self._h.hexdigest()
