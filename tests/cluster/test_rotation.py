"""Credential rotation through the real engine: what a new generation replaces, in which order, and what it leaves alone.

kwok completes Job pods and no container runs, so this shows the engine's and the API server's side: the steps
the preview plans, the order of the Jobs around the rollout, the Secrets and pod templates that change, and
the data objects that do not. What the Jobs do to PostgreSQL and basic-auth runs on 127.0.0.1 in
tests/e2e/test_rotation.py.
"""

from __future__ import annotations

import json
from typing import Any

from kubernetes import client

from tests.cluster.expect import type_and_name
from tests.cluster.state import assert_no_plaintext_credential
from tests.cluster.test_maintenance import _index
from tools.local.engine import EngineRun
from tools.testing.harness import stack_config
from tools.testing.plans import NS

PASSWORD = "random:index/randomPassword:RandomPassword"
MINIO_KEYS = {
    "mlflow-minio-root-password",
    "mlflow-minio-mlflow-key",
    "mlflow-backup-mlflow-s3-key",
    "kubeflow-kubeflow-user-example-com-s3-key",
    "serving-kubeflow-user-example-com-s3-key",
}
# What holds data: replaced or deleted, it would take the data with it.
DATA = {("kubernetes:core/v1:Namespace", "mlflow-namespace"), ("kubernetes:apps/v1:StatefulSet", "mlflow-postgresql")}
DATA |= {("kubernetes:core/v1:PersistentVolumeClaim", "mlflow-minio-data")}


def _steps(run: EngineRun) -> dict[tuple[str, str], set[str]]:
    found: dict[tuple[str, str], set[str]] = {}
    for step in run.steps():
        if step["op"] != "same":
            found.setdefault(type_and_name(step["urn"]), set()).add(step["op"])
    return found


def _live_secrets(api: Any) -> dict[str, dict[str, str]]:
    return {s.metadata.name: dict(s.data or {}) for s in client.CoreV1Api(api).list_namespaced_secret(NS).items}


def _uids(api: Any) -> dict[str, str]:
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    uids = {
        "namespace": core.read_namespace(NS).metadata.uid,
        "statefulset": apps.read_namespaced_stateful_set("mlflow-postgresql", NS).metadata.uid,
    }
    uids |= {f"claim {c.metadata.name}": c.metadata.uid for c in core.list_namespaced_persistent_volume_claim(NS).items}
    return uids


def _provisioning_jobs(api: Any) -> dict[str, str]:
    """The MinIO provisioning Jobs of every namespace (``<namespace>/<name>``) and their uids."""
    found = {}
    for job in client.BatchV1Api(api).list_job_for_all_namespaces().items:
        labels = job.metadata.labels or {}
        if labels.get("app.kubernetes.io/name") == "minio-provisioner":
            found[f"{job.metadata.namespace}/{job.metadata.name}"] = job.metadata.uid
    return found


def _job(api: Any, name: str) -> Any:
    namespace, job = name.split("/")
    return client.BatchV1Api(api).read_namespaced_job(job, namespace)


def test_a_new_generation_renews_the_credentials_rolls_their_readers_and_leaves_the_data_alone(cluster, deployment, tmp_path):
    config, _ = stack_config("dev")
    tracking = {**json.loads(config.get("mlops-platform:tracking", "{}")), "replicas": 2}
    api = cluster.api()
    apps = client.AppsV1Api(api)
    try:
        deployment.engine.write_stack_file({"tracking": tracking})
        deployment.changed()
        deployment.engine.up()
        secrets, uids = _live_secrets(api), _uids(api)
        provisioning = _provisioning_jobs(api)
        assert len(provisioning) == 4, provisioning
        assert "claim data-mlflow-postgresql-0" in uids and "claim mlflow-minio-data" in uids

        rotated = {"tracking": tracking, "rotation": {"database": 1, "minioRoot": 1, "minioUsers": 1}}
        deployment.engine.write_stack_file(rotated)
        previewed = deployment.engine.preview(diff=True)
        preview = _steps(previewed)
        for key in DATA | {(PASSWORD, "mlflow-db-password"), ("kubernetes:core/v1:Secret", "mlflow-db")}:
            assert key not in preview, f"{key} must not change: {preview.get(key)}"
        assert preview[(PASSWORD, "mlflow-db-password-b")] == {"create"}
        for name in MINIO_KEYS:
            assert "replace" in preview[(PASSWORD, name)] or "create-replacement" in preview[(PASSWORD, name)], (
                name,
                preview[(PASSWORD, name)],
            )
        for name in ("mlflow", "mlflow-minio"):
            assert preview[("kubernetes:apps/v1:Deployment", name)] == {"update"}, name
        assert all("delete" not in ops for key, ops in preview.items() if key[0] != "kubernetes:batch/v1:Job"), preview

        run = deployment.engine.up()
        rotate_done = _index(run, "outputs", "Job::mlflow-db-rotate")
        login_written = _index(run, "pre", "Secret::mlflow-db-login")
        rollout_started, rollout_done = _index(run, "pre", "Deployment::mlflow"), _index(run, "outputs", "Deployment::mlflow")
        retire_started = _index(run, "pre", "Job::mlflow-db-retire")
        assert None not in (rotate_done, login_written, rollout_started, rollout_done, retire_started)
        assert rotate_done < login_written and rotate_done < rollout_started, "nothing reads the new login before it has its password"
        assert rollout_done < retire_started, "the old login keeps its password until every pod has rolled"

        after = _live_secrets(api)
        assert after["mlflow-db"] == secrets["mlflow-db"], "the owner's initdb credentials stay"
        login = client.CoreV1Api(api).read_namespaced_secret("mlflow-db-login", NS)
        assert sorted(login.data) == ["database", "generation", "password", "uri", "username"]
        for name, key in (
            ("mlflow-minio-root", "rootPassword"),
            ("mlflow-s3", "AWS_SECRET_ACCESS_KEY"),
            ("mlflow-backup-s3", "AWS_SECRET_ACCESS_KEY"),
        ):
            assert after[name][key] != secrets[name][key], f"{name} holds the new key"
        assert _uids(api) == uids, "the namespace, the StatefulSet and every claim are the same objects"
        for name, generations in (("mlflow", "database=1,minioUsers=1"), ("mlflow-minio", "minioRoot=1")):
            live = apps.read_namespaced_deployment(name, NS)
            assert live.spec.template.metadata.annotations["mlops-platform/credential-generations"] == generations
            assert live.status.updated_replicas == live.status.available_replicas == live.spec.replicas
        jobs = {j.metadata.name: j for j in client.BatchV1Api(api).list_namespaced_job(NS).items}
        for name in ("mlflow-db-rotate-1", "mlflow-db-retire-1"):
            assert any(c.type == "Complete" and c.status == "True" for c in jobs[name].status.conditions or []), name
        # Each MinIO provisioning Job ran again (a new object under its name, completed): MinIO got the new keys.
        for name, uid in provisioning.items():
            live = _job(api, name)
            assert live.metadata.uid != uid, f"{name} did not run again"
            assert any(c.type == "Complete" and c.status == "True" for c in live.status.conditions or []), name

        counts = assert_no_plaintext_credential(deployment.engine, tmp_path, run)
        # The eight of tests/cluster/test_state.py and the second database login's.
        assert counts["passwords"] == 9, counts
        again = deployment.engine.up(expect_no_changes=True)
        assert set(again.summary.resource_changes) == {"same"}, again.summary.resource_changes
    finally:
        deployment.engine.write_stack_file({})
        deployment.changed()
