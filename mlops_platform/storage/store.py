"""The one place that knows whether artifacts live in MinIO (dev) or S3 (eks), and how a consumer gets in.

A consumer (Kubeflow profiles, KServe's storage initializer) asks for access with one
``grant`` call naming, per namespace, the prefix, the access and the identity that carries
it. It gets back what a pod in that namespace needs, whichever store is behind it: env
for an S3 client, pod labels, the Secret (MinIO) or IAM role (IRSA), and what to wait for.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import urlsplit

import pulumi
import pulumi_kubernetes as k8s

from mlops_platform.config import AwsConfig
from mlops_platform.k8s.containers import plain_env, secret_env
from mlops_platform.storage import minio
from mlops_platform.storage.policy import Access


@dataclass(frozen=True)
class Grant:
    """What one namespace's client may do: ``access`` under ``prefix``, as ``identity``.

    ``identity`` names the MinIO user on dev and the ServiceAccount the IAM role trusts on eks.
    """

    prefix: str
    access: Access
    identity: str
    service_account: str


@dataclass
class ClientAccess:
    """What a pod in one namespace needs to reach its grant."""

    env: list[k8s.core.v1.EnvVarArgs]
    region: str
    # dev: the Secret holding the key (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY).
    secret: k8s.core.v1.Secret | None = None
    # eks: the role the grant's ServiceAccount must be annotated with.
    role_arn: pulumi.Output[str] | None = None
    pod_labels: dict[str, str] = field(default_factory=dict)
    ready: list[pulumi.Resource] = field(default_factory=list)

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

    def grant(
        self,
        consumer: str,
        grants: Mapping[str, Grant],
        *,
        secret_metadata: Callable[[str], k8s.meta.v1.ObjectMetaArgs],
        job_name: str,
        opts: pulumi.ResourceOptions,
    ) -> dict[str, ClientAccess]:
        """Access per namespace; ``consumer`` prefixes the names of what is created (under ``opts``'s parent)."""
        ...


@dataclass
class MinioStore:
    """In-cluster MinIO: a user per namespace with a generated key, created by one Job per consumer."""

    endpoint: minio.MinioEndpoint
    # MinIO and its namespace: every provisioning Job runs against them.
    server: list[pulumi.Resource]

    @property
    def bucket(self) -> str:
        return self.endpoint.bucket

    @property
    def endpoint_host(self) -> str | None:
        return urlsplit(self.endpoint.url).netloc

    @property
    def region(self) -> str:
        return minio.REGION

    def grant(
        self,
        consumer: str,
        grants: Mapping[str, Grant],
        *,
        secret_metadata: Callable[[str], k8s.meta.v1.ObjectMetaArgs],
        job_name: str,
        opts: pulumi.ResourceOptions,
    ) -> dict[str, ClientAccess]:
        if not grants:
            return {}
        job, secrets = minio.namespace_credentials(
            consumer,
            endpoint=self.endpoint,
            grants={ns: minio.Grant(g.identity, g.prefix, g.access) for ns, g in grants.items()},
            job_name=job_name,
            secret_metadata=secret_metadata,
            instance=consumer,
            opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=self.server)),
        )
        url = self.endpoint.url
        return {
            ns: ClientAccess(
                env=[
                    secret_env("AWS_ACCESS_KEY_ID", secret.metadata.name, "AWS_ACCESS_KEY_ID"),
                    secret_env("AWS_SECRET_ACCESS_KEY", secret.metadata.name, "AWS_SECRET_ACCESS_KEY"),
                    *plain_env({"AWS_ENDPOINT_URL": url, "MLFLOW_S3_ENDPOINT_URL": url, "AWS_DEFAULT_REGION": minio.REGION}),
                ],
                region=minio.REGION,
                secret=secret,
                # Lets the client through MinIO's NetworkPolicy.
                pod_labels={minio.CLIENT_LABEL: "true"},
                ready=[job, secret],
            )
            for ns, secret in secrets.items()
        }


@dataclass
class S3Store:
    """An S3 bucket reached through IAM roles for service accounts: no keys anywhere."""

    bucket: str
    aws: AwsConfig
    endpoint_host: str | None = None

    @property
    def region(self) -> str:
        return self.aws.region

    def grant(
        self,
        consumer: str,
        grants: Mapping[str, Grant],
        *,
        secret_metadata: Callable[[str], k8s.meta.v1.ObjectMetaArgs],
        job_name: str,
        opts: pulumi.ResourceOptions,
    ) -> dict[str, ClientAccess]:
        from mlops_platform.storage import s3

        access = {}
        for ns, g in grants.items():
            role_arn = s3.irsa_role(
                f"{consumer}-{ns}",
                aws_config=self.aws,
                namespace=ns,
                service_account=g.service_account,
                bucket=self.bucket,
                prefix=g.prefix,
                access=g.access,
                opts=opts,
            )
            access[ns] = ClientAccess(
                env=plain_env({"AWS_DEFAULT_REGION": self.aws.region, "AWS_REGION": self.aws.region}),
                region=self.aws.region,
                role_arn=role_arn,
            )
        return access
