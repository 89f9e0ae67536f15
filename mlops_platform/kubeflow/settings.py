"""Settings of the wiring into an existing Kubeflow (``kubeflow.*``), its browser server included."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import Field, model_validator

from mlops_platform.settings_base import (
    DnsLabel,
    DnsName,
    Image,
    KeyRuleError,
    Labels,
    Model,
    Principal,
    check,
    keys_set,
    only_when_enabled,
)

# The browser server's authenticating proxy (toolchain/versions.env builds the same release for the tests).
OAUTH2_PROXY_VERSION = "v7.15.6"
OAUTH2_PROXY_IMAGE = f"quay.io/oauth2-proxy/oauth2-proxy:{OAUTH2_PROXY_VERSION}"
# Kubeflow's Dex and the client its oauth2-proxy logs users in as (kubeflow/manifests v1.11.0:
# common/oauth2-proxy/components/istio-external-auth/requestauthentication.dex-jwt.yaml, common/oauth2-proxy/base/kustomization.yaml).
KUBEFLOW_OIDC_ISSUER = "http://dex.auth.svc.cluster.local:5556/dex"
KUBEFLOW_OIDC_CLIENT_ID = "kubeflow-oidc-authservice"

_GATEWAY = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?/[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_ISSUER = re.compile(r"^https?://[a-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~/-]*)?$")
_CLIENT_ID = re.compile(r"^[A-Za-z0-9._:-]{1,255}$")


class BrowserConfig(Model):
    """People in browsers, through Kubeflow's gateway: a second MLflow server that authorizes the gateway's user.

    Its pods verify the ID token Kubeflow's gateway forwards (issuer and audience below: Dex and the client
    Kubeflow's oauth2-proxy uses) and ask the API server whether the token's ``email`` may act in the
    workspace, as Kubeflow's own web apps do for ``kubeflow-userid``.
    """

    enabled: bool = Field(default=True, description="The browser server (with workspaces): people log in through Kubeflow's gateway.")
    issuer: Annotated[str, check(_ISSUER, "the issuer URL of the ID tokens Kubeflow's gateway forwards, e.g. " + KUBEFLOW_OIDC_ISSUER)] = (
        Field(default=KUBEFLOW_OIDC_ISSUER, description="Issuer of the ID tokens Kubeflow's gateway forwards (Kubeflow's Dex).")
    )
    client_id: Annotated[str, check(_CLIENT_ID, "the OIDC client id the tokens are issued to, e.g. " + KUBEFLOW_OIDC_CLIENT_ID)] = Field(
        default=KUBEFLOW_OIDC_CLIENT_ID, description="The OIDC client the tokens are issued to (Kubeflow's oauth2-proxy)."
    )
    proxy_image: Image = Field(default=OAUTH2_PROXY_IMAGE, description="The browser server's oauth2-proxy image.")
    replicas: int = Field(default=1, ge=1, le=10, description="Browser server pods.")
    # The ingress gateway's pods (kubeflow/manifests common/istio/istio-install: the istio-ingressgateway Service selector);
    # the only pods the browser server's NetworkPolicy admits, in the ingress principal's namespace.
    gateway_labels: Labels = Field(
        default={"app": "istio-ingressgateway", "istio": "ingressgateway"},
        description="Labels of the ingress gateway's pods, the only pods the browser server admits.",
    )

    @model_validator(mode="after")
    def _nothing_set_while_disabled(self) -> BrowserConfig:
        return only_when_enabled(self, "kubeflow.browser")


class KubeflowConfig(Model):
    """Wiring into an existing Kubeflow: its gateway, dashboard and profile namespaces."""

    enabled: bool = Field(default=False, description="Wire MLflow into the cluster's Kubeflow.")
    # Where Kubeflow's central dashboard and Jupyter web app run.
    namespace: DnsLabel = Field(default="kubeflow", description="Where Kubeflow's central dashboard and Jupyter web app run.")
    gateway: Annotated[str, check(_GATEWAY, "namespace/name of an Istio Gateway, e.g. kubeflow/kubeflow-gateway")] = Field(
        default="kubeflow/kubeflow-gateway", description="Kubeflow's Istio Gateway, as namespace/name."
    )
    ingress_principal: Principal = Field(
        default="cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account",
        description="The ingress gateway's Istio identity.",
    )
    allowed_principals: list[Principal] = Field(
        default=[], description="Istio identities admitted to the tracking server besides the profiles'."
    )
    external_host: DnsName | None = Field(
        default=None, description="Host users reach Kubeflow's gateway through (added to --allowed-hosts)."
    )
    profiles: list[DnsLabel] = Field(
        default=[], description="Kubeflow profile namespaces that get MLflow: a workspace, a PodDefault, storage access."
    )
    kfp_access: bool = Field(default=False, description="Also give each profile's pods access to Kubeflow Pipelines.")
    dashboard_tab: bool = Field(default=True, description="An MLflow tab in Kubeflow's central dashboard.")
    insecure_cookies: bool = Field(
        default=False, description="APP_SECURE_COOKIES=false on the notebook web app: HTTP-only dev clusters only (cookies in clear text)."
    )
    # One MLflow workspace per profile, every request authorized by Kubernetes RBAC (mlflow-kubernetes-plugins).
    workspaces: bool = Field(default=True, description="One MLflow workspace per profile, every request authorized by Kubernetes RBAC.")
    browser: BrowserConfig = Field(default=BrowserConfig(), description="The browser server behind the dashboard's MLflow tab.")
    # The MLflowConfig CRD the workspace provider watches (mlflowconfigs.mlflow.kubeflow.org). Without it the provider
    # asks the API server for them on every request; false where another operator (OpenDataHub's) already installs it.
    mlflow_config_crd: bool = Field(
        default=True, description="Install the MLflowConfig CRD the workspace provider watches; false where another operator installs it."
    )

    @model_validator(mode="after")
    def _nothing_set_while_disabled(self) -> KubeflowConfig:
        return only_when_enabled(self, "kubeflow")

    @model_validator(mode="after")
    def _browser_needs_workspaces(self) -> KubeflowConfig:
        if self.enabled and not self.workspaces:
            for key in keys_set(self.browser):
                raise KeyRuleError(
                    f"browser.{key}",
                    "set, but kubeflow.workspaces is false (the browser server authorizes workspaces); "
                    f"allowed: kubeflow.workspaces true, or kubeflow.browser.{key} left out",
                    quotes_value=False,
                )
            for key in keys_set(self, {"mlflowConfigCrd"}):
                raise KeyRuleError(
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
                raise KeyRuleError(f"profiles.{index}", f"{profile!r} is listed twice; allowed: each profile namespace once")
            seen.add(profile)
        return self
