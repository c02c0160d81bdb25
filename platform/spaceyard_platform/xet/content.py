"""Where Xet content meets git: committing a file uploaded through Xet, and downloading it back.

A Hub API commit names each large file by its sha256 (``lfsFile``), as on the Hub. Spaceyard writes
such files into the commit as ordinary git blobs (see ``api/commits.py``), so builds, ``git clone``
and ``/resolve`` read them from git. For content the committing Space uploaded through Xet, the file
is rebuilt from its xorbs into a scratch file (sha256 verified; a wrong declaration is never
committed), hashed into the repository, and the scratch file is removed: the CAS keeps the
deduplicated chunks, git the blob, and no third copy is left in ``DATA_DIR/lfs``.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

from .. import repokinds
from ..db.models import RepoRow
from ..deps import Services
from . import cas, hashing
from .store import CasStore, LocalCasStore


@lru_cache(maxsize=8)
def _store_at(root: Path) -> CasStore:
    return LocalCasStore(root)


def store_of(svc: Services) -> CasStore:
    """The Xet CAS store of this platform (``DATA_DIR/xet``), shared by the API and the commit path."""
    return _store_at(svc.settings.data_dir.resolve() / "xet")


async def commit_file(svc: Services, sha256: str, scope: str | None, add: Callable[[Path], None]) -> bool:
    """Rebuild the Xet file with this sha256 (uploaded by ``scope``) and hand it to ``add``.

    False when ``scope`` stored no such file through Xet (the caller then reports it as not uploaded).
    """
    if scope is None or len(sha256) != 64:
        return False
    store = store_of(svc)

    def run() -> bool:
        fd, name = tempfile.mkstemp(dir=store.scratch(), prefix=".commit-")
        os.close(fd)
        scratch = Path(name)
        try:
            if cas.materialize(store, sha256, scratch, scope) is None:
                return False
            add(scratch)
            return True
        finally:
            scratch.unlink(missing_ok=True)

    return await asyncio.to_thread(run)


def download_headers(svc: Services, base: str, space: RepoRow, revision: str, sha256: str | None) -> dict[str, str]:
    """``X-Xet-Hash`` and the ``xet-auth`` link for a file this Space stored through Xet, else nothing.

    With them ``hf_hub_download`` fetches the file through the CAS (deduplicated, parallel, resumable);
    without them, and for every other client, ``/resolve`` serves the bytes itself.
    """
    if not sha256:
        return {}
    store = store_of(svc)
    for candidate in store.sha256_candidates(sha256):
        if store.granted(space.id, candidate):
            api = repokinds.named(space.kind).api
            token_url = f"{base}/api/{api}/{space.repo_id}/xet-read-token/{revision}"
            return {"X-Xet-Hash": hashing.to_hex(candidate), "Link": f'<{token_url}>; rel="xet-auth"'}
    return {}


def blob_sha256(svc: Services, blob: str) -> str | None:
    """The sha256 of a git blob committed from Xet content (None for any other blob)."""
    return store_of(svc).blob_sha256(blob)
