"""Day two as declared: the migration Job (once per image, dump first, before the rollout), backup and gc CronJobs, least privilege.

The e2e lane (tests/e2e/test_maintenance.py) runs these declared commands for real; the
real-engine lane (tests/cluster/test_maintenance.py) shows the engine's order and reruns.
"""

from __future__ import annotations

import json

import pytest

from mlops_platform.database.settings import POSTGRES_IMAGE
from mlops_platform.pod_scripts.gc import proxied_to_destination
from mlops_platform.tracking.maintenance import migration_job_name
from mlops_platform.tracking.settings import MLFLOW_K8S_IMAGE
from tools.testing.plans import NS, container, env_of, migration, refused, run_with

RDS = json.dumps({"mode": "rds", "rds": {"subnetGroupName": "mlflow-db", "securityGroupIds": ["sg-0123456789abcdef0"]}})


def cron(plan, name):
    return plan.k8s("CronJob", name, NS)


def secret_refs(c: dict) -> set[tuple[str, str]]:
    return {(e["valueFrom"]["secretKeyRef"]["name"], e["valueFrom"]["secretKeyRef"]["key"]) for e in c.get("env", []) if "valueFrom" in e}


def arg(args: list[str], flag: str) -> str:
    return args[args.index(flag) + 1]


# -- migration ---------------------------------------------------------------------


def test_migration_job_is_named_after_the_image_so_only_a_new_image_runs_it_again(dev):
    assert migration(dev).k8s_name == migration_job_name("mlflow", MLFLOW_K8S_IMAGE)
    assert migration(run_with("dev", maintenance=json.dumps({"gcOlderThan": "7d"}))).k8s_name == migration(dev).k8s_name
    newer = run_with("dev", tracking=json.dumps({"image": "ghcr.io/mlflow/mlflow:v3.18.0-full"}))
    assert migration(newer).k8s_name != migration(dev).k8s_name
    assert container(migration(newer), "migrate")["image"] == "ghcr.io/mlflow/mlflow:v3.18.0-full"


def test_the_server_waits_for_the_migration_and_no_server_container_migrates(dev, prod):
    for plan in (dev, prod):
        deployment = plan.k8s("Deployment", "mlflow", NS)
        assert migration(plan).urn in deployment.dependencies
        assert "initContainers" not in deployment.pod_spec()
        migrating = [
            (r.k8s_name, c["name"])
            for r in plan.resources
            if r.pod_spec()
            for c in r.pod_spec()["containers"] + r.pod_spec().get("initContainers", [])
            if "mlflow.db" in " ".join(c.get("command", []))
        ]
        assert migrating == [(migration(plan).k8s_name, "migrate")]


def test_two_replicas_still_migrate_once(prod):
    # prod autoscales from two pods (tracking.autoscaling); the Deployment leaves the count to the autoscaler.
    assert prod.k8s("HorizontalPodAutoscaler", "mlflow", NS).inputs["spec"]["minReplicas"] == 2
    spec = migration(prod).inputs["spec"]
    assert spec.get("parallelism", 1) == 1 and spec.get("completions", 1) == 1


def test_the_dump_and_its_upload_run_before_the_migration_in_the_same_pod(dev):
    pod = migration(dev).pod_spec()
    assert [c["name"] for c in pod["initContainers"]] == ["wait-for-database", "dump", "upload"]
    assert [c["name"] for c in pod["containers"]] == ["migrate"]
    assert pod["restartPolicy"] == "Never"
    _, dump, upload = pod["initContainers"]
    assert dump["image"] == POSTGRES_IMAGE and dump["command"][0] == "pg_dump"
    assert "--format=custom" in dump["command"]
    path = next(a for a in dump["command"] if a.startswith("--file=")).removeprefix("--file=")
    assert arg(upload["args"], "--file") == path and arg(upload["args"], "--kind") == "pre-migration"
    assert arg(upload["args"], "--label") == MLFLOW_K8S_IMAGE.rsplit(":", 1)[1]
    shared = {m["name"] for m in dump["volumeMounts"] if path.startswith(m["mountPath"] + "/")}
    assert shared and shared <= {m["name"] for m in upload["volumeMounts"]}
    assert [v for v in pod["volumes"] if v["name"] in shared][0]["emptyDir"]["sizeLimit"] == "5Gi"  # the database's own size
    # On the node's disk: requested, so the scheduler places the pod where a dump of that size fits (tmp's 256Mi beside it).
    assert dump["resources"]["requests"]["ephemeral-storage"] == upload["resources"]["requests"]["ephemeral-storage"] == "5376Mi"


@pytest.mark.parametrize("database", ["inCluster", "rds"])
def test_on_eks_dumps_go_to_a_volume_of_their_own_of_the_databases_size(database):
    plan = run_with("prod", database=RDS if database == "rds" else json.dumps({"storageSize": "200Gi", "maxConnections": 300}))
    for workload in (migration(plan), *([cron(plan, "mlflow-backup")] if database == "inCluster" else [])):
        volumes = {v["name"]: v for v in workload.pod_spec()["volumes"]}
        claim = volumes["backup"]["ephemeral"]["volumeClaimTemplate"]["spec"]
        assert claim["storageClassName"] == "gp3" and claim["accessModes"] == ["ReadWriteOnce"]
        assert claim["resources"]["requests"]["storage"] == ("50Gi" if database == "rds" else "200Gi")
        # Only /tmp is left on the node's disk.
        assert container(workload, "dump")["resources"]["requests"]["ephemeral-storage"] == "256Mi"


# -- start-up order ----------------------------------------------------------------


def test_the_migration_is_created_only_once_the_in_cluster_database_is_ready(dev, prod):
    for plan in (dev, prod):
        (statefulset,) = plan.kinds("StatefulSet")
        assert statefulset.urn in migration(plan).dependencies


def test_with_rds_the_migration_waits_for_the_instance():
    plan = run_with("prod", database=RDS)
    (instance,) = [r for r in plan.resources if r.type == "aws:rds/instance:Instance"]
    assert instance.urn in migration(plan).dependencies


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_the_first_step_of_the_migration_waits_for_the_database_with_the_servers_own_uri(stack, request):
    plan = request.getfixturevalue(stack)
    wait = migration(plan).pod_spec()["initContainers"][0]
    assert wait["name"] == "wait-for-database" and wait["command"][:2] == ["python", "-c"]
    assert wait["args"] == ["--timeout", "600"]
    assert secret_refs(wait) == {("mlflow-db", "uri")}


def test_pg_dump_gets_the_password_only_from_the_secret(dev):
    dump = container(migration(dev), "dump")
    assert secret_refs(dump) == {("mlflow-db", "password")}
    assert env_of(dump)["PGPASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "mlflow-db", "key": "password"}
    assert dump["args"] == ["--dbname=postgresql://mlflow@mlflow-postgresql.mlflow.svc.cluster.local:5432/mlflow"]


# -- backups -----------------------------------------------------------------------


def test_backup_cron_job_dumps_on_the_configured_schedule_and_keeps_the_configured_number(dev):
    spec = cron(dev, "mlflow-backup").inputs["spec"]
    assert spec["schedule"] == "15 2 * * *" and spec["concurrencyPolicy"] == "Forbid" and spec["timeZone"] == "Etc/UTC"
    pod = cron(dev, "mlflow-backup").pod_spec()
    assert [c["name"] for c in pod["initContainers"]] == ["dump"] and [c["name"] for c in pod["containers"]] == ["upload"]
    upload = pod["containers"][0]
    assert (arg(upload["args"], "--kind"), arg(upload["args"], "--keep")) == ("scheduled", "14")
    assert arg(upload["args"], "--prefix") == "backups/dev" and arg(upload["args"], "--bucket") == "mlflow-artifacts"
    changed = run_with("dev", maintenance=json.dumps({"backupSchedule": "0 */6 * * *", "backupsKept": 3, "backupPrefix": "dumps/dev"}))
    spec = cron(changed, "mlflow-backup").inputs["spec"]
    upload = cron(changed, "mlflow-backup").pod_spec()["containers"][0]
    assert spec["schedule"] == "0 */6 * * *" and arg(upload["args"], "--keep") == "3" and arg(upload["args"], "--prefix") == "dumps/dev"


def test_dev_backups_use_a_minio_user_limited_to_the_backups_prefix(dev):
    for workload in (migration(dev), cron(dev, "mlflow-backup")):
        upload = container(workload, "upload")
        assert secret_refs(upload) == {("mlflow-backup-s3", "AWS_ACCESS_KEY_ID"), ("mlflow-backup-s3", "AWS_SECRET_ACCESS_KEY")}
        assert "MLFLOW_BACKEND_STORE_URI" not in env_of(upload)
        assert workload.pod_spec()["serviceAccountName"] == "mlflow-backup"
    keys = dev.k8s("Secret", "mlflow-backup-s3", NS).inputs["stringData"]
    assert keys["AWS_ACCESS_KEY_ID"] == "mlflow-backup"
    (policies,) = [c for c in dev.kinds("ConfigMap") if c.k8s_name == "mlflow-backup-user-policies"]
    (document,) = [json.loads(v) for v in policies.inputs["data"].values()]
    resources = {r for s in document["Statement"] for r in s["Resource"]}
    assert resources == {"arn:aws:s3:::mlflow-artifacts", "arn:aws:s3:::mlflow-artifacts/backups/dev/*"}
    listing = next(s for s in document["Statement"] if s["Action"] == ["s3:ListBucket"])
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["backups/dev", "backups/dev/*"]}}


def test_eks_backups_use_an_irsa_role_limited_to_the_backups_prefix_and_no_keys(prod):
    role = prod.of_type("aws:iam/role:Role")
    (backup_role,) = [r for r in role if r.name == "mlflow-backup-mlflow"]
    trust = json.loads(backup_role.inputs["assumeRolePolicy"])["Statement"][0]["Condition"]["StringEquals"]
    assert [v for k, v in trust.items() if k.endswith(":sub")] == ["system:serviceaccount:mlflow:mlflow-backup"]
    (policy,) = [p for p in prod.of_type("aws:iam/rolePolicy:RolePolicy") if p.name == "mlflow-backup-mlflow-s3"]
    objects = next(s for s in json.loads(policy.inputs["policy"])["Statement"] if s["Sid"] == "Objects")
    assert objects["Resource"] == ["arn:aws:s3:::example-mlops-mlflow-artifacts/backups/prod/*"]
    account = prod.k8s("ServiceAccount", "mlflow-backup", NS).inputs
    assert account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] == backup_role.outputs["arn"]
    for workload in (migration(prod), cron(prod, "mlflow-backup")):
        assert workload.pod_spec()["serviceAccountName"] == "mlflow-backup"
        assert not {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} & set(env_of(container(workload, "upload")))


def test_rds_keeps_its_automated_backups_instead_of_a_backup_cron_job():
    plan = run_with("prod", database=RDS)
    assert not [c for c in plan.kinds("CronJob") if c.k8s_name == "mlflow-backup"]
    (db,) = plan.of_type("aws:rds/instance:Instance")
    assert db.inputs["backupRetentionPeriod"] == 14
    assert container(migration(plan), "dump")["args"] == [
        "--dbname=postgresql://mlflow@mlflow-db.example.eu-west-1.rds.amazonaws.com:5432/mlflow"
    ]
    message, declared = refused("prod", database=RDS, maintenance=json.dumps({"backupsKept": 3}))
    assert message == (
        "mlops-platform:maintenance.backupsKept: set, but database.mode is rds (RDS takes its own automated backups); "
        "allowed: database.rds.backupRetentionDays, or maintenance.backupsKept left out"
    )
    assert not declared
    newer = json.dumps({"mode": "rds", "rds": {**json.loads(RDS)["rds"], "engineVersion": "16.4"}})
    message, declared = refused("prod", database=newer)
    assert message.startswith("mlops-platform:database.rds.engineVersion: '16.4' is newer than the pg_dump") and not declared


@pytest.mark.parametrize(
    "maintenance, expected",
    [
        (
            {"backupSchedule": "daily"},
            "mlops-platform:maintenance.backupSchedule: 'daily' is not a CronJob schedule (1 field, not 5); allowed: a CronJob schedule",
        ),
        ({"gcOlderThan": "30 days"}, "mlops-platform:maintenance.gcOlderThan: '30 days' is not valid"),
        ({"gcOlderThan": ""}, "mlops-platform:maintenance.gcOlderThan: '' is not valid"),
        ({"backupsKept": 0}, "mlops-platform:maintenance.backupsKept: 0 is not allowed"),
        ({"backupPrefix": "dev/backups"}, "mlops-platform:maintenance.backupPrefix: 'dev/backups' overlaps artifacts.prefix 'dev'"),
    ],
)
def test_invalid_maintenance_config_is_refused_naming_the_key(maintenance, expected):
    message, declared = refused("dev", maintenance=json.dumps(maintenance))
    assert message.startswith(expected) and not declared


# -- garbage collection ------------------------------------------------------------


def test_gc_cron_job_runs_mlflow_gc_older_than_the_configured_age(dev):
    job = cron(dev, "mlflow-gc")
    assert job.inputs["spec"]["schedule"] == "45 3 * * *" and job.inputs["spec"]["concurrencyPolicy"] == "Forbid"
    (gc,) = job.pod_spec()["containers"]
    assert gc["args"] == ["--older-than", "30d", "--all-workspaces"] and "def main" in gc["command"][2]
    assert env_of(gc)["MLFLOW_ARTIFACTS_DESTINATION"]["value"] == dev.outputs["artifactRoot"]
    changed = run_with("dev", maintenance=json.dumps({"gcOlderThan": "12h", "gcSchedule": "0 1 * * 0"}))
    assert cron(changed, "mlflow-gc").pod_spec()["containers"][0]["args"] == ["--older-than", "12h", "--all-workspaces"]
    assert cron(changed, "mlflow-gc").inputs["spec"]["schedule"] == "0 1 * * 0"


def test_gc_has_the_servers_access_and_nothing_more(dev, prod):
    gc = container(cron(dev, "mlflow-gc"), "gc")
    server = container(dev.k8s("Deployment", "mlflow", NS), "mlflow")
    assert (
        secret_refs(gc)
        == secret_refs(server)
        == {("mlflow-db", "uri"), ("mlflow-s3", "AWS_ACCESS_KEY_ID"), ("mlflow-s3", "AWS_SECRET_ACCESS_KEY")}
    )
    assert cron(dev, "mlflow-gc").pod_spec()["serviceAccountName"] == "mlflow"
    assert cron(prod, "mlflow-gc").pod_spec()["serviceAccountName"] == "mlflow"
    assert not {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} & set(env_of(container(cron(prod, "mlflow-gc"), "gc")))


def test_with_workspaces_gc_collects_in_every_workspace_the_server_serves_with_its_own_token(dev, prod):
    """MLflow refuses to open a store holding experiments outside the default workspace unless told workspaces are on:
    without this, gc would fail every night on a Kubeflow stack (tests/cluster/test_tenancy.py runs it)."""
    job = cron(dev, "mlflow-gc")
    gc, server = container(job, "gc"), container(dev.k8s("Deployment", "mlflow", NS), "mlflow")
    env, server_env = ({k: v.get("value") for k, v in env_of(c).items()} for c in (gc, server))
    assert gc["args"][-1] == "--all-workspaces" and env["MLFLOW_ENABLE_WORKSPACES"] == "true"
    assert env["MLFLOW_WORKSPACE_STORE_URI"] == arg(server["args"], "--workspace-store-uri") == "kubernetes://"
    assert env["MLFLOW_K8S_WORKSPACE_LABEL_SELECTOR"] == server_env["MLFLOW_K8S_WORKSPACE_LABEL_SELECTOR"]
    (token,) = [v for v in job.pod_spec()["volumes"] if "projected" in v]
    assert {"mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "name": token["name"], "readOnly": True} in gc["volumeMounts"]
    # Without Kubeflow there are no workspaces: no flag, no token.
    plain = cron(prod, "mlflow-gc")
    assert "--all-workspaces" not in container(plain, "gc")["args"] and not [v for v in plain.pod_spec()["volumes"] if "projected" in v]
    assert "MLFLOW_ENABLE_WORKSPACES" not in env_of(container(plain, "gc"))


def test_gc_resolves_proxied_artifact_uris_onto_the_servers_destination():
    repository = proxied_to_destination("s3://mlflow-artifacts/dev")("mlflow-artifacts:/3/abc123/artifacts")
    assert type(repository).__name__ == "S3ArtifactRepository"
    assert repository.artifact_uri == "s3://mlflow-artifacts/dev/3/abc123/artifacts"


def test_maintenance_pods_run_hardened_with_no_automounted_api_token(dev):
    for workload in [migration(dev), cron(dev, "mlflow-backup"), cron(dev, "mlflow-gc")]:
        pod = workload.pod_spec()
        assert pod["automountServiceAccountToken"] is False
        for c in pod["containers"] + pod.get("initContainers", []):
            assert c["securityContext"]["readOnlyRootFilesystem"] is True and c["securityContext"]["runAsNonRoot"] is True
