"""The models and datasets a Space says it uses: the Hub's README keys ``models:`` and ``datasets:``.

:func:`linked_repos` reads them from a card (front matter) as the Hub does: a string or a list of
strings, each a repository id (``owner/name``). Anything else is dropped, at most :data:`MAX_LINKED`
of each are kept. Shown on the Space's page (linked to the model and dataset pages) and returned by
``space_info`` as ``models`` and ``datasets``.
"""

from __future__ import annotations

import re
from typing import Any

MAX_LINKED = 50
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}/[\w.-]{1,96}$")


def _ids(value: Any) -> list[str]:
    items = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    seen: dict[str, None] = {}
    for item in items:
        if isinstance(item, str) and _REPO_ID.match(item) and ".." not in item:
            seen.setdefault(item, None)
        if len(seen) >= MAX_LINKED:
            break
    return list(seen)


def linked_repos(card: dict[str, Any]) -> dict[str, list[str]]:
    return {"models": _ids(card.get("models")), "datasets": _ids(card.get("datasets"))}


__all__ = ["MAX_LINKED", "linked_repos"]
