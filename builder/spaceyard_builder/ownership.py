"""What a root worker writes to the data volume belongs to the volume's owner (the platform's uid).

The chart's worker runs as root (the build walls need it) on the platform's volume, whose owner is the
platform's uid (1000). A commit's export made by root would be root's, and the platform's disk collector
could neither enter nor remove it (``PermissionError`` every round). :func:`give_to_data_owner` hands
the trees a build wrote (``DATA_DIR/sources/<space>``, the directories between it and ``DATA_DIR``) to
the owner of ``DATA_DIR`` (or, when ``DATA_DIR`` is root's with another group, as Kubernetes' ``fsGroup``
makes a volume, to that group, with the owner's rights): a no-op unless this process is root and
``DATA_DIR`` is not root's alone.
Symbolic links are changed themselves, never followed.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path


def give_to_data_owner(data_dir: Path, trees: list[Path]) -> None:
    if os.geteuid() != 0:
        return
    try:
        st = data_dir.stat()
    except OSError:
        return
    uid, gid = st.st_uid, st.st_gid
    if uid == 0 and gid == 0:
        return
    # a volume of root's with a group (Kubernetes' fsGroup: root:1000, setgid): the group gets the owner's rights
    by_group = uid == 0

    def give(path: str) -> None:
        with contextlib.suppress(OSError):
            info = os.lstat(path)
            if by_group:
                if info.st_gid != gid:
                    os.chown(path, -1, gid, follow_symlinks=False)
                if not stat.S_ISLNK(info.st_mode):
                    os.chmod(path, info.st_mode | ((info.st_mode & 0o700) >> 3))
            elif (info.st_uid, info.st_gid) != (uid, gid):
                os.chown(path, uid, gid, follow_symlinks=False)

    for tree in trees:
        if not tree.is_relative_to(data_dir) or not tree.exists():
            continue
        for parent in reversed(tree.relative_to(data_dir).parents[:-1]):
            give(str(data_dir / parent))
        give(str(tree))
        for root, dirs, files in os.walk(tree):
            for name in dirs + files:
                give(os.path.join(root, name))


__all__ = ["give_to_data_owner"]
