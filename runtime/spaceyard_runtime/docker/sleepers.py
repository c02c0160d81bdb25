"""The light sleepers of one Docker runtime and their memory budget.

A light-sleeping Space keeps its container, its agent and its warm parent; what that costs (their private
memory, as the agent measures it right after the app stopped) is noted at ``suspend``. :meth:`Sleepers.over`
says which sleepers must go to deep sleep for the rest to fit ``light_sleep_memory_mib``: the least
recently suspended first. Pure bookkeeping: the runtime deepens them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from ..api import AppHandle


@dataclass
class Sleeper:
    handle: AppHandle
    cost: int
    since: float = field(default_factory=time.monotonic)


class Sleepers:
    def __init__(self) -> None:
        self._by_id: dict[str, Sleeper] = {}

    def add(self, handle: AppHandle, cost: int) -> None:
        self._by_id[handle.backend_id] = Sleeper(handle, cost)

    def pop(self, backend_id: str) -> Sleeper | None:
        return self._by_id.pop(backend_id, None)

    def __contains__(self, backend_id: object) -> bool:
        return backend_id in self._by_id

    def total(self) -> int:
        return sum(s.cost for s in self._by_id.values())

    def over(self, budget: int) -> list[AppHandle]:
        """The handles to deepen, least recently suspended first, until the others cost at most ``budget``."""
        total = self.total()
        deepen: list[AppHandle] = []
        for sleeper in sorted(self._by_id.values(), key=lambda s: s.since):
            if total <= budget:
                break
            deepen.append(sleeper.handle)
            total -= sleeper.cost
        return deepen
