"""Which revisions of each Space this process runs, and the handles that hold each (no I/O).

A Space has one *current* revision (its owner object's) and, for a while after a swap, replaced ones that
keep serving the sessions pinned to them until the lifecycle stops their handles. Several handles can hold
one revision (a wake's handle replaces the suspended one; a restart of an unchanged Space starts the same
pod template again): a revision is given up only when the last handle holding it is stopped. The newest
revision started is last: when the current one is given up while an older one still serves (its start
failed, or was superseded), that older one is the Space's again.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from ..api import AppHandle
from .desired import DesiredSpace

HANDLE_KEY = "revision-handle"
"""Key of the handle's number in ``AppHandle.extra`` (a handle is known by it, not by its identity)."""
_numbers = itertools.count(1)


@dataclass
class _Revision:
    desired: DesiredSpace
    handles: set[int] = field(default_factory=set)


class Revisions:
    def __init__(self) -> None:
        self._spaces: dict[str, dict[str, _Revision]] = {}

    def hold(self, template: str, desired: DesiredSpace, handle: AppHandle) -> None:
        """``handle`` runs the revision of ``template``; it becomes the Space's newest."""
        number = handle.extra.setdefault(HANDLE_KEY, next(_numbers))
        revisions = self._spaces.setdefault(desired.space_id, {})
        revision = revisions.pop(template, None) or _Revision(desired)
        revision.desired = desired
        revision.handles.add(number)
        revisions[template] = revision

    def update(self, template: str, desired: DesiredSpace) -> None:
        """The revision's desired state changed (asleep, awake): kept for a fall-back."""
        revision = self._spaces.get(desired.space_id, {}).get(template)
        if revision is not None:
            revision.desired = desired

    def release(self, space_id: str, template: str, handle: AppHandle) -> bool:
        """``handle`` no longer holds its revision; True if another handle still does."""
        revisions = self._spaces.get(space_id, {})
        revision = revisions.get(template)
        if revision is None:
            return False
        revision.handles.discard(handle.extra.get(HANDLE_KEY, -1))
        if revision.handles:
            return True
        del revisions[template]
        if not revisions:
            self._spaces.pop(space_id, None)
        return False

    def knows(self, space_id: str) -> bool:
        return space_id in self._spaces

    def others(self, space_id: str, template: str) -> tuple[str, ...]:
        """The Space's revisions held besides ``template``'s, oldest first."""
        return tuple(t for t in self._spaces.get(space_id, {}) if t != template)

    def newest(self, space_id: str) -> tuple[str, DesiredSpace] | None:
        revisions = self._spaces.get(space_id)
        if not revisions:
            return None
        template = next(reversed(revisions))
        return template, revisions[template].desired

    def forget(self, space_id: str) -> None:
        self._spaces.pop(space_id, None)


__all__ = ["HANDLE_KEY", "Revisions"]
