"""A small client of the OCI distribution API (what ``docker push``/``pull`` speak), over httpx.

Only what an image assembler needs: read a manifest (following an index to ``linux/amd64``), ask
whether a manifest or blob exists (``HEAD``), stream a blob, mount a blob from another repository of
the same registry, upload a blob (``POST`` + ``PUT ?digest=``, monolithic) and put a manifest.
:attr:`Registry.stats` counts what was sent, so a build can say (and a test can check) that a
no-change rebuild uploaded nothing.

Authentication: anonymous, HTTP Basic (``username``/``password``), or the Bearer token flow of Docker
Hub, GHCR, Harbor and ``registry:2`` with token auth (a ``401`` with ``WWW-Authenticate: Bearer
realm=...`` is answered by fetching a token for the scope, with the Basic credentials if given).
Plain HTTP for ``plain_http`` registries (loopback ones always, as Docker and containerd do).

Errors: network failures and 5xx/429 raise :class:`~spaceyard_builder.errors.TransientBuildError`
(the worker retries the build); other refusals raise :class:`RegistryError` (a ``BuildFailed``) with
the registry's own error text.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urljoin

import httpx

from ..errors import BuildFailed, TransientBuildError

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
MANIFEST_TYPES = (OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST)
LOOPBACK = ("localhost", "127.0.0.1", "[::1]")
CHUNK = 1 << 20


class RegistryError(BuildFailed):
    """The registry refused a request (not retried)."""


@dataclass(frozen=True)
class ImageRef:
    """``host/repository:tag`` or ``host/repository@sha256:...``."""

    host: str
    repository: str
    reference: str

    @classmethod
    def parse(cls, text: str, default_host: str | None = None) -> ImageRef:
        """Parse an image reference; a name without a registry host is looked up in ``default_host``."""
        name, digest = (text.split("@", 1) + [""])[:2]
        first, _, rest = name.partition("/")
        if rest and ("." in first or ":" in first or first == "localhost"):
            host, path = first, rest
        elif default_host:
            host, path = default_host, name
        else:
            raise BuildFailed(f"image {text!r} names no registry (and no SPACEYARD_REGISTRY is set)")
        repository, _, tag = path.rpartition(":") if ":" in path.rsplit("/", 1)[-1] else (path, "", "")
        return cls(host, repository.lower(), digest or tag or "latest")

    def __str__(self) -> str:
        sep = "@" if self.reference.startswith("sha256:") else ":"
        return f"{self.host}/{self.repository}{sep}{self.reference}"


@dataclass
class Stats:
    uploaded_blobs: int = 0
    uploaded_bytes: int = 0
    mounted_blobs: int = 0
    manifests_put: int = 0
    events: list[str] = field(default_factory=list)


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


_CHALLENGE = re.compile(r'(\w+)="([^"]*)"')


class Registry:
    """One registry host; see the module docstring. Not thread-safe: one per build."""

    def __init__(
        self,
        host: str,
        *,
        plain_http: bool = False,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 60.0,
    ) -> None:
        plain = plain_http or host.split(":")[0] in LOOPBACK or host.startswith("[::1]")
        self.host = host
        self.base = f"{'http' if plain else 'https'}://{host}"
        self.auth = (username, password or "") if username else None
        self.client = httpx.Client(timeout=httpx.Timeout(timeout, connect=10.0), follow_redirects=True)
        self.tokens: dict[str, str] = {}
        self.stats = Stats()

    def close(self) -> None:
        self.client.close()

    # -- transport ---------------------------------------------------------------------------------

    def _token(self, challenge: str, scope: str) -> str | None:
        params = dict(_CHALLENGE.findall(challenge))
        realm = params.pop("realm", None)
        if not realm:
            return None
        params["scope"] = scope
        try:
            r = self.client.get(realm, params=params, auth=self.auth)
        except httpx.HTTPError as exc:
            raise TransientBuildError(f"the registry's token service {realm} is unreachable: {exc}") from exc
        if r.status_code != 200:
            raise RegistryError(f"the registry's token service refused {scope}: HTTP {r.status_code} {r.text[:200]}")
        body = r.json()
        token = body.get("token") or body.get("access_token")
        return str(token) if token else None

    def _request(
        self, method: str, url: str, repository: str, *, stream: bool = False, **kwargs: Any
    ) -> httpx.Response:
        scope = f"repository:{repository}:pull,push" if repository else "registry:catalog:*"
        url = url if url.startswith("http") else self.base + url
        headers = dict(kwargs.pop("headers", {}))
        for attempt in range(2):
            if scope in self.tokens:
                headers["Authorization"] = f"Bearer {self.tokens[scope]}"
            auth = self.auth if "Authorization" not in headers else None
            try:
                request = self.client.build_request(method, url, headers=headers, **kwargs)
                r = self.client.send(request, stream=stream, auth=auth)
            except httpx.HTTPError as exc:
                raise TransientBuildError(f"the registry {self.host} is unreachable: {exc}") from exc
            if r.status_code == 401 and attempt == 0:
                challenge = r.headers.get("WWW-Authenticate", "")
                if stream:
                    r.close()
                if challenge.lower().startswith("bearer"):
                    token = self._token(challenge, scope)
                    if token:
                        self.tokens[scope] = token
                        continue
            break
        if r.status_code >= 500 or r.status_code == 429:
            text = r.text[:300] if not stream else ""
            raise TransientBuildError(f"the registry {self.host} failed: {method} {url}: HTTP {r.status_code} {text}")
        return r

    @staticmethod
    def _fail(r: httpx.Response, what: str) -> RegistryError:
        try:
            errors = r.json().get("errors") or []
            detail = "; ".join(f"{e.get('code')}: {e.get('message')}" for e in errors) or r.text[:300]
        except (ValueError, AttributeError):
            detail = r.text[:300]
        return RegistryError(f"{what}: HTTP {r.status_code} {detail}".rstrip())

    # -- manifests ---------------------------------------------------------------------------------

    def manifest(self, ref: ImageRef, platform: tuple[str, str] = ("linux", "amd64")) -> tuple[dict[str, Any], str]:
        """The image manifest of ``ref`` (an index resolved to ``platform``) and its digest."""
        r = self._request(
            "GET",
            f"/v2/{ref.repository}/manifests/{ref.reference}",
            ref.repository,
            headers={"Accept": ", ".join(MANIFEST_TYPES)},
        )
        if r.status_code == 404:
            raise RegistryError(f"image {ref} is not in the registry (push it there first: see docs/kubernetes.md)")
        if r.status_code != 200:
            raise self._fail(r, f"reading the manifest of {ref}")
        body: dict[str, Any] = json.loads(r.content)
        digest = r.headers.get("Docker-Content-Digest") or sha256_digest(r.content)
        if body.get("mediaType") in (OCI_INDEX, DOCKER_LIST) or "manifests" in body:
            for entry in body.get("manifests", []):
                p = entry.get("platform") or {}
                if (p.get("os"), p.get("architecture")) == platform:
                    return self.manifest(ImageRef(ref.host, ref.repository, entry["digest"]), platform)
            raise RegistryError(f"image {ref} has no {platform[0]}/{platform[1]} variant")
        return body, digest

    def manifest_exists(self, ref: ImageRef) -> bool:
        r = self._request(
            "HEAD",
            f"/v2/{ref.repository}/manifests/{ref.reference}",
            ref.repository,
            headers={"Accept": ", ".join(MANIFEST_TYPES)},
        )
        if r.status_code in (200, 404):
            return r.status_code == 200
        raise self._fail(r, f"looking up {ref}")

    def put_manifest(self, ref: ImageRef, manifest: bytes, media_type: str = OCI_MANIFEST) -> str:
        r = self._request(
            "PUT",
            f"/v2/{ref.repository}/manifests/{ref.reference}",
            ref.repository,
            content=manifest,
            headers={"Content-Type": media_type},
        )
        if r.status_code not in (200, 201):
            raise self._fail(r, f"pushing the manifest of {ref}")
        self.stats.manifests_put += 1
        return r.headers.get("Docker-Content-Digest") or sha256_digest(manifest)

    def images(self, limit: int = 20) -> list[str]:
        """Up to ``limit`` ``repository:tag`` names the registry lists (its catalog; empty if it keeps it
        private), for messages that say what is available."""
        r = self._request("GET", "/v2/_catalog", "", params={"n": "100"})
        if r.status_code != 200:
            return []
        out: list[str] = []
        for repository in r.json().get("repositories") or []:
            t = self._request("GET", f"/v2/{repository}/tags/list", repository)
            tags = (t.json().get("tags") or []) if t.status_code == 200 else []
            out += [f"{repository}:{tag}" for tag in sorted(tags) if not tag.startswith("env-")]
            if len(out) >= limit:
                break
        return out[:limit]

    # -- blobs -------------------------------------------------------------------------------------

    def blob_exists(self, repository: str, digest: str) -> bool:
        r = self._request("HEAD", f"/v2/{repository}/blobs/{digest}", repository)
        if r.status_code in (200, 404):
            return r.status_code == 200
        raise self._fail(r, f"looking up blob {digest} in {repository}")

    def blob(self, repository: str, digest: str) -> bytes:
        r = self._request("GET", f"/v2/{repository}/blobs/{digest}", repository)
        if r.status_code != 200:
            raise self._fail(r, f"reading blob {digest} of {repository}")
        if sha256_digest(r.content) != digest:
            raise RegistryError(f"blob {digest} of {repository} does not match its digest")
        return r.content

    @contextmanager
    def blob_stream(self, repository: str, digest: str) -> Iterator[Iterator[bytes]]:
        """The blob's bytes in chunks (the caller verifies the digest if it keeps them)."""
        r = self._request("GET", f"/v2/{repository}/blobs/{digest}", repository, stream=True)
        try:
            if r.status_code != 200:
                r.read()
                raise self._fail(r, f"reading blob {digest} of {repository}")
            yield r.iter_bytes(CHUNK)
        finally:
            r.close()

    def mount_blob(self, repository: str, digest: str, from_repository: str) -> bool:
        """Cross-repository mount (no bytes sent); False when the registry wants an upload instead."""
        r = self._request(
            "POST",
            f"/v2/{repository}/blobs/uploads/",
            repository,
            params={"mount": digest, "from": from_repository},
        )
        if r.status_code == 201:
            self.stats.mounted_blobs += 1
            self.stats.events.append(f"mount {digest}")
            return True
        if r.status_code == 202:  # an upload session was opened instead: abandon it
            location = r.headers.get("Location")
            if location:
                self._request("DELETE", urljoin(self.base + "/", location), repository)
            return False
        raise self._fail(r, f"mounting blob {digest} into {repository}")

    def upload_blob(self, repository: str, digest: str, data: bytes | Path) -> None:
        """Upload one blob (monolithic ``POST`` then ``PUT ?digest=``)."""
        r = self._request("POST", f"/v2/{repository}/blobs/uploads/", repository)
        if r.status_code != 202 or "Location" not in r.headers:
            raise self._fail(r, f"starting an upload to {repository}")
        location = urljoin(self.base + "/", r.headers["Location"])
        # the upload's own query (its state) stays: httpx's params= would replace it
        location += ("&" if "?" in location else "?") + "digest=" + quote(digest)
        size = data.stat().st_size if isinstance(data, Path) else len(data)
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
        if isinstance(data, Path):
            with data.open("rb") as f:
                r = self._request("PUT", location, repository, content=_chunks(f), headers=headers)
        else:
            r = self._request("PUT", location, repository, content=data, headers=headers)
        if r.status_code not in (201, 204):
            raise self._fail(r, f"uploading blob {digest} to {repository}")
        self.stats.uploaded_blobs += 1
        self.stats.uploaded_bytes += size
        self.stats.events.append(f"upload {digest} {size}")

    def ensure_blob(self, repository: str, digest: str, data: bytes | Path) -> bool:
        """Upload the blob unless the repository has it; True if bytes were sent."""
        if self.blob_exists(repository, digest):
            return False
        self.upload_blob(repository, digest, data)
        return True


def _chunks(f: Any) -> Iterator[bytes]:
    while chunk := f.read(CHUNK):
        yield chunk


__all__ = ["ImageRef", "Registry", "RegistryError", "Stats", "sha256_digest"]
