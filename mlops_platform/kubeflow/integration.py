"""KubeflowIntegration: MLflow inside an existing Kubeflow, least privilege per profile.

It assumes Kubeflow (Istio, central dashboard, profiles, the PodDefault webhook)
is installed and installs none of it. It declares:

- a VirtualService on the Kubeflow gateway for ``<prefix>/`` (prefix kept, since
  MLflow serves everything under its static prefix) and a redirect for ``<prefix>``;
- an AuthorizationPolicy admitting only the ingress gateway, each profile's
  ``default-editor`` and the configured principals to the MLflow pods;
- an MLflow tab in the central dashboard (see :mod:`mlops_platform.kubeflow.dashboard`);
- per profile: a PodDefault for notebooks, its own storage identity limited to
  ``profiles/<namespace>/`` of the artifact bucket, an Istio Sidecar keeping its
  calls to MLflow on mTLS, and optionally Kubeflow Pipelines access;
- with workspaces (default): each profile an MLflow workspace authorized by Kubernetes RBAC
  (see :mod:`mlops_platform.kubeflow.tenancy`), notebooks calling with their own account's token,
  and a DENY policy for identity headers from anyone but the ingress gateway.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from mlops_platform.contracts import ClientAccess, Consumer, Grant, ProfileClients, Scraper, TrackingEndpoint
from mlops_platform.k8s import naming, rbac
from mlops_platform.k8s.containers import plain_env
from mlops_platform.kubeflow import tenancy
from mlops_platform.kubeflow.dashboard import DashboardLink, DashboardLinkArgs, MenuLink
from mlops_platform.kubeflow.settings import KubeflowConfig

COMPONENT = "kubeflow-integration"
# Pods carrying this label get the MLflow PodDefault (the notebook form's "Configurations").
SELECTOR_LABEL = "mlflow"
PROFILE_SERVICE_ACCOUNT = "default-editor"
PROFILE_SECRET = "mlflow-s3"
PROFILE_S3_URI_ENV = "PROFILE_S3_URI"
DASHBOARD_CONFIG_MAP = "centraldashboard-config"
DASHBOARD_ICON = "timeline"
JUPYTER_DEPLOYMENT = "jupyter-web-app-deployment"
JUPYTER_CONTAINER = "jupyter-web-app"
KFP_PODDEFAULT = "access-ml-pipeline"
KFP_AUDIENCE = "pipelines.kubeflow.org"
KFP_TOKEN_DIR = "/var/run/secrets/kubeflow/pipelines"
KFP_CLUSTER_ROLE = "kubeflow-pipelines-edit"
# Kubeflow's gateway puts the authenticated user here; only the gateway may send them (see _identity_headers).
IDENTITY_HEADERS = ("kubeflow-userid", "kubeflow-groups")
# MLflow's client reads the pod's own ServiceAccount token and namespace (the workspace) from the kubelet's mount.
NOTEBOOK_AUTH = {"MLFLOW_TRACKING_AUTH": "kubernetes-namespaced"}
FIELD_MANAGER = "mlops-platform-kubeflow"
# Kubeflow 1.11 narrows every sidecar's egress to these namespaces (Sidecar istio-system/default);
# a call to a Service outside them leaves in plain text, without the identity the policy checks.
KUBEFLOW_EGRESS = ("./*", "istio-system/*", "kubeflow/*", "kubeflow-system/*", "knative-serving/*", "knative-eventing/*")


def profile_prefix(namespace: str) -> str:
    """A profile's own prefix of the artifact bucket, beside (never inside) MLflow's."""
    return f"profiles/{namespace}"


@dataclass(frozen=True)
class KubeflowIntegrationArgs:
    kubeflow: KubeflowConfig
    tracking: TrackingEndpoint
    # A metrics scraper in the mesh (monitoring.meshPrincipal): admitted to GET its path only.
    scraper: Scraper | None = None


class KubeflowIntegration(pulumi.ComponentResource):
    """Route, access policy, dashboard tab and per-profile wiring of MLflow into Kubeflow."""

    url: str
    principals: list[str]
    profiles: list[str]
    clients: ProfileClients

    def __init__(self, name: str, args: KubeflowIntegrationArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlops:index:KubeflowIntegration", name, None, opts)
        kf, tracking = args.kubeflow, args.tracking
        self._name = name
        self._tracking = tracking
        self._child = pulumi.ResourceOptions(parent=self)
        # The route and the access policy live in the tracking namespace: created after it, deleted before it.
        self._in_tracking_namespace = pulumi.ResourceOptions(parent=self, depends_on=[tracking.namespace_resource])
        prefix = tracking.path_prefix
        trust_domain = kf.ingress_principal.split("/ns/", 1)[0]
        self.profiles = list(kf.profiles)
        browser = tracking.browser
        # With a browser server the gateway's traffic goes there; the tracking server keeps only in-cluster clients.
        self.principals = list(
            dict.fromkeys(
                [
                    *([] if browser else [kf.ingress_principal]),
                    *(f"{trust_domain}/ns/{ns}/sa/{PROFILE_SERVICE_ACCOUNT}" for ns in kf.profiles),
                    *kf.allowed_principals,
                ]
            )
        )
        self.url = f"https://{kf.external_host}{prefix}/" if kf.external_host else f"{prefix}/"

        hosts = [kf.external_host] if kf.external_host else ["*"]
        if browser is not None:
            self._route(kf.gateway, hosts, prefix, browser.service_name, browser.port)
            self._gateway_only(browser.service_name, browser.pod_labels, kf.ingress_principal)
        else:
            self._route(kf.gateway, hosts, prefix, tracking.service_name, tracking.port)
        self._access_policy(args.scraper)
        self._workspaces = kf.workspaces
        if kf.workspaces:
            self._identity_headers(kf.ingress_principal)
            tenancy.cluster_roles(name, self._child)
        if kf.dashboard_tab:
            # With a browser server the tab opens the selected profile's workspace (Kubeflow fills in {ns}).
            link = f"{browser.landing_path}{{ns}}/" if browser else f"{prefix}/"
            DashboardLink(
                f"{name}-dashboard-link",
                DashboardLinkArgs(kf.namespace, DASHBOARD_CONFIG_MAP, MenuLink("MLflow", link, DASHBOARD_ICON)),
                opts=self._child,
            )
        if kf.insecure_cookies:
            self._insecure_cookies(kf.namespace)
        storage = self._storage(kf.profiles)
        pod_defaults = []
        for namespace in kf.profiles:
            pod_defaults.append(self._profile(namespace, storage[namespace]))
            if kf.workspaces:
                tenancy.workspace(name, namespace, PROFILE_SERVICE_ACCOUNT, self._child)
            if kf.kfp_access:
                self._pipelines_access(namespace)
        self.clients = ProfileClients(
            {SELECTOR_LABEL: "true"},
            PROFILE_SERVICE_ACCOUNT,
            frozenset(kf.profiles),
            [*pod_defaults, *(r for access in storage.values() for r in access.ready)],
            api_token=kf.workspaces,
        )

        self.register_outputs({"url": self.url, "principals": self.principals, "profiles": self.profiles})

    def _meta(self, name: str, namespace: str) -> k8s.meta.v1.ObjectMetaArgs:
        return naming.metadata(name, namespace, component=COMPONENT, instance=self._name)

    def _route(self, gateway: str, hosts: list[str], prefix: str, service: str, port: int) -> None:
        """``<prefix>/`` to an MLflow Service, prefix kept: MLflow serves its UI, API and artifact proxy under it."""
        t = self._tracking
        k8s.apiextensions.CustomResource(
            f"{self._name}-route",
            api_version="networking.istio.io/v1",
            kind="VirtualService",
            metadata=self._meta(t.service_name, t.namespace),
            spec={
                "gateways": [gateway],
                "hosts": hosts,
                "http": [
                    {"name": "mlflow-trailing-slash", "match": [{"uri": {"exact": prefix}}], "redirect": {"uri": f"{prefix}/"}},
                    {
                        "name": "mlflow",
                        "match": [{"uri": {"prefix": f"{prefix}/"}}],
                        "route": [{"destination": {"host": naming.service_host(service, t.namespace), "port": {"number": port}}}],
                        # Istio's own default is no limit; declared, a large proxied upload is known to fit.
                        "timeout": f"{t.request_timeout_seconds}s",
                    },
                ],
            },
            opts=self._in_tracking_namespace,
        )

    def _access_policy(self, scraper: Scraper | None) -> None:
        """With Kubeflow's mesh-wide deny-all, only these mTLS identities reach MLflow."""
        t = self._tracking
        k8s.apiextensions.CustomResource(
            f"{self._name}-access",
            api_version="security.istio.io/v1",
            kind="AuthorizationPolicy",
            metadata=self._meta(t.service_name, t.namespace),
            spec={
                "action": "ALLOW",
                "selector": {"matchLabels": t.server_labels},
                "rules": [
                    {"from": [{"source": {"principals": self.principals}}]},
                    *(
                        [
                            {
                                "from": [{"source": {"principals": [scraper.principal]}}],
                                "to": [{"operation": {"methods": ["GET"], "paths": [scraper.path]}}],
                            }
                        ]
                        if scraper
                        else []
                    ),
                ],
            },
            opts=self._in_tracking_namespace,
        )

    def _gateway_only(self, name: str, labels: dict[str, str], gateway: str) -> None:
        """The browser server answers the ingress gateway's identity and nobody else's (mTLS principals)."""
        t = self._tracking
        k8s.apiextensions.CustomResource(
            f"{self._name}-{name}-access",
            api_version="security.istio.io/v1",
            kind="AuthorizationPolicy",
            metadata=self._meta(name, t.namespace),
            spec={"action": "ALLOW", "selector": {"matchLabels": labels}, "rules": [{"from": [{"source": {"principals": [gateway]}}]}]},
            opts=self._in_tracking_namespace,
        )

    def _identity_headers(self, gateway: str) -> None:
        """Identity headers reach MLflow only from the ingress gateway, which sets them from the session it authenticated.

        The server authorizes by bearer token and reads no identity header (tracking/auth.py); this
        keeps any in-cluster caller from presenting a forged one to anything behind MLflow's port too.
        """
        t = self._tracking
        k8s.apiextensions.CustomResource(
            f"{self._name}-identity-headers",
            api_version="security.istio.io/v1",
            kind="AuthorizationPolicy",
            metadata=self._meta(f"{t.service_name}-identity-headers", t.namespace),
            spec={
                "action": "DENY",
                "selector": {"matchLabels": t.server_labels},
                "rules": [
                    {"from": [{"source": {"notPrincipals": [gateway]}}], "when": [{"key": f"request.headers[{header}]", "values": ["*"]}]}
                    for header in IDENTITY_HEADERS
                ],
            },
            opts=self._in_tracking_namespace,
        )

    def _insecure_cookies(self, namespace: str) -> None:
        """Opt-in for HTTP-only dev clusters: the notebook app otherwise sets cookies a browser drops over HTTP."""
        k8s.apps.v1.DeploymentPatch(
            f"{self._name}-jupyter-insecure-cookies",
            metadata=k8s.meta.v1.ObjectMetaPatchArgs(
                name=JUPYTER_DEPLOYMENT,
                namespace=namespace,
                # Kubeflow's manifests own this env var; taking it over needs force.
                annotations={"pulumi.com/patchForce": "true", "pulumi.com/patchFieldManager": FIELD_MANAGER},
            ),
            spec=k8s.apps.v1.DeploymentSpecPatchArgs(
                template=k8s.core.v1.PodTemplateSpecPatchArgs(
                    spec=k8s.core.v1.PodSpecPatchArgs(
                        containers=[
                            k8s.core.v1.ContainerPatchArgs(
                                name=JUPYTER_CONTAINER, env=[k8s.core.v1.EnvVarPatchArgs(name="APP_SECURE_COOKIES", value="false")]
                            )
                        ]
                    )
                )
            ),
            opts=self._child,
        )

    def _storage(self, profiles: Sequence[str]) -> dict[str, ClientAccess]:
        """Each profile's own prefix, writable by its notebooks and pipeline steps and by nothing else.

        On eks the grant's identity is the profile's ``default-editor``, annotated here (as Kubeflow's
        own AwsIamForServiceAccount profile plugin does): notebooks and pipeline steps keep
        default-editor's Kubeflow rights instead of swapping service accounts.
        """
        access = self._tracking.artifact_store.grant(
            Consumer(self._name, provisioning=f"{self._name}-profiles", key_secret=lambda ns: self._meta(PROFILE_SECRET, ns)),
            {ns: Grant(profile_prefix(ns), "write", identity=f"profile-{ns}", service_account=PROFILE_SERVICE_ACCOUNT) for ns in profiles},
            opts=self._child,
        )
        for ns, client in access.items():
            if client.role_arn is not None:
                k8s.core.v1.ServiceAccountPatch(
                    f"{self._name}-{ns}-irsa",
                    metadata=k8s.meta.v1.ObjectMetaPatchArgs(
                        name=PROFILE_SERVICE_ACCOUNT,
                        namespace=ns,
                        annotations={**client.service_account_annotations(), "pulumi.com/patchFieldManager": FIELD_MANAGER},
                    ),
                    opts=self._child,
                )
        return access

    def _profile(self, namespace: str, storage: ClientAccess) -> k8s.apiextensions.CustomResource:
        t = self._tracking
        uri = f"s3://{t.artifact_store.bucket}/{profile_prefix(namespace)}/"
        spec = {
            "desc": f"MLflow tracking and registry; S3 data under {uri}",
            "selector": {"matchLabels": {SELECTOR_LABEL: "true"}},
            "env": [*plain_env({**t.client_env, **(NOTEBOOK_AUTH if self._workspaces else {}), PROFILE_S3_URI_ENV: uri}), *storage.env],
        }
        if storage.pod_labels:
            spec["labels"] = storage.pod_labels
        pod_default = k8s.apiextensions.CustomResource(
            f"{self._name}-{namespace}-poddefault",
            api_version="kubeflow.org/v1alpha1",
            kind="PodDefault",
            metadata=self._meta("mlflow", namespace),
            spec=spec,
            opts=self._child,
        )
        k8s.apiextensions.CustomResource(
            f"{self._name}-{namespace}-egress",
            api_version="networking.istio.io/v1",
            kind="Sidecar",
            metadata=self._meta("mlflow-egress", namespace),
            spec={
                "workloadSelector": {"labels": {SELECTOR_LABEL: "true"}},
                "egress": [{"hosts": [*KUBEFLOW_EGRESS, f"{t.namespace}/*"]}],
            },
            opts=self._child,
        )
        return pod_default

    def _pipelines_access(self, namespace: str) -> None:
        """Kubeflow Pipelines from a notebook: a projected token for the KFP API, and the right to use it."""
        k8s.apiextensions.CustomResource(
            f"{self._name}-{namespace}-kfp-poddefault",
            api_version="kubeflow.org/v1alpha1",
            kind="PodDefault",
            metadata=self._meta(KFP_PODDEFAULT, namespace),
            spec={
                "desc": "Allow access to Kubeflow Pipelines",
                "selector": {"matchLabels": {KFP_PODDEFAULT: "true"}},
                "env": plain_env({"KF_PIPELINES_SA_TOKEN_PATH": f"{KFP_TOKEN_DIR}/token"}),
                "volumes": [
                    {
                        "name": "volume-kf-pipeline-token",
                        "projected": {
                            "sources": [{"serviceAccountToken": {"path": "token", "expirationSeconds": 7200, "audience": KFP_AUDIENCE}}]
                        },
                    }
                ],
                "volumeMounts": [{"mountPath": KFP_TOKEN_DIR, "name": "volume-kf-pipeline-token", "readOnly": True}],
            },
            opts=self._child,
        )
        rbac.bind_in_namespace(
            f"{self._name}-{namespace}-kfp-access",
            self._meta(KFP_PODDEFAULT, namespace),
            KFP_CLUSTER_ROLE,
            PROFILE_SERVICE_ACCOUNT,
            namespace,
            self._child,
        )
