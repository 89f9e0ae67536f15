"""What the cluster must already have for this stack, checked before any resource is declared.

Without it the first `pulumi up` fails deep inside the provider (or, worse, succeeds on a cluster that does not do what
the stack relies on). Each missing piece stops preview and up with one line naming it and the config key that turns
its need off:

- the CRDs of every custom kind the stack declares: Kubeflow's PodDefault and Istio's VirtualService,
  AuthorizationPolicy and Sidecar (``kubeflow.enabled``); the Prometheus Operator's ServiceMonitor and PrometheusRule
  (``monitoring.enabled``); KServe's InferenceService (``serving.models``, unless the stack installs KServe itself);
- the StorageClass every claim names (the key that chooses it);
- with Kubeflow workspaces, an authorizer that can say no: MicroK8s answers every request with AlwaysAllow until
  ``microk8s enable rbac``, and then MLflow's Kubernetes app lets every team into every workspace. A
  SubjectAccessReview for a user that cannot exist, allowed, is the sign.

Discovery (``/apis/<group>/<version>``) answers every authenticated user, so the CRDs need no extra rights; reading a
StorageClass and creating a SubjectAccessReview do. Where the program cannot reach the cluster, or may not ask, it
says so loudly (a warning) and goes on: the provider then reports what fails. Under Pulumi's mock engine (``make plan``,
the unit tests) there is no cluster: nothing is checked, and the log says so.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pulumi

from mlops_platform.config import ClusterAccess, PlatformConfig
from mlops_platform.k8s.client import api_client
from mlops_platform.settings_base import PROJECT, ConfigError

REQUEST_TIMEOUT = 5
# No RBAC binding can name this user: only an authorizer that allows everything lets it delete namespaces.
NOBODY = "mlops-platform:preflight:no-such-user"


class PreflightError(ConfigError):
    """The cluster lacks what the stack needs; one line naming it and the key that turns the need off."""


@dataclass(frozen=True)
class Kind:
    group: str
    version: str
    kind: str

    def __str__(self) -> str:
        return f"{self.kind} ({self.group}/{self.version})"


@dataclass(frozen=True)
class NeedsKinds:
    kinds: tuple[Kind, ...]
    owner: str
    key: str
    remedy: str


@dataclass(frozen=True)
class NeedsStorageClass:
    name: str
    user: str
    key: str
    remedy: str


KUBEFLOW = NeedsKinds(
    (
        Kind("kubeflow.org", "v1alpha1", "PodDefault"),
        Kind("networking.istio.io", "v1", "VirtualService"),
        Kind("security.istio.io", "v1", "AuthorizationPolicy"),
        Kind("networking.istio.io", "v1", "Sidecar"),
    ),
    "Kubeflow (its PodDefault webhook) and Istio",
    "kubeflow.enabled",
    "Kubeflow installed from kubeflow/manifests, or kubeflow.enabled false",
)
MONITORING = NeedsKinds(
    (Kind("monitoring.coreos.com", "v1", "ServiceMonitor"), Kind("monitoring.coreos.com", "v1", "PrometheusRule")),
    "the Prometheus Operator",
    "monitoring.enabled",
    "the Prometheus Operator (kube-prometheus-stack, or `microk8s enable observability`), or monitoring.enabled false",
)
KSERVE = NeedsKinds(
    (Kind("serving.kserve.io", "v1beta1", "InferenceService"),),
    "KServe",
    "serving.models",
    "KServe installed (Kubeflow's, or serving.installKserve true), or serving.models left out",
)


def _class_remedy(name: str, key: str | None) -> str:
    known = {
        "microk8s-hostpath": "`microk8s enable hostpath-storage`",
        "gp3": "the EBS CSI driver with a gp3 StorageClass (README, Prerequisites)",
    }
    make = known.get(name, f"a StorageClass named {name}")
    return f"{make}, or {key} naming one the cluster has (kubectl get storageclass)" if key else make


# RDS's pre-migration dump goes to a volume of the target's class; no key chooses it, database.mode is what needs it.
_RDS_DUMPS_KEY = "database.mode"


def needs(config: PlatformConfig) -> list[NeedsKinds | NeedsStorageClass]:
    """What ``config`` needs of the cluster, in the order it is checked."""
    found: list[NeedsKinds | NeedsStorageClass] = []
    if config.kubeflow.enabled:
        found.append(KUBEFLOW)
    if config.monitoring.enabled:
        found.append(MONITORING)
    if config.serving.enabled and config.serving.models and not config.serving.install_kserve:
        found.append(KSERVE)

    def claim(name: str | None, user: str, key: str, remedy: str | None = None) -> None:
        if name and not any(isinstance(n, NeedsStorageClass) and n.name == name and n.key == key for n in found):
            found.append(NeedsStorageClass(name, user, key, remedy or _class_remedy(name, key)))

    database_class = config.database.storage_class or config.default_storage_class
    if config.database.mode == "inCluster":
        claim(database_class, "PostgreSQL's claim", "database.storageClass")
    if not config.is_eks:
        claim(config.artifacts.minio.storage_class or config.default_storage_class, "MinIO's claim", "artifacts.minio.storageClass")
    if config.tracking_scratch.medium == "volume":
        claim(config.tracking_scratch.storage_class, "the server's per-pod /tmp volume", "tracking.scratch.storageClass")
    if config.is_eks and config.database.mode == "inCluster":
        # Dumps go to a volume of their own on eks (tracking/maintenance.py).
        claim(database_class, "the database dumps' volume", "database.storageClass")
    if config.is_eks and config.database.mode == "rds":
        claim(database_class, "the pre-migration dump's volume", _RDS_DUMPS_KEY, _class_remedy(database_class, None))
    return found


# -- asking the cluster ------------------------------------------------------------------------------------------------


class Cluster:
    """The few reads preflight makes, through the kubernetes client (the provider's kubeconfig and context)."""

    def __init__(self, access: ClusterAccess):
        api = api_client(access.kubeconfig, access.context)
        self._api = api
        self.server = api.configuration.host

    def get(self, path: str) -> tuple[int, Any]:
        """Status and decoded body of a GET (404 and 403 are answers, not errors)."""
        from kubernetes.client.exceptions import ApiException

        method, url, headers, _, _ = self._api.param_serialize(
            "GET", path, header_params={"Accept": "application/json"}, auth_settings=["BearerToken"]
        )
        try:
            response = self._api.call_api(method, url, header_params=headers, _request_timeout=REQUEST_TIMEOUT)
            response.read()
        except ApiException as exc:
            return exc.status, None
        if response.status != 200:
            return response.status, None
        return response.status, json.loads(response.data or b"null")

    def allows_nobody(self) -> bool | None:
        """Whether a SubjectAccessReview lets a user no binding can name delete namespaces; None when we may not ask."""
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        review = client.V1SubjectAccessReview(
            spec=client.V1SubjectAccessReviewSpec(
                user=NOBODY, resource_attributes=client.V1ResourceAttributes(verb="delete", resource="namespaces")
            )
        )
        try:
            answer = client.AuthorizationV1Api(self._api).create_subject_access_review(review, _request_timeout=REQUEST_TIMEOUT)
        except ApiException as exc:
            if exc.status in (401, 403):
                return None
            raise
        return bool(answer.status is not None and answer.status.allowed)


def check(
    config: PlatformConfig,
    connect: Callable[[], Cluster],
    warn: Callable[[str], None] = pulumi.log.warn,
    info: Callable[[str], None] = pulumi.log.info,
) -> None:
    """Raise PreflightError on the first missing piece; warn about what could not be checked."""
    wanted = needs(config)
    try:
        cluster = connect()
        status, _ = cluster.get("/version")
    except Exception as exc:  # noqa: BLE001 - no kubeconfig, a dead address, TLS: all mean "cannot reach"
        warn(f"preflight: cannot reach the cluster ({_first_line(exc)}): CRDs, StorageClasses and the authorizer were not checked")
        return
    if status != 200:
        warn(f"preflight: the cluster at {cluster.server} answered /version with HTTP {status}: nothing was checked")
        return
    unchecked: list[str] = []
    for need in wanted:
        if isinstance(need, NeedsKinds):
            missing = [k for k in need.kinds if not _serves(cluster, k, unchecked)]
            if missing:
                raise PreflightError(
                    f"{PROJECT}:{need.key}: the cluster serves no {', '.join(map(str, missing))}, which {need.owner} define; "
                    f"allowed: {need.remedy}"
                )
        else:
            status, _ = cluster.get(f"/apis/storage.k8s.io/v1/storageclasses/{need.name}")
            if status == 404:
                raise PreflightError(
                    f"{PROJECT}:{need.key}: the cluster has no StorageClass {need.name}, which {need.user} names; allowed: {need.remedy}"
                )
            if status != 200:
                unchecked.append(f"StorageClass {need.name} (HTTP {status})")
    if config.workspaces_enabled:
        allowed = cluster.allows_nobody()
        if allowed is None:
            unchecked.append("whether the authorizer can refuse (creating a SubjectAccessReview was refused)")
        elif allowed:
            raise PreflightError(
                f"{PROJECT}:kubeflow.workspaces: the cluster's authorizer allows everything (a user no binding names may delete "
                "namespaces; MicroK8s runs AlwaysAllow until RBAC is on), so MLflow workspaces would not keep teams apart; "
                "allowed: `microk8s enable rbac` (or --authorization-mode=RBAC), or kubeflow.workspaces false"
            )
    if unchecked:
        warn(f"preflight: could not check {'; '.join(unchecked)} on {cluster.server}: the provider will report them if missing")
    info(f"preflight: {cluster.server} has what the stack needs ({_summary(wanted, config.workspaces_enabled)})")


def _serves(cluster: Cluster, kind: Kind, unchecked: list[str]) -> bool:
    status, body = cluster.get(f"/apis/{kind.group}/{kind.version}")
    if status == 404:
        return False
    if status != 200:
        unchecked.append(f"{kind} (HTTP {status})")
        return True
    return any(r.get("kind") == kind.kind for r in (body or {}).get("resources") or [])


def _summary(wanted: list[NeedsKinds | NeedsStorageClass], workspaces: bool) -> str:
    parts = [str(k.kind) for n in wanted if isinstance(n, NeedsKinds) for k in n.kinds]
    parts += [f"StorageClass {n.name}" for n in wanted if isinstance(n, NeedsStorageClass)]
    if workspaces:
        parts.append("an authorizer that refuses")
    return ", ".join(dict.fromkeys(parts)) or "nothing"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


def under_mocks() -> bool:
    """Pulumi's mock engine (make plan, unit tests, tools/testing/harness.py) has no cluster behind it."""
    from pulumi.runtime.mocks import MockMonitor
    from pulumi.runtime.settings import get_monitor

    return isinstance(get_monitor(), MockMonitor)


def preflight(config: PlatformConfig, access: ClusterAccess) -> None:
    """Run from __main__.py before any resource: check the cluster, or say why it was not checked."""
    if under_mocks():
        pulumi.log.info("preflight: skipped under Pulumi's mock engine (no cluster): CRDs, StorageClasses and the authorizer unchecked")
        return
    check(config, lambda: Cluster(access))
