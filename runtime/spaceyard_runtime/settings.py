"""Runtime settings, read from ``SPACEYARD_*`` environment variables."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# The ranges a Space must not reach: RFC 1918, CGNAT (many pod/service CIDRs), link-local (cloud
# metadata at 169.254.169.254) and their IPv6 counterparts. Operators add their own cluster ranges.
DEFAULT_BLOCKED_CIDRS: tuple[str, ...] = (
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "169.254.0.0/16",
)
DEFAULT_BLOCKED_CIDRS_V6: tuple[str, ...] = ("fc00::/7", "fe80::/10")


class RuntimeSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SPACEYARD_", extra="ignore")

    runtime: Literal["local", "docker", "kubernetes"] = Field(
        "local", description="Where Spaces run: local processes, Docker containers, or Kubernetes."
    )

    @field_validator("data_dir", mode="after")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        """State paths are absolute from here on: the sandboxes bind-mount them and children change directory."""
        return value.absolute() if value is not None else None

    @field_validator("docker_network_pool", mode="after")
    @classmethod
    def _ipv4_network(cls, value: str) -> str:
        """A valid IPv4 network (host bits zero), written canonically."""
        return str(ipaddress.IPv4Network(value))

    @model_validator(mode="after")
    def _subnets_fit_the_pool(self) -> RuntimeSettings:
        pool = ipaddress.IPv4Network(self.docker_network_pool)
        if self.docker_network_prefix < pool.prefixlen:
            raise ValueError(
                f"docker_network_prefix /{self.docker_network_prefix} is wider than docker_network_pool {pool}"
            )
        return self

    data_dir: Path = Field(Path(".data"), description="Root of all state (shared with the platform).")
    app_host: str = Field("127.0.0.1", description="Address local apps bind to.")
    readiness_interval: float = Field(0.05, description="Seconds between readiness probes (<= 0.05).")
    start_timeout: float = Field(300.0, description="Seconds an app may take to answer HTTP before RUNTIME_ERROR.")
    stop_grace: float = Field(5.0, description="Seconds between SIGTERM and SIGKILL when stopping an app.")
    fast_wake: bool = Field(True, description="Local runtime: fork apps from a warm parent that has imported the SDK.")
    local_sandbox: Literal["bwrap", "none"] = Field(
        "bwrap",
        description="Local runtime: walls around each app and warm parent. bwrap: bubblewrap namespaces, an "
        "unprivileged uid per Space, cgroup v1 limits (needs root); none: apps run as the platform's user on the "
        "host's network (trusted Spaces only). See docs/security.md.",
    )
    light_sleep_memory_mib: int = Field(
        4096,
        description="Memory (MiB) the warm parents of light-sleeping Spaces may hold together, per runtime "
        "(the machine, the Docker engine, the cluster; local: the PSS of each idle warm parent's box). Past it "
        "the least recently suspended Space goes to deep sleep first (its next wake is cold); 0: no light sleep.",
    )
    local_memory_scale: float = Field(
        1.0,
        description="Local runtime: multiply each flavor's memory limit by this (a small machine can run "
        "cpu-basic's 16 GiB as e.g. 0.25 = 4 GiB); 0 disables memory limits.",
    )
    local_cpu_scale: float = Field(
        1.0, description="Local runtime: multiply each flavor's CPU limit by this; 0 disables CPU limits."
    )
    local_pids_limit: int = Field(
        4096, description="Local runtime: maximum processes (and threads) per app and per warm parent; 0: none."
    )
    docker_url: str = Field("unix:///var/run/docker.sock", description="Docker engine socket.")
    docker_network: str | None = Field(
        None,
        description="Docker runtime: network every Space container joins. Default (None): one internal bridge "
        "network per Space (spaceyard-<slug>), so Spaces cannot reach each other.",
    )
    docker_network_pool: str = Field(
        "10.210.0.0/16",
        description="Docker runtime: IPv4 range the per-Space networks take their subnets from (one "
        "docker_network_prefix-sized subnet each), instead of the engine's default pools (about 30 networks).",
    )
    docker_network_prefix: int = Field(
        28, ge=8, le=29, description="Docker runtime: prefix length of each per-Space subnet (/28: 14 addresses)."
    )
    docker_strip_default_route: bool = Field(
        True,
        description="Docker runtime: delete the default route inside each container's network namespace (needs "
        "root and nsenter), so a Space can reach nothing but its own bridge subnet.",
    )
    docker_read_only: bool = Field(
        True,
        description="Docker runtime: read-only root filesystem for gradio/streamlit images (tmpfs for /tmp and "
        "HOME caches); sdk: docker images keep a writable, ephemeral layer.",
    )
    docker_tmpfs_size: str = Field("1g", description="Docker runtime: size of each tmpfs mount (counts as memory).")
    docker_gpus: list[str] = Field(
        default_factory=list,
        description='Docker runtime: GPU indices of this host that Spaces may use (e.g. ["0", "1"]).',
    )
    docker_restart_retries: int = Field(
        3,
        description="Docker runtime: after a Space was ready, Docker restarts it this many times if it exits with "
        "an error, with Docker's doubling back-off (100 ms, 200 ms, ...).",
    )
    docker_health_interval: float = Field(
        30.0,
        description="Docker runtime: seconds between HTTP health checks of gradio/streamlit containers once "
        "started (3 failures in a row = unhealthy, reported by poll as EXITED); 0 disables them.",
    )
    docker_host_firewall: bool = Field(
        False,
        description="Docker runtime: the operator has added the host firewall rules of docs/docker.md, so host "
        "services on all interfaces are not reachable from Space containers (silences the warning at start).",
    )
    docker_pids_limit: int = Field(4096, description="Docker runtime: maximum processes per Space container.")
    kubernetes_namespace: str = Field("spaceyard-spaces", description="Namespace Spaces run in.")
    flavors_file: Path | None = Field(
        None,
        description="YAML file of hardware flavors; default: the built-in Hub-named flavors (same as the platform's).",
    )
    kubernetes_kubeconfig: Path | None = Field(
        None, description="Kubeconfig file; default: in-cluster service account, else KUBECONFIG / ~/.kube/config."
    )
    kubernetes_platform_namespace: str = Field(
        "spaceyard", description="Namespace of the control plane and gateway; Spaces' NetworkPolicy keeps them out."
    )
    kubernetes_gateway_labels: dict[str, str] = Field(
        default_factory=lambda: {"app.kubernetes.io/name": "spaceyard", "app.kubernetes.io/component": "platform"},
        description="Labels of the gateway pods, the only ones allowed to connect to Spaces (JSON in the environment).",
    )
    kubernetes_blocked_cidrs: list[str] = Field(
        default_factory=lambda: [*DEFAULT_BLOCKED_CIDRS, *DEFAULT_BLOCKED_CIDRS_V6],
        description="Address ranges Spaces may not reach (cluster, private, metadata); the internet stays open.",
    )
    kubernetes_image_pull_secrets: list[str] = Field(
        default_factory=list, description="Secrets in the Spaces namespace used to pull Space images."
    )
    kubernetes_runtime_class: str | None = Field(
        None, description="RuntimeClass for Space pods (e.g. gvisor, kata) when the cluster offers a sandbox."
    )
    kubernetes_cluster_domain: str = Field("cluster.local", description="Cluster DNS domain of Service names.")
    kubernetes_storage_class: str | None = Field(
        None,
        description="StorageClass of Spaces' persistent /data claims (one PersistentVolumeClaim per Space with "
        "storage); unset: the cluster's default class. Size enforcement is the class's driver's.",
    )
    kubernetes_hub_relay_port: int | None = Field(
        None,
        description="Kubernetes: the platform pods serve the Hub relay (HF_ENDPOINT of Spaces, Space tokens only) "
        "on this port of all their addresses, Spaces' NetworkPolicy allows egress to the platform pods on it, and "
        "apps get HF_ENDPOINT=http://<ClusterIP of kubernetes_hub_relay_service>:PORT. Unset: no relay "
        "(HF_ENDPOINT is SPACEYARD_SPACE_HUB_URL or the public URL). The chart sets it.",
    )
    kubernetes_hub_relay_service: str = Field(
        "spaceyard-hub",
        description="Kubernetes: the Service (in the platform namespace) in front of the platform pods' relay port.",
    )
    kubernetes_endpoint: Literal["service-dns", "cluster-ip"] = Field(
        "service-dns",
        description="How the gateway addresses a Space's Service: its cluster DNS name (the platform runs in "
        "the cluster), or its ClusterIP (the platform runs on a node or host that routes Service IPs but has "
        "no cluster DNS, like helm/dev-cluster.sh's host).",
    )
    kubernetes_lease_name: str = Field(
        "spaceyard-controller", description="Lease that elects the one active controller replica."
    )
    kubernetes_resync_interval: float = Field(
        30.0, description="Seconds between full reconciles of every Space by the controller."
    )

    @property
    def runtime_dir(self) -> Path:
        return self.data_dir / "runtime"
