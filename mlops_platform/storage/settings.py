"""Settings of the artifact store (``artifacts.*``: MinIO in the cluster, or S3) and of AWS access (``aws.*``)."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import Field

from mlops_platform.settings_base import Arn, DnsName, Image, KeyPrefix, Model, Resources, Storage, check

# MinIO stopped publishing community images after this release (Sept 2025);
# keep both images configurable for teams on a commercial or mirrored build.
MINIO_IMAGE = "quay.io/minio/minio:RELEASE.2025-09-07T16-13-09Z"
MINIO_CLIENT_IMAGE = "quay.io/minio/mc:RELEASE.2025-08-13T08-35-41Z"
# The keys only S3 reads (MinIO has neither a lifecycle rule nor KMS).
S3_ONLY_ARTIFACT_KEYS = frozenset({"noncurrentVersionDays", "kmsKeyArn"})

BucketName = Annotated[
    str, check(re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"), "an S3 bucket name: 3-63 lowercase letters, digits, '.' or '-'")
]


class MinioConfig(Model):
    """MinIO in the cluster (target microk8s)."""

    image: Image = Field(default=MINIO_IMAGE, description="MinIO's image (community images stopped at RELEASE.2025-09-07).")
    client_image: Image = Field(default=MINIO_CLIENT_IMAGE, description="The mc image that provisions buckets and users.")
    storage_class: DnsName | None = Field(default=None, description="StorageClass of MinIO's volume. Default: the target's.")
    storage_size: Storage = Field(default="20Gi", description="Size of MinIO's volume.")
    resources: Resources = Field(
        default=Resources(cpu_request="100m", memory_request="256Mi", memory_limit="1Gi"), description="MinIO's requests and limits."
    )


class ArtifactsConfig(Model):
    """Where MLflow's artifacts live: MinIO on microk8s, S3 on eks."""

    bucket: BucketName = Field(default="mlflow-artifacts", description="The artifact bucket.")
    # Each tracking server gets its own prefix: two servers sharing a bucket root
    # both number experiments from 1 and would mix their files.
    prefix: KeyPrefix = Field(default="mlflow", description="This tracking server's prefix in the bucket.")
    noncurrent_version_days: int = Field(
        default=90, ge=1, le=3650, description="Days S3 keeps a replaced or deleted object's old version (eks)."
    )
    kms_key_arn: Arn | None = Field(default=None, description="KMS key that encrypts the bucket (eks). Default: S3-managed keys.")
    minio: MinioConfig = Field(default=MinioConfig(), description="In-cluster MinIO (microk8s).")

    @property
    def root(self) -> str:
        """The tracking server's ``--artifacts-destination``, onto which ``mlflow-artifacts:/`` URIs map."""
        return f"s3://{self.bucket}/{self.prefix}"


class AwsConfig(Model):
    """The EKS cluster's AWS account: IAM roles for service accounts (IRSA) trust its OIDC provider."""

    region: Annotated[str, check(re.compile(r"^[a-z]{2}(-[a-z]+)+-[0-9]$"), "an AWS region, e.g. eu-west-1")] = Field(
        description="The AWS region of the bucket and the database."
    )
    oidc_provider_arn: Arn = Field(description="ARN of the cluster's IAM OIDC provider (IRSA trust).")
    oidc_provider_url: Annotated[
        str,
        check(
            re.compile(r"^(https://)?oidc\.eks\.[a-z0-9-]+\.amazonaws\.com/id/[A-Z0-9]+$"),
            "the cluster's OIDC issuer, e.g. oidc.eks.eu-west-1.amazonaws.com/id/ABC123",
        ),
    ] = Field(description="The cluster's OIDC issuer URL.")

    @property
    def oidc_issuer(self) -> str:
        """The issuer without scheme, as IAM condition keys spell it."""
        return self.oidc_provider_url.removeprefix("https://")
