"""RDS (mlops_platform/database/rds.py): the data survives a deletion."""

from __future__ import annotations

import json

from tools.testing.plans import NS, run_with


def test_rds_has_deletion_protection_and_a_final_snapshot():
    plan = run_with(
        "prod", database=json.dumps({"mode": "rds", "rds": {"subnetGroupName": "mlflow-db", "securityGroupIds": ["sg-0123456789abcdef0"]}})
    )
    (db,) = plan.of_type("aws:rds/instance:Instance")
    assert db.protect and db.retain_on_delete
    i = db.inputs
    assert i["deletionProtection"] is True and i["skipFinalSnapshot"] is False and i["finalSnapshotIdentifier"]
    assert i["storageEncrypted"] is True and i["publiclyAccessible"] is False
    assert "password" in db.secret_paths
    assert not plan.kinds("StatefulSet")
    uri = plan.k8s("Secret", "mlflow-db", NS).inputs["stringData"]["uri"]
    assert "@mlflow-db.example.eu-west-1.rds.amazonaws.com:5432/mlflow" in uri
