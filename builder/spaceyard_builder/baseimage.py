"""Build the local base image of generated Dockerfiles, without a registry: debootstrap + ``docker import``.

Production pulls ``python:3.11-slim`` (``BuilderSettings.docker_base_image``). Machines without a
registry (tests, CI, air-gapped installs) build an equivalent from Debian packages instead::

    python -m spaceyard_builder.baseimage --tag spaceyard/python:3.11-bookworm-r2

and set ``SPACEYARD_DOCKER_BASE_IMAGE=spaceyard/python:3.11-bookworm-r2``. The function behind it,
:func:`ensure_base_image`, is idempotent (returns at once when the tag exists), coalesces concurrent
callers with a file lock, and keeps the root filesystem tarball in a cache directory
(``~/.cache/spaceyard/baseimage`` unless told otherwise) so that a wiped Docker engine re-imports it in
seconds instead of running debootstrap (about a minute) again.

What the image holds, and how it differs from ``python:3.11-slim``:

* Debian bookworm ``minbase`` + ``python3``, ``python3-venv``, ``python3-pip``, ``ca-certificates``
  and ``ffmpeg`` (the Hub's images have it; Gradio's audio and video components call it):
  Python 3.11 at ``/usr/bin/python3`` (the official image has it at ``/usr/local/bin/python3``);
  ``python`` and ``pip`` are symlinked into ``/usr/local/bin`` so Dockerfiles written for the
  official image find them;
* Debian's PEP 668 ``EXTERNALLY-MANAGED`` marker is removed, as in the official image, so a plain
  ``pip install`` works;
* the CA bundle of the building host replaces Debian's (``--ca-bundle``), and ``PIP_CERT``,
  ``SSL_CERT_FILE`` and ``REQUESTS_CA_BUNDLE`` point at it, so ``pip`` inside ``docker build
  --network host`` works behind a TLS-intercepting egress proxy;
* ``LANG=C.UTF-8`` and ``CMD ["python3"]`` like the official image.

Generated Dockerfiles only rely on ``python3 -m venv``, which both images have.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

DEFAULT_TAG = "spaceyard/python:3.11-bookworm-r2"
"""The tag carries the recipe revision: a machine holding an older image builds this one (``-r2``: ffmpeg)."""
DEFAULT_SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEFAULT_PACKAGES = ("python3", "python3-venv", "python3-pip", "ca-certificates", "ffmpeg")
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
RECIPE_VERSION = "2"


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "spaceyard" / "baseimage"


def _docker(*args: str, **kwargs: object) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["docker", *args], check=False, capture_output=True, **kwargs)  # type: ignore[call-overload,no-any-return]


def image_exists(tag: str) -> bool:
    return _docker("image", "inspect", "--format", "{{.Id}}", tag).returncode == 0


def image_id(tag: str) -> str:
    proc = _docker("image", "inspect", "--format", "{{.Id}}", tag)
    if proc.returncode != 0:
        raise RuntimeError(f"image {tag} does not exist: {proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout.decode().strip()


def _recipe_key(suite: str, mirror: str, packages: tuple[str, ...], ca_bundle: Path | None) -> str:
    h = hashlib.sha256()
    h.update(f"{RECIPE_VERSION}\n{suite}\n{mirror}\n{','.join(packages)}\n".encode())
    if ca_bundle is not None and ca_bundle.exists():
        h.update(ca_bundle.read_bytes())
    return h.hexdigest()[:16]


def _customize(root: Path, ca_bundle: Path | None) -> None:
    """Make the debootstrapped tree behave like ``python:3.11-slim`` where Dockerfiles notice."""
    for marker in (root / "usr" / "lib").glob("python3*/EXTERNALLY-MANAGED"):
        marker.unlink()
    local_bin = root / "usr" / "local" / "bin"
    local_bin.mkdir(parents=True, exist_ok=True)
    for name, target in (("python", "/usr/bin/python3"), ("pip", "/usr/bin/pip3"), ("pip3", "/usr/bin/pip3")):
        link = local_bin / name
        if not link.exists() and not link.is_symlink():
            link.symlink_to(target)
    if ca_bundle is not None and ca_bundle.exists():
        dest = root / "etc" / "ssl" / "certs" / "ca-certificates.crt"
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.is_symlink():
            dest.unlink()
        shutil.copyfile(ca_bundle, dest)
    shutil.rmtree(root / "var" / "cache" / "apt" / "archives", ignore_errors=True)
    (root / "var" / "cache" / "apt" / "archives" / "partial").mkdir(parents=True, exist_ok=True)
    lists = root / "var" / "lib" / "apt" / "lists"
    if lists.exists():
        for entry in lists.iterdir():
            if entry.is_file():
                entry.unlink()


def _debootstrap(
    tarball: Path,
    suite: str,
    mirror: str,
    packages: tuple[str, ...],
    ca_bundle: Path | None,
    log: Callable[[str], None],
) -> None:
    if shutil.which("debootstrap") is None:
        raise RuntimeError("debootstrap is not installed (apt-get install debootstrap)")
    tarball.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="rootfs.", dir=tarball.parent))
    try:
        root = work / "root"
        cmd = [
            "debootstrap",
            "--variant=minbase",
            f"--include={','.join(packages)}",
            suite,
            str(root),
            mirror,
        ]
        log(f"--> {' '.join(cmd)}")
        proc = subprocess.run(cmd, check=False, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"debootstrap failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}")
        _customize(root, ca_bundle)
        tmp_tar = work / "rootfs.tar"
        log(f"--> packing {tmp_tar.name}")
        subprocess.run(["tar", "-C", str(root), "--numeric-owner", "-cf", str(tmp_tar), "."], check=True)
        tmp_tar.rename(tarball)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _import(tarball: Path, tag: str, ca_bundle: Path | None) -> None:
    changes = [
        "ENV LANG=C.UTF-8",
        "ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin",
        'CMD ["python3"]',
    ]
    if ca_bundle is not None and ca_bundle.exists():
        bundle = "/etc/ssl/certs/ca-certificates.crt"
        changes += [f"ENV PIP_CERT={bundle}", f"ENV SSL_CERT_FILE={bundle}", f"ENV REQUESTS_CA_BUNDLE={bundle}"]
    args = ["docker", "import"]
    for change in changes:
        args += ["--change", change]
    args += ["-", tag]
    with tarball.open("rb") as f:
        proc = subprocess.run(args, stdin=f, check=False, capture_output=True)
    if proc.returncode != 0:
        raise RuntimeError(f"docker import failed: {proc.stderr.decode(errors='replace').strip()}")


def ensure_base_image(
    tag: str = DEFAULT_TAG,
    *,
    suite: str = DEFAULT_SUITE,
    mirror: str = DEFAULT_MIRROR,
    packages: tuple[str, ...] = DEFAULT_PACKAGES,
    ca_bundle: Path | None = HOST_CA_BUNDLE,
    cache_dir: Path | None = None,
    force: bool = False,
    log: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True),
) -> str:
    """Return the image id of ``tag``, building it (debootstrap + docker import) only if it is missing.

    Idempotent and safe to call concurrently (a file lock in ``cache_dir`` serialises builders; the
    others find the tag when they get the lock). ``force`` rebuilds the image from the cached tarball
    (or from scratch if there is none).
    """
    if not force and image_exists(tag):
        return image_id(tag)
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    key = _recipe_key(suite, mirror, packages, ca_bundle)
    tarball = cache / f"rootfs-{suite}-{key}.tar"
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not force and image_exists(tag):
            return image_id(tag)
        if not tarball.exists():
            log(f"--> building root filesystem for {tag} with debootstrap ({suite}); this takes about a minute")
            _debootstrap(tarball, suite, mirror, packages, ca_bundle, log)
        else:
            log(f"--> reusing cached root filesystem {tarball}")
        log(f"--> docker import {tarball.name} {tag}")
        _import(tarball, tag, ca_bundle)
    return image_id(tag)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m spaceyard_builder.baseimage",
        description="Build the local Python base image (debootstrap + docker import), unless it exists.",
    )
    parser.add_argument("--tag", default=DEFAULT_TAG, help=f"image tag (default {DEFAULT_TAG})")
    parser.add_argument("--suite", default=DEFAULT_SUITE)
    parser.add_argument("--mirror", default=DEFAULT_MIRROR)
    parser.add_argument("--cache-dir", type=Path, default=None, help="where the rootfs tarball is kept")
    parser.add_argument("--ca-bundle", type=Path, default=HOST_CA_BUNDLE, help="CA bundle to install ('' = none)")
    parser.add_argument("--force", action="store_true", help="re-import even if the tag exists")
    args = parser.parse_args(argv)
    ca = args.ca_bundle if str(args.ca_bundle) not in ("", ".") else None
    image = ensure_base_image(
        args.tag, suite=args.suite, mirror=args.mirror, cache_dir=args.cache_dir, ca_bundle=ca, force=args.force
    )
    print(f"{args.tag} {image}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
