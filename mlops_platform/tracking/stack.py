"""TrackingStack: the MLflow tracking server and model registry with its storage.

dev (microk8s): PostgreSQL and MinIO run in the cluster.
prod (eks):     artifacts in an S3 bucket reached through IRSA (no static keys);
                metadata in in-cluster PostgreSQL on EBS, or RDS when configured.

Artifacts are proxied (``--serve-artifacts``): only the server holds storage
credentials; clients need just the tracking URI, and registered model sources
are ``mlflow-artifacts:/`` URIs that map onto ``artifact_root``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from mlops_platform import rotation
from mlops_platform.config import PlatformConfig
from mlops_platform.contracts import ArtifactStore, BrowserServer, TrackingEndpoint
from mlops_platform.database import backend, postgres
from mlops_platform.database.backend import Backend
from mlops_platform.database.settings import DatabaseConfig
from mlops_platform.k8s import mesh, naming, options
from mlops_platform.k8s.containers import (
    HttpProbe,
    container,
    plain_env,
    pod_spec,
    scanner_exceptions,
    scratch_volumes,
    secret_env,
)
from mlops_platform.rotation import RotationConfig
from mlops_platform.storage import store
from mlops_platform.storage.settings import ArtifactsConfig, AwsConfig
from mlops_platform.storage.store import ServerAccess
from mlops_platform.tracking import admin_rotation, auth, browser, capacity, ingress, maintenance, metrics
from mlops_platform.tracking.settings import AuthApp, MaintenanceConfig, Scratch, TrackingConfig

COMPONENT = "mlflow"
PORT = 5000


@dataclass(frozen=True)
class TrackingStackArgs:
    """What the tracking server needs of the platform's config, and nothing more.

    Decisions that depend on the target or on other components (image, authorization app, scratch space,
    Kubeflow's mesh, metrics) arrive made, so the stack never reads, or depends on, the rest of the config.
    """

    namespace: str
    server: TrackingConfig
    # The MLflow image: with Kubeflow's plugins whenever an authorization app runs.
    image: str
    auth: AuthApp
    # One MLflow workspace per Kubeflow profile (the kubernetes app's workspace provider).
    workspaces: bool
    # Hosts users reach the server through (its own route, Kubeflow's gateway): accepted as Host headers.
    external_hosts: tuple[str, ...]
    # Kubeflow's Istio mesh is there: the server joins it so the AuthorizationPolicy is enforced.
    in_mesh: bool
    # Prometheus scrapes the server: it exports metrics and admits the scrapers' Host headers.
    metrics: bool
    scratch: Scratch
    database: DatabaseConfig
    artifacts: ArtifactsConfig
    # IRSA settings on EKS (S3 without static keys), None for in-cluster MinIO.
    aws: AwsConfig | None
    # For the claims of PostgreSQL and MinIO.
    storage_class: str
    # Databases, volumes and buckets survive destroy and replacement.
    protect_data: bool
    maintenance: MaintenanceConfig
    # Where database dumps go in the bucket, beside the server's artifact prefix.
    backup_prefix: str
    # A second server for people in browsers behind Kubeflow's gateway (tracking/browser.py), None without one.
    browser: browser.BrowserAccess | None = None
    # Declare the MLflowConfig CRD the workspace provider watches (with workspaces; not where another operator owns it).
    mlflow_config_crd: bool = False
    # A generation per generated credential (rotation.*); 0 is the credential as first generated.
    rotation: RotationConfig = RotationConfig()

    @classmethod
    def of(cls, config: PlatformConfig) -> TrackingStackArgs:
        b = config.kubeflow.browser_server
        return cls(
            namespace=config.namespace,
            server=config.tracking,
            image=config.tracking_image,
            auth=config.tracking_auth,
            workspaces=config.workspaces_enabled,
            external_hosts=_external_hosts(config),
            in_mesh=config.kubeflow.enabled,
            metrics=config.monitoring.enabled,
            scratch=config.tracking_scratch,
            database=config.database,
            artifacts=config.artifacts,
            aws=config.required_aws if config.is_eks else None,
            storage_class=config.default_storage_class,
            protect_data=config.protect_data,
            maintenance=config.maintenance,
            backup_prefix=config.backup_prefix,
            mlflow_config_crd=config.workspaces_enabled and config.kubeflow.mlflow_config_crd,
            browser=browser.BrowserAccess(
                issuer=b.issuer,
                client_id=b.client_id,
                proxy_image=b.proxy_image,
                replicas=b.replicas,
                gateway_namespace=config.kubeflow.ingress_principal.split("/ns/", 1)[1].split("/", 1)[0],
                gateway_labels=dict(b.gateway_labels),
            )
            if b
            else None,
            rotation=config.rotation,
        )


def _external_hosts(config: PlatformConfig) -> tuple[str, ...]:
    """Hosts users reach MLflow through: its own, and Kubeflow's gateway when integrated."""
    hosts = [config.tracking.external_host, config.kubeflow.external_host if config.kubeflow.enabled else None]
    return tuple(dict.fromkeys(h for h in hosts if h))


class TrackingStack(pulumi.ComponentResource):
    """Everything MLflow needs to run, declared once for both targets."""

    endpoint: TrackingEndpoint
    external_url: str | None
    database_password: pulumi.Output[str] | None
    # basic-auth's admin password (pulumi-random), None with any other authorization app.
    admin_password: pulumi.Output[str] | None

    def __init__(self, name: str, args: TrackingStackArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlops:index:TrackingStack", name, None, opts)
        ns = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata=naming.metadata(args.namespace, component=COMPONENT, instance=name),
            # Deleting the namespace would delete every claim in it.
            opts=options.stateful(pulumi.ResourceOptions(parent=self), args.protect_data),
        )
        child = pulumi.ResourceOptions(parent=self, depends_on=[ns])
        database = backend.declare(
            name,
            config=args.database,
            namespace=args.namespace,
            namespace_resource=ns,
            storage_class=args.storage_class,
            secret_metadata=_metadata(f"{name}-db", name, args),
            rotation_image=args.image,
            generation=args.rotation.database,
            protect=args.protect_data,
            opts=pulumi.ResourceOptions(parent=self),
        )
        artifact_store, storage = store.declare(
            name,
            artifacts=args.artifacts,
            aws=args.aws,
            namespace=args.namespace,
            namespace_resource=ns,
            storage_class=args.storage_class,
            server_account=name,
            secret_metadata=_metadata(f"{name}-s3", name, args),
            protect=args.protect_data,
            opts=pulumi.ResourceOptions(parent=self),
            root_generation=args.rotation.minio_root,
            users_generation=args.rotation.minio_users,
        )
        sa = k8s.core.v1.ServiceAccount(
            f"{name}-sa",
            metadata=_metadata(name, name, args, annotations=storage.service_account_annotations or None),
            automount_service_account_token=False,
            opts=child,
        )
        server_auth = auth.declare(
            name,
            args.auth,
            workspaces=args.workspaces,
            mlflow_config_crd=args.mlflow_config_crd,
            namespace=args.namespace,
            backend_uri=database.uri,
            service_account=name,
            opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=database.rotated)),
            admin_keepers=rotation.keepers(args.rotation.tracking_admin),
        )
        # The schema migration (after a dump) runs once per image in a Job the server waits for; backups and gc on schedules.
        jobs = maintenance.Maintenance(
            _maintenance_args(name, args, database, artifact_store, storage, sa.metadata.name),
            artifact_store,
            pulumi.ResourceOptions(parent=self, depends_on=[ns, *storage.ready, *database.rotated]),
        )
        if args.rotation.tracking_admin and server_auth.secret is not None:
            admin_rotation.admin_password_job(
                name,
                namespace=args.namespace,
                image=args.image,
                generation=args.rotation.tracking_admin,
                backend_uri=database.uri_secret,
                auth_secret=server_auth.secret,
                base_env=_base_env(args),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[jobs.migration, *database.rotated]),
            )
        ready = [ns, *storage.ready, jobs.migration, *database.rotated]
        mlflow_env = _mlflow_env(args, database, storage)
        # The credentials the server reads at start: a new generation of one rolls the pods.
        generations = rotation.pod_annotations(
            {"database": args.rotation.database, "minioUsers": args.rotation.minio_users if artifact_store.in_cluster else 0}
        )
        deployment = self._server(name, args, mlflow_env, server_auth, sa, generations, ready, child)
        browser_server = None
        if args.browser is not None:
            browser_server = self._browser(name, args, args.browser, mlflow_env, artifact_store, sa, generations, child, ready)
        if database.logins is not None:
            # Once every pod of both servers logs in with the new login, the old one loses its password.
            database.logins.retire_after([deployment, *([browser_server.deployment] if browser_server else [])])
        self._network_policies(name, args, artifact_store, child)
        if args.server.external_host:
            ingress.declare(
                name,
                namespace=args.namespace,
                host=args.server.external_host,
                path_prefix=args.server.path_prefix,
                service=name,
                port=PORT,
                auth=server_auth.mode,
                ingress=args.server.ingress,
                opts=child,
            )

        self.external_url = f"https://{args.server.external_host}{args.server.path_prefix}/" if args.server.external_host else None
        self.database_password = database.password
        self.admin_password = server_auth.admin_password
        self.endpoint = TrackingEndpoint(
            uri=tracking_uri(name, args),
            service_name=name,
            namespace=args.namespace,
            # Objects other components put in this namespace wait for it too.
            namespace_resource=ns,
            port=PORT,
            path_prefix=args.server.path_prefix,
            server_labels=naming.selector_labels(COMPONENT, name),
            server=deployment,
            client_env=client_env(name, args),
            request_timeout_seconds=args.server.request_timeout_seconds,
            artifact_store=artifact_store,
            artifact_prefix=args.artifacts.prefix,
            artifact_root=args.artifacts.root,
            browser=browser_server,
        )
        self.register_outputs(
            {
                "namespace": args.namespace,
                "trackingUri": self.endpoint.uri,
                "externalUrl": self.external_url,
                "bucket": args.artifacts.bucket,
                "artifactRoot": args.artifacts.root,
                "databasePassword": self.database_password,
            }
        )

    def _server(
        self,
        name: str,
        args: TrackingStackArgs,
        mlflow_env: list[k8s.core.v1.EnvVarArgs],
        server_auth: auth.ServerAuth,
        sa: k8s.core.v1.ServiceAccount,
        generations: dict[str, str],
        ready: list[pulumi.Resource],
        child: pulumi.ResourceOptions,
    ) -> k8s.apps.v1.Deployment:
        """The tracking server's Deployment, its Service and what scales it out."""
        scratch = [capacity.scratch_dir(args.scratch), *([metrics.SCRATCH] if args.metrics else [])]
        server = container(
            "mlflow",
            args.image,
            args.server.resources,
            command=["mlflow", "server"],
            args=server_args(
                name, args, ["--host", "0.0.0.0", "--port", str(PORT)], expose_metrics=args.metrics, auth_args=server_auth.args
            ),
            env=mlflow_env + server_auth.env,
            ports={"http": PORT},
            probe=HttpProbe(f"{args.server.path_prefix}/health", "http"),
            scratch=scratch,
            mounts=server_auth.mounts,
        )
        # In Kubeflow's mesh the AuthorizationPolicy is enforced by a sidecar; PostgreSQL is outside the mesh, reached around it.
        mesh_labels, mesh_annotations = mesh.mesh_member([postgres.PORT]) if args.in_mesh else ({}, None)
        pod_annotations = {**(mesh_annotations or {}), **generations} or None
        labels = naming.selector_labels(COMPONENT, name)
        deployment = k8s.apps.v1.Deployment(
            name,
            metadata=_metadata(name, name, args, annotations=scanner_exceptions(server)),
            spec=k8s.apps.v1.DeploymentSpecArgs(
                replicas=capacity.replicas(args.server),
                selector=k8s.meta.v1.LabelSelectorArgs(match_labels=labels),
                template=k8s.core.v1.PodTemplateSpecArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(labels=naming.labels(COMPONENT, name, **mesh_labels), annotations=pod_annotations),
                    spec=pod_spec([server], volumes=scratch_volumes([scratch]) + server_auth.volumes, service_account=sa.metadata.name),
                ),
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=ready),
        )
        k8s.core.v1.Service(
            f"{name}-svc",
            metadata=_metadata(name, name, args),
            spec=k8s.core.v1.ServiceSpecArgs(
                type="ClusterIP",
                selector=labels,
                ports=[k8s.core.v1.ServicePortArgs(name="http", port=PORT, target_port="http", app_protocol="http")],
            ),
            opts=child,
        )
        capacity.scale_out(name, args.namespace, args.server, deployment, labels, COMPONENT, child)
        return deployment

    def _browser(
        self,
        name: str,
        args: TrackingStackArgs,
        access: browser.BrowserAccess,
        mlflow_env: list[k8s.core.v1.EnvVarArgs],
        artifact_store: ArtifactStore,
        sa: k8s.core.v1.ServiceAccount,
        generations: dict[str, str],
        child: pulumi.ResourceOptions,
        ready: list[pulumi.Resource],
    ) -> BrowserServer:
        """The second server, for browsers behind Kubeflow's gateway (tracking/browser.py): same database, store and login."""
        header_auth = auth.header_mode(args.workspaces, args.namespace, browser.USER_HEADER, browser.GROUPS_HEADER)
        scratch = [capacity.scratch_dir(args.scratch)]
        browser_mlflow = container(
            "mlflow",
            args.image,
            args.server.resources,
            command=["mlflow", "server"],
            args=server_args(name, args, browser.mlflow_listen_args(), expose_metrics=False, auth_args=header_auth.args),
            env=mlflow_env + header_auth.env,
            probe=browser.server_probe(args.server.path_prefix),
            scratch=scratch,
            mounts=[*header_auth.mounts, browser.socket_mount()],
        )
        return browser.declare(
            name,
            namespace=args.namespace,
            access=access,
            prefix=args.server.path_prefix,
            timeout_seconds=args.server.request_timeout_seconds,
            mlflow=browser_mlflow,
            mlflow_volumes=scratch_volumes([scratch]) + header_auth.volumes,
            service_account=sa.metadata.name,
            client_labels={postgres.CLIENT_LABEL: "true", **_store_client_labels(artifact_store)},
            in_mesh=args.in_mesh,
            bypass_ports=[postgres.PORT],
            # The same database login and storage keys as the tracking server: a new generation rolls it too.
            pod_annotations=generations,
            opts=child,
            ready=ready,
        )

    def _network_policies(self, name: str, args: TrackingStackArgs, artifact_store: ArtifactStore, opts: pulumi.ResourceOptions) -> None:
        """Default-deny ingress in the namespace; then only the flows the platform needs."""

        def policy(suffix: str, pod_selector: dict[str, str], ingress: list[k8s.networking.v1.NetworkPolicyIngressRuleArgs]) -> None:
            k8s.networking.v1.NetworkPolicy(
                f"{name}-netpol-{suffix}",
                metadata=_metadata(f"{name}-{suffix}", name, args),
                spec=k8s.networking.v1.NetworkPolicySpecArgs(
                    pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=pod_selector or None),
                    policy_types=["Ingress"],
                    ingress=ingress,
                ),
                opts=opts,
            )

        def port(number: int) -> list[k8s.networking.v1.NetworkPolicyPortArgs]:
            return [k8s.networking.v1.NetworkPolicyPortArgs(port=number, protocol="TCP")]

        server_labels = naming.selector_labels(COMPONENT, name)
        from_mlflow = k8s.networking.v1.NetworkPolicyPeerArgs(pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=server_labels))
        any_pod = k8s.networking.v1.NetworkPolicyPeerArgs(namespace_selector=k8s.meta.v1.LabelSelectorArgs())
        # The migration, backup and gc jobs of this namespace.
        database_clients = k8s.networking.v1.NetworkPolicyPeerArgs(
            pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels={postgres.CLIENT_LABEL: "true"})
        )

        policy("default-deny", {}, [])
        # Who may call the API is Istio's AuthorizationPolicy's job (KubeflowIntegration); here: port 5000 only.
        policy("server", server_labels, [k8s.networking.v1.NetworkPolicyIngressRuleArgs(from_=[any_pod], ports=port(PORT))])
        if args.database.mode == "inCluster":
            policy(
                "postgresql",
                naming.selector_labels(postgres.COMPONENT, f"{name}-postgresql"),
                [k8s.networking.v1.NetworkPolicyIngressRuleArgs(from_=[from_mlflow, database_clients], ports=port(postgres.PORT))],
            )
        server = artifact_store.in_cluster
        if server is not None:
            labelled_clients = k8s.networking.v1.NetworkPolicyPeerArgs(
                namespace_selector=k8s.meta.v1.LabelSelectorArgs(),
                pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=server.client_labels),
            )
            policy(
                server.name,
                server.pod_labels,
                [k8s.networking.v1.NetworkPolicyIngressRuleArgs(from_=[from_mlflow, labelled_clients], ports=port(server.port))],
            )


def _metadata(name: str, instance: str, args: TrackingStackArgs, **kw: Any) -> k8s.meta.v1.ObjectMetaArgs:
    return naming.metadata(name, args.namespace, component=COMPONENT, instance=instance, **kw)


def _telemetry(args: TrackingStackArgs) -> dict[str, str]:
    return {} if args.server.telemetry else {"MLFLOW_DISABLE_TELEMETRY": "true"}


def _base_env(args: TrackingStackArgs) -> dict[str, str]:
    """What every MLflow process of this stack (servers and jobs) runs with."""
    return {"HOME": "/tmp", **_telemetry(args)}


def _store_client_labels(artifact_store: ArtifactStore) -> dict[str, str]:
    """The labels an in-cluster store's NetworkPolicy admits (none for S3)."""
    server = artifact_store.in_cluster
    return server.client_labels if server else {}


def tracking_uri(name: str, args: TrackingStackArgs) -> str:
    return f"http://{naming.service_host(name, args.namespace)}:{PORT}{args.server.path_prefix}"


def client_env(name: str, args: TrackingStackArgs) -> dict[str, str]:
    """What an MLflow client needs besides storage access: the tracking URI, telemetry opt-out, upload and timeout settings."""
    return {"MLFLOW_TRACKING_URI": tracking_uri(name, args), **_telemetry(args), **capacity.client_env(args.server, args.scratch)}


def _mlflow_env(args: TrackingStackArgs, database: Backend, storage: ServerAccess) -> list[k8s.core.v1.EnvVarArgs]:
    """Both servers' env: the backend store URI (from its Secret), storage access, and the server's own settings."""
    return [
        secret_env("MLFLOW_BACKEND_STORE_URI", *database.uri_secret),
        *plain_env(_base_env(args)),
        *storage.env,
        # The job runner forks seven worker processes (~2 GB); MLflow's server-side jobs are not used here.
        *plain_env({"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **capacity.server_env(args.server)}),
    ]


def _maintenance_args(
    name: str,
    args: TrackingStackArgs,
    database: Backend,
    artifact_store: ArtifactStore,
    storage: ServerAccess,
    server_account: pulumi.Input[str],
) -> maintenance.MaintenanceArgs:
    return maintenance.MaintenanceArgs(
        name=name,
        namespace=args.namespace,
        mlflow_image=args.image,
        postgres_image=args.database.image,
        resources=args.server.resources,
        config=args.maintenance,
        backend_uri=database.uri_secret,
        database=database.dump,
        # On eks a dump of up to the database's size goes to a volume of its own, not to the node's disk.
        dump_storage_class=(args.database.storage_class or args.storage_class) if args.aws is not None else None,
        scheduled_backups=args.database.mode == "inCluster",
        bucket=args.artifacts.bucket,
        backup_prefix=args.backup_prefix,
        artifact_root=args.artifacts.root,
        server_env=storage.env,
        server_account=server_account,
        server_client_labels=_store_client_labels(artifact_store),
        base_env=_base_env(args),
        workspace_env=auth.workspace_env() if args.workspaces else {},
        basic_auth=args.auth == "basic",
    )


def allowed_hosts(name: str, args: TrackingStackArgs, metrics_scrapers: bool = False) -> list[str]:
    """Host headers MLflow accepts: every in-cluster spelling of the Service, the external hosts, port-forwards."""
    ns = args.namespace
    names = [
        name,
        f"{name}.{ns}",
        f"{name}.{ns}.svc",
        f"{name}.{ns}.svc.cluster.local",
        *args.external_hosts,
        "localhost",
        "127.0.0.1",
    ]
    scrapers = metrics.pod_hosts(PORT) if metrics_scrapers else []
    return [h for n in names for h in (n, f"{n}:*")] + scrapers


def server_args(name: str, args: TrackingStackArgs, listen: list[str], *, expose_metrics: bool, auth_args: list[str]) -> list[str]:
    """``mlflow server``'s flags: where it listens, then what every server of this stack shares."""
    return [
        *listen,
        "--workers",
        str(args.server.workers),
        "--static-prefix",
        args.server.path_prefix,
        "--allowed-hosts",
        ",".join(allowed_hosts(name, args, expose_metrics)),
        "--serve-artifacts",
        "--artifacts-destination",
        args.artifacts.root,
        *(metrics.server_args() if expose_metrics else []),
        *auth_args,
    ]
