"""Membership of Kubeflow's Istio mesh, for workloads of any component."""

from __future__ import annotations

from collections.abc import Sequence


def mesh_member(bypass_ports: Sequence[int]) -> tuple[dict[str, str], dict[str, str]]:
    """Pod labels and annotations that give a workload an Istio sidecar in Kubeflow's mesh.

    Without native sidecars, init containers run before the proxy starts while
    its traffic redirection is already in place; their outbound ports (the
    database of a schema migration) must bypass it.
    """
    return (
        {"sidecar.istio.io/inject": "true"},
        {"traffic.sidecar.istio.io/excludeOutboundPorts": ",".join(str(p) for p in bypass_ports)},
    )
