"""Git with hostile input: ref names, revisions and repository paths checked before git sees them, and
the one way to build a git command line.

Contract (everything here is pure and cheap; nothing runs git except :func:`run`):

* :func:`check_ref_name` — a ref or branch/tag name obeying ``git check-ref-format`` (one-level names
  allowed unless ``allow_onelevel=False``): no component starting with ``.`` or ending in ``.lock``, no
  ``..``, no control character, space, ``~ ^ : ? * [ \\``, no ``@{``, not ``@``, no leading/trailing or
  double ``/``, no trailing ``.``; plus Spaceyard's own: no leading ``-``, valid UTF-8, at most
  :data:`MAX_REF_BYTES` bytes. Returns the name unchanged or raises :class:`InvalidRevision`.
* :func:`check_revision` — what a client may name as a revision (``main``, ``refs/heads/x``,
  ``refs/pr/1``, ``v1.0``, a 4-64 digit hex object name): a hex name or a valid ref name, nothing else
  (no ``HEAD~1``, ``a..b``, ``x^{tree}``, ``:/msg``, ``@{-1}``, ``-x``). Raises :class:`InvalidRevision`
  (404 ``RevisionNotFound``, the Hub's answer to a revision it cannot resolve).
* :func:`check_repo_path` — a file or folder path inside a tree, as the API receives it: leading and
  trailing ``/`` dropped; refused (:class:`InvalidPath`, 400) when empty (unless ``allow_root``), with a
  NUL, an empty, ``.`` or ``..`` component, a ``.git`` component (any case), a component over 255 bytes,
  more than :data:`MAX_PATH_BYTES` bytes, or not encodable as UTF-8.
* :func:`git_argv` — ``git [--git-dir DIR] --literal-pathspecs SUBCOMMAND *options --end-of-options
  *revs -- *paths`` (``--end-of-options`` only when there are revs or paths): options are the caller's
  constants; ``revs`` (object names, refs) come after ``--end-of-options`` so a value starting with ``-``
  is never an option; ``paths`` come after ``--`` and are literal (no pathspec magic, no globs). Pass
  user input only as ``revs`` (validated by the checks above or a 40/64-hex object id) or ``paths``, or
  on stdin; never inside ``options``.
* :func:`git_env` — the environment every git invocation gets: a few variables from ours (``PATH``,
  ``HOME``, ``LANG``, ``TMPDIR``), no ``GIT_*`` leaking in, replace refs ignored
  (``GIT_NO_REPLACE_OBJECTS``: a pushed ``refs/replace/*`` cannot make the API, the build and a clone see
  different content), no prompts, literal pathspecs; ``extra`` is merged last.
* :func:`run` — ``subprocess.run`` of a :func:`git_argv` line with :func:`git_env`, output captured.
* :data:`REPO_CONFIG` — the config every bare repository is created (and, on start, upgraded) with:
  objects are fsck'ed on receive and on transfer, so a push with a malformed tree (duplicate entries,
  ``..``/``.git`` names, bad modes) is refused by ``git receive-pack`` itself.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from .errors import BadRequest, RevisionNotFound

MAX_REF_BYTES = 255
MAX_PATH_BYTES = 4096
MAX_COMPONENT_BYTES = 255

HEX_OBJECT = re.compile(r"[0-9a-fA-F]{4,64}")
FULL_OBJECT_ID = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_FORBIDDEN_IN_REF = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")

REPO_CONFIG: tuple[tuple[str, str], ...] = (
    ("receive.fsckObjects", "true"),
    ("transfer.fsckObjects", "true"),
    ("fetch.fsckObjects", "true"),
    ("core.protectNTFS", "true"),
    ("core.protectHFS", "true"),
)

_ENV_KEPT = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")


class InvalidRevision(RevisionNotFound):
    """A revision or ref name that git would misread, or that names more than one object."""


class InvalidPath(BadRequest):
    """A path that cannot be inside a repository tree."""


def _utf8(value: str, what: str, error: type[Exception]) -> bytes:
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise error(f"Invalid {what}: not valid UTF-8") from exc


def is_ref_name(name: str, *, allow_onelevel: bool = True) -> bool:
    """Whether ``name`` passes :func:`check_ref_name`."""
    try:
        check_ref_name(name, allow_onelevel=allow_onelevel)
    except InvalidRevision:
        return False
    return True


def check_ref_name(name: str, *, allow_onelevel: bool = True) -> str:
    """``name`` if it is a valid ref name (see the module docstring), else :class:`InvalidRevision`."""
    shown = name if len(name) <= 100 else name[:100] + "..."
    bad = InvalidRevision(f"Invalid rev id: {shown!r}")
    if not name or len(_utf8(name, "rev id", InvalidRevision)) > MAX_REF_BYTES:
        raise bad
    if name.startswith("-") or name == "@" or "@{" in name or ".." in name or "//" in name:
        raise bad
    if name.startswith("/") or name.endswith("/") or name.endswith("."):
        raise bad
    if _FORBIDDEN_IN_REF.search(name):
        raise bad
    parts = name.split("/")
    if not allow_onelevel and len(parts) < 2:
        raise bad
    if any(p.startswith(".") or p.endswith(".lock") for p in parts):
        raise bad
    return name


def check_revision(rev: str) -> str:
    """``rev`` if a client may name it (a hex object name or a valid ref name), else InvalidRevision."""
    if HEX_OBJECT.fullmatch(rev):
        return rev
    return check_ref_name(rev)


def check_object_id(oid: str) -> str:
    """A full 40- or 64-digit lowercase hex object id, else :class:`InvalidRevision`."""
    if not FULL_OBJECT_ID.fullmatch(oid):
        raise InvalidRevision(f"Invalid object id: {oid[:80]!r}")
    return oid


def check_repo_path(path: str, *, allow_root: bool = False) -> str:
    """``path`` without leading/trailing ``/`` if it can name an entry of a tree, else InvalidPath."""
    shown = path if len(path) <= 200 else path[:200] + "..."
    if "\x00" in path:
        raise InvalidPath(f"Invalid path in repo: {shown!r} contains a NUL character")
    raw = _utf8(path, "path in repo", InvalidPath)
    if len(raw) > MAX_PATH_BYTES:
        raise InvalidPath(f"Invalid path in repo: longer than {MAX_PATH_BYTES} bytes")
    clean = path.strip("/")
    if not clean:
        if allow_root:
            return ""
        raise InvalidPath("A path in the repository is required")
    for part in clean.split("/"):
        if part in ("", ".", "..") or part.lower() == ".git":
            raise InvalidPath(f"Invalid path in repo: {shown!r} (empty, '.', '..' or '.git' component)")
        if len(part.encode()) > MAX_COMPONENT_BYTES:
            raise InvalidPath(f"Invalid path in repo: a component is longer than {MAX_COMPONENT_BYTES} bytes")
    return clean


def git_argv(
    subcommand: str,
    *options: str,
    git_dir: str | Path | None = None,
    revs: Iterable[str] = (),
    paths: Iterable[str] | None = None,
) -> list[str]:
    """The git command line for trusted ``options`` and untrusted ``revs``/``paths`` (module docstring)."""
    argv = ["git"]
    if git_dir is not None:
        argv += ["--git-dir", str(git_dir)]
    operands = list(revs)
    argv += ["--literal-pathspecs", subcommand, *options]
    if operands or paths is not None:  # some commands want an option last (update-index --index-info)
        argv += ["--end-of-options", *operands]
    if paths is not None:
        argv += ["--", *paths]
    return argv


def git_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a git process (module docstring)."""
    env = {k: v for k, v in os.environ.items() if k in _ENV_KEPT}
    env.update(
        {
            "GIT_NO_REPLACE_OBJECTS": "1",
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_LITERAL_PATHSPECS": "1",
        }
    )
    if extra:
        env.update(extra)
    return env


def run(
    argv: Sequence[str],
    *,
    input: bytes | None = None,  # noqa: A002
    env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run a :func:`git_argv` command line with :func:`git_env` (plus ``env``); never raises on exit code."""
    return subprocess.run(list(argv), input=input, capture_output=True, env=git_env(env), cwd=cwd, check=False)
