"""A Space's persistent storage: the Hub's ``/data`` (storage tiers, and a bucket volume mounted there).

The Space row says what the owner asked for (``storage_tier``, and ``volumes`` as given); the runtime
holds the data (:class:`~spaceyard_runtime.api.StorageSpec`, one volume per Space named by its database
id: a renamed Space keeps it, a duplicate starts without, a deleted Space's is deleted). What a
client can call, with the Hub's shapes:

* ``POST /api/spaces/{id}/storage {"tier": "small"|"medium"|"large"}`` (older clients'
  ``request_space_storage``): sizes from ``SPACEYARD_STORAGE_TIERS``; upgrade only, as on the Hub
  (a smaller tier is refused: delete the storage first). ``DELETE .../storage`` deletes it and its data.
* ``PUT /api/spaces/{id}/volumes {"volumes": [...]}`` (``set_space_volumes``, ``hf spaces volumes set``):
  the Hub's way to persist data is a *bucket* mounted at ``/data``; here that bucket is the Space's own
  volume (tier ``small`` unless a larger one was requested). Repository volumes (model, dataset, Space
  mounts) and other mount paths are refused with the reason. ``DELETE .../volumes`` = delete storage.
* ``GET /api/spaces/{id}/storage`` (Spaceyard's): tier, size and bytes used, for the Settings tab.

Any change restarts a Space that is serving (its next start mounts, grows or drops ``/data``).
"""

from __future__ import annotations

from typing import Any

from spaceyard_runtime.api import StorageSpec

from .db.models import Space
from .settings import Settings

MOUNT = "/data"
DEFAULT_TIER = "small"


def spec_of(settings: Settings, space: Space) -> StorageSpec | None:
    """What the runtime mounts at ``/data`` for this Space, if it has storage."""
    tier = space.storage_tier
    if not tier or space.sdk == "static":
        return None
    size = settings.storage_tiers.get(tier)
    if size is None:  # a tier the operator removed since: keep the data, at the largest size offered
        size = max(settings.storage_tiers.values(), default=0)
    return StorageSpec(volume=space.id, size_bytes=size, tier=tier)


def runtime_fields(space: Space) -> dict[str, Any]:
    """The runtime JSON's ``storage`` (tier or null) and, when set, ``volumes``."""
    out: dict[str, Any] = {"storage": space.storage_tier}
    if space.volumes:
        out["volumes"] = space.volumes
    return out
