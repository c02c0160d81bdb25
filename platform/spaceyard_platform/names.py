"""Names users choose: Space ids (``OWNER/NAME``), owners, secret and variable keys, and every name derived
from a Space id — its app subdomain, its folders, its log keys and the names the runtime gives its objects.
Pure functions; the database enforces uniqueness (below). The platform computes these names here and hands
them down by value (``BuildRequest.source_folder``, ``AppSpec.slug`` and ``AppSpec.source_folder``): the
builder and the runtime keep a fallback derivation only for callers other than the platform (see
:func:`space_folder`, :func:`runtime_slug`).

Contract:

* :func:`check_repo_name` — the Hub's rule for a repository name (huggingface_hub ``validate_repo_id``,
  moon-landing ``Names.ts``): 1 to :data:`MAX_NAME` ASCII letters, digits, ``-``, ``_``, ``.``; not
  starting or ending with ``-`` or ``.``; no ``--`` or ``..``; not ending in ``.git``. A full match (a
  trailing newline is refused). Returns the name or raises :class:`InvalidName` (400).
* :func:`check_owner` — a user or organization name: the same rule.
* :func:`parse_space_id` — ``"OWNER/NAME"`` -> ``(owner, name)``, both checked.
* :func:`fold` — the case-insensitive identity of a name. Two Spaces of one owner may not have names
  with the same fold (``admin/Caps`` and ``admin/caps`` cannot both exist); callers look a name up by
  its fold before creating, moving or duplicating.
* :func:`check_env_key` — a secret or variable key: a letter or ``_`` then letters, digits and ``_``, at
  most :data:`MAX_KEY` characters, full match (an environment variable name, as the Hub requires).
  Within one Space, secret and variable keys are unique case-insensitively across both kinds (one
  environment: ``TOKEN`` and ``token`` would be two variables only on a case-sensitive system).
* :func:`hub_label` — the Hub's ``*.hf.space`` derivation: lowercase, ``/``, ``_`` and ``.`` become
  ``-`` (``Owner/My_App`` -> ``owner-my-app``), cut to a DNS label (63 characters: a longer label keeps
  its first 54 characters and ends ``-`` + 8 hex digits of :func:`label_digest`). Several ids map to one
  label (``team-ml/demo``, ``team/ml-demo``), so the label alone is not an identity.
* :func:`subdomain_candidates` — the labels a new Space may get, in order: :func:`hub_label`, then the
  same with ``-`` + :func:`label_digest`. The subdomain is chosen once, stored with the Space
  (``spaces.subdomain``, a unique column) and never recomputed: existing Spaces keep theirs, a rename
  chooses again. A Space whose Hub label is taken by another Space is refused (409, saying which label
  collides) — see :func:`subdomain_conflict_message`; the digest form exists for ids longer than a DNS
  label and for the one-time migration of Spaces that collided before labels were stored.

Derived names that are stored (folders on disk, log keys in the database) must never change:

* :func:`space_folder` — ``OWNER--NAME``: the folder of a Space's exported commits (``DATA_DIR/sources``)
  and of its run logs. Injective, because a checked name cannot contain ``--``.
* :func:`build_log_key` — ``build/<build id>``; :func:`run_log_key` — ``run/OWNER--NAME/<build id>-<ms>``,
  one per start of an app (stored as ``spaces.run_log_key``).
* :func:`runtime_slug` — lowercase, ``/`` and ``_`` become ``-``: a Space's name in the local and Docker
  runtimes (``runtime/spaces/<slug>``, network ``spaceyard-<slug>``). Kubernetes object names are the
  runtime's own (``spaceyard_runtime.kubernetes.slugs``): they follow Kubernetes' rules and the in-cluster
  controller recomputes them from the id alone.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator

from .errors import BadRequest

MAX_NAME = 96
MAX_KEY = 128
MAX_LABEL = 63
_LABEL_HEAD = 54

NAME_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?", re.ASCII)
KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}", re.ASCII)

NAME_RULE = (
    "use letters, digits, '-', '_' and '.', start and end with a letter or digit, "
    f"at most {MAX_NAME} characters, no '--' or '..', not ending in '.git'"
)


class InvalidName(BadRequest):
    """A Space name, owner or key that breaks the rules above."""


def _shown(value: str) -> str:
    return repr(value if len(value) <= 120 else value[:120] + "...")


def is_repo_name(name: str) -> bool:
    return (
        NAME_RE.fullmatch(name) is not None
        and "--" not in name
        and ".." not in name
        and not name.lower().endswith(".git")
    )


def check_repo_name(name: str) -> str:
    if not is_repo_name(name):
        raise InvalidName(f"Invalid repo name {_shown(name)}: {NAME_RULE}")
    return name


def check_owner(owner: str) -> str:
    if not is_repo_name(owner):
        raise InvalidName(f"Invalid namespace {_shown(owner)}: {NAME_RULE}")
    return owner


def parse_space_id(space_id: str) -> tuple[str, str]:
    owner, sep, name = space_id.partition("/")
    if not sep:
        raise InvalidName(f"Invalid Space id {_shown(space_id)}: expected OWNER/NAME")
    return check_owner(owner), check_repo_name(name)


def fold(name: str) -> str:
    """Case-insensitive identity of a (checked, ASCII) name."""
    return name.lower()


def is_env_key(key: str) -> bool:
    return KEY_RE.fullmatch(key) is not None


def check_env_key(key: str) -> str:
    if not is_env_key(key):
        raise InvalidName(
            f"Invalid key {_shown(key)}: start with a letter or '_', then letters, digits and '_' "
            f"(at most {MAX_KEY} characters)"
        )
    return key


def label_digest(owner: str, name: str) -> str:
    """8 hex digits identifying the Space id case-insensitively."""
    return hashlib.sha256(f"{fold(owner)}/{fold(name)}".encode()).hexdigest()[:8]


def _dashes(text: str) -> str:
    return text.lower().replace("/", "-").replace("_", "-").replace(".", "-")


def hub_label(owner: str, name: str) -> str:
    """The Hub's subdomain label for ``owner/name`` (see the module docstring); not injective."""
    label = _dashes(f"{owner}/{name}")
    if len(label) <= MAX_LABEL:
        return label
    return f"{label[:_LABEL_HEAD].rstrip('-')}-{label_digest(owner, name)}"


def default_subdomain(space_id: str) -> str:
    """``Owner/My_Space`` -> ``owner-my-space``: :func:`hub_label` of a Space id. Not injective: a Space's
    address is its stored label (``Space.app_label``), this is only its first choice."""
    owner, _, name = space_id.partition("/")
    return hub_label(owner, name)


def subdomain_candidates(owner: str, name: str) -> Iterator[str]:
    """The Hub label first, then the digest form (always at most 63 characters)."""
    first = hub_label(owner, name)
    yield first
    digest = label_digest(owner, name)
    if not first.endswith(digest):
        yield f"{first[:_LABEL_HEAD].rstrip('-')}-{digest}"


def subdomain_conflict_message(space_id: str, label: str, holder: str) -> str:
    return (
        f"Cannot use the name {space_id}: its app address {label} is already used by {holder} "
        "(names that differ only in case, or in '-', '_' and '.', share one address); choose another name"
    )


def space_folder(space_id: str) -> str:
    """``owner/name`` -> ``owner--name`` (stored: the folder of exports and run logs)."""
    owner, _, name = space_id.partition("/")
    return f"{owner}--{name}"


def build_log_key(build_id: str) -> str:
    return f"build/{build_id}"


def run_log_key(space_id: str, build_id: str, started_ms: int) -> str:
    """The log of one start of ``build_id``'s app, ``started_ms`` milliseconds after the epoch."""
    return f"run/{space_folder(space_id)}/{build_id}-{started_ms}"


def runtime_slug(space_id: str) -> str:
    """``Owner/My_Space`` -> ``owner-my-space``: the Space's name in the local and Docker runtimes."""
    return space_id.replace("/", "-").replace("_", "-").lower()
