"""One-shot Jobs named by a generation: the credential rotations' steps."""

from __future__ import annotations

from collections.abc import Mapping

import pulumi
import pulumi_kubernetes as k8s

from mlops_platform.k8s import naming
from mlops_platform.k8s.containers import TMP, pod_spec, scanner_exceptions, scratch_volumes


def generation_job(
    resource_name: str,
    *,
    object_name: str,
    namespace: str,
    component: str,
    instance: str,
    job_container: k8s.core.v1.ContainerArgs,
    labels: Mapping[str, str],
    backoff_limit: int,
    opts: pulumi.ResourceOptions,
) -> k8s.batch.v1.Job:
    """A Job that runs ``job_container`` (with ``TMP`` as its scratch) once for the generation in ``object_name``.

    A failed step is tried again by the next `pulumi up` rather than awaited again (replaceUnready). A Job's spec is
    immutable, so a new generation, a new name, replaces it, the old Job deleted first.
    """
    return k8s.batch.v1.Job(
        resource_name,
        metadata=naming.metadata(
            object_name,
            namespace,
            component=component,
            instance=instance,
            extra_labels=dict(labels),
            annotations={**scanner_exceptions(job_container), "pulumi.com/replaceUnready": "true"},
        ),
        spec=k8s.batch.v1.JobSpecArgs(
            backoff_limit=backoff_limit,
            active_deadline_seconds=900,
            template=k8s.core.v1.PodTemplateSpecArgs(
                metadata=k8s.meta.v1.ObjectMetaArgs(labels=naming.labels(component, instance, **labels)),
                spec=pod_spec([job_container], restart_policy="Never", volumes=scratch_volumes([[TMP]])),
            ),
        ),
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(delete_before_replace=True)),
    )
