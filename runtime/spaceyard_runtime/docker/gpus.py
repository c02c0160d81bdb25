"""Which of this Docker host's GPUs each container holds."""

from __future__ import annotations

import threading

from ..errors import CapacityPending


class GpuAllocator:
    """Hands out this host's GPU indices to containers, each index to one holder at a time."""

    def __init__(self, gpus: list[str]) -> None:
        self.gpus = list(gpus)
        self._holders: dict[str, list[str]] = {}
        self._lock = threading.Lock()

    def free(self) -> list[str]:
        used = {g for held in self._holders.values() for g in held}
        return [g for g in self.gpus if g not in used]

    def allocate(self, holder: str, count: int, prefer: list[str] | None = None) -> list[str]:
        """``count`` GPU indices for ``holder`` (its preferred ones if free), or CapacityPending."""
        if count <= 0:
            return []
        with self._lock:
            if holder in self._holders:
                return self._holders[holder]
            free = self.free()
            if prefer and all(g in free for g in prefer) and len(prefer) == count:
                chosen = list(prefer)
            elif len(free) >= count:
                chosen = free[:count]
            else:
                raise CapacityPending(
                    f"waiting for {count} GPU(s): {len(free)} of {len(self.gpus)} free on this Docker host"
                )
            self._holders[holder] = chosen
            return chosen

    def claim(self, holder: str, gpus: list[str]) -> None:
        """Record GPUs already held (a running container found after a platform restart)."""
        if gpus:
            with self._lock:
                self._holders[holder] = list(gpus)

    def release(self, holder: str) -> None:
        with self._lock:
            self._holders.pop(holder, None)
