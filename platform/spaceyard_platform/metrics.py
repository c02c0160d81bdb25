"""Prometheus metrics, served at ``/metrics``."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

WAKES = Counter("spaceyard_wakes_total", "Spaces woken by a visit", ["space", "mode"], registry=REGISTRY)
WAKE_SECONDS = Histogram(
    "spaceyard_wake_duration_seconds",
    "Time from the first held request to the app answering",
    ["space"],
    buckets=(0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0),
    registry=REGISTRY,
)
SLEEPS = Counter("spaceyard_sleeps_total", "Spaces put to sleep after their idle time", ["space"], registry=REGISTRY)
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
