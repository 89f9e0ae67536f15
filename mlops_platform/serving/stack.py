"""ServingStack: KServe InferenceServices for registered models, and the storage access they download with.

Per serving namespace, KServe's storage initializer gets read access to the
tracking server's artifact prefix and nothing else:

dev (microk8s): a MinIO user limited to the prefix; its keys in a Secret that
                carries KServe's S3 annotations, listed by a ServiceAccount.
prod (eks):     a ServiceAccount bound through IRSA to a read-only IAM role; no keys.

Each InferenceService pins the storage URI that ``serving/registry.py``
resolved, and records registered model, version, alias and run id in its
annotations, so a promotion shows up in a preview as ``model-version: "3" => "4"``.

A canary is declared the way KServe 0.16 supports it (Serverless only): the
predictor's spec is the challenger's (its ``storageUri``) with
``canaryTrafficPercent``, so Knative's latest revision serves the challenger to
that share and the previously rolled-out revision, the production version that was
served before the canary started, keeps the rest. Annotations name both versions.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import pulumi
import pulumi_kubernetes as k8s

from mlops_platform.config import PlatformConfig
from mlops_platform.contracts import (
    REGISTRY_READER_ROLE,
    TENANCY_COMPONENT,
    ClientAccess,
    Consumer,
    Grant,
    ServedCanary,
    ServedModel,
    TrackingEndpoint,
)
from mlops_platform.k8s import naming, rbac
from mlops_platform.serving.registry import ResolvedModel

COMPONENT = "model-server"
API_VERSION = "serving.kserve.io/v1beta1"
DEPLOYMENT_MODE = "serving.kserve.io/deploymentMode"
REGISTERED_MODEL = "mlops-platform/registered-model"
MODEL_VERSION = "mlops-platform/model-version"
MODEL_ALIAS = "mlops-platform/model-alias"
RUN_ID = "mlops-platform/run-id"
CANARY_VERSION = "mlops-platform/canary-version"
CANARY_ALIAS = "mlops-platform/canary-alias"
CANARY_RUN_ID = "mlops-platform/canary-run-id"
# Model format -> (ClusterServingRuntime, protocol). MLServer serves MLflow models on v2 only.
RUNTIMES = {"mlflow": ("kserve-mlserver", "v2"), "sklearn": ("kserve-sklearnserver", "v1")}
# KServe names the model container so; saying it avoids a perpetual diff against the defaulted value.
MODEL_CONTAINER = "kserve-container"

KSERVE_CHARTS = "oci://ghcr.io/kserve/charts"
KSERVE_VERSION = "v0.16.0"
# The cert-manager release KServe v0.16.0 is tested with (kserve-deps.env).
CERT_MANAGER_VERSION = "v1.17.0"
KSERVE_NAMESPACE = "kserve"
CERT_MANAGER_NAMESPACE = "cert-manager"
# The deploy-time alias resolver's ServiceAccount in each serving namespace (and its RoleBinding).
REGISTRY_READER = "mlflow-registry-reader"


@dataclass(frozen=True)
class ServingStackArgs:
    """What serving needs of the config (not its registry token, which only resolution before any resource reads)."""

    tracking: TrackingEndpoint
    models: Sequence[ResolvedModel]
    # Every namespace that gets storage credentials: the configured ones and each model's.
    namespaces: Sequence[str]
    deployment_mode: Literal["RawDeployment", "Serverless"] = "RawDeployment"
    install_kserve: bool = False
    # Kubeflow workspaces: each serving namespace gets the registry reader that resolves its aliases.
    workspaces: bool = False

    @classmethod
    def of(cls, config: PlatformConfig, tracking: TrackingEndpoint, models: Sequence[ResolvedModel]) -> ServingStackArgs:
        return cls(
            tracking=tracking,
            models=models,
            namespaces=tuple(config.serving.credential_namespaces),
            deployment_mode=config.serving.deployment_mode,
            install_kserve=config.serving.install_kserve,
            workspaces=config.workspaces_enabled,
        )


class ServingStack(pulumi.ComponentResource):
    """KServe serving of registry-resolved models, with least-privilege storage access per namespace."""

    service_account: str
    models: dict[str, ServedModel]

    def __init__(self, name: str, args: ServingStackArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlops:index:ServingStack", name, None, opts)
        self.service_account = f"{name}-model-reader"
        kserve_ready = self._install_kserve(name) if args.install_kserve else []
        access = self._storage_access(name, args.tracking, args.namespaces)
        if args.workspaces:
            for namespace in args.namespaces:
                registry_reader(name, namespace, pulumi.ResourceOptions(parent=self))
        for model in args.models:
            self._inference_service(
                # KServe copies the InferenceService's labels to its pods (the storage initializer's way through MinIO's NetworkPolicy).
                name,
                model,
                args.deployment_mode,
                access[model.source.namespace].pod_labels,
                depends_on=[*kserve_ready, *access[model.source.namespace].ready],
            )
        self.models = {f"{m.source.namespace}/{m.source.name}": served(m) for m in args.models}
        self.register_outputs({"models": self.models})

    def _storage_access(self, name: str, tracking: TrackingEndpoint, namespaces: Sequence[str]) -> dict[str, ClientAccess]:
        """Read-only access to the artifact prefix per namespace, through the ServiceAccount KServe is given.

        On dev the ServiceAccount lists a Secret carrying MinIO's address in KServe's annotations;
        on eks it is annotated with its IAM role and the bucket's region.
        """
        store = tracking.artifact_store
        # Only an in-cluster store hands out a Secret; KServe reads its address from these annotations.
        secret_annotations = (
            {}
            if store.endpoint_host is None
            else {
                "serving.kserve.io/s3-endpoint": store.endpoint_host,
                "serving.kserve.io/s3-usehttps": "0",
                "serving.kserve.io/s3-verifyssl": "0",
                # The S3 client only needs the region to sign requests.
                "serving.kserve.io/s3-region": store.region,
            }
        )
        consumer = Consumer(
            name,
            provisioning=f"{name}-minio-users",
            key_secret=lambda ns: naming.metadata(
                f"{self.service_account}-s3", ns, component=COMPONENT, instance=name, annotations=secret_annotations
            ),
        )
        granted = store.grant(
            consumer,
            {
                ns: Grant(tracking.artifact_prefix, "read", identity=f"kserve-{ns}", service_account=self.service_account)
                for ns in namespaces
            },
            opts=pulumi.ResourceOptions(parent=self),
        )
        access = {}
        for ns, client in granted.items():
            annotations = (
                {**client.service_account_annotations(), "serving.kserve.io/s3-region": client.region}
                if client.role_arn is not None
                else None
            )
            account = k8s.core.v1.ServiceAccount(
                f"{name}-{ns}-sa",
                metadata=naming.metadata(self.service_account, ns, component=COMPONENT, instance=name, annotations=annotations),
                secrets=[k8s.core.v1.ObjectReferenceArgs(name=client.secret.metadata.name)] if client.secret is not None else None,
                automount_service_account_token=False,
                opts=pulumi.ResourceOptions(parent=self),
            )
            access[ns] = dataclasses.replace(client, ready=(*client.ready, account))
        return access

    def _install_kserve(self, name: str) -> list[pulumi.Resource]:
        """cert-manager, KServe's CRDs and KServe (RawDeployment) from pinned charts; returns what InferenceServices wait for."""
        cert_manager = k8s.helm.v3.Release(
            f"{name}-cert-manager",
            name="cert-manager",
            chart="cert-manager",
            version=CERT_MANAGER_VERSION,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo="https://charts.jetstack.io"),
            namespace=CERT_MANAGER_NAMESPACE,
            create_namespace=True,
            values={"crds": {"enabled": True}},
            opts=pulumi.ResourceOptions(parent=self),
        )
        crds = k8s.helm.v3.Release(
            f"{name}-kserve-crd",
            name="kserve-crd",
            chart=f"{KSERVE_CHARTS}/kserve-crd",
            version=KSERVE_VERSION,
            namespace=KSERVE_NAMESPACE,
            create_namespace=True,
            opts=pulumi.ResourceOptions(parent=self),
        )
        controller = k8s.helm.v3.Release(
            f"{name}-kserve",
            name="kserve",
            chart=f"{KSERVE_CHARTS}/kserve",
            version=KSERVE_VERSION,
            namespace=KSERVE_NAMESPACE,
            create_namespace=True,
            values={"kserve": {"controller": {"deploymentMode": "RawDeployment"}}},
            # The controller's certificates come from cert-manager; its webhooks serve the CRDs.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[cert_manager, crds]),
        )
        return [crds, controller]

    def _inference_service(
        self, name: str, model: ResolvedModel, deployment_mode: str, pod_labels: Mapping[str, str], depends_on: list[pulumi.Resource]
    ) -> k8s.apiextensions.CustomResource:
        manifest = inference_service(model, deployment_mode, self.service_account, pod_labels)
        return k8s.apiextensions.CustomResource(
            f"{name}-{model.source.namespace}-{model.source.name}",
            api_version=manifest["apiVersion"],
            kind=manifest["kind"],
            metadata=manifest["metadata"],
            spec=manifest["spec"],
            opts=pulumi.ResourceOptions(parent=self, depends_on=depends_on),
        )


def inference_service(model: ResolvedModel, deployment_mode: str, service_account: str, pod_labels: Mapping[str, str]) -> dict[str, Any]:
    """The InferenceService manifest (serving.kserve.io/v1beta1, KServe 0.16).

    Written as plain data: importing the kserve SDK costs more than the whole plan-time budget for a
    hundred models (tools/bench/serving.py). ``make test`` rebuilds every render through the SDK's typed
    models (tools/testing/conformance.py) and checks the round trip is identical, so a misspelt field still fails.
    """
    source = model.source
    runtime, protocol = RUNTIMES[source.format]
    resources = source.resources
    predictor: dict[str, Any] = {"serviceAccountName": service_account}
    if model.canary is not None:
        predictor["canaryTrafficPercent"] = model.canary.traffic_percent
    predictor |= {
        "minReplicas": source.min_replicas,
        "maxReplicas": source.max_replicas,
        "model": {
            "name": MODEL_CONTAINER,
            "modelFormat": {"name": source.format},
            "runtime": runtime,
            "protocolVersion": protocol,
            # With a canary the spec is the challenger's: KServe rolls it out as the latest revision.
            "storageUri": model.canary.storage_uri if model.canary else model.storage_uri,
            "resources": {
                "requests": {"cpu": resources.cpu_request, "memory": resources.memory_request},
                "limits": {"cpu": resources.cpu_limit, "memory": resources.memory_limit},
            },
            # Both runtime images run as a numeric non-root user and write to their working directory.
            "securityContext": {
                "runAsNonRoot": True,
                "allowPrivilegeEscalation": False,
                "privileged": False,
                "capabilities": {"drop": ["ALL"]},
                "seccompProfile": {"type": "RuntimeDefault"},
            },
        },
    }
    return {
        "apiVersion": API_VERSION,
        "kind": "InferenceService",
        "metadata": {
            "name": source.name,
            "namespace": source.namespace,
            "labels": naming.labels(COMPONENT, source.name, **pod_labels),
            "annotations": {DEPLOYMENT_MODE: deployment_mode, **model_annotations(model)},
        },
        "spec": {"predictor": predictor},
    }


def model_annotations(model: ResolvedModel) -> dict[str, str]:
    """Where the served artifacts came from (both versions during a canary); absent for a pinned storageUri."""
    canary = model.canary
    values = {
        REGISTERED_MODEL: model.source.registered_model,
        MODEL_VERSION: model.version,
        MODEL_ALIAS: model.source.alias,
        RUN_ID: model.run_id,
        CANARY_VERSION: canary.version if canary else None,
        CANARY_ALIAS: canary.alias if canary else None,
        CANARY_RUN_ID: canary.run_id if canary else None,
    }
    return {key: value for key, value in values.items() if value is not None}


def served(model: ResolvedModel) -> ServedModel:
    """One entry of the ``servingModels`` output: what a preview diff should make obvious."""
    entry = ServedModel(storageUri=model.storage_uri)
    if model.source.registered_model is not None:
        entry["registeredModel"] = model.source.registered_model
    if model.version is not None:
        entry["version"] = model.version
    if model.source.alias is not None:
        entry["alias"] = model.source.alias
    if model.run_id is not None:
        entry["runId"] = model.run_id
    if model.canary is not None:
        canary = ServedCanary(storageUri=model.canary.storage_uri, version=model.canary.version)
        if model.canary.alias is not None:
            canary["alias"] = model.canary.alias
        if model.canary.run_id is not None:
            canary["runId"] = model.canary.run_id
        canary["trafficPercent"] = model.canary.traffic_percent
        entry["canary"] = canary
    return entry


def registry_reader(instance: str, namespace: str, opts: pulumi.ResourceOptions) -> None:
    """The deploy-time alias resolver's identity in a serving namespace: reads registered models, changes nothing.

    CI asks for a short-lived token (``kubectl create token mlflow-registry-reader -n <ns>``); no
    token is ever written into a Secret by this program. Its ClusterRole is the Kubeflow integration's.
    """
    name = f"{instance}-{namespace}-registry-reader"
    # The account and its binding share a name and labels.
    metadata = naming.metadata(REGISTRY_READER, namespace, component=TENANCY_COMPONENT, instance=instance)
    k8s.core.v1.ServiceAccount(name, metadata=metadata, automount_service_account_token=False, opts=opts)
    rbac.bind_in_namespace(
        name,
        metadata,
        REGISTRY_READER_ROLE,
        REGISTRY_READER,
        namespace,
        opts,
    )


def describe(manifest: Mapping[str, Any]) -> str:
    """A plan-table note for an InferenceService: ``diabetes v4 @production``, with a canary
    ``diabetes v3 @production 90% | v4 @challenger 10%``, or ``pinned storageUri``."""
    annotations = manifest.get("metadata", {}).get("annotations") or {}
    if MODEL_VERSION not in annotations:
        return "pinned storageUri"
    note = f"{annotations.get(REGISTERED_MODEL)} v{annotations[MODEL_VERSION]}"
    if MODEL_ALIAS in annotations:
        note += f" @{annotations[MODEL_ALIAS]}"
    percent = manifest.get("spec", {}).get("predictor", {}).get("canaryTrafficPercent")
    if CANARY_VERSION not in annotations or percent is None:
        return note
    challenger = f"v{annotations[CANARY_VERSION]}" + (f" @{annotations[CANARY_ALIAS]}" if CANARY_ALIAS in annotations else "")
    return f"{note} {100 - int(percent)}% | {challenger} {percent}%"
