"""What components hand each other: the one module every component may import besides config and k8s.

A component imports its own modules, these contracts, the parsed config and the Kubernetes helpers, never
another component's internals. The tracking stack publishes a :class:`TrackingEndpoint` (with its
:class:`ArtifactStore`); the Kubeflow integration publishes :class:`ProfileClients`; the store grants
:class:`ClientAccess`. The constants here are names two components must agree on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, NotRequired, Protocol, TypedDict

import pulumi
import pulumi_kubernetes as k8s

# -- names two components agree on ------------------------------------------------------------------

# Set by the Kubeflow integration on each profile namespace; the tracking server's workspace provider lists only these.
WORKSPACE_LABEL = "mlops-platform/mlflow-workspace"
# The ClusterRole the Kubeflow integration declares with workspaces; each serving namespace's registry reader is bound to it.
REGISTRY_READER_ROLE = "mlflow-registry-reader"
# The component label of MLflow's workspace RBAC, whichever component declares a part of it.
TENANCY_COMPONENT = "mlflow-tenancy"
# Where MLflow's Prometheus exporter answers, outside ``--static-prefix``: monitoring scrapes it, Kubeflow's policy admits it.
METRICS_PATH = "/metrics"


@dataclass(frozen=True)
class Scraper:
    """A metrics scraper in Kubeflow's mesh: admitted, by its mTLS identity, to GET ``path`` only."""

    principal: str
    path: str


# -- artifact storage -------------------------------------------------------------------------------

Access = Literal["read", "write"]


@dataclass(frozen=True)
class Grant:
    """What one namespace's client may do: ``access`` under ``prefix``, as ``identity``.

    ``identity`` names the client to a store with its own users (MinIO); ``service_account`` is the
    Kubernetes identity its pods run as, which a store that trusts accounts (IRSA) binds a role to.
    """

    prefix: str
    access: Access
    identity: str
    service_account: str


@dataclass(frozen=True)
class Consumer:
    """A component asking for storage access, and how it names what a store declares on its behalf.

    Every store prefixes what it declares with ``name``. A store that issues keys provisions them under
    ``provisioning`` and writes each namespace's into a Secret with ``key_secret``'s metadata (the consumer's
    names, labels and annotations); a store that trusts the pods' own ServiceAccounts issues no keys.
    """

    name: str
    provisioning: str
    key_secret: Callable[[str], k8s.meta.v1.ObjectMetaArgs]


@dataclass(frozen=True)
class InClusterServer:
    """A store running as pods: which pods, on which port, and the label its clients carry."""

    name: str
    pod_labels: dict[str, str]
    port: int
    client_labels: dict[str, str]


@dataclass(frozen=True)
class ClientAccess:
    """What a pod in one namespace needs to reach its grant."""

    env: tuple[k8s.core.v1.EnvVarArgs, ...]
    region: str
    # A store that issues keys: the Secret holding them (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY).
    secret: k8s.core.v1.Secret | None = None
    # A store that trusts ServiceAccounts (IRSA): the role the grant's ServiceAccount must be annotated with.
    role_arn: pulumi.Output[str] | None = None
    pod_labels: dict[str, str] = field(default_factory=dict)
    ready: tuple[pulumi.Resource, ...] = ()

    def service_account_annotations(self) -> dict[str, pulumi.Input[str]]:
        return {"eks.amazonaws.com/role-arn": self.role_arn} if self.role_arn is not None else {}


class ArtifactStore(Protocol):
    @property
    def bucket(self) -> str: ...

    @property
    def endpoint_host(self) -> str | None:
        """Where clients send S3 requests (host:port), or None for AWS's own endpoints."""
        ...

    @property
    def region(self) -> str:
        """The region S3 clients sign requests for."""
        ...

    @property
    def in_cluster(self) -> InClusterServer | None:
        """The store's own pods, when it runs in the tracking namespace (its NetworkPolicy admits its clients)."""
        ...

    def grant(self, consumer: Consumer, grants: Mapping[str, Grant], *, opts: pulumi.ResourceOptions) -> dict[str, ClientAccess]:
        """Access per namespace, declared under ``opts``'s parent."""
        ...


# -- the tracking server ----------------------------------------------------------------------------


@dataclass(frozen=True)
class BrowserServer:
    """The tracking server's second server, for browsers: what the Kubeflow integration routes to and admits."""

    service_name: str
    port: int
    pod_labels: dict[str, str]
    landing_path: str
    # What waits for its rollout (retiring a rotated database login).
    deployment: pulumi.Resource


@dataclass(frozen=True)
class TrackingEndpoint:
    """What other components need of the tracking server: where it is, who it is, where its artifacts go."""

    uri: str
    service_name: str
    namespace: str
    # Objects other components put in the tracking namespace wait for it (and are deleted before it).
    namespace_resource: k8s.core.v1.Namespace
    port: int
    path_prefix: str
    server_labels: dict[str, str]
    # The server's Deployment: clients that must find it running (training Jobs) wait for it.
    server: pulumi.Resource
    # What an MLflow client needs besides storage access (tracking URI, telemetry opt-out).
    client_env: dict[str, str]
    # The Istio route's timeout: as long as the clients' own (MLFLOW_HTTP_REQUEST_TIMEOUT in client_env).
    request_timeout_seconds: int
    artifact_store: ArtifactStore
    artifact_prefix: str
    artifact_root: str
    # The server people reach through Kubeflow's gateway, when there is one (tracking/browser.py).
    browser: BrowserServer | None = None


# -- Kubeflow profiles ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProfileClients:
    """How a pod in a Kubeflow profile becomes an MLflow client: the PodDefault's selector labels, and its identity."""

    selector_labels: dict[str, str]
    service_account: str
    namespaces: frozenset[str]
    # The PodDefaults (and the storage grant behind them) that must exist before a pod is admitted.
    ready: Sequence[pulumi.Resource] = ()
    # With MLflow workspaces the server authorizes the pod's own ServiceAccount token: a pod must carry one.
    api_token: bool = False


# -- what the stack publishes (pulumi.export) -------------------------------------------------------


class ServedCanary(TypedDict, total=False):
    storageUri: str
    version: str
    alias: str
    runId: str
    trafficPercent: int


class ServedModel(TypedDict):
    """One entry of the ``servingModels`` output: what a preview diff should make obvious (keys absent when unknown)."""

    storageUri: str
    registeredModel: NotRequired[str]
    version: NotRequired[str]
    alias: NotRequired[str]
    runId: NotRequired[str]
    canary: NotRequired[ServedCanary]
