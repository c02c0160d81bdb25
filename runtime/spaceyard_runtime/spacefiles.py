"""What the local and Docker runtimes keep on this machine per Space, beyond its running apps.

* ``RUNTIME_DIR/spaces/<slug>/`` — the app's ``HOME`` and ``TMPDIR`` (local runtime): ephemeral in the
  Hub's sense (a restart keeps them, nothing promises it), removed by :meth:`SpaceFiles.purge` when the
  Space is deleted, so a later Space of the same name starts empty.
* ``RUNTIME_DIR/sandbox/<uid>/`` — the box's ``/etc/passwd`` and ``/etc/group`` (local walls).
* ``RUNTIME_DIR/volumes/`` — persistent ``/data`` volumes (:mod:`.loopvolumes`), named by the Space's
  database id and removed only by :meth:`SpaceFiles.delete_volume`.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from .api import StorageSpec
from .hubpath import VIEWS
from .loopvolumes import LoopVolumes
from .sandbox import space_uid

DATA_MOUNT = "/data"


class SpaceFiles:
    def __init__(self, runtime_dir: Path) -> None:
        self.runtime_dir = runtime_dir
        self.volumes = LoopVolumes(runtime_dir / "volumes")

    def data_dir(self, space_id: str, storage: StorageSpec) -> Path:
        """The host directory that is the Space's ``/data``: mounted, sized, owned by the Space's uid."""
        return self.volumes.ensure(storage, space_uid(space_id))

    def purge(self, space_id: str, slug: str) -> None:
        shutil.rmtree(self.runtime_dir / "spaces" / slug, ignore_errors=True)
        shutil.rmtree(self.runtime_dir / "sandbox" / str(space_uid(space_id)), ignore_errors=True)
        shutil.rmtree(self.runtime_dir / VIEWS / slug, ignore_errors=True)  # its Hub cache view (hubpath.py)

    def delete_volume(self, volume: str) -> None:
        self.volumes.delete(volume)

    def volume_usage(self, volume: str) -> int | None:
        return self.volumes.usage(volume)
