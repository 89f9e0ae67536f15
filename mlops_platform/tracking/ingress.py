"""The prod route to MLflow: an Ingress for ``tracking.externalHost`` with TLS, in front of an authenticating server.

Config refuses ``tracking.auth: none`` together with an external host, so this route always
reaches an authorization app (and the policy pack flags any exposure that would not).
The class is configurable: ``nginx`` (ingress-nginx) or ``alb`` (AWS Load Balancer Controller,
which terminates TLS with the certificate named in the Secret or discovered by host).
The certificate comes from cert-manager (``tls.issuer``) or an existing Secret (``tls.secretName``).
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from mlops_platform.k8s import naming
from mlops_platform.tracking.settings import IngressConfig

COMPONENT = "mlflow"
# What the policy pack reads to know which authorization app stands behind a route (checks.py).
AUTH_ANNOTATION = "mlops-platform/mlflow-auth"
ISSUER_ANNOTATION = {"ClusterIssuer": "cert-manager.io/cluster-issuer", "Issuer": "cert-manager.io/issuer"}


def tls_secret_name(name: str, ingress: IngressConfig) -> str:
    return ingress.tls.secret_name or f"{name}-tls"


def declare(
    name: str,
    *,
    namespace: str,
    host: str,
    path_prefix: str,
    service: str,
    port: int,
    auth: str,
    ingress: IngressConfig,
    opts: pulumi.ResourceOptions,
) -> k8s.networking.v1.Ingress:
    """HTTPS on ``host`` for ``<prefix>/`` only, prefix kept: MLflow serves its UI, API and artifact proxy under it."""
    tls = ingress.tls
    annotations = {AUTH_ANNOTATION: auth}
    if tls.issuer is not None:
        annotations[ISSUER_ANNOTATION[tls.issuer_kind]] = tls.issuer
    if ingress.class_name == "nginx":
        annotations["nginx.ingress.kubernetes.io/ssl-redirect"] = "true"
        # Artifact uploads go through the server's proxy.
        annotations["nginx.ingress.kubernetes.io/proxy-body-size"] = "0"
    elif ingress.class_name == "alb":
        annotations.update(
            {
                "alb.ingress.kubernetes.io/scheme": "internet-facing",
                "alb.ingress.kubernetes.io/target-type": "ip",
                "alb.ingress.kubernetes.io/listen-ports": '[{"HTTPS": 443}]',
                "alb.ingress.kubernetes.io/healthcheck-path": f"{path_prefix}/health",
            }
        )
    return k8s.networking.v1.Ingress(
        f"{name}-ingress",
        metadata=naming.metadata(name, namespace, component=COMPONENT, instance=name, annotations=annotations),
        spec=k8s.networking.v1.IngressSpecArgs(
            ingress_class_name=ingress.class_name,
            tls=[k8s.networking.v1.IngressTLSArgs(hosts=[host], secret_name=tls_secret_name(name, ingress))],
            rules=[
                k8s.networking.v1.IngressRuleArgs(
                    host=host,
                    http=k8s.networking.v1.HTTPIngressRuleValueArgs(
                        paths=[
                            k8s.networking.v1.HTTPIngressPathArgs(
                                path=f"{path_prefix}/",
                                path_type="Prefix",
                                backend=k8s.networking.v1.IngressBackendArgs(
                                    service=k8s.networking.v1.IngressServiceBackendArgs(
                                        name=service, port=k8s.networking.v1.ServiceBackendPortArgs(number=port)
                                    )
                                ),
                            )
                        ]
                    ),
                )
            ],
        ),
        opts=opts,
    )
