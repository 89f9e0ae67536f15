"""The one place that knows whether artifacts live in MinIO (dev) or S3 (eks), and how a consumer gets in.

A consumer (Kubeflow profiles, KServe's storage initializer) asks for access with one
``grant`` call naming, per namespace, the prefix, the access and the identity that carries
it. It gets back what a pod in that namespace needs, whichever store is behind it: env
for an S3 client, pod labels, the Secret (MinIO) or IAM role (IRSA), and what to wait for.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import pulumi
import pulumi_kubernetes as k8s

from mlops_platform import rotation
from mlops_platform.contracts import ArtifactStore, ClientAccess, Consumer, Grant, InClusterServer
from mlops_platform.k8s import naming
from mlops_platform.k8s.containers import plain_env, secret_env
from mlops_platform.storage import minio
from mlops_platform.storage.settings import ArtifactsConfig, AwsConfig


def key_env(secret: k8s.core.v1.Secret) -> list[k8s.core.v1.EnvVarArgs]:
    """An S3 client's key pair, by reference to the Secret that holds it under the AWS variable names."""
    return [secret_env(name, secret.metadata.name, name) for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")]


@dataclass(frozen=True)
class ServerAccess:
    """The tracking server's own write access to its prefix."""

    env: list[k8s.core.v1.EnvVarArgs]
    service_account_annotations: dict[str, pulumi.Input[str]]
    # What must exist before the server starts (the bucket, or MinIO's bootstrap Job).
    ready: list[pulumi.Resource]


@dataclass(frozen=True)
class MinioStore:
    """In-cluster MinIO: a user per namespace with a generated key, created by one Job per consumer."""

    endpoint: minio.MinioEndpoint
    # MinIO and its namespace: every provisioning Job runs against them.
    server: list[pulumi.Resource]
    # rotation.minioUsers: every user's key is generated again when it changes.
    users_generation: int = 0

    @property
    def bucket(self) -> str:
        return self.endpoint.bucket

    @property
    def endpoint_host(self) -> str | None:
        return urlsplit(self.endpoint.url).netloc

    @property
    def region(self) -> str:
        return minio.REGION

    @property
    def in_cluster(self) -> InClusterServer | None:
        return InClusterServer(
            "minio", naming.selector_labels(minio.COMPONENT, self.endpoint.service), minio.API_PORT, {minio.CLIENT_LABEL: "true"}
        )

    def grant(self, consumer: Consumer, grants: Mapping[str, Grant], *, opts: pulumi.ResourceOptions) -> dict[str, ClientAccess]:
        if not grants:
            return {}
        job, secrets = minio.namespace_credentials(
            consumer.name,
            endpoint=self.endpoint,
            grants={ns: minio.Grant(g.identity, g.prefix, g.access) for ns, g in grants.items()},
            job_name=consumer.provisioning,
            secret_metadata=consumer.key_secret,
            instance=consumer.name,
            opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=self.server)),
            keepers=rotation.keepers(self.users_generation),
        )
        url = self.endpoint.url
        return {
            ns: ClientAccess(
                env=(
                    *key_env(secret),
                    *plain_env({"AWS_ENDPOINT_URL": url, "MLFLOW_S3_ENDPOINT_URL": url, "AWS_DEFAULT_REGION": minio.REGION}),
                ),
                region=minio.REGION,
                secret=secret,
                # Lets the client through MinIO's NetworkPolicy.
                pod_labels={minio.CLIENT_LABEL: "true"},
                ready=(job, secret),
            )
            for ns, secret in secrets.items()
        }


@dataclass(frozen=True)
class S3Store:
    """An S3 bucket reached through IAM roles for service accounts: no keys anywhere."""

    bucket: str
    aws: AwsConfig
    endpoint_host: str | None = None

    @property
    def region(self) -> str:
        return self.aws.region

    @property
    def in_cluster(self) -> InClusterServer | None:
        return None

    def grant(self, consumer: Consumer, grants: Mapping[str, Grant], *, opts: pulumi.ResourceOptions) -> dict[str, ClientAccess]:
        from mlops_platform.storage import s3

        access = {}
        for ns, g in grants.items():
            role_arn = s3.irsa_role(
                f"{consumer.name}-{ns}",
                aws_config=self.aws,
                namespace=ns,
                service_account=g.service_account,
                bucket=self.bucket,
                prefix=g.prefix,
                access=g.access,
                opts=opts,
            )
            access[ns] = ClientAccess(
                env=tuple(plain_env({"AWS_DEFAULT_REGION": self.aws.region, "AWS_REGION": self.aws.region})),
                region=self.aws.region,
                role_arn=role_arn,
            )
        return access


# The MinIO users of the store itself: its administrator (root) and the tracking server.
MINIO_ADMIN_USER = "mlops-admin"
SERVER_MINIO_USER = "mlflow"


def declare(
    name: str,
    *,
    artifacts: ArtifactsConfig,
    aws: AwsConfig | None,
    namespace: str,
    namespace_resource: pulumi.Resource,
    storage_class: str,
    server_account: str,
    secret_metadata: k8s.meta.v1.ObjectMetaArgs,
    protect: bool,
    opts: pulumi.ResourceOptions,
    root_generation: int = 0,
    users_generation: int = 0,
) -> tuple[ArtifactStore, ServerAccess]:
    """The artifact store (S3 when ``aws`` is given, else MinIO in ``namespace``) and the tracking server's access to it.

    ``opts`` parents what is declared; on dev, what runs in ``namespace`` also waits for it.
    """
    if aws is not None:
        from mlops_platform.storage import s3

        bucket = s3.artifact_bucket(f"{name}-artifacts", artifacts, protect=protect, opts=opts)
        role_arn = s3.irsa_role(
            f"{name}-irsa",
            aws_config=aws,
            namespace=namespace,
            service_account=server_account,
            bucket=artifacts.bucket,
            prefix=artifacts.prefix,
            access="write",
            opts=opts,
        )
        access = ServerAccess(plain_env({"AWS_DEFAULT_REGION": aws.region}), {"eks.amazonaws.com/role-arn": role_arn}, [bucket])
        return S3Store(artifacts.bucket, aws), access

    import pulumi_random as random

    in_namespace = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[namespace_resource]))
    root_password = random.RandomPassword(
        f"{name}-minio-root-password", length=40, special=False, keepers=rotation.keepers(root_generation), opts=opts
    )
    server_key = random.RandomPassword(
        f"{name}-minio-mlflow-key", length=40, special=False, keepers=rotation.keepers(users_generation), opts=opts
    )
    minio_name = f"{name}-minio"
    root_secret, server = minio.deploy_server(
        minio_name,
        namespace=namespace,
        config=artifacts.minio,
        storage_class=storage_class,
        root_user=MINIO_ADMIN_USER,
        root_password=root_password.result,
        protect=protect,
        opts=in_namespace,
        pod_annotations=rotation.pod_annotations({"minioRoot": root_generation}),
    )
    endpoint = minio.MinioEndpoint(
        namespace=namespace,
        service=minio_name,
        root_secret=root_secret,
        client_image=artifacts.minio.client_image,
        bucket=artifacts.bucket,
    )
    job = minio.provision_users(
        f"{name}-bootstrap",
        endpoint=endpoint,
        create_bucket=True,
        instance=name,
        users=[minio.MinioUser(SERVER_MINIO_USER, server_key.result, artifacts.prefix, "write")],
        # Root credentials are read at start: after a root rotation, only the restarted MinIO knows them.
        opts=pulumi.ResourceOptions.merge(in_namespace, pulumi.ResourceOptions(depends_on=[server])),
    )
    secret = k8s.core.v1.Secret(
        f"{name}-s3",
        metadata=secret_metadata,
        type="Opaque",
        string_data={"AWS_ACCESS_KEY_ID": SERVER_MINIO_USER, "AWS_SECRET_ACCESS_KEY": server_key.result},
        opts=in_namespace,
    )
    env = [
        *key_env(secret),
        *plain_env({"MLFLOW_S3_ENDPOINT_URL": endpoint.url, "AWS_DEFAULT_REGION": minio.REGION}),
    ]
    # Consumers' provisioning Jobs run in this namespace against this MinIO.
    return MinioStore(endpoint, server=[namespace_resource, server], users_generation=users_generation), ServerAccess(env, {}, [job])
