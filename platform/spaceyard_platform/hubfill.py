"""Files apps download at run time, in the shared bounded store: the relay fills it and each Space's cache view.

Inside a Space ``HF_HUB_CACHE`` is the Space's *cache view* (``spaceyard_runtime.hubpath.cache_view``): a
directory in Hugging Face's cache layout (``<repo folder>/{blobs,snapshots,refs}``) that only the platform
writes and the app reads (bound read-only locally, mounted read-only on Docker). ``huggingface_hub`` asks
``HEAD /<repo>/resolve/<revision>/<path>`` first; when the control plane answers that HEAD ``200`` *for the
token of this request* (so the Space may read that file), :meth:`HubFill.fill` runs before the answer goes
back to the app:

* the file at that exact commit comes from the shared store (``spaceyard_builder.hubstore``, keyed by
  kind, repo, commit and path, content-addressed: two Spaces that use the same file store it once), or is
  downloaded into it with an in-process ``GET`` through the control plane with the same token;
* it is hard-linked into the view as ``blobs/<etag>``, with ``snapshots/<commit>/<path>`` (a relative
  symlink, as the client makes it) and ``refs/<revision>``, so the client's own check finds the file and
  returns it without downloading or writing anything (read from its source: on a cache hit
  ``hf_hub_download`` only rewrites a ref that differs, best-effort);
* then the store is bounded (``HubStore.evict`` with the views: a blob that only views link is released
  from them and removed; the app's next download of it fills it again).

A Space's view holds only what a request with its own token was allowed to read; the store itself is
never mounted into any Space. A file that cannot be filled (an error, a refused path) leaves the view
as it was, and the app's client, finding no file in a cache it cannot write, fails with its own error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from starlette.types import ASGIApp, Message

from spaceyard_builder.hubstore import HubStore, file_key

log = logging.getLogger(__name__)

_RESOLVE = re.compile(r"^/(?:(datasets|spaces)/)?([^/]+)/([^/]+)/resolve/(.+)$")
_KIND = {None: "model", "datasets": "dataset", "spaces": "space"}
_FOLDER = {"model": "models", "dataset": "datasets", "space": "spaces"}
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_ETAG = re.compile(r'^(?:W/)?"?([0-9a-f]{40}|[0-9a-f]{64})"?$')
PASSED = (b"authorization", b"host", b"user-agent")


def _safe(parts: list[str]) -> bool:
    return bool(parts) and all(p and p not in (".", "..") and "\0" not in p and "\\" not in p for p in parts)


def parse(raw_path: str) -> tuple[str, str, str, str] | None:
    """``(kind, repo_id, revision, path)`` of a ``/resolve/`` path (still percent-encoded), else None."""
    match = _RESOLVE.match(raw_path.split("?")[0])
    if match is None:
        return None
    prefix, owner, name, tail = match.groups()
    parts = [unquote(p) for p in tail.split("/")]
    n = 3 if parts[0] == "refs" and len(parts) >= 4 else 1
    revision, path = "/".join(parts[:n]), "/".join(parts[n:])
    owner, name = unquote(owner), unquote(name)
    if not _safe([owner, name]) or "/" in owner + name or not _safe(revision.split("/")) or not _safe(path.split("/")):
        return None  # every component as the cache's folders will have it (an encoded "/" splits too)
    return _KIND[prefix], f"{owner}/{name}", revision, path


class HubFill:
    def __init__(self, store: HubStore, views: Path, control_plane: ASGIApp) -> None:
        self.store, self.views, self.control_plane = store, views, control_plane
        self._locks: dict[str, asyncio.Lock] = {}

    async def fill(self, scope: dict[str, Any], headers: dict[str, str], view: Path) -> bool:
        """After a ``200`` to a ``HEAD`` of ``/resolve/`` (its response ``headers``, lower-case names):
        make the file a cache hit in ``view``. True if it is there."""
        found = parse((scope.get("raw_path") or scope["path"].encode()).decode("latin-1"))
        commit = headers.get("x-repo-commit", "")
        etag_match = _ETAG.match(headers.get("x-linked-etag") or headers.get("etag") or "")
        if found is None or not _COMMIT.match(commit) or etag_match is None:
            return False
        kind, repo_id, revision, path = found
        etag = etag_match.group(1)
        key = file_key(kind, repo_id, commit, path)
        lock = self._locks.setdefault(key, asyncio.Lock())
        try:
            async with lock:
                obj = await asyncio.to_thread(self.store.lookup, key)
                if obj is None:
                    obj = await self._download(scope, key)
                if obj is None:
                    return False
                folder = view / f"{_FOLDER[kind]}--{repo_id.replace('/', '--')}"
                await asyncio.to_thread(_link, obj, folder, etag, commit, revision, path)
        except OSError as exc:
            log.warning("Hub cache: %s %s@%s not added to %s: %s", kind, repo_id, commit[:12], view, exc)
            return False
        finally:
            if not lock.locked():
                self._locks.pop(key, None)
        await asyncio.to_thread(self.store.evict, self.views)
        return True

    async def _download(self, scope: dict[str, Any], key: str) -> Path | None:
        """The file through the control plane (``GET``, the request's own token) into the store."""
        inner = {
            **{k: v for k, v in scope.items() if k != "extensions"},
            "method": "GET",
            "headers": [(k, v) for k, v in scope["headers"] if k in PASSED],
        }
        incoming = await asyncio.to_thread(self.store.incoming, key)
        status = 0
        sent = False

        async def receive() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await asyncio.Event().wait()  # nothing more to say: the app ends the response
            raise AssertionError("unreachable")

        async def send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and status == 200 and (body := message.get("body", b"")):
                incoming.write(body)

        try:
            await self.control_plane(inner, receive, send)
        except BaseException:
            await asyncio.to_thread(incoming.abort)
            raise
        if status != 200:
            await asyncio.to_thread(incoming.abort)
            return None
        return await asyncio.to_thread(incoming.commit)


def _link(obj: Path, folder: Path, etag: str, commit: str, revision: str, path: str) -> None:
    """``folder`` (one repository in a cache view) gets the blob, its snapshot symlink and the ref."""
    blob = folder / "blobs" / etag
    pointer = folder / "snapshots" / commit / path
    for directory in (blob.parent, pointer.parent, folder / "refs"):
        directory.mkdir(mode=0o755, parents=True, exist_ok=True)
    try:
        same = blob.stat().st_ino == obj.stat().st_ino
    except FileNotFoundError:
        same = False
    if not same:
        HubStore.link(obj, blob)
    target = os.path.relpath(blob, pointer.parent)
    if not (pointer.is_symlink() and os.readlink(pointer) == target):
        tmp = pointer.with_name(f".{pointer.name}.{os.getpid()}.tmp")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        os.symlink(target, tmp)
        os.replace(tmp, pointer)
    if revision != commit:
        ref = folder / "refs" / revision
        ref.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        if not ref.is_file() or ref.read_text() != commit:
            tmp = ref.with_name(f".{ref.name}.{os.getpid()}.tmp")
            tmp.write_text(commit)
            os.chmod(tmp, 0o644)
            os.replace(tmp, ref)


__all__ = ["HubFill", "parse"]
