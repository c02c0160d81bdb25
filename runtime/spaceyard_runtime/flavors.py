"""Hardware flavors: the operator-editable YAML file that says what ``cpu-basic`` or ``t4-small`` means.

The file (default: ``flavors.yaml`` next to this module, shipped in the wheel) has two sections:
``pools`` (where pods may run: ``nodeSelector``, ``affinity``, ``tolerations``) and ``flavors`` (per
Hub name: cpu and memory requests and limits, GPUs, accelerator, pool, pretty name, cost). Its
comments are the reference. The API is deliberately small::

    flavors = load_flavors(settings.flavors_file)   # dict name -> Flavor, in file order
    flavor = get_flavor(flavors, "t4-small")        # UnknownFlavor lists the valid names
    hardware_info(flavor)                            # one entry of GET /api/spaces/hardware

Every value is a :class:`ClusterFlavor`, a :class:`~spaceyard_runtime.api.Flavor` that also keeps
the requests (``Flavor.cpu`` / ``memory_mib`` are the limits) and the pool's affinity; code that only
knows ``Flavor`` keeps working. Mistakes in the file raise :class:`FlavorsFileError` naming the
flavor and the key, at load time, so a bad edit fails at start-up and not at the first GPU request.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .api import Flavor

DEFAULT_FLAVORS_FILE = Path(__file__).with_name("flavors.yaml")

_POOL_KEYS = {"nodeSelector", "affinity", "tolerations"}
_FLAVOR_KEYS = {"prettyName", "pool", "cpu", "memory", "gpus", "accelerator", "gpuMemoryGiB", "unitCostUSD"}
_TOLERATION_KEYS = {"key", "operator", "value", "effect", "tolerationSeconds"}
_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(m|k|Ki|M|Mi|G|Gi|T|Ti)?$")
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
_DECIMAL = {"k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}


class FlavorsFileError(ValueError):
    """The flavors file is malformed; the message names the flavor or pool and the key."""


class UnknownFlavor(KeyError):
    """A flavor name that is not in the flavors file; the message lists the valid names."""

    def __init__(self, name: str, valid: list[str]) -> None:
        super().__init__(name)
        self.name = name
        self.valid = valid

    def __str__(self) -> str:
        return f"Unknown hardware flavor {self.name!r}; valid flavors: {', '.join(self.valid)}"


@dataclass(frozen=True)
class ClusterFlavor(Flavor):
    """A flavor as loaded from the file: limits in the ``Flavor`` fields, plus requests and affinity."""

    cpu_request: float = 0.0
    """CPUs the scheduler reserves (``Flavor.cpu`` is the limit)."""
    memory_request_mib: int = 0
    """Memory the scheduler reserves (``Flavor.memory_mib`` is the limit)."""
    gpu_memory_gib: int = 0
    affinity: Mapping[str, Any] = field(default_factory=dict)
    """A Kubernetes ``Affinity`` object from the pool, copied into the pod spec."""


def parse_cpu(value: object, where: str) -> float:
    """``"500m"`` -> 0.5, ``"2"`` / ``2`` -> 2.0."""
    text = str(value)
    match = _QUANTITY.match(text)
    if isinstance(value, bool) or not match or match.group(2) not in (None, "m"):
        raise FlavorsFileError(f"{where}: {value!r} is not a CPU quantity (e.g. 500m, 2)")
    number = float(match.group(1))
    return number / 1000 if match.group(2) == "m" else number


def parse_memory_mib(value: object, where: str) -> int:
    """``"2Gi"`` -> 2048, ``"512Mi"`` -> 512, ``"1G"`` -> 953 (rounded up)."""
    text = str(value)
    match = _QUANTITY.match(text)
    if isinstance(value, bool) or not match or match.group(2) in (None, "m"):
        raise FlavorsFileError(f"{where}: {value!r} is not a memory quantity with a unit (e.g. 512Mi, 16Gi)")
    unit = match.group(2)
    size = float(match.group(1)) * (_BINARY.get(unit) or _DECIMAL[unit])
    return max(1, -(-int(size) // 2**20))


def _mapping(value: object, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise FlavorsFileError(f"{where}: expected a mapping, got {type(value).__name__}")
    return value


def _unknown(keys: Mapping[str, Any], allowed: set[str], where: str) -> None:
    extra = sorted(set(keys) - allowed)
    if extra:
        raise FlavorsFileError(f"{where}: unknown key(s) {', '.join(extra)}; allowed: {', '.join(sorted(allowed))}")


def _pool(name: str, raw: object) -> dict[str, Any]:
    where = f"pools.{name}"
    pool = _mapping(raw, where)
    _unknown(pool, _POOL_KEYS, where)
    selector = _mapping(pool.get("nodeSelector"), f"{where}.nodeSelector")
    tolerations = pool.get("tolerations") or []
    if not isinstance(tolerations, list):
        raise FlavorsFileError(f"{where}.tolerations: expected a list")
    for i, toleration in enumerate(tolerations):
        _unknown(_mapping(toleration, f"{where}.tolerations[{i}]"), _TOLERATION_KEYS, f"{where}.tolerations[{i}]")
    return {
        "node_selector": {str(k): str(v) for k, v in selector.items()},
        "tolerations": tuple(
            {str(k): (v if k == "tolerationSeconds" else str(v)) for k, v in t.items()} for t in tolerations
        ),
        "affinity": _mapping(pool.get("affinity"), f"{where}.affinity"),
    }


def _request_limit(raw: object, where: str) -> tuple[object, object]:
    if isinstance(raw, dict):
        _unknown(raw, {"request", "limit"}, where)
        if "limit" not in raw:
            raise FlavorsFileError(f"{where}: 'limit' is required")
        return raw.get("request", raw["limit"]), raw["limit"]
    if raw is None:
        raise FlavorsFileError(f"{where}: required")
    return raw, raw


def _flavor(name: str, raw: object, pools: Mapping[str, dict[str, Any]]) -> ClusterFlavor:
    where = f"flavors.{name}"
    data = _mapping(raw, where)
    _unknown(data, _FLAVOR_KEYS, where)
    pool_name = data.get("pool")
    if pool_name is not None and pool_name not in pools:
        raise FlavorsFileError(f"{where}.pool: no pool {pool_name!r}; pools: {', '.join(pools)}")
    pool = pools.get(pool_name) if pool_name else None
    cpu_request, cpu_limit = _request_limit(data.get("cpu"), f"{where}.cpu")
    mem_request, mem_limit = _request_limit(data.get("memory"), f"{where}.memory")
    gpus = data.get("gpus", 0)
    if not isinstance(gpus, int) or isinstance(gpus, bool) or gpus < 0:
        raise FlavorsFileError(f"{where}.gpus: expected a whole number >= 0, got {gpus!r}")
    flavor = ClusterFlavor(
        name=name,
        pretty_name=str(data.get("prettyName") or name),
        cpu=parse_cpu(cpu_limit, f"{where}.cpu.limit"),
        memory_mib=parse_memory_mib(mem_limit, f"{where}.memory.limit"),
        gpus=gpus,
        accelerator=str(data["accelerator"]) if data.get("accelerator") else None,
        node_pool=str(pool_name) if pool_name else None,
        node_selector=dict(pool["node_selector"]) if pool else {},
        tolerations=pool["tolerations"] if pool else (),
        unit_cost_usd=float(data.get("unitCostUSD", 0.0)),
        cpu_request=parse_cpu(cpu_request, f"{where}.cpu.request"),
        memory_request_mib=parse_memory_mib(mem_request, f"{where}.memory.request"),
        gpu_memory_gib=int(data.get("gpuMemoryGiB", 0)),
        affinity=dict(pool["affinity"]) if pool else {},
    )
    if flavor.cpu_request > flavor.cpu or flavor.memory_request_mib > flavor.memory_mib:
        raise FlavorsFileError(f"{where}: a request is larger than its limit")
    return flavor


def parse_flavors(document: object, source: str = "<flavors>") -> dict[str, ClusterFlavor]:
    """Validate a loaded YAML document and build the flavors, in file order."""
    root = _mapping(document, source)
    _unknown(root, {"version", "pools", "flavors"}, source)
    if root.get("version", 1) != 1:
        raise FlavorsFileError(f"{source}: unsupported version {root.get('version')!r} (expected 1)")
    pools = {str(k): _pool(str(k), v) for k, v in _mapping(root.get("pools"), "pools").items()}
    raw_flavors = _mapping(root.get("flavors"), "flavors")
    if not raw_flavors:
        raise FlavorsFileError(f"{source}: no flavors defined")
    return {str(k): _flavor(str(k), v, pools) for k, v in raw_flavors.items()}


def load_flavors(path: Path | None = None) -> dict[str, Flavor]:
    """Load the flavors file at ``path`` (default: the built-in Hub-named flavors)."""
    file = path or DEFAULT_FLAVORS_FILE
    try:
        document = yaml.safe_load(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise FlavorsFileError(f"cannot read flavors file {file}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise FlavorsFileError(f"{file}: not valid YAML: {exc}") from exc
    return dict(parse_flavors(document, str(file)))


def get_flavor(flavors: Mapping[str, Flavor], name: str) -> Flavor:
    """The flavor called ``name``; :class:`UnknownFlavor` (a ``KeyError``) lists the valid names."""
    try:
        return flavors[name]
    except KeyError:
        raise UnknownFlavor(name, list(flavors)) from None


def hardware_info(flavor: Flavor) -> dict[str, Any]:
    """One entry of the Hub's ``GET /api/spaces/hardware`` list (costs per minute, like the Hub)."""
    info: dict[str, Any] = {
        "name": flavor.name,
        "prettyName": flavor.pretty_name or flavor.name,
        "cpu": f"{flavor.cpu:g} vCPU",
        "ram": f"{flavor.memory_mib / 1024:g} GB",
        "unitCostUSD": round(flavor.unit_cost_usd / 60, 8),
        "unitCostMicroUSD": round(flavor.unit_cost_usd * 1_000_000 / 60),
        "unitLabel": "minute",
        "accelerator": None,
    }
    if flavor.gpus:
        gpu_memory = flavor.gpu_memory_gib if isinstance(flavor, ClusterFlavor) else 0
        info["accelerator"] = {
            "model": flavor.accelerator or "GPU",
            "quantity": str(flavor.gpus),
            "vram": f"{gpu_memory} GB" if gpu_memory else "",
            "manufacturer": "Nvidia",
        }
    return info


def oom_message(flavor_name: str, memory_bytes: int) -> str:
    """What a Space that ran out of its flavor's memory shows (every runtime says it the same way)."""
    gib = memory_bytes / 2**30
    shown = f"{gib:.2f}".rstrip("0").rstrip(".") if gib < 10 else f"{gib:.0f}"
    return f"out of memory (limit {shown} GiB of flavor {flavor_name})"
