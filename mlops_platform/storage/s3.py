"""S3 artifact storage on the EKS target: the bucket and IAM roles for service accounts. Imported only on eks.

pulumi_aws is large (about 3 s to import cold); the dev target never pays for it.
"""

from __future__ import annotations

import hashlib
import json

import pulumi
from pulumi_aws import iam, s3

from mlops_platform.contracts import Access
from mlops_platform.k8s import options
from mlops_platform.storage.policy import bucket_arn, s3_access_policy
from mlops_platform.storage.settings import ArtifactsConfig, AwsConfig


def artifact_bucket(name: str, config: ArtifactsConfig, *, protect: bool, opts: pulumi.ResourceOptions) -> s3.Bucket:
    """A private, versioned, encrypted bucket that refuses plain HTTP and outlives the stack."""
    stateful = options.stateful(opts, protect)
    bucket = s3.Bucket(name, bucket=config.bucket, force_destroy=False, opts=stateful)
    child = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[bucket]))
    s3.BucketOwnershipControls(
        f"{name}-ownership",
        bucket=bucket.id,
        rule=s3.BucketOwnershipControlsRuleArgs(object_ownership="BucketOwnerEnforced"),
        opts=child,
    )
    block = s3.BucketPublicAccessBlock(
        f"{name}-public-access",
        bucket=bucket.id,
        block_public_acls=True,
        block_public_policy=True,
        ignore_public_acls=True,
        restrict_public_buckets=True,
        opts=child,
    )
    versioning = s3.BucketVersioning(
        f"{name}-versioning",
        bucket=bucket.id,
        versioning_configuration=s3.BucketVersioningVersioningConfigurationArgs(status="Enabled"),
        opts=child,
    )
    s3.BucketServerSideEncryptionConfiguration(
        f"{name}-encryption",
        bucket=bucket.id,
        rules=[
            s3.BucketServerSideEncryptionConfigurationRuleArgs(
                apply_server_side_encryption_by_default=s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                    sse_algorithm="aws:kms" if config.kms_key_arn else "AES256",
                    kms_master_key_id=config.kms_key_arn,
                ),
                bucket_key_enabled=bool(config.kms_key_arn),
            )
        ],
        opts=child,
    )
    s3.BucketLifecycleConfiguration(
        f"{name}-lifecycle",
        bucket=bucket.id,
        rules=[
            s3.BucketLifecycleConfigurationRuleArgs(
                id="expire-noncurrent-versions",
                status="Enabled",
                filter=s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=""),
                noncurrent_version_expiration=s3.BucketLifecycleConfigurationRuleNoncurrentVersionExpirationArgs(
                    noncurrent_days=config.noncurrent_version_days
                ),
                abort_incomplete_multipart_upload=s3.BucketLifecycleConfigurationRuleAbortIncompleteMultipartUploadArgs(
                    days_after_initiation=7
                ),
            )
        ],
        opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=[versioning])),
    )
    s3.BucketPolicy(
        f"{name}-tls-only",
        bucket=bucket.id,
        policy=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Sid": "DenyInsecureTransport",
                        "Effect": "Deny",
                        "Principal": "*",
                        "Action": "s3:*",
                        "Resource": [bucket_arn(config.bucket), f"{bucket_arn(config.bucket)}/*"],
                        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                    }
                ],
            }
        ),
        # A bucket policy is rejected while the public-access block is being applied.
        opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=[block])),
    )
    return bucket


def irsa_role(
    name: str,
    *,
    aws_config: AwsConfig,
    namespace: str,
    service_account: str,
    bucket: str,
    prefix: str,
    access: Access,
    opts: pulumi.ResourceOptions,
) -> pulumi.Output[str]:
    """An IAM role only ``namespace/service_account`` can assume, limited to one bucket prefix.

    Returns the role's ARN as an output that resolves once the S3 permissions are
    attached, so whatever is annotated with it (and waits on it) never starts
    with a role that cannot yet read.
    """
    name = _iam_safe(name)
    issuer = aws_config.oidc_issuer
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": aws_config.oidc_provider_arn},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {
                    "StringEquals": {
                        f"{issuer}:sub": f"system:serviceaccount:{namespace}:{service_account}",
                        f"{issuer}:aud": "sts.amazonaws.com",
                    }
                },
            }
        ],
    }
    role = iam.Role(name, assume_role_policy=json.dumps(trust), max_session_duration=3600, opts=opts)
    permissions = iam.RolePolicy(
        f"{name}-s3",
        role=role.id,
        policy=json.dumps(s3_access_policy(bucket, prefix, access)),
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(parent=role)),
    )
    return pulumi.Output.all(role.arn, permissions.id).apply(lambda values: values[0])


def _iam_safe(name: str, limit: int = 56) -> str:
    """Namespaces may have 63 characters; IAM role names 64, of which Pulumi's auto-naming takes 8."""
    if len(name) <= limit:
        return name
    return f"{name[: limit - 9]}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"


def role_arn_annotation(role_arn: pulumi.Input[str]) -> dict[str, pulumi.Input[str]]:
    """The ServiceAccount annotation through which EKS hands a pod the role."""
    return {"eks.amazonaws.com/role-arn": role_arn}
