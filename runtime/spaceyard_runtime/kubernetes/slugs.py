"""Kubernetes names for arbitrary Space ids: always valid, never colliding, bounded in length.

Requirements (after ``kubespawner/slugs.py``):

* valid DNS-1123 labels (``[a-z0-9]([-a-z0-9]*[a-z0-9])?``, at most 63 characters) for any input,
  because a Service name must be one and every other object shares the Space's name;
* no collisions: ``Owner/My_Space`` and ``owner/my-space`` are different Spaces, so any id that is
  not already its own clean slug gets a short hash of the *exact* id appended;
* stable: the same id always gives the same name (objects are found again after a restart).

Label *values* (max 63, ``[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?``) use the same slug, so a
label selector finds a Space's objects without the original id, which is kept in an annotation.
"""

from __future__ import annotations

import hashlib
import re

MAX_LABEL = 63
HASH_LENGTH = 8
_INVALID = re.compile(r"[^a-z0-9-]+")
_DASHES = re.compile(r"-{2,}")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def short_hash(text: str, length: int = HASH_LENGTH) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


def is_dns_label(name: str) -> bool:
    return len(name) <= MAX_LABEL and bool(_DNS_LABEL.match(name))


def _clean(text: str) -> str:
    text = _INVALID.sub("-", text.lower())
    return _DASHES.sub("-", text).strip("-")


def safe_slug(text: str, max_length: int = MAX_LABEL) -> str:
    """A DNS-1123 label for ``text``: the cleaned text itself when that is lossless, else text + hash.

    Lossless means the id was already lowercase ``[a-z0-9-]`` with ``/`` as the only separator, e.g.
    ``owner/name`` -> ``owner--name`` (a double dash cannot come out of cleaning, so it cannot collide
    with a cleaned id). Anything else keeps a readable prefix and gets ``-`` + 8 hex digits of sha256.
    """
    if max_length < HASH_LENGTH + 2:
        raise ValueError(f"max_length {max_length} leaves no room for the hash")
    owner, sep, name = text.partition("/")
    lossless = (
        bool(sep)
        and "/" not in name
        and owner == _clean(owner)
        and name == _clean(name)
        and owner != ""
        and name != ""
        and not owner.startswith("-")
    )
    if lossless:
        candidate = f"{owner}--{name}"
        if len(candidate) <= max_length and is_dns_label(candidate):
            return candidate
    prefix = _clean(text.replace("/", "-"))[: max_length - HASH_LENGTH - 1].strip("-") or "x"
    return f"{prefix}-{short_hash(text)}"


def space_name(space_id: str, prefix: str = "space-") -> str:
    """The name of the Space's own objects (owner ConfigMap, Secret, NetworkPolicy) and of its label."""
    return prefix + safe_slug(space_id, MAX_LABEL - len(prefix))


def revision_name(space_id: str, template: str, prefix: str = "space-") -> str:
    """The name of one revision's Deployment and Service: the Space's slug (shorter if need be) and the pod
    template's hash (16 hex digits), e.g. ``space-alice--demo-0123456789abcdef``. A revision name never
    equals a :func:`space_name` of a Deployment or Service (those kinds only ever carry revision names)."""
    return f"{prefix}{safe_slug(space_id, MAX_LABEL - len(prefix) - len(template) - 1)}-{template}"
