"""A Space's ``/data`` claim after it exists: grown with the Space's storage tier, and its used bytes.

* :func:`grow` asks for a larger claim when the Space's ``StorageSpec`` grew (``spec.resources.requests``,
  the one field of a bound claim that may change). The API server accepts it only if the claim's
  StorageClass has ``allowVolumeExpansion: true``; then the class's driver (its CSI resizer) grows the
  volume and ``status.capacity`` follows. A class that cannot grow answers ``403``/``422``: the claim keeps
  its size (logged; the app keeps the old limit). A smaller tier never shrinks a claim (Kubernetes cannot).
* :func:`usage` is what ``du`` says of ``/data`` in the Space's running pod (the API server's exec: the
  bytes of its files' blocks, the same count on every volume type, hostPath included), ``None`` when no
  pod of the Space runs (asleep, paused) or the exec fails. The walk runs in the app's container, so a
  hostile app can only misreport its own usage; the limit itself is the volume's size, which it cannot change.
"""

from __future__ import annotations

import logging
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.stream import stream
from kubernetes.utils import parse_quantity

from . import objects
from .clients import KubeApi, retry

log = logging.getLogger(__name__)

DU = (
    "import os\n"
    "t=0\n"
    "for r,ds,fs in os.walk('/data'):\n"
    " for n in ds+fs:\n"
    "  try: t+=os.lstat(os.path.join(r,n)).st_blocks*512\n"
    "  except OSError: pass\n"
    "print(t)\n"
)


def _quantity(value: str) -> float:
    return float(parse_quantity(value))  # type: ignore[no-untyped-call]


def grow(api: KubeApi, existing: dict[str, Any], wanted: dict[str, Any]) -> str:
    """``existing`` claim to ``wanted``'s size if that is larger: ``resized``, ``unchanged`` or ``not-resizable``."""
    have = ((existing.get("spec") or {}).get("resources") or {}).get("requests", {}).get("storage", "0")
    want = wanted["spec"]["resources"]["requests"]["storage"]
    if _quantity(want) <= _quantity(have):
        return "unchanged"
    existing["spec"]["resources"]["requests"]["storage"] = want
    try:
        retry(lambda: api.replace(existing))
    except ApiException as exc:
        if exc.status not in (403, 422):
            raise
        log.warning("the /data claim %s cannot grow to %s: %s", existing["metadata"]["name"], want, exc.reason)
        return "not-resizable"
    return "resized"


def usage(api: KubeApi, volume: str) -> int | None:
    claim = objects.data_claim_name(volume)
    for pod in api.list("Pod", objects.managed_selector()):
        claims = [((v.get("persistentVolumeClaim") or {}).get("claimName")) for v in pod["spec"].get("volumes", [])]
        running = (pod.get("status") or {}).get("phase") == "Running" and not pod["metadata"].get("deletionTimestamp")
        if claim not in claims or not running:
            continue
        try:
            out = stream(
                client.CoreV1Api(api.client).connect_get_namespaced_pod_exec,
                pod["metadata"]["name"], api.namespace, container="app", command=["python3", "-c", DU],
                stderr=False, stdin=False, stdout=True, tty=False, _request_timeout=30,
            )  # fmt: skip
            return int(str(out).strip().splitlines()[-1])
        except (ApiException, ValueError, IndexError, OSError) as exc:
            log.info("used bytes of %s: %s", claim, exc)
            return None
    return None


__all__ = ["grow", "usage"]
