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

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from mlops_platform import rotation
from mlops_platform.config import (
    ArtifactsConfig,
    AuthApp,
    AwsConfig,
    DatabaseConfig,
    MaintenanceConfig,
    PlatformConfig,
    RotationConfig,
    Scratch,
    TrackingConfig,
)
from mlops_platform.contracts import TrackingEndpoint
from mlops_platform.database import external, postgres
from mlops_platform.database.rotation import LoginRotation
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
from mlops_platform.storage import store
from mlops_platform.tracking import admin_rotation, auth, browser, capacity, ingress, maintenance, metrics

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
            auth=config.auth,
            workspaces=config.workspaces,
            external_hosts=tuple(config.external_hosts),
            in_mesh=config.kubeflow.enabled,
            metrics=config.monitoring.enabled,
            scratch=config.scratch,
            database=config.database,
            artifacts=config.artifacts,
            aws=config.eks if config.is_eks else None,
            storage_class=config.storage_class,
            protect_data=config.protect_data,
            maintenance=config.maintenance,
            backup_prefix=config.backup_prefix,
            mlflow_config_crd=config.workspaces and config.kubeflow.mlflow_config_crd,
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


class TrackingStack(pulumi.ComponentResource):
    """Everything MLflow needs to run, declared once for both targets."""

    endpoint: TrackingEndpoint
    external_url: str | None
    database_password: pulumi.Output[str] | None
    # basic-auth's admin password (pulumi-random), None with any other authorization app.
    admin_password: pulumi.Output[str] | None

    def __init__(self, name: str, args: TrackingStackArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlops:index:TrackingStack", name, None, opts)
        self._args = args
        self._namespace = args.namespace
        self._service_name = name
        self._port = PORT
        self._path_prefix = args.server.path_prefix
        host = naming.service_host(name, args.namespace)
        self._tracking_uri = f"http://{host}:{PORT}{self._path_prefix}"
        self.external_url = f"https://{args.server.external_host}{self._path_prefix}/" if args.server.external_host else None
        self._bucket = args.artifacts.bucket
        self._artifact_prefix = args.artifacts.prefix
        self._artifact_root = args.artifacts.root
        self._server_labels = naming.selector_labels(COMPONENT, name)
        telemetry = {} if args.server.telemetry else {"MLFLOW_DISABLE_TELEMETRY": "true"}
        self._client_env = {"MLFLOW_TRACKING_URI": self._tracking_uri, **telemetry, **capacity.client_env(args.server, args.scratch)}
        self._service_account = name
        protect = args.protect_data

        ns = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata=naming.metadata(args.namespace, component=COMPONENT, instance=name),
            # Deleting the namespace would delete every claim in it.
            opts=options.stateful(pulumi.ResourceOptions(parent=self), protect),
        )
        # Objects other components put in this namespace wait for it too.
        self._namespace_resource = ns
        child = pulumi.ResourceOptions(parent=self, depends_on=[ns])

        self._logins: LoginRotation | None = None
        if args.database.mode == "external":
            db_secret_name, db_uri_key = external.backend_secret(
                f"{name}-db",
                config=args.database.outside,
                metadata=naming.metadata(f"{name}-db", args.namespace, component=COMPONENT, instance=name),
                opts=child,
            )
            db_password: pulumi.Output[str] | None = None
            # The owner's database: no dump or backup of ours (it may not even be PostgreSQL).
            dumped: maintenance.Database | None = None
            self._backend_uri: pulumi.Output[str] | None = None
        else:
            db_secret_name, db_password, dump_url, database_server = self._managed_database(name, args, child, protect)
            db_uri_key = "uri"
            dump_size = f"{args.database.managed.allocated_storage_gb}Gi" if args.database.mode == "rds" else args.database.storage_size
            dumped = maintenance.Database(
                dump_url,
                db_secret_name,
                dump_size,
                # On eks a dump of up to the database's size goes to a volume of its own, not to the node's disk.
                dump_storage_class=(args.database.storage_class or args.storage_class) if args.aws is not None else None,
                server=database_server,
                user_key="username" if self._logins else None,
            )
        # Nothing reads a rotated login before its rotation Job gave it its password.
        rotated: list[pulumi.Resource] = [self._logins.login.rotated] if self._logins else []

        self._artifact_store, storage = store.declare(
            name,
            artifacts=args.artifacts,
            aws=args.aws,
            namespace=args.namespace,
            namespace_resource=ns,
            storage_class=args.storage_class,
            server_account=self._service_account,
            secret_metadata=naming.metadata(f"{name}-s3", args.namespace, component=COMPONENT, instance=name),
            protect=protect,
            opts=pulumi.ResourceOptions(parent=self),
            root_generation=args.rotation.minio_root,
            users_generation=args.rotation.minio_users,
        )

        sa = k8s.core.v1.ServiceAccount(
            f"{name}-sa",
            metadata=naming.metadata(
                self._service_account,
                args.namespace,
                component=COMPONENT,
                instance=name,
                annotations=storage.service_account_annotations or None,
            ),
            automount_service_account_token=False,
            opts=child,
        )

        server_auth = auth.declare(
            name,
            args.auth,
            workspaces=args.workspaces,
            mlflow_config_crd=args.mlflow_config_crd,
            namespace=args.namespace,
            backend_uri=self._backend_uri,
            service_account=self._service_account,
            opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=rotated)),
            admin_keepers=rotation.keepers(args.rotation.tracking_admin),
        )
        scratch = [capacity.scratch_dir(args.scratch)]
        server_scratch = [*scratch, metrics.SCRATCH] if args.metrics else scratch
        common_env = [
            secret_env("MLFLOW_BACKEND_STORE_URI", db_secret_name, db_uri_key),
            *plain_env({"HOME": "/tmp", **telemetry}),
        ]
        # The schema migration (after a dump) runs once per image in a Job the server waits for; backups and gc on schedules.
        jobs = maintenance.Maintenance(
            maintenance.MaintenanceArgs(
                name=name,
                namespace=args.namespace,
                mlflow_image=args.image,
                postgres_image=args.database.image,
                resources=args.server.resources,
                config=args.maintenance,
                backend_uri=(db_secret_name, db_uri_key),
                database=dumped,
                scheduled_backups=args.database.mode == "inCluster",
                bucket=args.artifacts.bucket,
                backup_prefix=args.backup_prefix,
                artifact_root=args.artifacts.root,
                server_env=storage.env,
                server_account=sa.metadata.name,
                server_client_labels=in_cluster.client_labels if (in_cluster := self._artifact_store.in_cluster) else {},
                base_env={"HOME": "/tmp", **telemetry},
                workspace_env=auth.workspace_env() if args.workspaces else {},
                basic_auth=args.auth == "basic",
            ),
            self._artifact_store,
            pulumi.ResourceOptions(parent=self, depends_on=[ns, *storage.ready, *rotated]),
        )
        if args.rotation.tracking_admin and server_auth.secret is not None:
            admin_rotation.admin_password_job(
                name,
                namespace=args.namespace,
                image=args.image,
                generation=args.rotation.tracking_admin,
                backend_uri=(db_secret_name, db_uri_key),
                auth_secret=server_auth.secret,
                base_env={"HOME": "/tmp", **telemetry},
                opts=pulumi.ResourceOptions(parent=self, depends_on=[jobs.migration, *rotated]),
            )
        mlflow_env = (
            common_env
            + storage.env
            # The job runner forks seven worker processes (~2 GB); MLflow's server-side jobs are not used here.
            + plain_env({"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **capacity.server_env(args.server)})
        )
        server = container(
            "mlflow",
            args.image,
            args.server.resources,
            command=["mlflow", "server"],
            args=self.server_args(["--host", "0.0.0.0", "--port", str(PORT)], expose_metrics=args.metrics, auth_args=server_auth.args),
            env=mlflow_env + server_auth.env,
            ports={"http": PORT},
            probe=HttpProbe(f"{self._path_prefix}/health", "http"),
            scratch=server_scratch,
            mounts=server_auth.mounts,
        )
        # In Kubeflow's mesh the AuthorizationPolicy is enforced by a sidecar; PostgreSQL is outside the mesh, reached around it.
        mesh_labels, mesh_annotations = mesh.mesh_member([postgres.PORT]) if args.in_mesh else ({}, None)
        # The credentials the server reads at start: a new generation of one rolls the pods.
        generations = rotation.pod_annotations(
            {"database": args.rotation.database, "minioUsers": args.rotation.minio_users if self._artifact_store.in_cluster else 0}
        )
        pod_annotations = {**(mesh_annotations or {}), **generations} or None
        deployment = k8s.apps.v1.Deployment(
            name,
            metadata=naming.metadata(name, args.namespace, component=COMPONENT, instance=name, annotations=scanner_exceptions(server)),
            spec=k8s.apps.v1.DeploymentSpecArgs(
                replicas=capacity.replicas(args.server),
                selector=k8s.meta.v1.LabelSelectorArgs(match_labels=self._server_labels),
                template=k8s.core.v1.PodTemplateSpecArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(labels=naming.labels(COMPONENT, name, **mesh_labels), annotations=pod_annotations),
                    spec=pod_spec(
                        [server],
                        volumes=scratch_volumes([server_scratch]) + server_auth.volumes,
                        service_account=sa.metadata.name,
                    ),
                ),
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[ns, *storage.ready, jobs.migration, *rotated]),
        )
        k8s.core.v1.Service(
            f"{name}-svc",
            metadata=naming.metadata(name, args.namespace, component=COMPONENT, instance=name),
            spec=k8s.core.v1.ServiceSpecArgs(
                type="ClusterIP",
                selector=self._server_labels,
                ports=[k8s.core.v1.ServicePortArgs(name="http", port=PORT, target_port="http", app_protocol="http")],
            ),
            opts=child,
        )
        capacity.scale_out(name, args.namespace, args.server, deployment, self._server_labels, COMPONENT, child)
        browser_server = None
        if args.browser is not None:
            header_auth = auth.header_mode(args.workspaces, args.namespace, browser.USER_HEADER, browser.GROUPS_HEADER)
            browser_mlflow = container(
                "mlflow",
                args.image,
                args.server.resources,
                command=["mlflow", "server"],
                args=self.server_args(browser.mlflow_listen_args(), expose_metrics=False, auth_args=header_auth.args),
                env=mlflow_env + header_auth.env,
                probe=browser.server_probe(self._path_prefix),
                scratch=scratch,
                mounts=[*header_auth.mounts, browser.socket_mount()],
            )
            browser_server = browser.declare(
                name,
                namespace=args.namespace,
                access=args.browser,
                prefix=self._path_prefix,
                timeout_seconds=args.server.request_timeout_seconds,
                mlflow=browser_mlflow,
                mlflow_volumes=scratch_volumes([scratch]) + header_auth.volumes,
                service_account=sa.metadata.name,
                client_labels={
                    postgres.CLIENT_LABEL: "true",
                    **(in_cluster.client_labels if (in_cluster := self._artifact_store.in_cluster) else {}),
                },
                in_mesh=args.in_mesh,
                bypass_ports=[postgres.PORT],
                # The same database login and storage keys as the tracking server: a new generation rolls it too.
                pod_annotations=generations,
                opts=child,
                ready=[ns, *storage.ready, jobs.migration, *rotated],
            )
        if self._logins is not None:
            # Once every pod of both servers logs in with the new login, the old one loses its password.
            self._logins.retire_after([deployment, *([browser_server.deployment] if browser_server else [])])
        self._network_policies(name, args, child)
        if args.server.external_host:
            ingress.declare(
                name,
                namespace=args.namespace,
                host=args.server.external_host,
                path_prefix=self._path_prefix,
                service=name,
                port=PORT,
                auth=server_auth.mode,
                ingress=args.server.ingress,
                opts=child,
            )

        self.database_password = db_password
        self.admin_password = server_auth.admin_password
        self.endpoint = TrackingEndpoint(
            uri=self._tracking_uri,
            service_name=self._service_name,
            namespace=self._namespace,
            namespace_resource=self._namespace_resource,
            port=self._port,
            path_prefix=self._path_prefix,
            server_labels=self._server_labels,
            server=deployment,
            client_env=self._client_env,
            request_timeout_seconds=args.server.request_timeout_seconds,
            artifact_store=self._artifact_store,
            artifact_prefix=self._artifact_prefix,
            artifact_root=self._artifact_root,
            browser=browser_server,
        )
        self.register_outputs(
            {
                "namespace": self._namespace,
                "trackingUri": self._tracking_uri,
                "externalUrl": self.external_url,
                "bucket": self._bucket,
                "artifactRoot": self._artifact_root,
                "databasePassword": self.database_password,
            }
        )

    def _managed_database(
        self, name: str, args: TrackingStackArgs, child: pulumi.ResourceOptions, protect: bool
    ) -> tuple[pulumi.Output[str], pulumi.Output[str], pulumi.Output[str], pulumi.Resource]:
        """PostgreSQL in the cluster or on RDS, with a generated password.

        Returns the name of the Secret (``uri``, ``password``), the password, the database's URL without it (for pg_dump),
        and the resource the engine awaits until the database answers (the StatefulSet, or the RDS instance).
        """
        db_password = random.RandomPassword(f"{name}-db-password", length=32, special=False, opts=pulumi.ResourceOptions(parent=self))
        db_secret_name = f"{name}-db"
        if args.database.mode == "rds":
            from mlops_platform.database import rds

            instance = rds.rds_postgres(
                f"{name}-db",
                config=args.database.managed,
                database=args.database.name,
                user=args.database.user,
                password=db_password.result,
                protect=protect,
                opts=pulumi.ResourceOptions(parent=self),
            )
            db_host: pulumi.Input[str] = instance.address
            server: pulumi.Resource = instance
        else:
            db_host, server = postgres.deploy(
                f"{name}-postgresql",
                namespace=args.namespace,
                config=args.database,
                storage_class=args.storage_class,
                credentials_secret=db_secret_name,
                protect=protect,
                opts=child,
            )
        backend_uri = pulumi.Output.concat(
            "postgresql+psycopg2://",
            args.database.user,
            ":",
            db_password.result,
            "@",
            db_host,
            f":{postgres.PORT}/",
            args.database.name,
        )
        db_secret = k8s.core.v1.Secret(
            f"{name}-db",
            metadata=naming.metadata(db_secret_name, args.namespace, component=COMPONENT, instance=name),
            type="Opaque",
            string_data={
                "username": args.database.user,
                "password": db_password.result,
                "database": args.database.name,
                "uri": backend_uri,
            },
            opts=child,
        )

        self._backend_uri = backend_uri
        if args.database.mode == "inCluster" and args.rotation.database:
            self._logins = LoginRotation(
                name,
                namespace=args.namespace,
                user=args.database.user,
                database=args.database.name,
                host=db_host,
                generation=args.rotation.database,
                owner_secret=db_secret_name,
                owner_password=db_password.result,
                image=args.image,
                opts=child,
            )
            login = self._logins.login
            self._backend_uri = login.uri
            # The login changes with the generation: pg_dump takes its user from the Secret (PGUSER), not the URL.
            return (
                login.secret,
                login.password,
                pulumi.Output.concat("postgresql://", db_host, f":{postgres.PORT}/", args.database.name),
                server,
            )
        return (
            db_secret.metadata.name,
            db_password.result,
            postgres.url_without_password(args.database.user, db_host, args.database.name),
            server,
        )

    def allowed_hosts(self, metrics_scrapers: bool = False) -> list[str]:
        """Host headers MLflow accepts: every in-cluster spelling of the Service, the external hosts, port-forwards."""
        svc, ns = self._service_name, self._namespace
        names = [
            svc,
            f"{svc}.{ns}",
            f"{svc}.{ns}.svc",
            f"{svc}.{ns}.svc.cluster.local",
            *self._args.external_hosts,
            "localhost",
            "127.0.0.1",
        ]
        scrapers = metrics.pod_hosts(PORT) if metrics_scrapers else []
        return [h for n in names for h in (n, f"{n}:*")] + scrapers

    def server_args(self, listen: list[str], *, expose_metrics: bool, auth_args: list[str]) -> list[str]:
        """``mlflow server``'s flags: where it listens, then what every server of this stack shares."""
        return [
            *listen,
            "--workers",
            str(self._args.server.workers),
            "--static-prefix",
            self._path_prefix,
            "--allowed-hosts",
            ",".join(self.allowed_hosts(expose_metrics)),
            "--serve-artifacts",
            "--artifacts-destination",
            self._artifact_root,
            *(metrics.server_args() if expose_metrics else []),
            *auth_args,
        ]

    def _network_policies(self, name: str, args: TrackingStackArgs, opts: pulumi.ResourceOptions) -> None:
        """Default-deny ingress in the namespace; then only the flows the platform needs."""

        def policy(suffix: str, pod_selector: dict[str, str], ingress: list[k8s.networking.v1.NetworkPolicyIngressRuleArgs]) -> None:
            k8s.networking.v1.NetworkPolicy(
                f"{name}-netpol-{suffix}",
                metadata=naming.metadata(f"{name}-{suffix}", args.namespace, component=COMPONENT, instance=name),
                spec=k8s.networking.v1.NetworkPolicySpecArgs(
                    pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=pod_selector or None),
                    policy_types=["Ingress"],
                    ingress=ingress,
                ),
                opts=opts,
            )

        def port(number: int) -> list[k8s.networking.v1.NetworkPolicyPortArgs]:
            return [k8s.networking.v1.NetworkPolicyPortArgs(port=number, protocol="TCP")]

        from_mlflow = k8s.networking.v1.NetworkPolicyPeerArgs(pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=self._server_labels))
        any_pod = k8s.networking.v1.NetworkPolicyPeerArgs(namespace_selector=k8s.meta.v1.LabelSelectorArgs())
        # The migration, backup and gc jobs of this namespace.
        database_clients = k8s.networking.v1.NetworkPolicyPeerArgs(
            pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels={postgres.CLIENT_LABEL: "true"})
        )

        policy("default-deny", {}, [])
        # Who may call the API is Istio's AuthorizationPolicy's job (KubeflowIntegration); here: port 5000 only.
        policy("server", self._server_labels, [k8s.networking.v1.NetworkPolicyIngressRuleArgs(from_=[any_pod], ports=port(PORT))])
        if args.database.mode == "inCluster":
            policy(
                "postgresql",
                naming.selector_labels(postgres.COMPONENT, f"{name}-postgresql"),
                [k8s.networking.v1.NetworkPolicyIngressRuleArgs(from_=[from_mlflow, database_clients], ports=port(postgres.PORT))],
            )
        server = self._artifact_store.in_cluster
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
