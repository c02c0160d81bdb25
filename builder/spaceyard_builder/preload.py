"""``preload_from_hub``: Hub files a Space gets at build time, in its Hugging Face cache when it starts.

The README key is the Hub's: a list of ``"REPO_ID"`` (the whole repository), ``"REPO_ID FILE1,FILE2"``
(those files; ``fnmatch`` patterns allowed) or ``"REPO_ID FILES COMMIT"``. ``REPO_ID`` names a model;
``datasets/OWNER/NAME`` a dataset (a Spaceyard extension). Unlike the Hub, private repositories work
when the Space's owner may read them: the worker asks with the Space's own read-only token.

:func:`preload` runs in the build worker (trusted, outside every Space's walls), after the commit is
exported: for each entry it asks the platform for the repository at that revision with the Space's
token (so access is checked on every build, cache or not), then takes each file from the shared store
(:class:`~spaceyard_builder.hubstore.HubStore`) or downloads it into it, and lays out
``<export>/.spaceyard-hub`` as a Hugging Face cache (``models--OWNER--NAME/{refs,blobs,snapshots}``)
whose blobs are hard links to the store's read-only objects. The local runtime adds that tree to the
app's own (writable) cache at start; the docker engine copies it into the image's cache. A missing or
unreadable repository or file is a ``BUILD_ERROR`` that names it. Every step is in the build log.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx

from .api import BuildLog
from .errors import BuildFailed, ConfigError
from .hubstore import HubStore, file_key

HUB_DIR = ".spaceyard-hub"
"""Where in the exported commit the preloaded cache tree lives (the runtime reads the same name)."""
MAX_ENTRIES = 32
_REPO_ID = re.compile(r"^(?:datasets/)?[A-Za-z0-9][\w.-]{0,95}/[\w.-]{1,96}$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True)
class Entry:
    kind: str
    """``model`` or ``dataset``."""
    repo_id: str
    files: tuple[str, ...] = ()
    """Empty: every file."""
    revision: str = "main"

    @property
    def api(self) -> str:
        return f"/api/{self.kind}s/{self.repo_id}"

    @property
    def prefix(self) -> str:
        return "" if self.kind == "model" else f"{self.kind}s/"

    @property
    def folder(self) -> str:
        return f"{self.kind}s--" + self.repo_id.replace("/", "--")


def parse(items: list[str]) -> list[Entry]:
    """The README's list, or :class:`ConfigError` saying which item is wrong."""
    if len(items) > MAX_ENTRIES:
        raise ConfigError(f"preload_from_hub: at most {MAX_ENTRIES} entries")
    entries = []
    for item in items:
        parts = str(item).split()
        if not parts or len(parts) > 3 or not _REPO_ID.match(parts[0]) or ".." in parts[0]:
            raise ConfigError(
                f"preload_from_hub: {str(item)[:100]!r} is not 'REPO_ID', 'REPO_ID FILE1,FILE2' or "
                "'REPO_ID FILES COMMIT_SHA'"
            )
        repo = parts[0]
        kind = "dataset" if repo.startswith("datasets/") else "model"
        files = tuple(f for f in parts[1].split(",") if f) if len(parts) > 1 else ()
        if any(f.startswith("/") or ".." in f.split("/") for f in files):
            raise ConfigError(f"preload_from_hub: {str(item)[:100]!r}: file names are paths inside the repository")
        revision = parts[2] if len(parts) > 2 else "main"
        if len(parts) > 2 and not _COMMIT.match(revision):
            raise ConfigError(f"preload_from_hub: {revision[:60]!r} is not a full commit sha")
        entries.append(Entry(kind, repo.removeprefix("datasets/"), files, revision))
    return entries


def _etag(headers: httpx.Headers) -> str:
    raw = headers.get("x-linked-etag") or headers.get("etag") or ""
    return raw.removeprefix("W/").strip('"')


def preload(
    items: list[str], export: Path, endpoint: str | None, token: str | None, store: HubStore, log: BuildLog
) -> int:
    """Fill ``export/.spaceyard-hub`` (module docstring); the number of files. ``log(line)`` gets progress."""
    say = log
    entries = parse(items)
    if not entries:
        return 0
    if not endpoint:
        raise BuildFailed("preload_from_hub: this build worker has no Hub URL (set SPACEYARD_HUB_URL)")
    tree = export / HUB_DIR
    if tree.exists():
        shutil.rmtree(tree)
    headers = {"authorization": f"Bearer {token}"} if token else {}
    count = 0
    with httpx.Client(base_url=endpoint.rstrip("/"), headers=headers, timeout=60, follow_redirects=True) as hub:
        for entry in entries:
            name = f"{entry.prefix}{entry.repo_id}"
            info = hub.get(f"{entry.api}/revision/{quote(entry.revision, safe='')}")
            if info.status_code in (401, 403, 404):
                raise BuildFailed(
                    f"preload_from_hub: {entry.kind} {entry.repo_id} (revision {entry.revision}) was not found "
                    "or this Space's owner may not read it"
                )
            if info.status_code != 200:
                raise BuildFailed(f"preload_from_hub: {name}: the Hub answered {info.status_code}")
            data = info.json()
            commit = str(data.get("sha") or "")
            available = [str(s.get("rfilename")) for s in data.get("siblings") or []]
            wanted = [p for p in available if not entry.files or any(fnmatch.fnmatchcase(p, f) for f in entry.files)]
            missing = [f for f in entry.files if not any(fnmatch.fnmatchcase(p, f) for p in available)]
            if missing or not _COMMIT.match(commit):
                raise BuildFailed(
                    f"preload_from_hub: {name} has no {', '.join(missing[:5])} at {entry.revision}"
                    if missing
                    else f"preload_from_hub: {name}: no commit at {entry.revision}"
                )
            repo_dir = tree / entry.folder
            (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
            if entry.revision != commit:
                (repo_dir / "refs" / entry.revision).write_text(commit)
            stored = 0
            for path in wanted:
                key = file_key(entry.kind, entry.repo_id, commit, path)
                url = f"/{entry.prefix}{entry.repo_id}/resolve/{commit}/{quote(path)}"
                obj = store.lookup(key)
                etag_file = store.index / f"{key}.etag"
                if obj is None:
                    with hub.stream("GET", url) as r:
                        if r.status_code != 200:
                            raise BuildFailed(f"preload_from_hub: {name}/{path}: the Hub answered {r.status_code}")
                        obj = store.put(key, r.iter_bytes(1 << 20))
                        etag_file.write_text(_etag(r.headers) or obj.name)
                else:
                    stored += 1
                etag = etag_file.read_text().strip() if etag_file.exists() else obj.name
                blob = repo_dir / "blobs" / (etag or obj.name)
                store.link(obj, blob)
                pointer = repo_dir / "snapshots" / commit / path
                pointer.parent.mkdir(parents=True, exist_ok=True)
                pointer.symlink_to(os.path.relpath(blob, pointer.parent))
                count += 1
            say(
                f"--> preload_from_hub: {name} @ {commit[:7]}: {len(wanted)} file(s), {stored} already in the "
                "shared cache"
            )
    evicted = store.evict()
    if evicted:
        say(f"--> preload_from_hub: the shared cache evicted {evicted} unused file(s) (size limit)")
    return count


__all__ = ["HUB_DIR", "Entry", "parse", "preload"]
