"""How much the tracking server takes on: its scratch space, database pool, clients' large-artifact path, scale-out.

MLflow 3.17's proxied upload (``PUT .../mlflow-artifacts/artifacts/...``) writes the whole body to a temporary
file before it goes to S3, and a proxied download stages the whole file the same way. Clients that know the
store's address can instead move large files straight to it through presigned multipart URLs the server signs
(``MLFLOW_ENABLE_PROXY_MULTIPART_*``); notebooks get that in their PodDefault, with a threshold well below the
server's scratch size. What still goes through the server is bounded by a scratch space that fails the one
request (ENOSPC, HTTP 500) rather than getting the pod evicted.
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from mlops_platform.k8s import naming
from mlops_platform.k8s.containers import ScratchDir
from mlops_platform.tracking.settings import Scratch, TrackingConfig

SCRATCH_PATH = "/tmp"
# Largest file a notebook still sends through the server; bigger ones go to the store directly.
MAX_PROXIED_FILE = 100 * 2**20
# Sub-threshold uploads that fit in the scratch space at once.
CONCURRENT_PROXIED_UPLOADS = 4


def scratch_dir(s: Scratch) -> ScratchDir:
    return ScratchDir("tmp", SCRATCH_PATH, s.size, medium="memory" if s.medium == "memory" else "volume", storage_class=s.storage_class)


def proxied_file_limit(scratch: Scratch) -> int:
    """Files at or above this size skip the server: a quarter of its scratch space, at most 100 MiB."""
    return min(MAX_PROXIED_FILE, scratch.bytes // CONCURRENT_PROXIED_UPLOADS)


def server_env(t: TrackingConfig) -> dict[str, str]:
    return {"MLFLOW_SQLALCHEMYSTORE_POOL_SIZE": str(t.db_pool_size), "MLFLOW_SQLALCHEMYSTORE_MAX_OVERFLOW": str(t.db_max_overflow)}


def client_env(tracking: TrackingConfig, scratch: Scratch) -> dict[str, str]:
    """What an MLflow client with a path to the store needs to keep large files off the server, and to wait for a large one."""
    return {
        "MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD": "true",
        "MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD": "true",
        "MLFLOW_MULTIPART_UPLOAD_MINIMUM_FILE_SIZE": str(proxied_file_limit(scratch)),
        "MLFLOW_HTTP_REQUEST_TIMEOUT": str(tracking.request_timeout_seconds),
    }


def replicas(tracking: TrackingConfig) -> int | None:
    """The Deployment's replica count, or None while an autoscaler owns it (every `pulumi up` would reset it otherwise)."""
    return None if tracking.autoscaling.enabled else tracking.replicas


def scale_out(
    name: str,
    namespace: str,
    tracking: TrackingConfig,
    deployment: k8s.apps.v1.Deployment,
    selector: dict[str, str],
    component: str,
    opts: pulumi.ResourceOptions,
) -> None:
    """The autoscaler (when enabled) and, whenever at least two pods always run, a PodDisruptionBudget keeping one."""
    auto = tracking.autoscaling
    if auto.enabled:
        k8s.autoscaling.v2.HorizontalPodAutoscaler(
            f"{name}-hpa",
            metadata=naming.metadata(name, namespace, component=component, instance=name),
            spec=k8s.autoscaling.v2.HorizontalPodAutoscalerSpecArgs(
                scale_target_ref=k8s.autoscaling.v2.CrossVersionObjectReferenceArgs(
                    api_version="apps/v1", kind="Deployment", name=deployment.metadata.name
                ),
                min_replicas=auto.min_replicas,
                max_replicas=auto.max_replicas,
                metrics=[
                    k8s.autoscaling.v2.MetricSpecArgs(
                        type="Resource",
                        resource=k8s.autoscaling.v2.ResourceMetricSourceArgs(
                            name="cpu",
                            target=k8s.autoscaling.v2.MetricTargetArgs(type="Utilization", average_utilization=auto.target_cpu_percent),
                        ),
                    )
                ],
            ),
            opts=opts,
        )
    if tracking.min_pods > 1:
        k8s.policy.v1.PodDisruptionBudget(
            f"{name}-pdb",
            metadata=naming.metadata(name, namespace, component=component, instance=name),
            spec=k8s.policy.v1.PodDisruptionBudgetSpecArgs(min_available=1, selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector)),
            opts=opts,
        )
