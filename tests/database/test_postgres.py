"""The in-cluster PostgreSQL (mlops_platform/database/postgres.py): who may reach it, and a volume that outlives it."""

from __future__ import annotations

from tools.testing.plans import NS, migration, mlflow, network_policy


def test_postgresql_accepts_only_mlflow_and_its_maintenance_jobs(dev):
    server = mlflow(dev).inputs["spec"]["selector"]["matchLabels"]
    spec = network_policy(dev, "mlflow-postgresql")
    assert spec["podSelector"]["matchLabels"] == dev.k8s("StatefulSet", "mlflow-postgresql", NS).inputs["spec"]["selector"]["matchLabels"]
    clients = {"mlops-platform/database-client": "true"}
    assert spec["ingress"] == [
        {
            "from": [{"podSelector": {"matchLabels": server}}, {"podSelector": {"matchLabels": clients}}],
            "ports": [{"port": 5432, "protocol": "TCP"}],
        }
    ]
    labelled = sorted(
        r.k8s_name
        for r in dev.resources
        if r.pod_spec()
        and clients.items() <= (r.inputs["spec"].get("jobTemplate", r.inputs)["spec"]["template"]["metadata"]["labels"]).items()
    )
    # The browser server is the same MLflow on the same database (tracking/browser.py).
    assert labelled == ["mlflow-backup", "mlflow-gc", migration(dev).k8s_name, "mlflow-ui"]


def test_postgres_volume_outlives_the_statefulset(prod):
    spec = prod.k8s("StatefulSet", "mlflow-postgresql", NS).inputs["spec"]
    assert spec["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain", "whenScaled": "Retain"}
    (claim,) = spec["volumeClaimTemplates"]
    assert claim["spec"]["storageClassName"] == "gp3" and claim["spec"]["resources"]["requests"]["storage"] == "50Gi"
