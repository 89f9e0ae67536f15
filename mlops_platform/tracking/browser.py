"""The browser server: MLflow for people who open it through Kubeflow's dashboard.

A browser reaches MLflow through Kubeflow's ingress gateway, which logs the user in (oauth2-proxy, Dex) and
forwards the user's ID token. The tracking server cannot use that token: its authorization app sends the
caller's bearer token to the API server, which accepts no Dex token unless reconfigured. So browsers get a
server of their own, on the same database, store and schema (migrated once, by the same Job):

- an oauth2-proxy container verifies the ID token (signature against the issuer's keys, issuer, audience,
  expiry) and passes only its ``email`` claim on, as ``X-Forwarded-Email``; client copies of that header and of
  ``X-Forwarded-Groups`` are removed from every request, and groups are never forwarded (Kubeflow binds
  profile owners and contributors by user name, and its own web apps authorize the user alone);
- MLflow runs Kubeflow's ``kubernetes-auth`` app in SubjectAccessReview mode: the API server says whether that
  user may act in the workspace, by the RoleBindings Kubeflow's profile controller makes;
- MLflow listens on a Unix socket in a volume only these two containers mount, so no port exists where a
  forged header could reach it; the proxy's port admits only the ingress gateway's pods (NetworkPolicy,
  here) and identity (Istio AuthorizationPolicy, declared by the Kubeflow integration);
- ``<prefix>/kubeflow/<namespace>/``, which the dashboard's tab opens, is a small page that sends the user to
  that namespace's workspace, or says plainly that no namespace is selected or that they have no access.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random
import yaml

from mlops_platform.contracts import BrowserServer
from mlops_platform.k8s import mesh, naming, rbac
from mlops_platform.k8s.containers import ExecProbe, HttpProbe, container, pod_spec, scanner_exceptions, secret_env
from mlops_platform.settings_base import Resources

COMPONENT = "mlflow"
SUFFIX = "ui"
PROXY_PORT = 4180
SOCKET_DIR = "/var/run/mlflow"
SOCKET = f"{SOCKET_DIR}/server.sock"
CONFIG_DIR = "/etc/mlflow-ui"
PROXY_CONFIG = "oauth2-proxy.yaml"
LANDING = "index.html"
SECRET_DIR = "/var/run/secrets/mlflow-ui"
CLIENT_SECRET = "client-secret"
COOKIE_SECRET = "cookie-secret"
# What the proxy passes on, and what MLflow's authorization app reads as the user (and, never set, as groups).
USER_HEADER = "X-Forwarded-Email"
GROUPS_HEADER = "X-Forwarded-Groups"
ACCESS_REVIEW_ROLE_SUFFIX = "access-reviews"
PROXY_RESOURCES = Resources(cpu_request="25m", cpu_limit="250m", memory_request="32Mi", memory_limit="128Mi")
# The server's health over its socket, as the kubelet runs an exec probe: the image's Python, nothing else.
SOCKET_PROBE = (
    "import socket,sys\n"
    "s=socket.socket(socket.AF_UNIX)\n"
    "s.settimeout(4)\n"
    "s.connect(sys.argv[1])\n"
    "s.sendall(('GET '+sys.argv[2]+' HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n').encode())\n"
    "sys.exit(0 if s.recv(16).split()[1:2]==[b'200'] else 1)\n"
)


@dataclass(frozen=True)
class BrowserAccess:
    """What the browser server needs beside the tracking server's own settings."""

    issuer: str
    client_id: str
    proxy_image: str
    replicas: int
    # The ingress gateway's pods: the only ones the NetworkPolicy admits to the proxy's port.
    gateway_namespace: str
    gateway_labels: dict[str, str]


def landing_path(prefix: str) -> str:
    return f"{prefix}/kubeflow/"


def landing_page(prefix: str) -> str:
    return (Path(__file__).with_name("landing.html")).read_text().replace("__PATH_PREFIX__", prefix)


def proxy_config(prefix: str, access: BrowserAccess, timeout_seconds: int) -> str:
    """oauth2-proxy's alpha configuration: where requests go, what it passes on, which tokens it accepts (no secrets)."""
    document = {
        "server": {"bindAddress": f"0.0.0.0:{PROXY_PORT}"},
        "upstreamConfig": {
            # MLflow's artifact paths are passed exactly as the client sent them.
            "proxyRawPath": True,
            "upstreams": [
                {
                    "id": "landing",
                    "path": f"^{landing_path(prefix)}[^/]*/?$",
                    "rewriteTarget": "/",
                    "uri": f"file://{CONFIG_DIR}/landing/",
                },
                {"id": "mlflow", "path": "/", "uri": f"unix://{SOCKET}", "timeout": f"{timeout_seconds}s"},
            ],
        },
        "injectRequestHeaders": [
            {"name": USER_HEADER, "values": [{"claimSource": {"claim": "email"}}]},
            # Removed from every request and never set.
            {"name": GROUPS_HEADER},
        ],
        "providers": [
            {
                "id": "kubeflow",
                "provider": "oidc",
                "clientID": access.client_id,
                "clientSecretFile": f"{SECRET_DIR}/{CLIENT_SECRET}",
                "oidcConfig": {"issuerURL": access.issuer, "emailClaim": "email", "audienceClaims": ["aud"]},
            }
        ],
    }
    text: str = yaml.safe_dump(document, sort_keys=False)
    return text


def proxy_args(prefix: str) -> list[str]:
    """Bearer tokens only: no login flow (the gateway did it), so a request without a valid token gets 401."""
    return [
        f"--alpha-config={CONFIG_DIR}/proxy/{PROXY_CONFIG}",
        "--skip-jwt-bearer-tokens=true",
        "--email-domain=*",
        "--api-route=^/",
        f"--skip-auth-route=GET=^{prefix}/health$",
        "--reverse-proxy=true",
        "--silence-ping-logging=true",
    ]


def mlflow_listen_args() -> list[str]:
    """The server's address inside the pod: its socket (uvicorn ignores host and port beside it; loopback if it did not)."""
    return ["--host", "127.0.0.1", "--uvicorn-opts", f"--uds {SOCKET}"]


def socket_mount() -> k8s.core.v1.VolumeMountArgs:
    return k8s.core.v1.VolumeMountArgs(name="server-socket", mount_path=SOCKET_DIR)


def server_probe(prefix: str) -> ExecProbe:
    """MLflow's health over its socket, with the image's Python: the container has no port to probe."""
    return ExecProbe(["python", "-c", SOCKET_PROBE, SOCKET, f"{prefix}/health"])


def declare(
    name: str,
    *,
    namespace: str,
    access: BrowserAccess,
    prefix: str,
    timeout_seconds: int,
    mlflow: k8s.core.v1.ContainerArgs,
    mlflow_volumes: list[k8s.core.v1.VolumeArgs],
    service_account: pulumi.Input[str],
    client_labels: dict[str, str],
    in_mesh: bool,
    bypass_ports: list[int],
    opts: pulumi.ResourceOptions,
    ready: list[pulumi.Resource],
    pod_annotations: dict[str, str] | None = None,
) -> BrowserServer:
    """The browser server's Deployment, Service, proxy settings and secrets, its access-review right and NetworkPolicy.

    ``mlflow`` is the server container as the tracking stack builds it (image, args, env, scratch), already in
    SubjectAccessReview mode and listening on :data:`SOCKET`. It runs as the tracking server's ServiceAccount,
    which holds the storage grant (IRSA on eks) and the workspace provider's rights; ``client_labels`` are the
    labels the database's and the artifact store's NetworkPolicies admit. ``ready``: what it waits for (the migration).
    """
    server_name = f"{name}-{SUFFIX}"
    labels = naming.selector_labels(COMPONENT, server_name)

    def meta(object_name: str, annotations: dict[str, str] | None = None) -> k8s.meta.v1.ObjectMetaArgs:
        return naming.metadata(object_name, namespace, component=COMPONENT, instance=server_name, annotations=annotations)

    role = f"{name}-{ACCESS_REVIEW_ROLE_SUFFIX}"
    role_meta = naming.metadata(role, component=COMPONENT, instance=server_name)
    k8s.rbac.v1.ClusterRole(
        role,
        metadata=role_meta,
        rules=[k8s.rbac.v1.PolicyRuleArgs(api_groups=["authorization.k8s.io"], resources=["subjectaccessreviews"], verbs=["create"])],
        opts=opts,
    )
    rbac.bind_cluster_wide(role, role_meta, role, service_account, namespace, opts)

    # pulumi-random secrets: oauth2-proxy refuses to start without a client secret and a cookie secret, though it
    # never redeems a code (no login flow here) and keeps no session (bearer tokens only).
    client_secret = random.RandomPassword(f"{server_name}-client-secret", length=32, special=False, opts=opts)
    cookie_secret = random.RandomPassword(f"{server_name}-cookie-secret", length=32, special=False, opts=opts)
    secret = k8s.core.v1.Secret(
        f"{server_name}-proxy",
        metadata=meta(f"{server_name}-proxy"),
        type="Opaque",
        string_data={CLIENT_SECRET: client_secret.result, COOKIE_SECRET: cookie_secret.result},
        opts=opts,
    )
    settings = k8s.core.v1.ConfigMap(
        f"{server_name}-config",
        metadata=meta(server_name),
        data={PROXY_CONFIG: proxy_config(prefix, access, timeout_seconds), LANDING: landing_page(prefix)},
        opts=opts,
    )

    proxy = container(
        "auth-proxy",
        access.proxy_image,
        PROXY_RESOURCES,
        command=["/bin/oauth2-proxy"],
        args=proxy_args(prefix),
        env=[secret_env("OAUTH2_PROXY_COOKIE_SECRET", secret.metadata.name, COOKIE_SECRET)],
        ports={"http": PROXY_PORT},
        probe=HttpProbe("/ping", "http"),
        mounts=[
            socket_mount(),
            k8s.core.v1.VolumeMountArgs(name="proxy-config", mount_path=CONFIG_DIR, read_only=True),
            k8s.core.v1.VolumeMountArgs(name="proxy-secret", mount_path=SECRET_DIR, read_only=True),
        ],
    )
    volumes = [
        *mlflow_volumes,
        # A socket needs a file system, not space: a tiny tmpfs only these two containers mount.
        k8s.core.v1.VolumeArgs(name="server-socket", empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs(medium="Memory", size_limit="1Mi")),
        k8s.core.v1.VolumeArgs(
            name="proxy-config",
            config_map=k8s.core.v1.ConfigMapVolumeSourceArgs(
                name=settings.metadata.name,
                items=[
                    k8s.core.v1.KeyToPathArgs(key=PROXY_CONFIG, path=f"proxy/{PROXY_CONFIG}"),
                    k8s.core.v1.KeyToPathArgs(key=LANDING, path=f"landing/{LANDING}"),
                ],
            ),
        ),
        k8s.core.v1.VolumeArgs(
            name="proxy-secret",
            secret=k8s.core.v1.SecretVolumeSourceArgs(
                secret_name=secret.metadata.name,
                items=[k8s.core.v1.KeyToPathArgs(key=CLIENT_SECRET, path=CLIENT_SECRET)],
                default_mode=0o440,
            ),
        ),
    ]
    mesh_labels, mesh_annotations = mesh.mesh_member(bypass_ports) if in_mesh else ({}, None)
    annotations = {**(mesh_annotations or {}), **(pod_annotations or {})} or None
    deployment = k8s.apps.v1.Deployment(
        server_name,
        metadata=meta(server_name, annotations=scanner_exceptions(proxy, mlflow)),
        spec=k8s.apps.v1.DeploymentSpecArgs(
            replicas=access.replicas,
            selector=k8s.meta.v1.LabelSelectorArgs(match_labels=labels),
            template=k8s.core.v1.PodTemplateSpecArgs(
                metadata=k8s.meta.v1.ObjectMetaArgs(
                    labels=naming.labels(COMPONENT, server_name, **client_labels, **mesh_labels), annotations=annotations
                ),
                spec=pod_spec([proxy, mlflow], volumes=volumes, service_account=service_account),
            ),
        ),
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=ready)),
    )
    k8s.core.v1.Service(
        f"{server_name}-svc",
        metadata=meta(server_name),
        spec=k8s.core.v1.ServiceSpecArgs(
            type="ClusterIP",
            selector=labels,
            ports=[k8s.core.v1.ServicePortArgs(name="http", port=PROXY_PORT, target_port="http", app_protocol="http")],
        ),
        opts=opts,
    )
    gateway = k8s.networking.v1.NetworkPolicyPeerArgs(
        namespace_selector=k8s.meta.v1.LabelSelectorArgs(match_labels={"kubernetes.io/metadata.name": access.gateway_namespace}),
        pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=access.gateway_labels),
    )
    k8s.networking.v1.NetworkPolicy(
        f"{name}-netpol-{SUFFIX}",
        metadata=meta(server_name),
        spec=k8s.networking.v1.NetworkPolicySpecArgs(
            pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=labels),
            policy_types=["Ingress"],
            ingress=[
                k8s.networking.v1.NetworkPolicyIngressRuleArgs(
                    from_=[gateway], ports=[k8s.networking.v1.NetworkPolicyPortArgs(port=PROXY_PORT, protocol="TCP")]
                )
            ],
        ),
        opts=opts,
    )
    return BrowserServer(server_name, PROXY_PORT, labels, landing_path(prefix), deployment)
