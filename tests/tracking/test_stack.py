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

from mlops_platform.tracking.settings import MLFLOW_IMAGE, MLFLOW_K8S_IMAGE, MLFLOW_VERSION
from tools.testing.harness import ROOT
from tools.testing.plans import NS, arg, container, env_of, generated_secrets, migration, mlflow, network_policy, run_with, strings

COMPONENT = "mlops:index:TrackingStack"


def component_urn(plan) -> str:
    return plan.of_type(COMPONENT)[0].urn


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


def test_one_path_prefix_for_server_and_probes(dev):
    server = container(mlflow(dev), "mlflow")
    assert arg(server["args"], "--static-prefix") == "/mlflow"
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert server[probe]["httpGet"] == {"path": "/mlflow/health", "port": "http"}
    assert dev.outputs["trackingUri"] == "http://mlflow.mlflow.svc.cluster.local:5000/mlflow"


def test_path_prefix_is_configurable_everywhere_at_once():
    plan = run_with("dev", tracking=json.dumps({"pathPrefix": "/tracking"}))
    server = container(plan.k8s("Deployment", "mlflow", NS), "mlflow")
    assert arg(server["args"], "--static-prefix") == "/tracking"
    assert server["livenessProbe"]["httpGet"]["path"] == "/tracking/health"
    assert plan.outputs["trackingUri"].endswith(":5000/tracking")


def test_allowed_hosts_cover_the_service_and_the_external_host(prod):
    hosts = arg(container(mlflow(prod), "mlflow")["args"], "--allowed-hosts").split(",")
    for host in ("mlflow", "mlflow.mlflow", "mlflow.mlflow.svc", "mlflow.mlflow.svc.cluster.local", "mlflow.example.com"):
        assert host in hosts and f"{host}:*" in hosts
    assert "*" not in hosts


def test_artifacts_are_proxied_under_this_servers_own_prefix(dev, prod):
    for plan, root in ((dev, "s3://mlflow-artifacts/dev"), (prod, "s3://example-mlops-mlflow-artifacts/prod")):
        args = container(mlflow(plan), "mlflow")["args"]
        assert "--serve-artifacts" in args
        assert arg(args, "--artifacts-destination") == root == plan.outputs["artifactRoot"]


def test_mlflow_telemetry_is_off_unless_opted_in(dev):
    for workload, name in ((mlflow(dev), "mlflow"), (migration(dev), "migrate")):
        assert env_of(container(workload, name))["MLFLOW_DISABLE_TELEMETRY"]["value"] == "true"
    opted_in = run_with("dev", tracking=json.dumps({"telemetry": True}))
    assert "MLFLOW_DISABLE_TELEMETRY" not in env_of(container(opted_in.k8s("Deployment", "mlflow", NS), "mlflow"))


def test_server_is_configured_lean(dev):
    server = container(mlflow(dev), "mlflow")
    assert env_of(server)["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"]["value"] == "false"
    assert arg(server["args"], "--workers") == "2"


def test_mlflow_is_a_clusterip_service_on_its_named_port(dev):
    spec = dev.k8s("Service", "mlflow", NS).inputs["spec"]
    assert spec["type"] == "ClusterIP"
    assert spec["ports"] == [{"name": "http", "port": 5000, "targetPort": "http", "appProtocol": "http"}]
    assert spec["selector"] == mlflow(dev).inputs["spec"]["selector"]["matchLabels"]


# -- network -----------------------------------------------------------------------


def test_namespace_denies_ingress_by_default(dev):
    spec = network_policy(dev, "mlflow-default-deny")
    assert spec["podSelector"] == {} and spec["policyTypes"] == ["Ingress"] and not spec.get("ingress")


# -- storage -----------------------------------------------------------------------


def test_mlflow_waits_for_the_bucket(dev):
    (job,) = [r for r in dev.kinds("Job") if r.k8s_name.startswith("mlflow-bootstrap-")]
    assert job.urn in mlflow(dev).dependencies


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


def test_dev_volumes_use_microk8s_hostpath(dev):
    assert dev.k8s("PersistentVolumeClaim", "mlflow-minio-data", NS).inputs["spec"]["storageClassName"] == "microk8s-hostpath"
    (claim,) = dev.k8s("StatefulSet", "mlflow-postgresql", NS).inputs["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["storageClassName"] == "microk8s-hostpath"


def test_prod_mlflow_account_waits_for_the_roles_permissions(prod):
    (policy,) = [p for p in prod.of_type("aws:iam/rolePolicy:RolePolicy") if p.name == "mlflow-irsa-s3"]
    assert policy.urn in prod.k8s("ServiceAccount", "mlflow", NS).dependencies
