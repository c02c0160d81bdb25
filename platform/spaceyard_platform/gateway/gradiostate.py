"""Cookie-less follow-ups of Gradio state across a swap: which version holds an event id or an upload.

Gradio keeps a call's state in the process that took it: ``POST /gradio_api/call/NAME`` answers
``{"event_id": ...}`` and the result is read with ``GET /gradio_api/call/NAME/EVENT_ID``; an upload
(``POST /gradio_api/upload``) answers the paths later named as ``/gradio_api/file=PATH``. Browsers and
``gradio_client`` keep the version cookie, so their follow-ups reach the version that holds the state;
curl and most HTTP clients do not. The gateway therefore remembers, per route, which version answered
each event id and upload path (:class:`StateMemo`, bounded, oldest forgotten first), learnt from those
small JSON answers, and routes a follow-up naming one of them to that version while it is kept.

A Gradio *session* (``session_hash``, chosen by the client) is state too: ``POST /gradio_api/queue/join``
names it in its JSON body, ``GET /gradio_api/queue/data?session_hash=H`` streams its results, and
``/heartbeat/H``, ``/stream/H/...`` and ``POST /cancel`` follow it. The session is remembered with the
version that answered its ``queue/join`` (:func:`asked_keys` reads the small request body the gateway
holds back for those POSTs, :func:`held_body`), and every later request naming it, a new ``queue/join``
of that session included, goes to that version while it is kept.
"""

from __future__ import annotations

import collections
import json
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs

MEMO_SIZE = 10_000
MAX_ANSWER = 64 * 1024
"""Bytes of an answer looked at (event ids and upload paths are small JSON)."""
_CALL = re.compile(r"^/(?:gradio_api/)?call/[^/]+/?$")
_FOLLOW = re.compile(r"^/(?:gradio_api/)?call/[^/]+/([^/]+)/?$")
_UPLOAD = re.compile(r"^/(?:gradio_api/)?upload/?$")
_FILE = re.compile(r"^/(?:gradio_api/)?file=(.+)$")
_SESSION_POST = re.compile(r"^/(?:gradio_api/)?(?:queue/join|cancel)/?$")
_JOIN = re.compile(r"^/(?:gradio_api/)?queue/join/?$")
_SESSION_QUERY = re.compile(r"^/(?:gradio_api/)?queue/data/?$")
_SESSION_PATH = re.compile(r"^/(?:gradio_api/)?(?:heartbeat|stream)/([^/]+)(?:/.*)?$")
SESSION = "session:"
"""Prefix of a session hash in the memo (event ids and file paths have their own names)."""


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


def state_key(method: str, path: str, query: bytes = b"", body: bytes | None = None) -> str | None:
    """The piece of Gradio state a request names (an event id, a file path, a session), if any.
    ``body`` is the request body of a session POST (see :func:`held_body`)."""
    if method == "POST":
        return _body_session(body) if body is not None and _SESSION_POST.match(path) else None
    if method not in ("GET", "HEAD"):
        return None
    found = _FOLLOW.match(path) or _FILE.match(path)
    if found:
        return found.group(1)
    found = _SESSION_PATH.match(path)
    if found:
        return SESSION + found.group(1)
    if _SESSION_QUERY.match(path):
        hashes = parse_qs(query.decode("latin-1")).get("session_hash")
        return SESSION + hashes[0] if hashes else None
    return None


def is_join(method: str, path: str) -> bool:
    """A ``queue/join``: new work of a session (not a follow-up of what it already asked)."""
    return method == "POST" and bool(_JOIN.match(path))


def asked_keys(method: str, path: str, body: bytes | None) -> list[str]:
    """State a request creates where it is answered: the session a ``queue/join`` starts or continues."""
    if method == "POST" and body is not None and _SESSION_POST.match(path):
        session = _body_session(body)
        return [session] if session else []
    return []


def _body_session(body: bytes) -> str | None:
    try:
        value = json.loads(body)
    except ValueError:
        return None
    session = value.get("session_hash") if isinstance(value, dict) else None
    return SESSION + session if isinstance(session, str) and session else None


Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]


async def held_body(
    method: str, path: str, headers: list[tuple[bytes, bytes]], receive: Receive
) -> tuple[bytes | None, Receive]:
    """For a session POST with a small declared body (``Content-Length`` up to :data:`MAX_ANSWER`): read
    it before choosing the version, and a ``receive`` that replays it to the app. Anything else: ``None``
    and ``receive`` untouched (streamed as before)."""
    if method != "POST" or not _SESSION_POST.match(path):
        return None, receive
    length = next((v for k, v in headers if k == b"content-length"), None)
    if length is None or not length.isdigit() or int(length) > MAX_ANSWER:
        return None, receive
    held: list[MutableMapping[str, Any]] = []
    body = bytearray()
    while True:
        message = await receive()
        held.append(message)
        if message["type"] != "http.request":
            break
        body += message.get("body", b"")
        if not message.get("more_body", False) or len(body) > MAX_ANSWER:
            break

    async def replay() -> MutableMapping[str, Any]:
        return held.pop(0) if held else await receive()

    return bytes(body), replay


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
