"""The "restricted" Pod Security Standard as a checker (https://kubernetes.io/docs/concepts/security/pod-security-standards/).

A test-side transcription of the rules the API server's PodSecurity admission enforces at level
``restricted`` (which includes ``baseline``), so a pod spec that would be refused in the Spaces
namespace fails a unit test instead of a deployment. It is our reading of the standard, not the
admission plugin itself.
"""

from __future__ import annotations

from typing import Any

ALLOWED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}
SECCOMP_OK = {"RuntimeDefault", "Localhost"}


def restricted_violations(pod: dict[str, Any]) -> list[str]:
    """Rules of the restricted level that ``pod`` (a PodSpec) breaks; empty if it is admitted."""
    problems: list[str] = []
    psc = pod.get("securityContext") or {}
    for host in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(host):
            problems.append(f"{host} is set")
    for volume in pod.get("volumes") or []:
        kinds = set(volume) - {"name"}
        if not kinds <= ALLOWED_VOLUMES:
            problems.append(f"volume {volume['name']} uses {sorted(kinds - ALLOWED_VOLUMES)}")
    containers = (pod.get("initContainers") or []) + pod.get("containers", [])
    pod_seccomp = (psc.get("seccompProfile") or {}).get("type")
    for c in containers:
        csc = c.get("securityContext") or {}
        name = c["name"]
        if csc.get("privileged"):
            problems.append(f"{name}: privileged")
        if csc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: allowPrivilegeEscalation must be false")
        caps = csc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            problems.append(f"{name}: capabilities must drop ALL")
        if set(caps.get("add") or []) - {"NET_BIND_SERVICE"}:
            problems.append(f"{name}: adds capabilities {caps['add']}")
        if not (csc.get("runAsNonRoot") or psc.get("runAsNonRoot")):
            problems.append(f"{name}: runAsNonRoot must be true")
        if csc.get("runAsUser", psc.get("runAsUser")) == 0:
            problems.append(f"{name}: runAsUser 0")
        seccomp = (csc.get("seccompProfile") or {}).get("type") or pod_seccomp
        if seccomp not in SECCOMP_OK:
            problems.append(f"{name}: seccompProfile must be RuntimeDefault or Localhost (is {seccomp})")
        apparmor = (csc.get("appArmorProfile") or psc.get("appArmorProfile") or {}).get("type")
        if apparmor == "Unconfined":
            problems.append(f"{name}: appArmorProfile Unconfined")
        for port in c.get("ports") or []:
            if port.get("hostPort"):
                problems.append(f"{name}: hostPort")
    return problems
