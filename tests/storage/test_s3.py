"""The S3 store on EKS (mlops_platform/storage/s3.py): a private, versioned, encrypted bucket and IRSA roles held to the prefix."""

from __future__ import annotations

import json

from tools.testing.plans import NS, mlflow


def test_prod_bucket_is_private_versioned_encrypted_and_tls_only(prod):
    def one(t):
        return prod.of_type(t)[0].inputs

    assert one("aws:s3/bucket:Bucket")["bucket"] == "example-mlops-mlflow-artifacts"
    assert one("aws:s3/bucket:Bucket")["forceDestroy"] is False
    assert one("aws:s3/bucketVersioning:BucketVersioning")["versioningConfiguration"]["status"] == "Enabled"
    block = one("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
    assert all(block[k] is True for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"))
    sse = one("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration")
    assert sse["rules"][0]["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == "AES256"
    assert one("aws:s3/bucketOwnershipControls:BucketOwnershipControls")["rule"]["objectOwnership"] == "BucketOwnerEnforced"
    (statement,) = json.loads(one("aws:s3/bucketPolicy:BucketPolicy")["policy"])["Statement"]
    assert statement["Effect"] == "Deny" and statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    (rule,) = one("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration")["rules"]
    assert rule["noncurrentVersionExpiration"]["noncurrentDays"] == 90


def test_prod_role_is_assumable_only_by_mlflows_service_account(prod):
    role = prod.of_type("aws:iam/role:Role")[0]
    (statement,) = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
    issuer = "oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE"
    assert statement["Principal"] == {"Federated": f"arn:aws:iam::123456789012:oidc-provider/{issuer}"}
    assert statement["Condition"]["StringEquals"] == {
        f"{issuer}:sub": "system:serviceaccount:mlflow:mlflow",
        f"{issuer}:aud": "sts.amazonaws.com",
    }
    sa = prod.k8s("ServiceAccount", "mlflow", NS).inputs
    assert sa["metadata"]["annotations"] == {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/mlflow-irsa"}
    assert mlflow(prod).inputs["spec"]["template"]["spec"]["serviceAccountName"] == "mlflow"


def test_prod_role_policy_is_limited_to_the_prefix(prod):
    policy = json.loads(prod.of_type("aws:iam/rolePolicy:RolePolicy")[0].inputs["policy"])
    resources = {res for st in policy["Statement"] for res in st["Resource"]}
    assert resources == {"arn:aws:s3:::example-mlops-mlflow-artifacts", "arn:aws:s3:::example-mlops-mlflow-artifacts/prod/*"}
    assert not [a for st in policy["Statement"] for a in st["Action"] if a.endswith("*")]
