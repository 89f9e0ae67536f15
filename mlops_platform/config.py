"""Typed stack configuration: parsed once, validated before any resource exists.

Every ``mlops-platform:*`` key of a stack file is parsed here into frozen
objects. Components receive those objects and never read ``pulumi.Config``.
A bad value raises :class:`ConfigError` with one line naming the key, what is
wrong and what is allowed; values of secret keys are never echoed.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar

import pulumi
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    model_validator,
)
from pydantic.alias_generators import to_camel

PROJECT = "mlops-platform"

# The MLflow server image must run the same MLflow as the client libraries this
# project is tested with (requirements.txt pins mlflow==MLFLOW_VERSION).
MLFLOW_VERSION = "3.17.2"
# MLflow's own image (docker/Dockerfile.full, pushed by its release workflow for every release since 3.9.0):
# mlflow[extras,azure,db,gateway,genai,auth] on python:3.11-slim, so psycopg2, PyMySQL, boto3,
# prometheus-flask-exporter and basic-auth's Flask-WTF. The default without an authorization app and with basic-auth.
MLFLOW_IMAGE = f"ghcr.io/mlflow/mlflow:v{MLFLOW_VERSION}-full"
# Kubeflow's Kubernetes workspace provider and authorization app (images/mlflow/requirements.txt pins both). No
# published image holds MLflow 3.17.2 with this plugin (README, "Images"): `make image` builds images/mlflow and pushes
# it to a registry the user names; the default on microk8s is MicroK8s's registry addon (`microk8s enable registry`).
K8S_PLUGINS_VERSION = "2.1.0"
MLFLOW_K8S_IMAGE_NAME = "mlops-platform/mlflow"
MLFLOW_K8S_IMAGE_TAG = f"{MLFLOW_VERSION}-k8s{K8S_PLUGINS_VERSION}"
MICROK8S_REGISTRY = "localhost:32000"
MLFLOW_K8S_IMAGE = f"{MICROK8S_REGISTRY}/{MLFLOW_K8S_IMAGE_NAME}:{MLFLOW_K8S_IMAGE_TAG}"
# The major the end-to-end test runs against (Debian 12 ships PostgreSQL 15).
POSTGRES_IMAGE = "docker.io/library/postgres:15.18"
# MinIO stopped publishing community images after this release (Sept 2025);
# keep both images configurable for teams on a commercial or mirrored build.
MINIO_IMAGE = "quay.io/minio/minio:RELEASE.2025-09-07T16-13-09Z"
MINIO_CLIENT_IMAGE = "quay.io/minio/mc:RELEASE.2025-08-13T08-35-41Z"
# The browser server's authenticating proxy (toolchain/versions.env builds the same release for the tests).
OAUTH2_PROXY_VERSION = "v7.15.6"
OAUTH2_PROXY_IMAGE = f"quay.io/oauth2-proxy/oauth2-proxy:{OAUTH2_PROXY_VERSION}"
# Kubeflow's Dex and the client its oauth2-proxy logs users in as (kubeflow/manifests v1.11.0:
# common/oauth2-proxy/components/istio-external-auth/requestauthentication.dex-jwt.yaml, common/oauth2-proxy/base/kustomization.yaml).
KUBEFLOW_OIDC_ISSUER = "http://dex.auth.svc.cluster.local:5556/dex"
KUBEFLOW_OIDC_CLIENT_ID = "kubeflow-oidc-authservice"


class ConfigError(pulumi.RunError):
    """Invalid stack config. RunError makes Pulumi print the message, not a traceback."""


_STORAGE = re.compile(r"^[1-9][0-9]*(Mi|Gi|Ti)$")
_CPU = re.compile(r"^([0-9]+m|[0-9]+(\.[0-9]+)?)$")
_MEMORY = re.compile(r"^[1-9][0-9]*(Mi|Gi)$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS_NAME = re.compile(r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_PREFIX = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]*[A-Za-z0-9]$|^[A-Za-z0-9]$")
_PATH_PREFIX = re.compile(r"^/[a-z0-9][a-z0-9-]*$")
_IMAGE = re.compile(r"^[a-z0-9.-]+(:[0-9]+)?/[a-z0-9._/-]+(:[A-Za-z0-9._-]+)?(@sha256:[0-9a-f]{64})?$")
_K8S_VERSION = re.compile(r"^1\.[0-9]{2}$")
_ARN = re.compile(r"^arn:aws[a-z-]*:[a-z0-9-]+:[a-z0-9-]*:[0-9]{0,12}:.+$")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-[0-9]$")
_CRON_FIELD = r"(\*|[0-9]+(-[0-9]+)?)(/[0-9]+)?(,(\*|[0-9]+(-[0-9]+)?)(/[0-9]+)?)*"
_CRON = re.compile(rf"^{_CRON_FIELD}( {_CRON_FIELD}){{4}}$")
# What `mlflow gc --older-than` parses (whole numbers only here): days, hours, minutes, seconds, in that order.
_AGE = re.compile(r"^(?=.)([0-9]+d)?([0-9]+h)?([0-9]+m)?([0-9]+s)?$")


def _check(pattern: re.Pattern[str], allowed: str) -> AfterValidator:
    def validate(value: str) -> str:
        if not pattern.match(value):
            raise ValueError(f"{value!r} is not valid; allowed: {allowed}")
        return value

    return AfterValidator(validate)


def _pinned(value: str) -> str:
    if not _IMAGE.match(value):
        raise ValueError(f"{value!r} is not an image reference; allowed: registry/repository:tag or @sha256:digest")
    tag = value.rsplit("/", 1)[-1]
    if "@sha256:" not in value and (":" not in tag or tag.endswith(":latest")):
        raise ValueError(f"{value!r} is not pinned; allowed: an explicit version tag (not latest) or a digest")
    return value


Storage = Annotated[str, _check(_STORAGE, "a whole number with Mi, Gi or Ti, e.g. 20Gi")]
Cpu = Annotated[str, _check(_CPU, "cores like 0.5 or millicores like 500m")]
Memory = Annotated[str, _check(_MEMORY, "a whole number with Mi or Gi, e.g. 512Mi")]
DnsLabel = Annotated[str, _check(_DNS_LABEL, "a DNS-1123 label: lowercase letters, digits and '-', at most 63")]
DnsName = Annotated[str, _check(_DNS_NAME, "a lowercase DNS name, e.g. kubeflow.example.com")]
BucketName = Annotated[str, _check(_BUCKET, "an S3 bucket name: 3-63 lowercase letters, digits, '.' or '-'")]
KeyPrefix = Annotated[str, _check(_PREFIX, "an S3 key prefix without leading or trailing '/', e.g. mlflow")]
PathPrefix = Annotated[str, _check(_PATH_PREFIX, "one URL path segment with a leading '/', e.g. /mlflow")]
Image = Annotated[str, AfterValidator(_pinned)]
Arn = Annotated[str, _check(_ARN, "an AWS ARN, e.g. arn:aws:iam::123456789012:oidc-provider/...")]
AuthApp = Literal["basic", "kubernetes", "none"]


_LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")


def _labels(value: dict[str, str]) -> dict[str, str]:
    for key, item in value.items():
        if not _LABEL_KEY.match(key) or not _LABEL_VALUE.match(item):
            raise ValueError(f"{key}={item!r} is not a valid label; allowed: Kubernetes label keys and values, e.g. release: prometheus")
    return value


Labels = Annotated[dict[str, str], AfterValidator(_labels)]


class _Model(BaseModel):
    """camelCase keys as in Pulumi stack files; unknown keys are errors."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True, strict=False)


class Resources(_Model):
    """Requests and limits of one container."""

    cpu_request: Cpu = "100m"
    cpu_limit: Cpu = "1"
    memory_request: Memory = "256Mi"
    memory_limit: Memory = "1Gi"


class ScratchConfig(_Model):
    """The server's ``/tmp``: MLflow writes each proxied upload there whole before sending it to the store.

    ``memory`` is a tmpfs of exactly ``size`` (counted in the pod's memory limit); ``volume`` a volume of ``size``
    claimed from ``storageClass`` per pod. Either way a write beyond ``size`` fails that request (ENOSPC), and no
    pod is evicted; a disk-backed emptyDir would be evicted instead. Defaults per target: see ``TrackingConfig``.
    """

    medium: Literal["memory", "volume"] | None = None
    size: Storage | None = None
    storage_class: DnsName | None = None


class AutoscalingConfig(_Model):
    """A HorizontalPodAutoscaler on CPU for the tracking server; it owns the replica count while enabled."""

    enabled: bool = False
    min_replicas: int = Field(default=2, ge=1, le=20)
    max_replicas: int = Field(default=4, ge=1, le=20)
    target_cpu_percent: int = Field(default=70, ge=10, le=100)

    @model_validator(mode="after")
    def _bounds(self) -> AutoscalingConfig:
        if self.min_replicas > self.max_replicas:
            raise _KeyError("minReplicas", f"{self.min_replicas} exceeds maxReplicas {self.max_replicas}; allowed: at most maxReplicas")
        return _only_when_enabled(self, "tracking.autoscaling")


class TlsConfig(_Model):
    """The Ingress's certificate: issued by cert-manager, or an existing Secret. Exactly one."""

    issuer: DnsName | None = None
    issuer_kind: Literal["ClusterIssuer", "Issuer"] = "ClusterIssuer"
    secret_name: DnsName | None = None

    @model_validator(mode="after")
    def _one_source(self) -> TlsConfig:
        if (self.issuer is None) == (self.secret_name is None):
            raise _KeyError("issuer", "and secretName: set exactly one; allowed: a cert-manager issuer, or an existing TLS Secret")
        return self


class IngressConfig(_Model):
    """The prod route to MLflow: an Ingress for ``tracking.externalHost`` (nginx or the AWS load balancer controller)."""

    class_name: DnsLabel = "nginx"
    tls: TlsConfig = TlsConfig(issuer="letsencrypt")


class TrackingConfig(_Model):
    # Default: MLflow's published -full image without an authorization app or with basic-auth; with the Kubernetes
    # app the image `make image` builds (MicroK8s's registry addon on microk8s, required on eks): PlatformConfig.tracking_image.
    image: Image | None = None
    replicas: int = Field(default=1, ge=1, le=10)
    workers: int = Field(default=2, ge=1, le=16)
    # SQLAlchemy pool per engine (MLflow opens two per worker: tracking and registry); chosen from tests/e2e/bench_load.py.
    # MLflow passes either to SQLAlchemy only when non-zero (store/db/utils.py), so 0 would mean SQLAlchemy's 5 and 10.
    # A log-batch holds two connections at once: a pool of 3 + 2 ran dry at 16 clients (bench_load); 5 + 10 did not.
    db_pool_size: int = Field(default=5, ge=1, le=50)
    db_max_overflow: int = Field(default=10, ge=1, le=50)
    # The longest a request may take end to end: the Istio route, and the clients' MLFLOW_HTTP_REQUEST_TIMEOUT.
    request_timeout_seconds: int = Field(default=600, ge=30, le=86400)
    scratch: ScratchConfig = ScratchConfig()
    autoscaling: AutoscalingConfig = Field(default_factory=AutoscalingConfig)
    path_prefix: PathPrefix = "/mlflow"
    external_host: DnsName | None = None
    # MLflow 3 reports usage to an external endpoint unless told not to.
    telemetry: bool = False
    resources: Resources = Resources(cpu_request="250m", memory_request="768Mi", memory_limit="2Gi")
    # Who may call the API: MLflow's basic-auth app, Kubernetes RBAC (Kubeflow's app), or nobody checks (in-cluster only).
    # Default: kubernetes with Kubeflow workspaces, basic with an externalHost, none otherwise (PlatformConfig.auth).
    auth: AuthApp | None = None
    ingress: IngressConfig = IngressConfig()

    @property
    def max_pods(self) -> int:
        a = self.autoscaling
        return a.max_replicas if a.enabled else self.replicas

    @property
    def min_pods(self) -> int:
        a = self.autoscaling
        return a.min_replicas if a.enabled else self.replicas


class RdsConfig(_Model):
    instance_class: str = "db.t4g.medium"
    allocated_storage_gb: int = Field(default=50, ge=20, le=65536)
    engine_version: str = "15"
    subnet_group_name: str
    security_group_ids: list[str] = Field(min_length=1)
    backup_retention_days: int = Field(default=14, ge=1, le=35)
    multi_az: bool = True


# SQLAlchemy dialect+driver of an external database, as the MLflow image's drivers name them (psycopg2, PyMySQL).
EXTERNAL_SCHEMES = ("postgresql+psycopg2", "mysql+pymysql")
_EXTERNAL_URI = re.compile(
    "^(" + "|".join(map(re.escape, EXTERNAL_SCHEMES)) + r")://[^:@/\s]+:[^@\s]+@[A-Za-z0-9.-]+(:[0-9]{1,5})?/[A-Za-z0-9_-]+(\?\S*)?$"
)


def _external_uri(value: SecretStr) -> SecretStr:
    """The URI holds a password: the message names the allowed forms and never the value."""
    if not _EXTERNAL_URI.match(value.get_secret_value()):
        raise _KeyError(
            "",
            "is not a database URI of an allowed form (value hidden); allowed: "
            "postgresql+psycopg2://USER:PASSWORD@HOST:PORT/DATABASE or mysql+pymysql://USER:PASSWORD@HOST:PORT/DATABASE",
            quotes_value=False,
        )
    return value


class ExistingSecret(_Model):
    """A Secret the user manages in the tracking namespace, holding the backend URI under ``key``."""

    name: DnsLabel
    key: Annotated[str, _check(re.compile(r"^[-._a-zA-Z0-9]{1,253}$"), "a Secret data key, e.g. uri")] = "uri"


class ExternalDatabaseConfig(_Model):
    """A database this program does not run: the URI from secret config, or from an existing Secret."""

    # Accepted only as a secret (checked in parse_config): it carries the password.
    uri: Annotated[SecretStr, AfterValidator(_external_uri)] | None = None
    existing_secret: ExistingSecret | None = None

    @model_validator(mode="after")
    def _one_source(self) -> ExternalDatabaseConfig:
        if (self.uri is None) == (self.existing_secret is None):
            raise _KeyError(
                "uri",
                "exactly one of uri and existingSecret is required; allowed: secret uri "
                "(`pulumi config set --secret --path database.external.uri ...`) or existingSecret {name, key}",
                quotes_value=False,
            )
        return self


class DatabaseConfig(_Model):
    mode: Literal["inCluster", "rds", "external"] = "inCluster"
    image: Image = POSTGRES_IMAGE
    name: DnsLabel = "mlflow"
    user: DnsLabel = "mlflow"
    storage_class: DnsName | None = None
    storage_size: Storage = "10Gi"
    # The image's default is 100; the tracking server's pools are checked against it (see TrackingConfig.db_pool_size).
    max_connections: int = Field(default=200, ge=20, le=5000)
    resources: Resources = Resources(cpu_request="100m", memory_request="256Mi", memory_limit="1Gi")
    rds: RdsConfig | None = None
    external: ExternalDatabaseConfig | None = None

    @model_validator(mode="after")
    def _rds_needs_settings(self) -> DatabaseConfig:
        if self.mode == "rds" and self.rds is None:
            raise _KeyError("rds", "is required when database.mode is rds; allowed: an object with subnetGroupName and securityGroupIds")
        if self.mode == "external" and self.external is None:
            raise _KeyError(
                "external",
                "is required when database.mode is external; allowed: an object with a secret uri or existingSecret",
                quotes_value=False,
            )
        if self.mode != "external" and self.external is not None:
            raise _KeyError("external", f"is set, but database.mode is {self.mode}; allowed: mode external, or external left out", False)
        return self

    @property
    def outside(self) -> ExternalDatabaseConfig:
        """The external block, which validation requires in external mode."""
        if self.external is None:
            raise ConfigError("mlops-platform:database.external: is required when database.mode is external")
        return self.external

    @property
    def managed(self) -> RdsConfig:
        """The rds block, which validation requires in rds mode: the typed way for RDS code to read it."""
        if self.rds is None:
            raise ConfigError("mlops-platform:database.rds: is required when database.mode is rds")
        return self.rds


class MinioConfig(_Model):
    image: Image = MINIO_IMAGE
    client_image: Image = MINIO_CLIENT_IMAGE
    storage_class: DnsName | None = None
    storage_size: Storage = "20Gi"
    resources: Resources = Resources(cpu_request="100m", memory_request="256Mi", memory_limit="1Gi")


class ArtifactsConfig(_Model):
    bucket: BucketName = "mlflow-artifacts"
    # Each tracking server gets its own prefix: two servers sharing a bucket root
    # both number experiments from 1 and would mix their files.
    prefix: KeyPrefix = "mlflow"
    noncurrent_version_days: int = Field(default=90, ge=1, le=3650)
    kms_key_arn: Arn | None = None
    minio: MinioConfig = MinioConfig()

    @property
    def root(self) -> str:
        """The tracking server's ``--artifacts-destination``, onto which ``mlflow-artifacts:/`` URIs map."""
        return f"s3://{self.bucket}/{self.prefix}"


class AwsConfig(_Model):
    region: Annotated[str, _check(_REGION, "an AWS region, e.g. eu-west-1")]
    oidc_provider_arn: Arn
    oidc_provider_url: Annotated[
        str,
        _check(
            re.compile(r"^(https://)?oidc\.eks\.[a-z0-9-]+\.amazonaws\.com/id/[A-Z0-9]+$"),
            "the cluster's OIDC issuer, e.g. oidc.eks.eu-west-1.amazonaws.com/id/ABC123",
        ),
    ]

    @property
    def oidc_issuer(self) -> str:
        """The issuer without scheme, as IAM condition keys spell it."""
        return self.oidc_provider_url.removeprefix("https://")


def _settings(block: BaseModel, keys: Iterable[str] | None = None) -> list[str]:
    """The keys of ``block`` set to something other than their default (all fields, or only ``keys``).

    An explicit default (``profiles: []``, ``dashboardTab: true``) is not a setting that is lost.
    """
    fields = type(block).model_fields
    names = [n for n in fields if keys is None or (fields[n].alias or n) in keys]
    return [fields[n].alias or n for n in names if getattr(block, n) != fields[n].get_default(call_default_factory=True)]


# A config block with an ``enabled`` switch.
_Block = TypeVar("_Block", bound=BaseModel)


def _only_when_enabled(block: _Block, name: str) -> _Block:
    """With ``enabled`` false nothing of the block is declared, so any other key set cannot take effect."""
    if getattr(block, "enabled"):  # noqa: B009 (a block with the switch; BaseModel does not declare it)
        return block
    for key in _settings(block):
        if key != "enabled":
            raise _KeyError(
                key, f"set, but {name}.enabled is false; allowed: {name}.enabled true, or {name}.{key} left out", quotes_value=False
            )
    return block


def _refuse_unused(block: BaseModel, path: str, keys: Iterable[str] | None, because: str, instead: str) -> None:
    """Settings the chosen target or mode never reads would be dropped without a word: refuse the first one."""
    for key in _settings(block, keys):
        raise _KeyError(f"{path}.{key}", f"set, but {because}; allowed: {instead}, or {path}.{key} left out", quotes_value=False)


_GATEWAY = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?/[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# No wildcards: the AuthorizationPolicy must admit the named identities and nothing else.
_PRINCIPAL = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?/ns/[a-z0-9]([-a-z0-9]*[a-z0-9])?/sa/[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
Principal = Annotated[str, _check(_PRINCIPAL, "an Istio principal without wildcards, e.g. cluster.local/ns/team-a/sa/default-editor")]


Schedule = Annotated[str, _check(_CRON, "a five-field cron schedule of numbers, ranges, steps and '*', e.g. '15 2 * * *'")]


class MaintenanceConfig(_Model):
    """Day-two jobs: the scheduled database dump and its retention, and MLflow's garbage collection."""

    backup_schedule: Schedule = "15 2 * * *"
    # Scheduled dumps kept; older ones are removed by the backup job itself (pre-migration dumps are never removed).
    backups_kept: int = Field(default=14, ge=1, le=1000)
    # Default: backups/<artifacts.prefix>, beside (never inside) the tracking server's prefix.
    backup_prefix: KeyPrefix | None = None
    gc_schedule: Schedule = "45 3 * * *"
    gc_older_than: Annotated[str, _check(_AGE, "a duration as `mlflow gc --older-than` takes it, e.g. 30d or 12h30m")] = "30d"


Generation = Annotated[int, Field(ge=0, le=1_000_000)]


class RotationConfig(_Model):
    """A generation per generated credential: raising one by one rotates that credential at the next `pulumi up`.

    0 (the default) is the credential as first generated. Each number feeds its RandomPasswords' ``keepers``
    only when above 0, so a stack that never rotates is declared exactly as before rotation existed.
    """

    # The PostgreSQL login of the server and its jobs (two logins take turns: README, Operations).
    database: Generation = 0
    # MinIO's root user (MinIO restarts to read it).
    minio_root: Generation = 0
    # Every per-client MinIO user: the tracking server's, the backup job's, each profile's and serving namespace's.
    minio_users: Generation = 0
    # basic-auth's admin user (its password lives in MLflow's auth tables).
    tracking_admin: Generation = 0


_ISSUER = re.compile(r"^https?://[a-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~/-]*)?$")
_CLIENT_ID = re.compile(r"^[A-Za-z0-9._:-]{1,255}$")


class BrowserConfig(_Model):
    """People in browsers, through Kubeflow's gateway: a second MLflow server that authorizes the gateway's user.

    Its pods verify the ID token Kubeflow's gateway forwards (issuer and audience below: Dex and the client
    Kubeflow's oauth2-proxy uses) and ask the API server whether the token's ``email`` may act in the
    workspace, as Kubeflow's own web apps do for ``kubeflow-userid``.
    """

    enabled: bool = True
    issuer: Annotated[str, _check(_ISSUER, "the issuer URL of the ID tokens Kubeflow's gateway forwards, e.g. " + KUBEFLOW_OIDC_ISSUER)] = (
        KUBEFLOW_OIDC_ISSUER
    )
    client_id: Annotated[str, _check(_CLIENT_ID, "the OIDC client id the tokens are issued to, e.g. " + KUBEFLOW_OIDC_CLIENT_ID)] = (
        KUBEFLOW_OIDC_CLIENT_ID
    )
    proxy_image: Image = OAUTH2_PROXY_IMAGE
    replicas: int = Field(default=1, ge=1, le=10)
    # The ingress gateway's pods (kubeflow/manifests common/istio/istio-install: the istio-ingressgateway Service selector);
    # the only pods the browser server's NetworkPolicy admits, in the ingress principal's namespace.
    gateway_labels: Labels = {"app": "istio-ingressgateway", "istio": "ingressgateway"}

    @model_validator(mode="after")
    def _nothing_set_while_disabled(self) -> BrowserConfig:
        return _only_when_enabled(self, "kubeflow.browser")


class KubeflowConfig(_Model):
    """Wiring into an existing Kubeflow: its gateway, dashboard and profile namespaces."""

    enabled: bool = False
    # Where Kubeflow's central dashboard and Jupyter web app run.
    namespace: DnsLabel = "kubeflow"
    gateway: Annotated[str, _check(_GATEWAY, "namespace/name of an Istio Gateway, e.g. kubeflow/kubeflow-gateway")] = (
        "kubeflow/kubeflow-gateway"
    )
    ingress_principal: Principal = "cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account"
    allowed_principals: list[Principal] = []
    external_host: DnsName | None = None
    profiles: list[DnsLabel] = []
    kfp_access: bool = False
    dashboard_tab: bool = True
    insecure_cookies: bool = False
    # One MLflow workspace per profile, every request authorized by Kubernetes RBAC (mlflow-kubernetes-plugins).
    workspaces: bool = True
    browser: BrowserConfig = BrowserConfig()
    # The MLflowConfig CRD the workspace provider watches (mlflowconfigs.mlflow.kubeflow.org). Without it the provider
    # asks the API server for them on every request; false where another operator (OpenDataHub's) already installs it.
    mlflow_config_crd: bool = True

    @model_validator(mode="after")
    def _nothing_set_while_disabled(self) -> KubeflowConfig:
        return _only_when_enabled(self, "kubeflow")

    @model_validator(mode="after")
    def _browser_needs_workspaces(self) -> KubeflowConfig:
        if self.enabled and not self.workspaces:
            for key in _settings(self.browser):
                raise _KeyError(
                    f"browser.{key}",
                    "set, but kubeflow.workspaces is false (the browser server authorizes workspaces); "
                    f"allowed: kubeflow.workspaces true, or kubeflow.browser.{key} left out",
                    quotes_value=False,
                )
            for key in _settings(self, {"mlflowConfigCrd"}):
                raise _KeyError(
                    key,
                    f"set, but kubeflow.workspaces is false; allowed: kubeflow.workspaces true, or kubeflow.{key} left out",
                    quotes_value=False,
                )
        return self

    @property
    def browser_server(self) -> BrowserConfig | None:
        """The browser server's settings when one runs: with workspaces, unless switched off."""
        return self.browser if self.enabled and self.workspaces and self.browser.enabled else None

    @model_validator(mode="after")
    def _profiles_once(self) -> KubeflowConfig:
        seen: set[str] = set()
        for index, profile in enumerate(self.profiles):
            if profile in seen:
                raise _KeyError(f"profiles.{index}", f"{profile!r} is listed twice; allowed: each profile namespace once")
            seen.add(profile)
        return self


def _tracking_uri(value: str) -> str:
    match = re.match(r"^https?://([^/?#]+)(/[^?#]*)?$", value)
    if not match:
        raise ValueError(f"{value!r} is not valid; allowed: an http(s) URL without query, e.g. https://mlflow.example.com/mlflow")
    if "@" in match.group(1):
        raise ValueError(
            "must not contain credentials; allowed: MLFLOW_TRACKING_TOKEN (or _USERNAME/_PASSWORD) in the environment, "
            "or secret serving.registryToken"
        )
    return value.rstrip("/")


Alias = Annotated[str, _check(re.compile(r"^[\w-]{1,255}$"), "an MLflow alias: letters, digits, '_' or '-', e.g. production")]


class CanaryConfig(_Model):
    """A second alias or version of the same registered model that takes a share of the traffic before it is promoted."""

    alias: Alias | None = None
    version: int | None = Field(default=None, ge=1)
    # 0 would be a rollback and 100 a promotion: both are expressed by dropping the canary.
    traffic_percent: int = Field(ge=1, le=99)

    @model_validator(mode="after")
    def _one_source(self) -> CanaryConfig:
        if (self.alias is None) == (self.version is None):
            raise ValueError("set exactly one of alias or version")
        return self


class ModelSource(_Model):
    """One InferenceService: a registry alias or version resolved at deploy time, or a pinned S3 URI."""

    name: DnsLabel
    namespace: DnsLabel
    registered_model: str | None = Field(default=None, min_length=1)
    alias: Alias | None = None
    version: int | None = Field(default=None, ge=1)
    storage_uri: (
        Annotated[str, _check(re.compile(r"^s3://[a-z0-9][a-z0-9.-]+/\S+$"), "an s3://bucket/key URI on the artifact bucket")] | None
    ) = None
    format: Literal["mlflow", "sklearn"] = "mlflow"
    canary: CanaryConfig | None = None
    # A registry version without an input/output signature is refused unless this is false.
    require_signature: bool = True
    min_replicas: int = Field(default=1, ge=0, le=100)
    max_replicas: int = Field(default=1, ge=1, le=100)
    resources: Resources = Resources(cpu_request="100m", memory_request="512Mi", memory_limit="1Gi")

    @model_validator(mode="after")
    def _one_source(self) -> ModelSource:
        chosen = [k for k in ("alias", "version", "storage_uri") if getattr(self, k) is not None]
        if len(chosen) != 1:
            raise ValueError("set exactly one of alias, version or storageUri")
        if chosen[0] != "storage_uri" and not self.registered_model:
            raise ValueError("registeredModel is required with alias or version")
        if self.min_replicas > self.max_replicas:
            raise ValueError("minReplicas must not exceed maxReplicas")
        if self.canary is not None:
            if self.storage_uri is not None:
                raise _KeyError("canary", "needs a registry source; allowed: registeredModel with alias or version, not storageUri")
            if (self.canary.alias is not None and self.canary.alias == self.alias) or (
                self.canary.version is not None and self.canary.version == self.version
            ):
                raise _KeyError("canary", "names the same alias or version as the model itself; allowed: a second alias, e.g. challenger")
        return self


class ServingConfig(_Model):
    """KServe InferenceServices for registered models, and the storage credentials they download with."""

    enabled: bool = False
    # Where `pulumi preview`/`up` reach the registry (not the in-cluster Service URL).
    mlflow_tracking_uri: Annotated[str, AfterValidator(_tracking_uri)] | None = None
    # Bearer token for the registry; accepted only as a secret (checked in components/registry.py).
    registry_token: SecretStr | None = None
    deployment_mode: Literal["RawDeployment", "Serverless"] = "RawDeployment"
    install_kserve: bool = False
    # Namespaces that get storage credentials even without a configured model.
    namespaces: list[DnsLabel] = []
    # MLflow model format versions (the major MLflow release that wrote MLmodel) the cluster's kserve-mlserver runtime serves:
    # KServe 0.16's runtime declares "1" and "2". Declare "3" only for a runtime image that loads MLflow 3 models.
    mlflow_format_versions: list[Literal["1", "2", "3"]] = ["1", "2"]
    models: list[ModelSource] = []

    @model_validator(mode="after")
    def _nothing_set_while_disabled(self) -> ServingConfig:
        return _only_when_enabled(self, "serving")

    @model_validator(mode="after")
    def _serving_rules(self) -> ServingConfig:
        if self.mlflow_tracking_uri is None and any(m.storage_uri is None for m in self.models):
            raise _KeyError(
                "mlflowTrackingUri",
                "is required when a model uses alias or version; allowed: the registry's URL as `pulumi up` reaches it, e.g. https://mlflow.example.com/mlflow",
            )
        if self.install_kserve and self.deployment_mode != "RawDeployment":
            raise _KeyError(
                "installKserve",
                "installs KServe for RawDeployment only; allowed: deploymentMode RawDeployment, "
                "or installKserve false with Knative and KServe installed separately",
            )
        seen: dict[tuple[str, str], int] = {}
        for index, model in enumerate(self.models):
            if model.canary is not None and self.deployment_mode != "Serverless":
                raise _KeyError(
                    f"models.{index}.canary",
                    f"model {model.name!r} cannot split traffic in deploymentMode {self.deployment_mode}; "
                    "allowed: deploymentMode Serverless (KServe's canaryTrafficPercent needs Knative revisions), or no canary",
                    quotes_value=False,
                )
            if model.min_replicas == 0 and self.deployment_mode != "Serverless":
                raise _KeyError(f"models.{index}.minReplicas", "0 (scale to zero) needs deploymentMode Serverless; allowed: 1 or more")
            other = seen.setdefault((model.namespace, model.name), index)
            if other != index:
                raise _KeyError(
                    f"models.{index}.name",
                    f"{model.name!r} is already used in namespace {model.namespace} by models[{other}]; "
                    "allowed: a unique name per namespace",
                )
        return self

    @property
    def credential_namespaces(self) -> list[str]:
        """Every namespace that gets storage credentials: the configured ones and each model's."""
        return list(dict.fromkeys([*self.namespaces, *(m.namespace for m in self.models)]))


S3_ONLY_ARTIFACT_KEYS = frozenset({"noncurrentVersionDays", "kmsKeyArn"})
IN_CLUSTER_DATABASE_KEYS = frozenset({"image", "storageClass", "storageSize", "maxConnections", "resources"})


_DURATION = re.compile(r"^[1-9][0-9]*(s|m)$")


class AlertThresholds(_Model):
    """When the PrometheusRule's alerts fire."""

    error_ratio: float = Field(default=0.05, gt=0, lt=1)
    p95_latency_seconds: float = Field(default=2.0, gt=0, le=120)
    # How long a condition must hold before it pages.
    for_: Annotated[str, _check(_DURATION, "seconds or minutes like 5m")] = Field(default="5m", alias="for")


class MonitoringConfig(_Model):
    """Prometheus Operator objects (ServiceMonitor, PrometheusRule) and a Grafana dashboard for the tracking server."""

    enabled: bool = False
    interval: Annotated[str, _check(_DURATION, "seconds or minutes like 30s")] = "30s"
    # What the Prometheus resource's serviceMonitorSelector and ruleSelector match (kube-prometheus-stack: release: <name>).
    prometheus_labels: Labels = {}
    dashboard: bool = True
    # Where Grafana's dashboard sidecar looks (kube-prometheus-stack: its namespace, or all with searchNamespace ALL).
    dashboard_namespace: DnsLabel | None = None
    dashboard_labels: Labels = {"grafana_dashboard": "1"}
    alerts: AlertThresholds = AlertThresholds()
    # With Kubeflow's mesh: the identity Prometheus scrapes with (Istio's certificates mounted into Prometheus),
    # admitted to GET /metrics and nothing else, e.g. cluster.local/ns/observability/sa/kube-prom-stack-kube-prome-prometheus.
    mesh_principal: Principal | None = None

    @model_validator(mode="after")
    def _nothing_set_while_disabled(self) -> MonitoringConfig:
        return _only_when_enabled(self, "monitoring")


_CRON = re.compile(r"^(@(hourly|daily|weekly|monthly|yearly)|(\S+\s+){4}\S+)$")
# Set by the platform from the tracking server and the profile's storage grant; a job may not override them.
PLATFORM_ENV = re.compile(r"^(MLFLOW_TRACKING_URI|MLFLOW_S3_ENDPOINT_URL|PROFILE_S3_URI|AWS_.*)$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _job_env(value: dict[str, str]) -> dict[str, str]:
    for name in value:
        if not _ENV_NAME.match(name):
            raise ValueError(f"{name!r} is not an environment variable name; allowed: letters, digits and '_'")
        if PLATFORM_ENV.match(name):
            raise ValueError(f"{name} is set by the platform; allowed: other names (credentials come from the profile's grant)")
    return value


class TrainingJob(_Model):
    """A training command run as a Job (once) or a CronJob (``schedule``), logging to MLflow."""

    # CronJob names are limited to 52 characters (the controller appends a suffix per run).
    name: Annotated[str, _check(re.compile(r"^[a-z0-9]([-a-z0-9]{0,50}[a-z0-9])?$"), "a DNS label of at most 52 characters")]
    # A Kubeflow profile, or the tracking namespace when left out.
    namespace: DnsLabel | None = None
    image: Image
    command: list[Annotated[str, Field(min_length=1)]] = Field(min_length=1)
    args: list[str] = []
    env: Annotated[dict[str, str], AfterValidator(_job_env)] = {}
    schedule: Annotated[str, _check(_CRON, "a cron schedule like '0 3 * * *' or @daily")] | None = None
    experiment: str | None = Field(default=None, min_length=1, max_length=200)
    resources: Resources = Resources(cpu_request="500m", cpu_limit="2", memory_request="1Gi", memory_limit="4Gi")
    # Retries of a failed run; 0 keeps the first failure's pod as it was.
    backoff_limit: int = Field(default=0, ge=0, le=6)
    active_deadline_seconds: int | None = Field(default=None, ge=60, le=7 * 24 * 3600)
    # How long a finished run (failed or not) and its pod are kept for inspection.
    keep_finished_hours: int = Field(default=24, ge=1, le=24 * 14)


class PlatformConfig(_Model):
    """The whole stack: what `__main__.py` hands to the components."""

    stack: str
    target: Literal["microk8s", "eks"]
    namespace: DnsLabel = "mlflow"
    kubernetes_version: Annotated[str, _check(_K8S_VERSION, "a minor version like 1.34")] = "1.34"
    data_protection: bool | None = None
    tracking: TrackingConfig = TrackingConfig()
    database: DatabaseConfig = DatabaseConfig()
    artifacts: ArtifactsConfig = ArtifactsConfig()
    aws: AwsConfig | None = None
    kubeflow: KubeflowConfig = KubeflowConfig()
    serving: ServingConfig = ServingConfig()
    monitoring: MonitoringConfig = MonitoringConfig()
    training: list[TrainingJob] = []

    @model_validator(mode="after")
    def _monitoring_rules(self) -> PlatformConfig:
        if self.monitoring.enabled and self.kubeflow.enabled and self.monitoring.mesh_principal is None:
            raise _KeyError(
                "monitoring.meshPrincipal",
                "is required with kubeflow.enabled: Kubeflow's mesh (mTLS, AuthorizationPolicy) refuses a scraper without an identity; "
                "allowed: Prometheus's Istio principal, e.g. cluster.local/ns/observability/sa/kube-prom-stack-kube-prome-prometheus",
                quotes_value=False,
            )
        if self.monitoring.mesh_principal is not None and not self.kubeflow.enabled:
            raise _KeyError(
                "monitoring.meshPrincipal", "set, but kubeflow.enabled is false (no mesh); allowed: left out", quotes_value=False
            )
        # MLflow's basic-auth app asks a login of every path but /health and /static (server/auth is_unprotected_route);
        # Kubeflow's kubernetes-auth app leaves /metrics open.
        if self.monitoring.enabled and self.auth == "basic" and not self.workspaces:
            raise _KeyError(
                "monitoring.enabled",
                "true, but tracking.auth is basic, which asks a login for /metrics too, so every scrape would be refused; "
                "allowed: tracking.auth kubernetes, or monitoring.enabled false",
                quotes_value=False,
            )
        return self

    @model_validator(mode="after")
    def _training_rules(self) -> PlatformConfig:
        seen: dict[tuple[str, str], int] = {}
        for index, job in enumerate(self.training):
            namespace = job.namespace or self.namespace
            if namespace != self.namespace and namespace not in (self.kubeflow.profiles if self.kubeflow.enabled else []):
                raise _KeyError(
                    f"training.{index}.namespace",
                    f"{namespace!r} is neither the tracking namespace nor a Kubeflow profile; "
                    f"allowed: {self.namespace} (left out) or one of kubeflow.profiles",
                )
            if namespace == self.namespace and self.kubeflow.enabled:
                raise _KeyError(
                    f"training.{index}.namespace",
                    "left out (the tracking namespace), but Kubeflow's mesh admits only profile identities to MLflow; "
                    "allowed: one of kubeflow.profiles",
                    quotes_value=False,
                )
            other = seen.setdefault((namespace, job.name), index)
            if other != index:
                raise _KeyError(
                    f"training.{index}.name", f"{job.name!r} is already used in {namespace} by training[{other}]; allowed: a unique name"
                )
        return self

    maintenance: MaintenanceConfig = MaintenanceConfig()
    rotation: RotationConfig = RotationConfig()

    @model_validator(mode="after")
    def _rotation_rules(self) -> PlatformConfig:
        """A generation of a credential the program does not generate here cannot take effect: refused."""
        if self.database.mode != "inCluster":
            because = {
                "rds": "database.mode is rds (RDS keeps its master password; rotate it with AWS)",
                "external": "database.mode is external (its URI and password are yours)",
            }[self.database.mode]
            _refuse_unused(self.rotation, "rotation", {"database"}, because, "database.mode inCluster")
        if self.target != "microk8s":
            _refuse_unused(
                self.rotation, "rotation", {"minioRoot", "minioUsers"}, "target is eks (S3 through IAM roles, no keys)", "target microk8s"
            )
        if self.auth != "basic":
            _refuse_unused(
                self.rotation, "rotation", {"trackingAdmin"}, f"tracking.auth is {self.auth} (no admin password)", "tracking.auth basic"
            )
        return self

    @model_validator(mode="after")
    def _target_rules(self) -> PlatformConfig:
        if self.target == "eks" and self.aws is None:
            raise _KeyError("aws", "is required for target eks; allowed: an object with region, oidcProviderArn and oidcProviderUrl")
        if self.target == "microk8s" and self.database.mode == "rds":
            raise _KeyError("database.mode", "'rds' needs target eks; allowed: 'inCluster'")
        if self.target == "microk8s":
            if self.aws is not None:
                raise _KeyError("aws", "set, but target is microk8s; allowed: target eks, or aws left out", quotes_value=False)
            # MinIO gets neither KMS encryption nor the S3 lifecycle rule.
            _refuse_unused(self.artifacts, "artifacts", S3_ONLY_ARTIFACT_KEYS, "target is microk8s (MinIO)", "target eks")
        else:
            _refuse_unused(self.artifacts.minio, "artifacts.minio", None, "target is eks (S3, no MinIO)", "target microk8s")
        _tracking_capacity_rules(self)
        if self.database.mode == "rds":
            _refuse_unused(self.database, "database", IN_CLUSTER_DATABASE_KEYS, "database.mode is rds", "database.mode inCluster")
        elif self.database.rds is not None:
            raise _KeyError(
                "database.rds",
                f"set, but database.mode is {self.database.mode}; allowed: database.mode rds, or database.rds left out",
                quotes_value=False,
            )
        if self.database.mode == "external":
            # The URI names the database and the user; nothing of a database server is declared.
            unread = IN_CLUSTER_DATABASE_KEYS | {"name", "user"}
            _refuse_unused(self.database, "database", unread, "database.mode is external", "database.mode inCluster")
        return self

    @model_validator(mode="after")
    def _maintenance_rules(self) -> PlatformConfig:
        if self.database.mode == "external":
            _refuse_unused(
                self.maintenance,
                "maintenance",
                {"backupSchedule", "backupsKept", "backupPrefix"},
                "database.mode is external (its backups are its owner's)",
                "database.mode inCluster",
            )
        if self.database.mode == "rds":
            _refuse_unused(
                self.maintenance,
                "maintenance",
                {"backupSchedule", "backupsKept"},
                "database.mode is rds (RDS takes its own automated backups)",
                "database.rds.backupRetentionDays",
            )
            dump_major, engine_major = _major(self.database.image), _major(self.database.managed.engine_version)
            if dump_major is not None and engine_major is not None and engine_major > dump_major:
                raise _KeyError(
                    "database.rds.engineVersion",
                    f"{self.database.managed.engine_version!r} is newer than the pg_dump of the pre-migration dump "
                    f"({self.database.image}); allowed: {dump_major} or older",
                )
        backups, artifacts = self.backup_prefix, self.artifacts.prefix
        if backups == artifacts or backups.startswith(artifacts + "/") or artifacts.startswith(backups + "/"):
            raise _KeyError(
                "maintenance.backupPrefix",
                f"{backups!r} overlaps artifacts.prefix {artifacts!r} (the server and gc may delete there); "
                "allowed: a prefix beside it, e.g. backups/" + artifacts,
            )
        return self

    @model_validator(mode="after")
    def _an_image_that_exists(self) -> PlatformConfig:
        # MicroK8s's registry addon is the default home of the image `make image` builds; an EKS cluster has no such
        # registry, and no published image holds this MLflow with Kubeflow's plugin.
        if self.is_eks and self.auth == "kubernetes" and self.tracking.image is None:
            raise _KeyError(
                "tracking.image",
                f"is required with tracking.auth kubernetes on eks: no published image holds MLflow {MLFLOW_VERSION} with "
                f"mlflow-kubernetes-plugins {K8S_PLUGINS_VERSION}; allowed: the image `make image REGISTRY=<your registry>` pushed, "
                f"e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com/{MLFLOW_K8S_IMAGE_NAME}:{MLFLOW_K8S_IMAGE_TAG}",
                quotes_value=False,
            )
        return self

    @model_validator(mode="after")
    def _no_route_without_authentication(self) -> PlatformConfig:
        chosen = self.tracking.auth
        if self.workspaces and chosen not in (None, "kubernetes"):
            raise _KeyError(
                "tracking.auth",
                f"{chosen!r} cannot authorize Kubeflow workspaces; allowed: 'kubernetes', or kubeflow.workspaces false",
            )
        if self.workspaces and self.serving.enabled:
            for index, model in enumerate(self.serving.models):
                if model.storage_uri is None and model.namespace not in self.kubeflow.profiles:
                    raise _KeyError(
                        f"serving.models.{index}.namespace",
                        f"{model.namespace!r} is no Kubeflow profile, so no MLflow workspace to resolve its model in; "
                        "allowed: one of kubeflow.profiles, or storageUri",
                    )
        if self.auth == "basic" and self.database.mode == "external":
            raise _KeyError(
                "tracking.auth",
                "'basic' (the default with tracking.externalHost) keeps its users in the tracking database, whose URI an external "
                "database keeps in your Secret; allowed: 'kubernetes', or database.mode inCluster or rds",
                quotes_value=False,
            )
        if chosen == "none" and self.tracking.external_host:
            raise _KeyError(
                "tracking.auth",
                "'none' with tracking.externalHost would route the internet to MLflow unauthenticated; allowed: 'basic' or 'kubernetes'",
            )
        return self

    @property
    def backup_prefix(self) -> str:
        """Where database dumps go in the artifact bucket."""
        return self.maintenance.backup_prefix or f"backups/{self.artifacts.prefix}"

    @property
    def workspaces(self) -> bool:
        """MLflow workspaces per Kubeflow profile: on by default wherever the Kubeflow integration is."""
        return self.kubeflow.enabled and self.kubeflow.workspaces

    @property
    def auth(self) -> AuthApp:
        """The authorization app the server runs (see TrackingConfig.auth for the defaults)."""
        if self.tracking.auth is not None:
            return self.tracking.auth
        if self.workspaces:
            return "kubernetes"
        return "basic" if self.tracking.external_host else "none"

    @property
    def tracking_image(self) -> str:
        if self.tracking.image is not None:
            return self.tracking.image
        return MLFLOW_K8S_IMAGE if self.auth == "kubernetes" else MLFLOW_IMAGE

    @property
    def tracking_image_published(self) -> bool:
        """False while the server runs the default image of the Kubernetes app, which only `make image` produces."""
        return self.tracking_image != MLFLOW_K8S_IMAGE

    def images(self) -> dict[str, str]:
        """Every image the stack's pods pull, by what runs it: what `pulumi preview` and `make plan` show."""
        found = {"mlflow": self.tracking_image}
        if self.database.mode != "external":
            # The pre-migration dump (and in the cluster the database itself and the backups) runs pg_dump of this image.
            found["postgresql"] = self.database.image
        if not self.is_eks:
            found["minio"] = self.artifacts.minio.image
            found["minio-client"] = self.artifacts.minio.client_image
        browser = self.kubeflow.browser_server
        if browser is not None:
            found["browser-proxy"] = browser.proxy_image
        for job in self.training:
            found[f"training/{job.name}"] = job.image
        return found

    @property
    def is_eks(self) -> bool:
        return self.target == "eks"

    @property
    def eks(self) -> AwsConfig:
        """The aws block, which validation requires on eks: the typed way for eks-only code to read it."""
        if self.aws is None:
            raise ConfigError("mlops-platform:aws: is required for target eks")
        return self.aws

    @property
    def protect_data(self) -> bool:
        """Protect and retain stateful resources: on by default in EKS (prod)."""
        return self.is_eks if self.data_protection is None else self.data_protection

    @property
    def external_hosts(self) -> list[str]:
        """Hosts users reach MLflow through: its own, and Kubeflow's gateway when integrated."""
        hosts = [self.tracking.external_host]
        if self.kubeflow.enabled:
            hosts.append(self.kubeflow.external_host)
        return list(dict.fromkeys(h for h in hosts if h))

    @property
    def storage_class(self) -> str:
        return "gp3" if self.is_eks else "microk8s-hostpath"

    @property
    def scratch(self) -> Scratch:
        """The server's scratch space with the target's defaults filled in.

        microk8s-hostpath volumes are directories on the node that ignore their size, so dev uses a tmpfs.
        """
        s = self.tracking.scratch
        medium = s.medium or ("volume" if self.is_eks else "memory")
        size = s.size or SCRATCH_DEFAULT_SIZE[medium]
        return Scratch(medium, size, s.storage_class or self.storage_class if medium == "volume" else None)

    @property
    def tracking_db_engines(self) -> int:
        """SQLAlchemy engines per server worker: the tracking and registry stores', and basic-auth's own on the same database."""
        return MLFLOW_ENGINES_PER_WORKER + (1 if self.auth == "basic" else 0)

    @property
    def mlflow_pods(self) -> int:
        """The most MLflow server pods on the database at once: the tracking server's and the browser server's."""
        browser = self.kubeflow.browser_server
        return self.tracking.max_pods + (browser.replicas if browser else 0)

    @property
    def tracking_db_connections(self) -> int:
        """The most connections the MLflow servers can open: per pod, workers x engines x (pool + overflow)."""
        t = self.tracking
        return self.mlflow_pods * t.workers * self.tracking_db_engines * (t.db_pool_size + t.db_max_overflow)


@dataclass(frozen=True)
class Scratch:
    medium: str
    size: str
    storage_class: str | None

    @property
    def bytes(self) -> int:
        return quantity_bytes(self.size)


def quantity_bytes(quantity: str) -> int:
    """``512Mi`` -> bytes (the Storage forms only: Mi, Gi, Ti)."""
    units = {"Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
    return int(quantity[:-2]) * units[quantity[-2:]]


# MLflow's tracking and registry stores each create their own SQLAlchemy engine in every worker (basic-auth adds a third,
# sized by the same MLFLOW_SQLALCHEMYSTORE_* settings: mlflow.server.auth.sqlalchemy_store.init_db).
MLFLOW_ENGINES_PER_WORKER = 2
# Of PostgreSQL's max_connections: superuser_reserved_connections (3) and room for the migration, psql and backups.
POSTGRES_RESERVED_CONNECTIONS = 10
SCRATCH_DEFAULT_SIZE = {"memory": "512Mi", "volume": "4Gi"}
# What the server itself needs beside a memory-backed scratch (measured: about 830 MiB RSS with 2 workers after traffic).
SERVER_MEMORY_BESIDE_SCRATCH = 1024 * 2**20


def _tracking_capacity_rules(cfg: PlatformConfig) -> None:
    t = cfg.tracking
    if t.autoscaling.enabled and "replicas" in t.model_fields_set:
        raise _KeyError(
            "tracking.replicas",
            "set, but tracking.autoscaling.enabled is true and the autoscaler owns the replica count; "
            "allowed: tracking.autoscaling.minReplicas and maxReplicas, or tracking.replicas left out",
            quotes_value=False,
        )
    scratch = cfg.scratch
    if scratch.medium == "memory":
        if t.scratch.storage_class is not None:
            raise _KeyError(
                "tracking.scratch.storageClass",
                "set, but tracking.scratch.medium is memory (a tmpfs); allowed: medium volume, or storageClass left out",
                quotes_value=False,
            )
        beside = quantity_bytes(t.resources.memory_limit) - scratch.bytes
        if beside < SERVER_MEMORY_BESIDE_SCRATCH:
            raise _KeyError(
                "tracking.scratch.size",
                f"{scratch.size} in memory leaves {beside // 2**20}Mi of tracking.resources.memoryLimit "
                f"{t.resources.memory_limit} to the server, which needs {SERVER_MEMORY_BESIDE_SCRATCH // 2**20}Mi; "
                "allowed: a smaller size, a larger memoryLimit, or medium volume",
                quotes_value=False,
            )
    if cfg.database.mode == "inCluster":
        budget = cfg.database.max_connections - POSTGRES_RESERVED_CONNECTIONS
        if cfg.tracking_db_connections > budget:
            raise _KeyError(
                "tracking.dbPoolSize",
                f"lets the MLflow servers open up to {cfg.tracking_db_connections} PostgreSQL connections "
                f"(pods {cfg.mlflow_pods} x workers {t.workers} x {cfg.tracking_db_engines} engines x "
                f"(dbPoolSize {t.db_pool_size} + dbMaxOverflow {t.db_max_overflow})), more than the {budget} that "
                f"database.maxConnections {cfg.database.max_connections} leaves; allowed: fewer pods or workers, a smaller pool, "
                "or a larger database.maxConnections",
                quotes_value=False,
            )


def _major(version_or_image: str) -> int | None:
    """The PostgreSQL major of ``15.18`` or ``docker.io/library/postgres:15.18`` (None when not spelled that way)."""
    match = re.match(r"^(\d+)", version_or_image.rsplit(":", 1)[-1] if "/" in version_or_image else version_or_image)
    return int(match.group(1)) if match else None


class _KeyError(ValueError):
    """A rule about a specific key (relative to the model that raised it)."""

    def __init__(self, key: str, message: str, quotes_value: bool = True):
        super().__init__(message)
        self.key = key
        self.message = message
        # A message that quotes no value may be shown for a secret key too.
        self.quotes_value = quotes_value


def _format_error(exc: ValidationError, secret_keys: frozenset[str]) -> str:
    err = exc.errors(include_url=False)[0]
    loc = [str(p) for p in err["loc"]]
    ctx_error = err.get("ctx", {}).get("error")
    if isinstance(ctx_error, _KeyError):
        loc = loc + [part for part in ctx_error.key.split(".") if part]
        # Model-level rules on the root are reported relative to the root.
        message = ctx_error.message
    elif err["type"] == "extra_forbidden":
        message = "is not a known key; allowed: " + ", ".join(_allowed_keys(loc[:-1]))
    elif err["type"] == "missing":
        message = "is required"
    elif err["type"] == "value_error":
        message = str(ctx_error)
    else:
        message = err["msg"][0].lower() + err["msg"][1:]
        if "Input should be" in err["msg"]:
            message = f"{err['input']!r} is not allowed; allowed: " + err["msg"].removeprefix("Input should be ")
    top = loc[0] if loc else "?"
    rest = "".join(f"[{p}]" if p.isdigit() else f".{p}" for p in loc[1:])
    key = f"{PROJECT}:{top}{rest}"
    if top in secret_keys and not (isinstance(ctx_error, _KeyError) and not ctx_error.quotes_value):
        message = "is invalid (value hidden: secret key)"
    return f"{key}: {message}"


def _allowed_keys(loc: list[str]) -> list[str]:
    model: Any = PlatformConfig
    for part in loc:
        if part.isdigit():
            continue
        field = next(f for n, f in model.model_fields.items() if (f.alias or n) == part or n == part)
        model = _model_of(field.annotation)
    return sorted((f.alias or n) for n, f in model.model_fields.items() if n != "stack")


def _model_of(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def parse_config(stack: str, raw: Mapping[str, str], secret_keys: frozenset[str] = frozenset()) -> PlatformConfig:
    """Parse ``{"mlops-platform:key": "value"}`` (values as Pulumi stores them) into a PlatformConfig."""
    values: dict[str, Any] = {"stack": stack}
    for full_key, text in raw.items():
        namespace, _, key = full_key.partition(":")
        if namespace != PROJECT:
            continue
        values[key] = _decode(text)
    try:
        config = PlatformConfig.model_validate(values)
    except ValidationError as exc:
        raise ConfigError(_format_error(exc, secret_keys)) from None
    rotating = _settings(config.rotation)
    if rotating and not _secrets_mutable(raw):
        raise ConfigError(
            f"{PROJECT}:rotation.{rotating[0]}: set, but kubernetes:enableSecretMutable is not true, so the kubernetes provider "
            "would delete and create again every Secret holding the credential, and every Deployment reading them; allowed: "
            "`pulumi config set kubernetes:enableSecretMutable true`, or rotation left out"
        )
    external = config.database.external
    if external is not None and external.uri is not None and "database" not in secret_keys:
        raise ConfigError(
            f"{PROJECT}:database.external.uri: is in plain text in the stack file; allowed: a secret, set with "
            "`pulumi config set --secret --path database.external.uri ...`, or database.external.existingSecret"
        )
    return config


def _secrets_mutable(raw: Mapping[str, str]) -> bool:
    """The kubernetes provider's enableSecretMutable, from stack config or its environment variable (pkg/provider/provider.go)."""
    value = raw.get("kubernetes:enableSecretMutable") or os.environ.get("PULUMI_K8S_ENABLE_SECRET_MUTABLE") or ""
    return str(value).strip().lower() == "true"


def _decode(text: Any) -> Any:
    """Objects and lists arrive as JSON text; scalars stay text for the typed fields to parse."""
    if not isinstance(text, str) or not text.lstrip().startswith(("{", "[")):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def load_config() -> PlatformConfig:
    """Read the running stack's config as the Pulumi engine hands it to the program.

    The language host passes config in ``PULUMI_CONFIG``; ``set_all_config``
    (used by the mock harness) overrides it.
    """
    from pulumi.runtime import config as runtime_config

    raw = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    env_secret_keys = set(runtime_config.get_config_secret_keys_env())
    secret_keys = frozenset(
        key.partition(":")[2]
        for key in raw
        if key.startswith(PROJECT + ":") and (key in env_secret_keys or runtime_config.is_config_secret(key))
    )
    return parse_config(pulumi.get_stack(), raw, secret_keys)


@dataclass(frozen=True)
class ClusterAccess:
    """How the kubernetes provider reaches the cluster: the stack's ``kubernetes:kubeconfig`` (a path or the document
    itself) and ``kubernetes:context``; without them KUBECONFIG or ~/.kube/config, as the provider does."""

    kubeconfig: str | None
    context: str | None


def load_cluster_access() -> ClusterAccess:
    """The running stack's kubernetes provider settings (read as the engine hands them to the program)."""
    from pulumi.runtime import config as runtime_config

    raw = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    return ClusterAccess(raw.get("kubernetes:kubeconfig") or None, raw.get("kubernetes:context") or None)
