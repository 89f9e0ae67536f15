"""TrackingStack: what `pulumi up` declares for MLflow, its database and its artifact store."""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import sqlite3
import subprocess
import sys

import pytest

from mlops_platform.config import MLFLOW_IMAGE, MLFLOW_K8S_IMAGE, MLFLOW_VERSION, quantity_bytes
from tests.conftest import ROOT, container, env_of, generated_secrets, run_with, strings

NS = "mlflow"
COMPONENT = "mlops:index:TrackingStack"


def component_urn(plan) -> str:
    return plan.of_type(COMPONENT)[0].urn


def mlflow(plan):
    return plan.k8s("Deployment", "mlflow", NS)


def migration(plan):
    (job,) = [j for j in plan.kinds("Job") if j.k8s_name.startswith("mlflow-migrate-")]
    return job


# -- inventory (every object, with its options, is in tests/golden) --------------------


def test_dev_declares_nothing_on_aws(dev):
    assert not [r for r in dev.resources if r.type.startswith("aws:")]


@pytest.mark.slow
def test_dev_never_imports_pulumi_aws():
    code = "import sys; from tools.testing.harness import run_program; run_program('dev'); print('pulumi_aws' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "False"


def test_prod_runs_no_minio_and_holds_no_static_keys(prod):
    assert not [r for r in prod.kinds("Deployment") if "minio" in r.k8s_name]
    assert not prod.of_type("aws:iam/accessKey:AccessKey")
    names = set(env_of(container(mlflow(prod), "mlflow")))
    assert not names & {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}


def test_every_tracking_resource_is_a_named_child_of_the_component(dev, prod):
    for plan in (dev, prod):
        root = component_urn(plan)
        children = [r for r in plan.resources if _ancestors(plan, r) and _ancestors(plan, r)[-1] == root]
        assert len(children) >= 20
        for r in children:
            assert r.name.startswith("mlflow"), f"{r.name} is not named from the component"


def _ancestors(plan, resource) -> list[str]:
    """Parent URNs up to the outermost declared component."""
    chain, parent = [], resource.parent
    known = {r.urn for r in plan.resources}
    while parent in known:
        chain.append(parent)
        parent = plan.by_urn(parent).parent
    return chain


def test_every_resource_belongs_to_one_of_the_platform_components(dev, prod):
    for plan in (dev, prod):
        for r in plan.resources:
            top = _ancestors(plan, r)[-1:] or [r.urn]
            assert plan.by_urn(top[0]).type.startswith("mlops:index:"), f"{r.type} {r.name} has no component parent"


# -- secrets -----------------------------------------------------------------------


def test_generated_credentials_travel_as_pulumi_secrets(dev):
    for secret in dev.kinds("Secret"):
        assert "stringData" in secret.secret_paths, f"Secret {secret.k8s_name} is not a Pulumi secret"
    assert dev.outputs["databasePassword"] and "databasePassword" in dev.secret_outputs


def test_no_generated_credential_appears_outside_a_secret(dev, prod):
    for plan in (dev, prod):
        secrets = generated_secrets(plan)
        assert len(secrets) >= (3 if plan is dev else 1)
        for r in plan.resources:
            if r.kind == "Secret":
                continue
            leaked = [s for s in strings(r.inputs) if any(secret in s for secret in secrets)]
            assert not leaked, f"{r.type} {r.name} carries a generated credential"


def test_database_uri_reaches_mlflow_only_through_a_secret(dev):
    for workload, name in ((mlflow(dev), "mlflow"), (migration(dev), "migrate")):
        env = env_of(container(workload, name))
        ref = env["MLFLOW_BACKEND_STORE_URI"]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": "mlflow-db", "key": "uri"}
    uri = dev.k8s("Secret", "mlflow-db", NS).inputs["stringData"]["uri"]
    assert re.fullmatch(r"postgresql\+psycopg2://mlflow:[A-Za-z0-9]{32}@mlflow-postgresql\.mlflow\.svc\.cluster\.local:5432/mlflow", uri)


def test_no_password_on_any_command_line(dev):
    for r in dev.resources:
        for c in _containers(r):
            text = " ".join(c.get("command", []) + c.get("args", []))
            assert not re.search(r"://[^/@\s]*:[^/@\s]*@", text), f"{r.name}/{c['name']} has a credential URI in its command"
            assert not [s for s in generated_secrets(dev) if s in text]


def test_mlflow_uses_its_own_minio_user_not_the_root_key(dev):
    env = env_of(container(mlflow(dev), "mlflow"))
    assert env["AWS_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"] == {"name": "mlflow-s3", "key": "AWS_ACCESS_KEY_ID"}
    assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "mlflow-s3", "key": "AWS_SECRET_ACCESS_KEY"}
    s3 = dev.k8s("Secret", "mlflow-s3", NS).inputs["stringData"]
    root = dev.k8s("Secret", "mlflow-minio-root", NS).inputs["stringData"]
    assert s3["AWS_ACCESS_KEY_ID"] == "mlflow" != root["rootUser"]
    assert s3["AWS_SECRET_ACCESS_KEY"] != root["rootPassword"]
    assert env["MLFLOW_S3_ENDPOINT_URL"]["value"] == "http://mlflow-minio.mlflow.svc.cluster.local:9000"


# -- the server --------------------------------------------------------------------


def test_image_runs_the_mlflow_version_this_project_tests_with(dev, prod):
    pinned = re.search(r"^mlflow==(\S+)$", (ROOT / "requirements.txt").read_text(), re.M).group(1)
    assert MLFLOW_VERSION == pinned == importlib.metadata.version("mlflow")
    assert MLFLOW_IMAGE == f"ghcr.io/mlflow/mlflow:v{pinned}-full"
    # dev runs Kubeflow's Kubernetes app (the image `make image` pushes to MicroK8s's registry); prod basic-auth, which the
    # published -full image has (its auth extra).
    assert MLFLOW_K8S_IMAGE == f"localhost:32000/mlops-platform/mlflow:{pinned}-k8s2.1.0"
    for plan, image in ((dev, MLFLOW_K8S_IMAGE), (prod, MLFLOW_IMAGE)):
        for workload, name in ((mlflow(plan), "mlflow"), (migration(plan), "wait-for-database"), (migration(plan), "migrate")):
            assert container(workload, name)["image"] == image
        assert container(migration(plan), "upload")["image"] == image


@pytest.mark.slow
def test_schema_migration_command_really_migrates_from_the_env(dev, tmp_path):
    (migrate,) = migration(dev).pod_spec()["containers"]
    uri_env = [e for e in migrate["env"] if e["name"] == "MLFLOW_BACKEND_STORE_URI"]
    assert uri_env and uri_env[0]["valueFrom"]["secretKeyRef"] == {"name": "mlflow-db", "key": "uri"}
    # The declared command, run as the init container would (the URI only in its env), creates MLflow's schema.
    database = tmp_path / "mlflow.db"
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "MLFLOW_BACKEND_STORE_URI": f"sqlite:///{database}"}
    command = [sys.executable if migrate["command"][0] == "python" else migrate["command"][0], *migrate["command"][1:]]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    tables = {row[0] for row in sqlite3.connect(database).execute("select name from sqlite_master where type='table'")}
    assert {"alembic_version", "experiments", "runs", "registered_models", "model_versions"} <= tables
    assert "sqlite" not in " ".join(migrate["command"]) and "mlflow-db" not in " ".join(migrate["command"])


def _arg(args: list[str], flag: str) -> str:
    return args[args.index(flag) + 1]


def test_one_path_prefix_for_server_and_probes(dev):
    server = container(mlflow(dev), "mlflow")
    assert _arg(server["args"], "--static-prefix") == "/mlflow"
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert server[probe]["httpGet"] == {"path": "/mlflow/health", "port": "http"}
    assert dev.outputs["trackingUri"] == "http://mlflow.mlflow.svc.cluster.local:5000/mlflow"


def test_path_prefix_is_configurable_everywhere_at_once():
    plan = run_with("dev", tracking=json.dumps({"pathPrefix": "/tracking"}))
    server = container(plan.k8s("Deployment", "mlflow", NS), "mlflow")
    assert _arg(server["args"], "--static-prefix") == "/tracking"
    assert server["livenessProbe"]["httpGet"]["path"] == "/tracking/health"
    assert plan.outputs["trackingUri"].endswith(":5000/tracking")


def test_allowed_hosts_cover_the_service_and_the_external_host(prod):
    hosts = _arg(container(mlflow(prod), "mlflow")["args"], "--allowed-hosts").split(",")
    for host in ("mlflow", "mlflow.mlflow", "mlflow.mlflow.svc", "mlflow.mlflow.svc.cluster.local", "mlflow.example.com"):
        assert host in hosts and f"{host}:*" in hosts
    assert "*" not in hosts


def test_artifacts_are_proxied_under_this_servers_own_prefix(dev, prod):
    for plan, root in ((dev, "s3://mlflow-artifacts/dev"), (prod, "s3://example-mlops-mlflow-artifacts/prod")):
        args = container(mlflow(plan), "mlflow")["args"]
        assert "--serve-artifacts" in args
        assert _arg(args, "--artifacts-destination") == root == plan.outputs["artifactRoot"]


def test_mlflow_telemetry_is_off_unless_opted_in(dev):
    for workload, name in ((mlflow(dev), "mlflow"), (migration(dev), "migrate")):
        assert env_of(container(workload, name))["MLFLOW_DISABLE_TELEMETRY"]["value"] == "true"
    opted_in = run_with("dev", tracking=json.dumps({"telemetry": True}))
    assert "MLFLOW_DISABLE_TELEMETRY" not in env_of(container(opted_in.k8s("Deployment", "mlflow", NS), "mlflow"))


def test_server_is_configured_lean(dev):
    server = container(mlflow(dev), "mlflow")
    assert env_of(server)["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"]["value"] == "false"
    assert _arg(server["args"], "--workers") == "2"


def _containers(resource):
    pod = resource.pod_spec() or {}
    return pod.get("containers", []) + pod.get("initContainers", [])


def _node_disk(resource, c) -> str | None:
    """What the container's disk-backed emptyDirs may fill on the node (its ephemeral-storage request must say it)."""
    volumes = {v["name"]: v for v in resource.pod_spec().get("volumes") or []}
    mounted = [volumes.get(m["name"], {}) for m in c.get("volumeMounts") or []]
    disk = [quantity_bytes(v["emptyDir"]["sizeLimit"]) for v in mounted if "emptyDir" in v and v["emptyDir"].get("medium") != "Memory"]
    return f"{sum(disk) // 2**20}Mi" if disk and sum(disk) % 2**30 else (f"{sum(disk) // 2**30}Gi" if disk else None)


def test_every_container_is_hardened(dev, prod):
    for plan in (dev, prod):
        checked = 0
        for r in plan.resources:
            for c in _containers(r):
                checked += 1
                sc = c["securityContext"]
                assert sc["runAsNonRoot"] and sc["runAsUser"] >= 10000, c["name"]
                assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"] == {"drop": ["ALL"]}
                assert sc["readOnlyRootFilesystem"] is True
                assert set(c["resources"]["limits"]) == {"cpu", "memory"}
                assert set(c["resources"]["requests"]) - {"ephemeral-storage"} == {"cpu", "memory"}
                assert c["resources"]["requests"].get("ephemeral-storage") == _node_disk(r, c), c["name"]
                if r.kind not in ("Job", "CronJob"):
                    assert {"livenessProbe", "readinessProbe"} <= set(c), c["name"]
        assert checked >= (5 if plan is dev else 3)


def test_mlflow_is_a_clusterip_service_on_its_named_port(dev):
    spec = dev.k8s("Service", "mlflow", NS).inputs["spec"]
    assert spec["type"] == "ClusterIP"
    assert spec["ports"] == [{"name": "http", "port": 5000, "targetPort": "http", "appProtocol": "http"}]
    assert spec["selector"] == mlflow(dev).inputs["spec"]["selector"]["matchLabels"]


# -- network -----------------------------------------------------------------------


def _policy(plan, name):
    return plan.k8s("NetworkPolicy", name, NS).inputs["spec"]


def test_namespace_denies_ingress_by_default(dev):
    spec = _policy(dev, "mlflow-default-deny")
    assert spec["podSelector"] == {} and spec["policyTypes"] == ["Ingress"] and not spec.get("ingress")


def test_postgresql_accepts_only_mlflow_and_its_maintenance_jobs(dev):
    server = mlflow(dev).inputs["spec"]["selector"]["matchLabels"]
    spec = _policy(dev, "mlflow-postgresql")
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


def test_minio_accepts_only_mlflow_and_labelled_clients(dev):
    server = mlflow(dev).inputs["spec"]["selector"]["matchLabels"]
    (rule,) = _policy(dev, "mlflow-minio")["ingress"]
    assert rule["from"] == [
        {"podSelector": {"matchLabels": server}},
        {"namespaceSelector": {}, "podSelector": {"matchLabels": {"mlops-platform/minio-client": "true"}}},
    ]
    assert rule["ports"] == [{"port": 9000, "protocol": "TCP"}]


# -- storage -----------------------------------------------------------------------


def test_bootstrap_creates_bucket_and_a_user_limited_to_the_prefix(dev):
    (job,) = [r for r in dev.kinds("Job") if r.k8s_name.startswith("mlflow-bootstrap-")]
    script = container(job, "provision")["command"][-1]
    assert "mc mb --ignore-existing local/mlflow-artifacts" in script
    assert 'mc admin user add local mlflow "$SECRET_KEY_MLFLOW"' in script
    policy = json.loads(dev.k8s("ConfigMap", "mlflow-bootstrap-policies", NS).inputs["data"]["mlflow-write.json"])
    resources = {res for st in policy["Statement"] for res in st["Resource"]}
    assert resources == {"arn:aws:s3:::mlflow-artifacts", "arn:aws:s3:::mlflow-artifacts/dev/*"}
    listing = next(st for st in policy["Statement"] if st["Action"] == ["s3:ListBucket"])
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["dev", "dev/*"]}}


def test_a_regenerated_key_reruns_the_bootstrap(dev):
    (job,) = [r for r in dev.kinds("Job") if r.k8s_name.startswith("mlflow-bootstrap-")]
    key = dev.k8s("Secret", "mlflow-s3", NS).inputs["stringData"]["AWS_SECRET_ACCESS_KEY"]
    assert job.replacement_trigger == [key]
    assert job.replacement_trigger_secret


def test_mlflow_waits_for_the_bucket(dev):
    (job,) = [r for r in dev.kinds("Job") if r.k8s_name.startswith("mlflow-bootstrap-")]
    assert job.urn in mlflow(dev).dependencies


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


# -- data safety -------------------------------------------------------------------


STATEFUL = [
    ("kubernetes:core/v1:Namespace", "mlflow-namespace"),
    ("kubernetes:apps/v1:StatefulSet", "mlflow-postgresql"),
    ("aws:s3/bucket:Bucket", "mlflow-artifacts"),
]


@pytest.mark.parametrize("type_, name", STATEFUL)
def test_prod_protects_and_retains_stateful_resources(prod, type_, name):
    (r,) = [r for r in prod.of_type(type_) if r.name == name]
    assert r.protect and r.retain_on_delete


def test_dev_protects_nothing_so_it_can_be_torn_down(dev):
    assert not [r.name for r in dev.resources if r.protect or r.retain_on_delete]


def test_postgres_volume_outlives_the_statefulset(prod):
    spec = prod.k8s("StatefulSet", "mlflow-postgresql", NS).inputs["spec"]
    assert spec["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain", "whenScaled": "Retain"}
    (claim,) = spec["volumeClaimTemplates"]
    assert claim["spec"]["storageClassName"] == "gp3" and claim["spec"]["resources"]["requests"]["storage"] == "50Gi"


def test_dev_volumes_use_microk8s_hostpath(dev):
    assert dev.k8s("PersistentVolumeClaim", "mlflow-minio-data", NS).inputs["spec"]["storageClassName"] == "microk8s-hostpath"
    (claim,) = dev.k8s("StatefulSet", "mlflow-postgresql", NS).inputs["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["storageClassName"] == "microk8s-hostpath"


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


def test_minio_writes_only_to_its_volumes(dev):
    server = container(dev.k8s("Deployment", "mlflow-minio", NS), "minio")
    mounts = {m["mountPath"] for m in server["volumeMounts"]}
    certs = _arg(server["args"], "--certs-dir")
    assert server["securityContext"]["readOnlyRootFilesystem"] is True
    assert any(certs.startswith(m + "/") for m in mounts) and "/data" in mounts


def test_prod_mlflow_account_waits_for_the_roles_permissions(prod):
    (policy,) = [p for p in prod.of_type("aws:iam/rolePolicy:RolePolicy") if p.name == "mlflow-irsa-s3"]
    assert policy.urn in prod.k8s("ServiceAccount", "mlflow", NS).dependencies
