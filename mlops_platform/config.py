"""Typed stack configuration: parsed once, validated before any resource exists.

Every ``mlops-platform:*`` key of a stack file is parsed here into frozen objects. Each block's model lives
beside its component (``mlops_platform/<component>/settings.py``); this module holds the root, the rules that
span blocks (one rule per validator), and the parsing. Components receive those objects and never read
``pulumi.Config``. A bad value raises :class:`ConfigError` with one line naming the key, what is wrong and what
is allowed; values of secret keys are never echoed.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import pulumi
from pydantic import BaseModel, Field, ValidationError, model_validator

from mlops_platform.database.settings import IN_CLUSTER_DATABASE_KEYS, POSTGRES_RESERVED_CONNECTIONS, DatabaseConfig, postgres_major
from mlops_platform.kubeflow.settings import KubeflowConfig
from mlops_platform.monitoring.settings import MonitoringConfig
from mlops_platform.rotation import RotationConfig
from mlops_platform.serving.settings import ServingConfig
from mlops_platform.settings_base import (
    PROJECT,
    ConfigError,
    DnsLabel,
    KeyRuleError,
    Model,
    check,
    keys_set,
    quantity_bytes,
    refuse_unused,
)
from mlops_platform.storage.settings import S3_ONLY_ARTIFACT_KEYS, ArtifactsConfig, AwsConfig
from mlops_platform.tracking.settings import (
    K8S_PLUGINS_VERSION,
    MLFLOW_ENGINES_PER_WORKER,
    MLFLOW_IMAGE,
    MLFLOW_K8S_IMAGE,
    MLFLOW_K8S_IMAGE_NAME,
    MLFLOW_K8S_IMAGE_TAG,
    MLFLOW_VERSION,
    SCRATCH_DEFAULT_SIZE,
    SERVER_MEMORY_BESIDE_SCRATCH,
    AuthApp,
    MaintenanceConfig,
    Scratch,
    TrackingConfig,
)
from mlops_platform.training.settings import TrainingJob

_K8S_VERSION = re.compile(r"^1\.[0-9]{2}$")


class PlatformConfig(Model):
    """The whole stack: what `__main__.py` hands to the components."""

    stack: str
    target: Literal["microk8s", "eks"] = Field(description="Where the platform runs: microk8s (dev) or eks (prod).")
    namespace: DnsLabel = Field(default="mlflow", description="Namespace of the tracking server and its storage.")
    kubernetes_version: Annotated[str, check(_K8S_VERSION, "a minor version like 1.34")] = Field(
        default="1.34", description="The cluster's minor version; the conformance gate validates against its schema."
    )
    data_protection: bool | None = Field(
        default=None, description="Protect and retain stateful resources (database, volumes, bucket). Default: true on eks."
    )
    tracking: TrackingConfig = Field(default=TrackingConfig(), description="The MLflow tracking server and registry.")
    database: DatabaseConfig = Field(
        default=DatabaseConfig(), description="MLflow's metadata database; a secret when it holds external.uri."
    )
    artifacts: ArtifactsConfig = Field(default=ArtifactsConfig(), description="Where artifacts live: MinIO on microk8s, S3 on eks.")
    aws: AwsConfig | None = Field(default=None, description="The EKS cluster's AWS account (IRSA trust); required on eks.")
    kubeflow: KubeflowConfig = Field(default=KubeflowConfig(), description="Wiring into the cluster's Kubeflow.")
    serving: ServingConfig = Field(
        default=ServingConfig(), description="KServe serving of registered models; a secret when it holds registryToken."
    )
    monitoring: MonitoringConfig = Field(default=MonitoringConfig(), description="Prometheus Operator objects and a Grafana dashboard.")
    training: list[TrainingJob] = Field(default=[], description="Training commands run as Jobs or CronJobs that log to MLflow.")
    maintenance: MaintenanceConfig = Field(default=MaintenanceConfig(), description="The scheduled database dump and MLflow's gc.")
    rotation: RotationConfig = Field(default=RotationConfig(), description="A generation per generated credential; raise one to rotate it.")

    # The rules between blocks, one per validator, in the order they are checked (the first broken one is reported).

    @model_validator(mode="after")
    def _mesh_scrape_needs_an_identity(self) -> PlatformConfig:
        if self.monitoring.enabled and self.kubeflow.enabled and self.monitoring.mesh_principal is None:
            raise KeyRuleError(
                "monitoring.meshPrincipal",
                "is required with kubeflow.enabled: Kubeflow's mesh (mTLS, AuthorizationPolicy) refuses a scraper without an identity; "
                "allowed: Prometheus's Istio principal, e.g. cluster.local/ns/observability/sa/kube-prom-stack-kube-prome-prometheus",
                quotes_value=False,
            )
        return self

    @model_validator(mode="after")
    def _mesh_principal_needs_the_mesh(self) -> PlatformConfig:
        if self.monitoring.mesh_principal is not None and not self.kubeflow.enabled:
            raise KeyRuleError(
                "monitoring.meshPrincipal", "set, but kubeflow.enabled is false (no mesh); allowed: left out", quotes_value=False
            )
        return self

    @model_validator(mode="after")
    def _metrics_open_to_the_scraper(self) -> PlatformConfig:
        # MLflow's basic-auth app asks a login of every path but /health and /static (server/auth is_unprotected_route);
        # Kubeflow's kubernetes-auth app leaves /metrics open.
        if self.monitoring.enabled and self.tracking_auth == "basic" and not self.workspaces_enabled:
            raise KeyRuleError(
                "monitoring.enabled",
                "true, but tracking.auth is basic, which asks a login for /metrics too, so every scrape would be refused; "
                "allowed: tracking.auth kubernetes, or monitoring.enabled false",
                quotes_value=False,
            )
        return self

    @model_validator(mode="after")
    def _training_jobs_in_reach_and_unique(self) -> PlatformConfig:
        seen: dict[tuple[str, str], int] = {}
        for index, job in enumerate(self.training):
            namespace = job.namespace or self.namespace
            if namespace != self.namespace and namespace not in (self.kubeflow.profiles if self.kubeflow.enabled else []):
                raise KeyRuleError(
                    f"training.{index}.namespace",
                    f"{namespace!r} is neither the tracking namespace nor a Kubeflow profile; "
                    f"allowed: {self.namespace} (left out) or one of kubeflow.profiles",
                )
            if namespace == self.namespace and self.kubeflow.enabled:
                raise KeyRuleError(
                    f"training.{index}.namespace",
                    "left out (the tracking namespace), but Kubeflow's mesh admits only profile identities to MLflow; "
                    "allowed: one of kubeflow.profiles",
                    quotes_value=False,
                )
            other = seen.setdefault((namespace, job.name), index)
            if other != index:
                raise KeyRuleError(
                    f"training.{index}.name", f"{job.name!r} is already used in {namespace} by training[{other}]; allowed: a unique name"
                )
        return self

    @model_validator(mode="after")
    def _rotate_only_generated_database_logins(self) -> PlatformConfig:
        """A generation of a credential the program does not generate here cannot take effect: refused."""
        if self.database.mode != "inCluster":
            because = {
                "rds": "database.mode is rds (RDS keeps its master password; rotate it with AWS)",
                "external": "database.mode is external (its URI and password are yours)",
            }[self.database.mode]
            refuse_unused(self.rotation, "rotation", {"database"}, because, "database.mode inCluster")
        return self

    @model_validator(mode="after")
    def _rotate_minio_keys_only_with_minio(self) -> PlatformConfig:
        if self.target != "microk8s":
            refuse_unused(
                self.rotation, "rotation", {"minioRoot", "minioUsers"}, "target is eks (S3 through IAM roles, no keys)", "target microk8s"
            )
        return self

    @model_validator(mode="after")
    def _rotate_admin_only_with_basic_auth(self) -> PlatformConfig:
        if self.tracking_auth != "basic":
            refuse_unused(
                self.rotation,
                "rotation",
                {"trackingAdmin"},
                f"tracking.auth is {self.tracking_auth} (no admin password)",
                "tracking.auth basic",
            )
        return self

    @model_validator(mode="after")
    def _eks_needs_aws(self) -> PlatformConfig:
        if self.target == "eks" and self.aws is None:
            raise KeyRuleError("aws", "is required for target eks; allowed: an object with region, oidcProviderArn and oidcProviderUrl")
        return self

    @model_validator(mode="after")
    def _rds_needs_eks(self) -> PlatformConfig:
        if self.target == "microk8s" and self.database.mode == "rds":
            raise KeyRuleError("database.mode", "'rds' needs target eks; allowed: 'inCluster'")
        return self

    @model_validator(mode="after")
    def _aws_only_on_eks(self) -> PlatformConfig:
        if self.target == "microk8s" and self.aws is not None:
            raise KeyRuleError("aws", "set, but target is microk8s; allowed: target eks, or aws left out", quotes_value=False)
        return self

    @model_validator(mode="after")
    def _store_settings_of_the_target_only(self) -> PlatformConfig:
        if self.target == "microk8s":
            # MinIO gets neither KMS encryption nor the S3 lifecycle rule.
            refuse_unused(self.artifacts, "artifacts", S3_ONLY_ARTIFACT_KEYS, "target is microk8s (MinIO)", "target eks")
        else:
            refuse_unused(self.artifacts.minio, "artifacts.minio", None, "target is eks (S3, no MinIO)", "target microk8s")
        return self

    @model_validator(mode="after")
    def _replicas_or_autoscaling(self) -> PlatformConfig:
        t = self.tracking
        if t.autoscaling.enabled and "replicas" in t.model_fields_set:
            raise KeyRuleError(
                "tracking.replicas",
                "set, but tracking.autoscaling.enabled is true and the autoscaler owns the replica count; "
                "allowed: tracking.autoscaling.minReplicas and maxReplicas, or tracking.replicas left out",
                quotes_value=False,
            )
        return self

    @model_validator(mode="after")
    def _no_storage_class_for_a_tmpfs(self) -> PlatformConfig:
        if self.tracking_scratch.medium == "memory" and self.tracking.scratch.storage_class is not None:
            raise KeyRuleError(
                "tracking.scratch.storageClass",
                "set, but tracking.scratch.medium is memory (a tmpfs); allowed: medium volume, or storageClass left out",
                quotes_value=False,
            )
        return self

    @model_validator(mode="after")
    def _tmpfs_leaves_the_server_its_memory(self) -> PlatformConfig:
        t, scratch = self.tracking, self.tracking_scratch
        if scratch.medium == "memory":
            beside = quantity_bytes(t.resources.memory_limit) - scratch.bytes
            if beside < SERVER_MEMORY_BESIDE_SCRATCH:
                raise KeyRuleError(
                    "tracking.scratch.size",
                    f"{scratch.size} in memory leaves {beside // 2**20}Mi of tracking.resources.memoryLimit "
                    f"{t.resources.memory_limit} to the server, which needs {SERVER_MEMORY_BESIDE_SCRATCH // 2**20}Mi; "
                    "allowed: a smaller size, a larger memoryLimit, or medium volume",
                    quotes_value=False,
                )
        return self

    @model_validator(mode="after")
    def _pools_fit_in_postgres(self) -> PlatformConfig:
        t = self.tracking
        if self.database.mode == "inCluster":
            budget = self.database.max_connections - POSTGRES_RESERVED_CONNECTIONS
            if self.tracking_db_connections > budget:
                raise KeyRuleError(
                    "tracking.dbPoolSize",
                    f"lets the MLflow servers open up to {self.tracking_db_connections} PostgreSQL connections "
                    f"(pods {self.mlflow_pods} x workers {t.workers} x {self.tracking_db_engines} engines x "
                    f"(dbPoolSize {t.db_pool_size} + dbMaxOverflow {t.db_max_overflow})), more than the {budget} that "
                    f"database.maxConnections {self.database.max_connections} leaves; allowed: fewer pods or workers, a smaller pool, "
                    "or a larger database.maxConnections",
                    quotes_value=False,
                )
        return self

    @model_validator(mode="after")
    def _database_settings_of_the_mode_only(self) -> PlatformConfig:
        if self.database.mode == "rds":
            refuse_unused(self.database, "database", IN_CLUSTER_DATABASE_KEYS, "database.mode is rds", "database.mode inCluster")
        elif self.database.rds is not None:
            raise KeyRuleError(
                "database.rds",
                f"set, but database.mode is {self.database.mode}; allowed: database.mode rds, or database.rds left out",
                quotes_value=False,
            )
        if self.database.mode == "external":
            # The URI names the database and the user; nothing of a database server is declared.
            unread = IN_CLUSTER_DATABASE_KEYS | {"name", "user"}
            refuse_unused(self.database, "database", unread, "database.mode is external", "database.mode inCluster")
        return self

    @model_validator(mode="after")
    def _backups_only_of_a_database_we_dump(self) -> PlatformConfig:
        if self.database.mode == "external":
            refuse_unused(
                self.maintenance,
                "maintenance",
                {"backupSchedule", "backupsKept", "backupPrefix"},
                "database.mode is external (its backups are its owner's)",
                "database.mode inCluster",
            )
        if self.database.mode == "rds":
            refuse_unused(
                self.maintenance,
                "maintenance",
                {"backupSchedule", "backupsKept"},
                "database.mode is rds (RDS takes its own automated backups)",
                "database.rds.backupRetentionDays",
            )
        return self

    @model_validator(mode="after")
    def _rds_no_newer_than_pg_dump(self) -> PlatformConfig:
        if self.database.mode == "rds":
            rds = self.database.required_rds
            dump_major, engine_major = postgres_major(self.database.image), postgres_major(rds.engine_version)
            if dump_major is not None and engine_major is not None and engine_major > dump_major:
                raise KeyRuleError(
                    "database.rds.engineVersion",
                    f"{rds.engine_version!r} is newer than the pg_dump of the pre-migration dump "
                    f"({self.database.image}); allowed: {dump_major} or older",
                )
        return self

    @model_validator(mode="after")
    def _backups_beside_the_artifacts(self) -> PlatformConfig:
        backups, artifacts = self.backup_prefix, self.artifacts.prefix
        if backups == artifacts or backups.startswith(artifacts + "/") or artifacts.startswith(backups + "/"):
            raise KeyRuleError(
                "maintenance.backupPrefix",
                f"{backups!r} overlaps artifacts.prefix {artifacts!r} (the server and gc may delete there); "
                "allowed: a prefix beside it, e.g. backups/" + artifacts,
            )
        return self

    @model_validator(mode="after")
    def _an_image_that_exists(self) -> PlatformConfig:
        # MicroK8s's registry addon is the default home of the image `make image` builds; an EKS cluster has no such
        # registry, and no published image holds this MLflow with Kubeflow's plugin.
        if self.is_eks and self.tracking_auth == "kubernetes" and self.tracking.image is None:
            raise KeyRuleError(
                "tracking.image",
                f"is required with tracking.auth kubernetes on eks: no published image holds MLflow {MLFLOW_VERSION} with "
                f"mlflow-kubernetes-plugins {K8S_PLUGINS_VERSION}; allowed: the image `make image REGISTRY=<your registry>` pushed, "
                f"e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com/{MLFLOW_K8S_IMAGE_NAME}:{MLFLOW_K8S_IMAGE_TAG}",
                quotes_value=False,
            )
        return self

    @model_validator(mode="after")
    def _workspaces_need_kubernetes_auth(self) -> PlatformConfig:
        chosen = self.tracking.auth
        if self.workspaces_enabled and chosen not in (None, "kubernetes"):
            raise KeyRuleError(
                "tracking.auth",
                f"{chosen!r} cannot authorize Kubeflow workspaces; allowed: 'kubernetes', or kubeflow.workspaces false",
            )
        return self

    @model_validator(mode="after")
    def _served_models_in_a_workspace(self) -> PlatformConfig:
        if self.workspaces_enabled and self.serving.enabled:
            for index, model in enumerate(self.serving.models):
                if model.storage_uri is None and model.namespace not in self.kubeflow.profiles:
                    raise KeyRuleError(
                        f"serving.models.{index}.namespace",
                        f"{model.namespace!r} is no Kubeflow profile, so no MLflow workspace to resolve its model in; "
                        "allowed: one of kubeflow.profiles, or storageUri",
                    )
        return self

    @model_validator(mode="after")
    def _basic_auth_needs_our_database(self) -> PlatformConfig:
        if self.tracking_auth == "basic" and self.database.mode == "external":
            raise KeyRuleError(
                "tracking.auth",
                "'basic' (the default with tracking.externalHost) keeps its users in the tracking database, whose URI an external "
                "database keeps in your Secret; allowed: 'kubernetes', or database.mode inCluster or rds",
                quotes_value=False,
            )
        return self

    @model_validator(mode="after")
    def _no_route_without_authentication(self) -> PlatformConfig:
        if self.tracking.auth == "none" and self.tracking.external_host:
            raise KeyRuleError(
                "tracking.auth",
                "'none' with tracking.externalHost would route the internet to MLflow unauthenticated; allowed: 'basic' or 'kubernetes'",
            )
        return self

    @property
    def backup_prefix(self) -> str:
        """Where database dumps go in the artifact bucket."""
        return self.maintenance.backup_prefix or f"backups/{self.artifacts.prefix}"

    @property
    def workspaces_enabled(self) -> bool:
        """MLflow workspaces per Kubeflow profile: on by default wherever the Kubeflow integration is."""
        return self.kubeflow.enabled and self.kubeflow.workspaces

    @property
    def tracking_auth(self) -> AuthApp:
        """The authorization app the server runs (see TrackingConfig.auth for the defaults)."""
        if self.tracking.auth is not None:
            return self.tracking.auth
        if self.workspaces_enabled:
            return "kubernetes"
        return "basic" if self.tracking.external_host else "none"

    @property
    def tracking_image(self) -> str:
        if self.tracking.image is not None:
            return self.tracking.image
        return MLFLOW_K8S_IMAGE if self.tracking_auth == "kubernetes" else MLFLOW_IMAGE

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
    def required_aws(self) -> AwsConfig:
        """The aws block, which validation requires on eks: the typed way for eks-only code to read it."""
        if self.aws is None:
            raise ConfigError("mlops-platform:aws: is required for target eks")
        return self.aws

    @property
    def protect_data(self) -> bool:
        """Protect and retain stateful resources: on by default in EKS (prod)."""
        return self.is_eks if self.data_protection is None else self.data_protection

    @property
    def default_storage_class(self) -> str:
        """The target's StorageClass, for every volume whose own storageClass is left out."""
        return "gp3" if self.is_eks else "microk8s-hostpath"

    @property
    def tracking_scratch(self) -> Scratch:
        """The server's scratch space with the target's defaults filled in.

        microk8s-hostpath volumes are directories on the node that ignore their size, so dev uses a tmpfs.
        """
        s = self.tracking.scratch
        medium = s.medium or ("volume" if self.is_eks else "memory")
        size = s.size or SCRATCH_DEFAULT_SIZE[medium]
        return Scratch(medium, size, s.storage_class or self.default_storage_class if medium == "volume" else None)

    @property
    def tracking_db_engines(self) -> int:
        """SQLAlchemy engines per server worker: the tracking and registry stores', and basic-auth's own on the same database."""
        return MLFLOW_ENGINES_PER_WORKER + (1 if self.tracking_auth == "basic" else 0)

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


def _format_error(exc: ValidationError, secret_keys: frozenset[str]) -> str:
    err = exc.errors(include_url=False)[0]
    loc = [str(p) for p in err["loc"]]
    ctx_error = err.get("ctx", {}).get("error")
    if isinstance(ctx_error, KeyRuleError):
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
    if top in secret_keys and not (isinstance(ctx_error, KeyRuleError) and not ctx_error.quotes_value):
        message = "is invalid (value hidden: secret key)"
    return f"{key}: {message}"


def _allowed_keys(loc: list[str]) -> list[str]:
    model: Any = PlatformConfig
    for part in loc:
        if part.isdigit():
            continue
        field = next(f for n, f in model.model_fields.items() if (f.alias or n) == part or n == part)
        model = model_of(field.annotation)
    return sorted((f.alias or n) for n, f in model.model_fields.items() if n != "stack")


def model_of(annotation: Any) -> Any:
    """The settings model an annotation holds (``X``, ``X | None``, ``list[X]``), or None for a plain value."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = model_of(arg)
        if found is not None:
            return found
    return None


def parse_config(stack: str, raw: Mapping[str, str], secret_keys: frozenset[str] = frozenset()) -> PlatformConfig:
    """Parse ``{"mlops-platform:key": "value"}`` (values as Pulumi stores them) into a PlatformConfig.

    ``secret_keys`` are the top-level keys Pulumi holds as secrets: a key that carries a credential is refused unless
    it is one of them.
    """
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
    rotating = keys_set(config.rotation)
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
    if config.serving.registry_token is not None and "serving" not in secret_keys:
        raise ConfigError(
            f"{PROJECT}:serving.registryToken: is stored in plain text; "
            "allowed: a secret, set with `pulumi config set --secret --path serving.registryToken`"
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
