"""Cookie-less follow-ups of Gradio state across a swap: which version holds an event id or an upload.

Gradio keeps a call's state in the process that took it: ``POST /gradio_api/call/NAME`` answers
``{"event_id": ...}`` and the result is read with ``GET /gradio_api/call/NAME/EVENT_ID``; an upload
(``POST /gradio_api/upload``) answers the paths later named as ``/gradio_api/file=PATH``. Browsers and
``gradio_client`` keep the version cookie, so their follow-ups reach the version that holds the state;
curl and most HTTP clients do not. The gateway therefore remembers, per route, which version answered
each event id and upload path (:class:`StateMemo`, bounded, oldest forgotten first), learnt from those
small JSON answers, and routes a follow-up naming one of them to that version while it is kept.
"""

from __future__ import annotations

import collections
import json
import re

MEMO_SIZE = 10_000
MAX_ANSWER = 64 * 1024
"""Bytes of an answer looked at (event ids and upload paths are small JSON)."""
_CALL = re.compile(r"^/(?:gradio_api/)?call/[^/]+/?$")
_FOLLOW = re.compile(r"^/(?:gradio_api/)?call/[^/]+/([^/]+)/?$")
_UPLOAD = re.compile(r"^/(?:gradio_api/)?upload/?$")
_FILE = re.compile(r"^/(?:gradio_api/)?file=(.+)$")


class StateMemo:
    def __init__(self, size: int = MEMO_SIZE) -> None:
        self.size = size
        self._versions: collections.OrderedDict[str, str] = collections.OrderedDict()

    def remember(self, key: str, version: str) -> None:
        self._versions[key] = version
        self._versions.move_to_end(key)
        while len(self._versions) > self.size:
            self._versions.popitem(last=False)

    def version_of(self, key: str) -> str | None:
        return self._versions.get(key)


def state_key(method: str, path: str) -> str | None:
    """The piece of Gradio state a request names (an event id or a file path), if any."""
    if method not in ("GET", "HEAD"):
        return None
    found = _FOLLOW.match(path) or _FILE.match(path)
    return found.group(1) if found else None


def learns(method: str, path: str) -> bool:
    """Whether the answer to this request names state to remember (a call's event id, upload paths)."""
    return method == "POST" and bool(_CALL.match(path) or _UPLOAD.match(path))


def keys_in(body: bytes) -> list[str]:
    """Event ids and upload paths in a (small, JSON) answer; nothing if it is anything else."""
    if len(body) > MAX_ANSWER:
        return []
    try:
        value = json.loads(body)
    except ValueError:
        return []
    if isinstance(value, dict) and isinstance(value.get("event_id"), str):
        return [value["event_id"]]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []
