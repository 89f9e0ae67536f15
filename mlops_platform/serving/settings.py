"""Settings of KServe serving (``serving.*``): the InferenceServices of registered models and their storage access."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, SecretStr, model_validator

from mlops_platform.settings_base import Allowed, DnsLabel, KeyRuleError, Model, Resources, check, only_when_enabled


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


Alias = Annotated[str, check(re.compile(r"^[\w-]{1,255}$"), "an MLflow alias: letters, digits, '_' or '-', e.g. production")]


class CanaryConfig(Model):
    """A second alias or version of the same registered model that takes a share of the traffic before it is promoted."""

    alias: Alias | None = Field(default=None, description="The challenger's alias (or version).")
    version: int | None = Field(default=None, ge=1, description="The challenger's version (or alias).")
    # 0 would be a rollback and 100 a promotion: both are expressed by dropping the canary.
    traffic_percent: int = Field(ge=1, le=99, description="The challenger's share of the traffic.")

    @model_validator(mode="after")
    def _one_source(self) -> CanaryConfig:
        if (self.alias is None) == (self.version is None):
            raise ValueError("set exactly one of alias or version")
        return self


class ModelSource(Model):
    """One InferenceService: a registry alias or version resolved at deploy time, or a pinned S3 URI."""

    name: DnsLabel = Field(description="The InferenceService's name.")
    namespace: DnsLabel = Field(description="The namespace it runs in (a Kubeflow profile with workspaces).")
    registered_model: str | None = Field(default=None, min_length=1, description="The registered model (with alias or version).")
    alias: Alias | None = Field(default=None, description="The alias resolved at deploy time (one of alias, version, storageUri).")
    version: int | None = Field(default=None, ge=1, description="The version served (one of alias, version, storageUri).")
    storage_uri: (
        Annotated[str, check(re.compile(r"^s3://[a-z0-9][a-z0-9.-]+/\S+$"), "an s3://bucket/key URI on the artifact bucket")] | None
    ) = Field(default=None, description="A pinned s3:// URI on the artifact bucket (one of alias, version, storageUri).")
    format: Literal["mlflow", "sklearn"] = Field(
        default="mlflow", description="mlflow (MLServer, protocol v2) or sklearn (KServe's sklearn server, protocol v1)."
    )
    canary: CanaryConfig | None = Field(default=None, description="A challenger taking a share of the traffic (Serverless only).")
    # A registry version without an input/output signature is refused unless this is false.
    require_signature: bool = Field(default=True, description="Refuse a registry version whose MLmodel has no signature.")
    min_replicas: int = Field(default=1, ge=0, le=100, description="Fewest predictor pods (0, scale to zero, with Serverless only).")
    max_replicas: int = Field(default=1, ge=1, le=100, description="Most predictor pods.")
    resources: Resources = Field(
        default=Resources(cpu_request="100m", memory_request="512Mi", memory_limit="1Gi"),
        description="The predictor's requests and limits.",
    )

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
                raise KeyRuleError("canary", "needs a registry source; allowed: registeredModel with alias or version, not storageUri")
            if (self.canary.alias is not None and self.canary.alias == self.alias) or (
                self.canary.version is not None and self.canary.version == self.version
            ):
                raise KeyRuleError(
                    "canary", "names the same alias or version as the model itself; allowed: a second alias, e.g. challenger"
                )
        return self


class ServingConfig(Model):
    """KServe InferenceServices for registered models, and the storage credentials they download with."""

    enabled: bool = Field(default=False, description="Declare KServe serving (the registry is asked only when true).")
    # Where `pulumi preview`/`up` reach the registry (not the in-cluster Service URL).
    mlflow_tracking_uri: Annotated[str, AfterValidator(_tracking_uri), Allowed("an http(s) URL without query or credentials")] | None = (
        Field(
            default=None,
            description="The registry as the machine running Pulumi reaches it; required with alias or version; no credentials.",
        )
    )
    # Bearer token for the registry; accepted only as a secret (checked in mlops_platform.config.parse_config).
    registry_token: SecretStr | None = Field(default=None, description="Bearer token for the registry; secret only.")
    deployment_mode: Literal["RawDeployment", "Serverless"] = Field(
        default="RawDeployment", description="Each InferenceService's serving.kserve.io/deploymentMode."
    )
    install_kserve: bool = Field(default=False, description="Install cert-manager and KServe v0.16.0 with Helm (RawDeployment only).")
    # Namespaces that get storage credentials even without a configured model.
    namespaces: list[DnsLabel] = Field(default=[], description="Namespaces that get storage credentials besides each model's.")
    # MLflow model format versions (the major MLflow release that wrote MLmodel) the cluster's kserve-mlserver runtime serves:
    # KServe 0.16's runtime declares "1" and "2". Declare "3" only for a runtime image that loads MLflow 3 models.
    mlflow_format_versions: list[Literal["1", "2", "3"]] = Field(
        default=["1", "2"], description="MLflow model format versions the cluster's kserve-mlserver runtime serves."
    )
    models: list[ModelSource] = Field(default=[], description="One InferenceService each.")

    @model_validator(mode="after")
    def _nothing_set_while_disabled(self) -> ServingConfig:
        return only_when_enabled(self, "serving")

    @model_validator(mode="after")
    def _serving_rules(self) -> ServingConfig:
        if self.mlflow_tracking_uri is None and any(m.storage_uri is None for m in self.models):
            raise KeyRuleError(
                "mlflowTrackingUri",
                "is required when a model uses alias or version; allowed: the registry's URL as `pulumi up` reaches it, e.g. https://mlflow.example.com/mlflow",
            )
        if self.install_kserve and self.deployment_mode != "RawDeployment":
            raise KeyRuleError(
                "installKserve",
                "installs KServe for RawDeployment only; allowed: deploymentMode RawDeployment, "
                "or installKserve false with Knative and KServe installed separately",
            )
        seen: dict[tuple[str, str], int] = {}
        for index, model in enumerate(self.models):
            if model.canary is not None and self.deployment_mode != "Serverless":
                raise KeyRuleError(
                    f"models.{index}.canary",
                    f"model {model.name!r} cannot split traffic in deploymentMode {self.deployment_mode}; "
                    "allowed: deploymentMode Serverless (KServe's canaryTrafficPercent needs Knative revisions), or no canary",
                    quotes_value=False,
                )
            if model.min_replicas == 0 and self.deployment_mode != "Serverless":
                raise KeyRuleError(f"models.{index}.minReplicas", "0 (scale to zero) needs deploymentMode Serverless; allowed: 1 or more")
            other = seen.setdefault((model.namespace, model.name), index)
            if other != index:
                raise KeyRuleError(
                    f"models.{index}.name",
                    f"{model.name!r} is already used in namespace {model.namespace} by models[{other}]; "
                    "allowed: a unique name per namespace",
                )
        return self

    @property
    def credential_namespaces(self) -> list[str]:
        """Every namespace that gets storage credentials: the configured ones and each model's."""
        return list(dict.fromkeys([*self.namespaces, *(m.namespace for m in self.models)]))
