"""What a process tree costs in memory, from ``/proc/PID/smaps_rollup`` (Linux >= 4.14).

* ``pss``: proportional set size: private pages, plus each shared page divided by the number of
  processes mapping it. Summed over every process of the machine it is the memory they use, so it is
  what a memory budget adds up.
* ``uss``: unique set size (``Private_Clean + Private_Dirty``): what ending the process frees at once.
* ``rss``: every resident page, shared ones counted in full (what ``ps`` shows; overstates forked apps).

Reading another user's ``smaps_rollup`` needs ``ptrace`` rights (root, or the same user): a process
that cannot be read counts as nothing (it is gone, or not ours).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Usage:
    pss: int = 0
    uss: int = 0
    rss: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.pss + other.pss, self.uss + other.uss, self.rss + other.rss)


def read(pid: int) -> Usage:
    """One process's memory in bytes; ``Usage()`` if it is gone or cannot be read."""
    fields: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
            for line in f.read().splitlines()[1:]:
                name, _, rest = line.partition(b":")
                parts = rest.split()
                if parts and parts[0].isdigit():
                    fields[name.decode()] = int(parts[0]) * 1024  # kB
    except OSError:
        return Usage()
    private = fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0)
    return Usage(pss=fields.get("Pss", 0), uss=private, rss=fields.get("Rss", 0))


def total(pids: Iterable[int]) -> Usage:
    """The sum over ``pids`` (a box's processes)."""
    usage = Usage()
    for pid in set(pids):
        usage += read(pid)
    return usage


def tree(pid: int) -> list[int]:
    """``pid`` and its descendants (``/proc/PID/task/TID/children``)."""
    found: list[int] = []
    todo = [pid]
    while todo:
        current = todo.pop()
        if current in found:
            continue
        found.append(current)
        try:
            tids = [t.name for t in Path(f"/proc/{current}/task").iterdir()]
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{current}/task/{tid}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
            except OSError:
                continue
    return found
