"""Kubernetes backend: Spaces as Deployments on CPU and GPU node pools, asleep at zero replicas.

Modules, from pure to effectful: :mod:`.slugs` (names), :mod:`.desired` (typed inputs and statuses),
:mod:`.objects` (manifests as pure ``make_*`` functions), :mod:`.clients` (the only user of the
official ``kubernetes`` client: idempotent verbs, retry with jittered backoff), :mod:`.reconcile`
(converge and observe one Space), :mod:`.controller` (leader election, resync, watches) and
:mod:`.runtime` (the :class:`~spaceyard_runtime.api.Runtime` contract). See docs/kubernetes.md.
"""
