"""Settings of the MLflow tracking server (``tracking.*``) and its day-two jobs (``maintenance.*``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import Field, model_validator

from mlops_platform.settings_base import (
    CronSchedule,
    DnsLabel,
    DnsName,
    Image,
    KeyPrefix,
    KeyRuleError,
    Model,
    Resources,
    Storage,
    check,
    only_when_enabled,
    quantity_bytes,
)

# The MLflow server image must run the same MLflow as the client libraries this
# project is tested with (requirements.txt pins mlflow==MLFLOW_VERSION).
MLFLOW_VERSION = "3.17.2"
# MLflow's own image (docker/Dockerfile.full, pushed by its release workflow for every release since 3.9.0):
# mlflow[extras,azure,db,gateway,genai,auth] on python:3.11-slim, so psycopg2, PyMySQL, boto3,
# prometheus-flask-exporter and basic-auth's Flask-WTF. The default without an authorization app and with basic-auth.
MLFLOW_IMAGE = f"ghcr.io/mlflow/mlflow:v{MLFLOW_VERSION}-full"
# Kubeflow's Kubernetes workspace provider and authorization app (images/mlflow/requirements.txt pins both). No
# published image holds MLflow 3.17.2 with this plugin (docs/images.md): `make image` builds images/mlflow and pushes
# it to a registry the user names; the default on microk8s is MicroK8s's registry addon (`microk8s enable registry`).
K8S_PLUGINS_VERSION = "2.1.0"
MLFLOW_K8S_IMAGE_NAME = "mlops-platform/mlflow"
MLFLOW_K8S_IMAGE_TAG = f"{MLFLOW_VERSION}-k8s{K8S_PLUGINS_VERSION}"
MICROK8S_REGISTRY = "localhost:32000"
MLFLOW_K8S_IMAGE = f"{MICROK8S_REGISTRY}/{MLFLOW_K8S_IMAGE_NAME}:{MLFLOW_K8S_IMAGE_TAG}"

# MLflow's tracking and registry stores each create their own SQLAlchemy engine in every worker (basic-auth adds a third,
# sized by the same MLFLOW_SQLALCHEMYSTORE_* settings: mlflow.server.auth.sqlalchemy_store.init_db).
MLFLOW_ENGINES_PER_WORKER = 2
SCRATCH_DEFAULT_SIZE = {"memory": "512Mi", "volume": "4Gi"}
# What the server itself needs beside a memory-backed scratch (measured: about 830 MiB RSS with 2 workers after traffic).
SERVER_MEMORY_BESIDE_SCRATCH = 1024 * 2**20

AuthApp = Literal["basic", "kubernetes", "none"]
PathPrefix = Annotated[str, check(re.compile(r"^/[a-z0-9][a-z0-9-]*$"), "one URL path segment with a leading '/', e.g. /mlflow")]

# What `mlflow gc --older-than` parses (whole numbers only here): days, hours, minutes, seconds, in that order.
_AGE = re.compile(r"^(?=.)([0-9]+d)?([0-9]+h)?([0-9]+m)?([0-9]+s)?$")


class ScratchConfig(Model):
    """The server's ``/tmp``: MLflow writes each proxied upload there whole before sending it to the store.

    ``memory`` is a tmpfs of exactly ``size`` (counted in the pod's memory limit); ``volume`` a volume of ``size``
    claimed from ``storageClass`` per pod. Either way a write beyond ``size`` fails that request (ENOSPC), and no
    pod is evicted; a disk-backed emptyDir would be evicted instead. Defaults per target: see ``TrackingConfig``.
    """

    medium: Literal["memory", "volume"] | None = Field(
        default=None,
        description="The server's /tmp: a tmpfs inside the memory limit, or a per-pod volume. Default: memory on microk8s, volume on eks.",
    )
    size: Storage | None = Field(default=None, description="Size of the scratch space. Default: 512Mi in memory, 4Gi as a volume.")
    storage_class: DnsName | None = Field(
        default=None, description="StorageClass of the scratch volume (medium volume only). Default: the target's."
    )


class AutoscalingConfig(Model):
    """A HorizontalPodAutoscaler on CPU for the tracking server; it owns the replica count while enabled."""

    enabled: bool = Field(
        default=False, description="A HorizontalPodAutoscaler on CPU; it owns the replica count, so tracking.replicas is refused."
    )
    min_replicas: int = Field(default=2, ge=1, le=20, description="Fewest server pods the autoscaler keeps.")
    max_replicas: int = Field(default=4, ge=1, le=20, description="Most server pods the autoscaler starts.")
    target_cpu_percent: int = Field(
        default=70, ge=10, le=100, description="Average CPU use, in percent of the request, the autoscaler aims at."
    )

    @model_validator(mode="after")
    def _bounds(self) -> AutoscalingConfig:
        if self.min_replicas > self.max_replicas:
            raise KeyRuleError("minReplicas", f"{self.min_replicas} exceeds maxReplicas {self.max_replicas}; allowed: at most maxReplicas")
        return only_when_enabled(self, "tracking.autoscaling")


class TlsConfig(Model):
    """The Ingress's certificate: issued by cert-manager, or an existing Secret. Exactly one."""

    issuer: DnsName | None = Field(default=None, description="The cert-manager issuer of the Ingress's certificate (or secretName).")
    issuer_kind: Literal["ClusterIssuer", "Issuer"] = Field(default="ClusterIssuer", description="Kind of the cert-manager issuer.")
    secret_name: DnsName | None = Field(default=None, description="An existing TLS Secret for the Ingress (or issuer).")

    @model_validator(mode="after")
    def _one_source(self) -> TlsConfig:
        if (self.issuer is None) == (self.secret_name is None):
            raise KeyRuleError("issuer", "and secretName: set exactly one; allowed: a cert-manager issuer, or an existing TLS Secret")
        return self


class IngressConfig(Model):
    """The prod route to MLflow: an Ingress for ``tracking.externalHost`` (nginx or the AWS load balancer controller)."""

    class_name: DnsLabel = Field(
        default="nginx",
        description="Ingress class for tracking.externalHost: nginx (ingress-nginx), alb (AWS Load Balancer Controller) or any.",
    )
    tls: TlsConfig = Field(
        default=TlsConfig(issuer="letsencrypt"), description="The Ingress's certificate: exactly one of issuer or secretName."
    )


class TrackingConfig(Model):
    """The MLflow tracking server and registry."""

    # Default: MLflow's published -full image without an authorization app or with basic-auth; with the Kubernetes
    # app the image `make image` builds (MicroK8s's registry addon on microk8s, required on eks): PlatformConfig.tracking_image.
    image: Image | None = Field(
        default=None,
        description=f"The server's image, pinned. Default: {MLFLOW_IMAGE}; with auth kubernetes, the image `make image` builds "
        "(required on eks).",
    )
    replicas: int = Field(default=1, ge=1, le=10, description="Server pods (without autoscaling).")
    workers: int = Field(default=2, ge=1, le=16, description="Worker processes per server pod.")
    # SQLAlchemy pool per engine (MLflow opens two per worker: tracking and registry); chosen from tools/bench/load.py.
    # MLflow passes either to SQLAlchemy only when non-zero (store/db/utils.py), so 0 would mean SQLAlchemy's 5 and 10.
    # A log-batch holds two connections at once: a pool of 3 + 2 ran dry at 16 clients (bench_load); 5 + 10 did not.
    db_pool_size: int = Field(
        default=5, ge=1, le=50, description="SQLAlchemy pool per engine (two engines per worker, three with basic-auth)."
    )
    db_max_overflow: int = Field(default=10, ge=1, le=50, description="SQLAlchemy connections per engine beyond the pool.")
    # The longest a request may take end to end: the Istio route, and the clients' MLFLOW_HTTP_REQUEST_TIMEOUT.
    request_timeout_seconds: int = Field(
        default=600, ge=30, le=86400, description="The route's timeout and the clients' MLFLOW_HTTP_REQUEST_TIMEOUT."
    )
    scratch: ScratchConfig = Field(default=ScratchConfig(), description="The server's /tmp, where proxied uploads are staged.")
    autoscaling: AutoscalingConfig = Field(default_factory=AutoscalingConfig, description="A HorizontalPodAutoscaler on CPU.")
    path_prefix: PathPrefix = Field(default="/mlflow", description="The URL path the server, its probes and its route use.")
    external_host: DnsName | None = Field(
        default=None, description="Host users reach MLflow through (an Ingress, and MLflow's --allowed-hosts)."
    )
    # MLflow 3 reports usage to an external endpoint unless told not to.
    telemetry: bool = Field(
        default=False,
        description="Let MLflow report usage to its external endpoint; off, the server and notebooks get MLFLOW_DISABLE_TELEMETRY.",
    )
    resources: Resources = Field(
        default=Resources(cpu_request="250m", memory_request="768Mi", memory_limit="2Gi"),
        description="The server container's requests and limits.",
    )
    # Who may call the API: MLflow's basic-auth app, Kubernetes RBAC (Kubeflow's app), or nobody checks (in-cluster only).
    # Default: kubernetes with Kubeflow workspaces, basic with an externalHost, none otherwise (PlatformConfig.tracking_auth).
    auth: AuthApp | None = Field(
        default=None,
        description="The authorization app: basic (MLflow's basic-auth), kubernetes (RBAC) or none. "
        "Default: kubernetes with Kubeflow workspaces, basic with externalHost, else none.",
    )
    ingress: IngressConfig = Field(default=IngressConfig(), description="The Ingress for tracking.externalHost.")

    @property
    def max_pods(self) -> int:
        a = self.autoscaling
        return a.max_replicas if a.enabled else self.replicas

    @property
    def min_pods(self) -> int:
        a = self.autoscaling
        return a.min_replicas if a.enabled else self.replicas


class MaintenanceConfig(Model):
    """Day-two jobs: the scheduled database dump and its retention, and MLflow's garbage collection."""

    backup_schedule: CronSchedule = Field(default="15 2 * * *", description="Cron schedule (UTC) of the database dump.")
    # Scheduled dumps kept; older ones are removed by the backup job itself (pre-migration dumps are never removed).
    backups_kept: int = Field(default=14, ge=1, le=1000, description="Scheduled dumps kept (pre-migration dumps are never removed).")
    # Default: backups/<artifacts.prefix>, beside (never inside) the tracking server's prefix.
    backup_prefix: KeyPrefix | None = Field(
        default=None,
        description="Where dumps go in the artifact bucket; must not overlap artifacts.prefix. Default: backups/<artifacts.prefix>.",
    )
    gc_schedule: CronSchedule = Field(default="45 3 * * *", description="Cron schedule (UTC) of mlflow gc.")
    gc_older_than: Annotated[str, check(_AGE, "a duration as `mlflow gc --older-than` takes it, e.g. 30d or 12h30m")] = Field(
        default="30d", description="How long a run stays deleted before mlflow gc purges it."
    )


@dataclass(frozen=True)
class Scratch:
    """The server's scratch space with the target's defaults filled in."""

    medium: str
    size: str
    storage_class: str | None

    @property
    def bytes(self) -> int:
        return quantity_bytes(self.size)
