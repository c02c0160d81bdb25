"""Prometheus metrics, served at ``/metrics``.

Who sees what: with ``SPACEYARD_METRICS_TOKEN`` set, /metrics needs ``Authorization: Bearer <token>``
(Prometheus: ``authorization: {credentials: ...}`` in the scrape config) and shows every Space by id;
without it, /metrics is open and shows :class:`PublicView` (private Spaces summed into one label).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Sample

from spaceyard_builder.hubstore import Stats as HubStoreStats

REGISTRY = CollectorRegistry(auto_describe=True)

WAKES = Counter("spaceyard_wakes_total", "Spaces woken by a visit", ["space", "mode"], registry=REGISTRY)
WAKE_SECONDS = Histogram(
    "spaceyard_wake_duration_seconds",
    "Time from the first held request to the app answering",
    ["space"],
    buckets=(0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0),
    registry=REGISTRY,
)
WAKE_PHASE_SECONDS = Histogram(
    "spaceyard_wake_phase_seconds",
    "A wake split into its phases: 'start' (the runtime's start or resume returned: process fork or spawn, "
    "container start, pod scheduled and created) and 'ready' (from there to the app answering its probe); "
    "on Kubernetes also 'scheduling', 'image_pull', 'container_start', 'app_ready' and 'endpoints' (as the "
    "runtime saw the pod start); for every runtime 'first_byte' (ready to the first response byte through "
    "the gateway)",
    ["phase", "mode"],
    buckets=(0.01, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0),
    registry=REGISTRY,
)


class FirstByteClock:
    """The ``first_byte`` phase of a wake: from the app being ready to the gateway's first response start
    for that Space. One writer arms it (the deployer, when a wake is ready), one reader fires it (the
    gateway's timing, at every response start: a dict lookup when nothing is armed)."""

    def __init__(self) -> None:
        self._armed: dict[str, tuple[float, str]] = {}

    def arm(self, space: str, mode: str) -> None:
        self._armed[space] = (time.monotonic(), mode)

    def fire(self, space: str) -> None:
        armed = self._armed.pop(space, None)
        if armed is not None:
            WAKE_PHASE_SECONDS.labels(phase="first_byte", mode=armed[1]).observe(time.monotonic() - armed[0])


FIRST_BYTE = FirstByteClock()


def observe_wake(space: str, mode: str, extra: dict[str, Any]) -> None:
    """A finished wake: the runtime's own phases (``extra["cold_start"]["phases"]``, Kubernetes) into
    ``spaceyard_wake_phase_seconds``, and the first-byte clock armed."""
    phases = (extra.get("cold_start") or {}).get("phases") or {}
    for phase, seconds in phases.items():
        WAKE_PHASE_SECONDS.labels(phase=phase, mode=mode).observe(float(seconds))
    FIRST_BYTE.arm(space, mode)


SLEEPS = Counter("spaceyard_sleeps_total", "Spaces put to sleep after their idle time", ["space"], registry=REGISTRY)
DEEP_SLEEPS = Counter(
    "spaceyard_deep_sleeps_total",
    "Sleeping Spaces put to deep sleep after deep_sleep_after",
    ["space"],
    registry=REGISTRY,
)
BUILDS = Counter("spaceyard_builds_total", "Finished builds", ["result"], registry=REGISTRY)
BUILD_SECONDS = Histogram(
    "spaceyard_build_duration_seconds",
    "Build duration",
    buckets=(1, 2, 5, 10, 30, 60, 120, 300, 900),
    registry=REGISTRY,
)
APP_START_SECONDS = Histogram(
    "spaceyard_app_start_seconds",
    "From start to ready for a new version",
    buckets=(0.5, 1, 2, 5, 10, 30, 60, 120),
    registry=REGISTRY,
)
AWAKE = Gauge("spaceyard_awake_spaces", "Spaces with a running app", registry=REGISTRY)
"""Counted by the deployer from its running apps at each scrape, never incremented (so never negative)."""
DISK = Gauge(
    "spaceyard_disk_bytes", "Disk used per area of the data directory (at the last collection)", ["area"],
    registry=REGISTRY,
)  # fmt: skip

HUB_RELAY_REQUESTS = Counter(
    "spaceyard_hub_relay_requests_total",
    "Requests Spaces made to the Hub relay (HF_ENDPOINT inside a Space): passed (a read endpoint) or refused",
    ["result"],
    registry=REGISTRY,
)


class HubCacheCollector:
    """The shared Hub file cache (``spaceyard_builder.hubstore``), read at each scrape from its folder."""

    def __init__(self) -> None:
        self.stats: Callable[[], HubStoreStats] | None = None

    def collect(self) -> Iterator[Metric]:
        if self.stats is None:
            return
        st = self.stats()
        for name, doc, value in (
            ("bytes", "Bytes in the shared Hub file cache (preload_from_hub, stored once by content)", st.bytes),
            ("objects", "Files in the shared Hub file cache", st.objects),
            ("limit_bytes", "Size limit of the shared Hub file cache (SPACEYARD_HUB_CACHE_MAX_BYTES)", st.limit),
        ):
            yield GaugeMetricFamily(f"spaceyard_hub_cache_{name}", doc, value=value)
        for name, doc, value in (
            ("hits", "Preloaded files found in the shared Hub file cache", st.hits),
            ("misses", "Preloaded files downloaded into the shared Hub file cache", st.misses),
            (
                "evictions",
                "Files evicted from the shared Hub file cache (least recently used, over the limit)",
                st.evictions,
            ),
        ):
            yield CounterMetricFamily(f"spaceyard_hub_cache_{name}", doc, value=value)


HUB_CACHE = HubCacheCollector()
REGISTRY.register(HUB_CACHE)  # type: ignore[arg-type]


PRIVATE_LABEL = "(private)"


class PublicView:
    """The registry as anyone may scrape it (no ``SPACEYARD_METRICS_TOKEN``): a series whose ``space``
    label names a Space that is not public right now (private, or deleted) is summed into
    ``space="(private)"``, so /metrics never reveals a private Space's name, and totals stay right."""

    def __init__(self, registry: CollectorRegistry, is_public: Callable[[str], bool]) -> None:
        self.registry = registry
        self.is_public = is_public

    def collect(self) -> Iterator[Metric]:
        for family in self.registry.collect():
            merged: dict[tuple[str, tuple[tuple[str, str], ...]], Sample] = {}
            for sample in family.samples:
                labels = dict(sample.labels)
                if "space" in labels and not self.is_public(labels["space"]):
                    labels["space"] = PRIVATE_LABEL
                key = (sample.name, tuple(sorted(labels.items())))
                old = merged.get(key)
                if old is None:
                    merged[key] = sample._replace(labels=labels)
                elif sample.name.endswith("_created"):
                    merged[key] = old._replace(value=min(old.value, sample.value))
                else:
                    merged[key] = old._replace(value=old.value + sample.value)
            out = Metric(family.name, family.documentation, family.type, family.unit)
            out.samples = list(merged.values())
            yield out
