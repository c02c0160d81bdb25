"""Where Xet content meets git: a committed Xet file becomes an LFS object.

On the Hub a Xet upload is committed as a git LFS pointer (its sha256); builds, clones and
``/resolve`` read LFS objects. So when a commit names a sha256 that is not in ``DATA_DIR/lfs`` but
was uploaded to the CAS by the committing Space, the file is rebuilt from its xorbs into the LFS
object's place (sha256 verified) and everything downstream sees an ordinary LFS object.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from ..db.models import Space
from ..deps import Services
from . import cas, hashing
from .api import store_of

_locks: dict[str, asyncio.Lock] = {}


async def materialize_lfs_object(svc: Services, sha256: str, dest: Path, scope: str | None) -> bool:
    """Rebuild the Xet file with this sha256 (uploaded by ``scope``) at ``dest``; False if there is none."""
    if scope is None or len(sha256) != 64:
        return False
    store = store_of(svc)
    lock = _locks.setdefault(sha256, asyncio.Lock())
    async with lock:
        if dest.exists():
            return True
        found = await asyncio.to_thread(cas.materialize, store, sha256, dest, scope)
    _locks.pop(sha256, None)
    return found is not None


def download_headers(svc: Services, base: str, space: Space, revision: str, sha256: str | None) -> dict[str, str]:
    """``X-Xet-Hash`` and the ``xet-auth`` link for a file this Space stored through Xet, else nothing.

    With them ``hf_hub_download`` fetches the file through the CAS (deduplicated, parallel, resumable);
    without them, and for every other client, ``/resolve`` serves the bytes itself.
    """
    if not sha256:
        return {}
    store = store_of(svc)
    for candidate in store.sha256_candidates(sha256):
        if store.granted(space.id, candidate):
            token_url = f"{base}/api/spaces/{space.space_id}/xet-read-token/{revision}"
            return {"X-Xet-Hash": hashing.to_hex(candidate), "Link": f'<{token_url}>; rel="xet-auth"'}
    return {}


def blob_sha256(svc: Services, blob: str) -> str | None:
    """The sha256 of a git blob committed from Xet content (None for any other blob)."""
    return store_of(svc).blob_sha256(blob)
