"""One place for object names and labels, so selectors, Services and policies agree."""

from __future__ import annotations

from collections.abc import Mapping

import pulumi
import pulumi_kubernetes as k8s

PART_OF = "mlops-platform"
MANAGED_BY = "pulumi"


def selector_labels(component: str, instance: str) -> dict[str, str]:
    """The immutable subset used in Deployment selectors and NetworkPolicies."""
    return {"app.kubernetes.io/name": component, "app.kubernetes.io/instance": instance}


def labels(component: str, instance: str, **extra: str) -> dict[str, str]:
    return {
        **selector_labels(component, instance),
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/managed-by": MANAGED_BY,
        **extra,
    }


def metadata(
    name: str,
    namespace: pulumi.Input[str] | None = None,
    *,
    component: str,
    instance: str,
    annotations: Mapping[str, pulumi.Input[str]] | None = None,
    extra_labels: dict[str, str] | None = None,
) -> k8s.meta.v1.ObjectMetaArgs:
    return k8s.meta.v1.ObjectMetaArgs(
        name=name,
        namespace=namespace,
        labels=labels(component, instance, **(extra_labels or {})),
        annotations=annotations,
    )


def service_host(service: str, namespace: str) -> str:
    """The fully qualified in-cluster DNS name of a Service."""
    return f"{service}.{namespace}.svc.cluster.local"
