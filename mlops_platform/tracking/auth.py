"""Who may call the tracking server: the authorization app it runs, and what that app needs.

- ``kubernetes``: Kubeflow's ``kubernetes-auth`` app (mlflow-kubernetes-plugins) in
  SelfSubjectAccessReview mode. Every request carries a bearer token; the API server
  authenticates it and says whether its owner may act on ``mlflow.kubeflow.org`` resources in
  the workspace's namespace. The server never reads an identity header in this mode, so a
  forged ``kubeflow-userid`` grants nothing. With Kubeflow workspaces the server also runs the
  ``kubernetes`` workspace provider (profile namespaces carrying the program's label) and may
  list and watch namespaces; without, every check is against the tracking namespace.
- ``basic``: MLflow's basic-auth app. The admin password comes from pulumi-random (a secret
  output), users and permissions live in the same PostgreSQL (MLflow keeps them in their own
  tables, versioned in ``alembic_version_auth``), and the config file reaches the pod only
  as a mounted Secret, since it holds the database URI.
- ``none``: no check; refused by config whenever a route from outside exists.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from mlops_platform.contracts import WORKSPACE_LABEL
from mlops_platform.k8s import naming, rbac
from mlops_platform.k8s.containers import API_TOKEN_DIR, API_TOKEN_SECONDS, api_token, plain_env, secret_env
from mlops_platform.settings_base import ConfigError
from mlops_platform.tracking.settings import AuthApp

COMPONENT = "mlflow"
ADMIN_USER = "admin"
AUTH_CONFIG_DIR = "/etc/mlflow-auth"
AUTH_CONFIG_FILE = "basic_auth.ini"
# Where in-cluster Kubernetes clients (the plugins) look for the pod's own token.
TOKEN_DIR = API_TOKEN_DIR
TOKEN_SECONDS = API_TOKEN_SECONDS
# A revoked RoleBinding stops working within this many seconds (the plugin caches decisions).
DECISION_CACHE_SECONDS = 60
SERVER_ROLE_SUFFIX = "workspaces"
# The provider lists only the profile namespaces carrying this label.
WORKSPACE_SELECTOR = f"{WORKSPACE_LABEL}=true"
# The plugin's workspace provider: profile namespaces carrying WORKSPACE_LABEL.
WORKSPACE_STORE = "kubernetes://"


@dataclass(frozen=True)
class ServerAuth:
    """What the server container gets for its authorization app."""

    mode: str
    args: list[str] = field(default_factory=list)
    env: list[k8s.core.v1.EnvVarArgs] = field(default_factory=list)
    volumes: list[k8s.core.v1.VolumeArgs] = field(default_factory=list)
    mounts: list[k8s.core.v1.VolumeMountArgs] = field(default_factory=list)
    admin_password: pulumi.Output[str] | None = None
    # basic-auth's Secret (its config file and the admin password), None with any other app.
    secret: k8s.core.v1.Secret | None = None


def declare(
    name: str,
    mode: AuthApp,
    *,
    workspaces: bool,
    namespace: str,
    mlflow_config_crd: bool = False,
    backend_uri: pulumi.Output[str] | None,
    service_account: str,
    opts: pulumi.ResourceOptions,
    admin_keepers: dict[str, str] | None = None,
) -> ServerAuth:
    """The app for ``mode`` and the objects it needs (RBAC or the basic-auth Secret); ``admin_keepers`` rotate the admin password."""
    if mode == "kubernetes":
        return _kubernetes(name, workspaces, namespace, service_account, opts, mlflow_config_crd)
    if mode == "basic":
        if backend_uri is None:
            # Config refuses basic-auth with an external database (its URI lives only in the user's Secret).
            raise ConfigError(
                "mlops-platform:tracking.auth: 'basic' needs the database URI; allowed: 'kubernetes' with database.mode external"
            )
        return _basic(name, namespace, backend_uri, opts, admin_keepers)
    return ServerAuth("none")


def kubernetes_env(workspaces: bool, namespace: str) -> dict[str, str]:
    """The plugin's settings: SelfSubjectAccessReview with the caller's token; profiles only, or one namespace."""
    env = {
        "MLFLOW_K8S_AUTH_AUTHORIZATION_MODE": "self_subject_access_review",
        "MLFLOW_K8S_AUTH_CACHE_TTL_SECONDS": str(DECISION_CACHE_SECONDS),
    }
    if workspaces:
        return {**env, "MLFLOW_K8S_WORKSPACE_LABEL_SELECTOR": WORKSPACE_SELECTOR}
    return {**env, "MLFLOW_K8S_AUTH_WORKSPACES_ENABLED": "false", "MLFLOW_K8S_AUTH_NAMESPACE": namespace}


def header_env(workspaces: bool, namespace: str, user_header: str, groups_header: str) -> dict[str, str]:
    """The plugin in SubjectAccessReview mode: the user (and groups) a trusted proxy in the same pod names."""
    token_mode = kubernetes_env(workspaces, namespace)
    return {
        **token_mode,
        "MLFLOW_K8S_AUTH_AUTHORIZATION_MODE": "subject_access_review",
        "MLFLOW_K8S_AUTH_REMOTE_USER_HEADER": user_header,
        "MLFLOW_K8S_AUTH_REMOTE_GROUPS_HEADER": groups_header,
    }


def header_mode(workspaces: bool, namespace: str, user_header: str, groups_header: str) -> ServerAuth:
    """Kubeflow's app for the browser server: SubjectAccessReviews, with the server's own projected token."""
    token, mount = api_token(TOKEN_SECONDS)
    return ServerAuth(
        "kubernetes",
        args=kubernetes_args(workspaces),
        env=plain_env(header_env(workspaces, namespace, user_header, groups_header)),
        volumes=[token],
        mounts=[mount],
    )


def kubernetes_args(workspaces: bool) -> list[str]:
    workspace_args = ["--enable-workspaces", "--workspace-store-uri", WORKSPACE_STORE] if workspaces else []
    return [*workspace_args, "--app-name", "kubernetes-auth"]


def workspace_env() -> dict[str, str]:
    """What an MLflow process beside the server needs to see every profile's workspace (``mlflow gc --all-workspaces``).

    A store opened without it refuses to start once any experiment lives outside the default workspace.
    """
    return {
        "MLFLOW_ENABLE_WORKSPACES": "true",
        "MLFLOW_WORKSPACE_STORE_URI": WORKSPACE_STORE,
        "MLFLOW_K8S_WORKSPACE_LABEL_SELECTOR": WORKSPACE_SELECTOR,
    }


def _kubernetes(
    name: str, workspaces: bool, namespace: str, service_account: str, opts: pulumi.ResourceOptions, mlflow_config_crd: bool
) -> ServerAuth:
    if workspaces:
        # Only the workspace provider acts as the server itself; every authorization check uses the caller's token.
        role_name = f"{name}-{SERVER_ROLE_SUFFIX}"
        watch = ["get", "list", "watch"]
        k8s.rbac.v1.ClusterRole(
            f"{name}-workspaces",
            metadata=naming.metadata(role_name, component=COMPONENT, instance=name),
            rules=[
                k8s.rbac.v1.PolicyRuleArgs(api_groups=[""], resources=["namespaces"], verbs=watch),
                # Watched once and cached; unreadable, the provider asks for them again on every request.
                k8s.rbac.v1.PolicyRuleArgs(api_groups=[MLFLOW_CONFIG_GROUP], resources=[MLFLOW_CONFIG_PLURAL], verbs=watch),
            ],
            opts=opts,
        )
        if mlflow_config_crd:
            mlflow_configs(name, opts)
        rbac.bind_cluster_wide(
            f"{name}-workspaces",
            naming.metadata(role_name, component=COMPONENT, instance=name),
            role_name,
            service_account,
            namespace,
            opts,
        )
    # The kubelet projects a short-lived token of the server's own account; nothing is stored in a Secret.
    token, mount = api_token(TOKEN_SECONDS)
    return ServerAuth(
        "kubernetes",
        args=kubernetes_args(workspaces),
        env=plain_env(kubernetes_env(workspaces, namespace)),
        volumes=[token],
        mounts=[mount],
    )


# mlflow-kubernetes-plugins 2.1.0 workspace_plugin/caches.py: MlflowConfigCache lists these cluster-wide and watches them;
# while the kind is missing or unreadable it lists again on every artifact-root lookup (two API calls per request, measured).
MLFLOW_CONFIG_GROUP = "mlflow.kubeflow.org"
MLFLOW_CONFIG_PLURAL = "mlflowconfigs"


def mlflow_configs(name: str, opts: pulumi.ResourceOptions) -> k8s.apiextensions.v1.CustomResourceDefinition:
    """The MLflowConfig kind the workspace provider watches, so that it finds none and caches that.

    The shape the plugin reads (``spec.artifactRootSecret``, ``spec.artifactRootPath``). A namespace's MLflowConfig would
    move its artifacts to a bucket of its own, which the server's proxied store does not support here: the server may
    not read the Secret it names, so such a workspace fails loudly.
    """
    schema = k8s.apiextensions.v1.JSONSchemaPropsArgs(
        type="object",
        properties={
            "spec": k8s.apiextensions.v1.JSONSchemaPropsArgs(
                type="object",
                properties={
                    "artifactRootSecret": k8s.apiextensions.v1.JSONSchemaPropsArgs(type="string"),
                    "artifactRootPath": k8s.apiextensions.v1.JSONSchemaPropsArgs(type="string"),
                },
            ),
        },
    )
    return k8s.apiextensions.v1.CustomResourceDefinition(
        f"{name}-mlflowconfigs",
        metadata=naming.metadata(f"{MLFLOW_CONFIG_PLURAL}.{MLFLOW_CONFIG_GROUP}", component=COMPONENT, instance=name),
        spec=k8s.apiextensions.v1.CustomResourceDefinitionSpecArgs(
            group=MLFLOW_CONFIG_GROUP,
            scope="Namespaced",
            names=k8s.apiextensions.v1.CustomResourceDefinitionNamesArgs(
                kind="MLflowConfig", plural=MLFLOW_CONFIG_PLURAL, singular="mlflowconfig", list_kind="MLflowConfigList"
            ),
            versions=[
                k8s.apiextensions.v1.CustomResourceDefinitionVersionArgs(
                    name="v1", served=True, storage=True, schema=k8s.apiextensions.v1.CustomResourceValidationArgs(open_apiv3_schema=schema)
                )
            ],
        ),
        opts=opts,
    )


def basic_auth_ini(database_uri: pulumi.Input[str]) -> pulumi.Output[str]:
    """MLflow's basic-auth config: nobody but the admin may do anything until granted."""
    return pulumi.Output.concat(
        "[mlflow]\n",
        "default_permission = NO_PERMISSIONS\n",
        "database_uri = ",
        database_uri,
        "\n",
        f"admin_username = {ADMIN_USER}\n",
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n",
    )


def _basic(
    name: str, namespace: str, backend_uri: pulumi.Output[str], opts: pulumi.ResourceOptions, admin_keepers: dict[str, str] | None
) -> ServerAuth:
    secret_name = f"{name}-auth"
    password = random.RandomPassword(f"{name}-admin-password", length=32, special=False, keepers=admin_keepers, opts=opts)
    flask_key = random.RandomPassword(f"{name}-flask-secret-key", length=48, special=False, opts=opts)
    secret = k8s.core.v1.Secret(
        f"{name}-auth",
        metadata=naming.metadata(secret_name, namespace, component=COMPONENT, instance=name),
        type="Opaque",
        string_data={
            AUTH_CONFIG_FILE: basic_auth_ini(backend_uri),
            "admin-password": password.result,
            "flask-secret-key": flask_key.result,
        },
        opts=opts,
    )
    return ServerAuth(
        "basic",
        args=["--app-name", "basic-auth"],
        env=[
            *plain_env({"MLFLOW_AUTH_CONFIG_PATH": f"{AUTH_CONFIG_DIR}/{AUTH_CONFIG_FILE}", "MLFLOW_AUTH_ADMIN_USERNAME": ADMIN_USER}),
            secret_env("MLFLOW_AUTH_ADMIN_PASSWORD", secret.metadata.name, "admin-password"),
            secret_env("MLFLOW_FLASK_SERVER_SECRET_KEY", secret.metadata.name, "flask-secret-key"),
        ],
        volumes=[
            k8s.core.v1.VolumeArgs(
                name="auth-config",
                secret=k8s.core.v1.SecretVolumeSourceArgs(
                    secret_name=secret.metadata.name,
                    items=[k8s.core.v1.KeyToPathArgs(key=AUTH_CONFIG_FILE, path=AUTH_CONFIG_FILE)],
                    default_mode=0o440,
                ),
            )
        ],
        mounts=[k8s.core.v1.VolumeMountArgs(name="auth-config", mount_path=AUTH_CONFIG_DIR, read_only=True)],
        admin_password=password.result,
        secret=secret,
    )
