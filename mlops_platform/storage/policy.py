"""Least-privilege S3 policies, one grammar for both MinIO users and AWS IAM roles."""

from __future__ import annotations

from typing import Any

from mlops_platform.contracts import Access


def bucket_arn(bucket: str) -> str:
    return f"arn:aws:s3:::{bucket}"


def s3_access_policy(bucket: str, prefix: str, access: Access) -> dict[str, Any]:
    """Objects under ``prefix/`` only; listing only within that prefix.

    ``write`` includes delete, because MLflow deletes artifacts when runs are
    purged (``mlflow gc``).
    """
    actions = ["s3:GetObject"]
    if access == "write":
        actions += ["s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ListPrefix",
                "Effect": "Allow",
                "Action": ["s3:ListBucket"],
                "Resource": [bucket_arn(bucket)],
                "Condition": {"StringLike": {"s3:prefix": [prefix, f"{prefix}/*"]}},
            },
            {"Sid": "BucketLocation", "Effect": "Allow", "Action": ["s3:GetBucketLocation"], "Resource": [bucket_arn(bucket)]},
            {
                "Sid": "Objects",
                "Effect": "Allow",
                "Action": actions,
                "Resource": [f"{bucket_arn(bucket)}/{prefix}/*"],
            },
        ],
    }
