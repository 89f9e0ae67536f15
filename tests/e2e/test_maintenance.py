"""Day two, end to end on 127.0.0.1: upgrade from an older schema, backup and restore, garbage collection.

Every job runs the command its rendered Job or CronJob declares (``Jobs.run_job``), against
PostgreSQL 15 and moto's S3 configured from the same declarations. Each test has a data plane
of its own, so any of them runs alone and in any order.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from mlops_platform.tracking.settings import MLFLOW_IMAGE
from tests.e2e import history
from tests.e2e.config import e2e_config
from tests.e2e.declared import resolve_env
from tests.e2e.launch import base_env
from tests.e2e.old_mlflow import VERSION as OLD_VERSION
from tests.e2e.old_mlflow import old_mlflow_python
from tests.e2e.plane import DataPlane
from tests.e2e.postgres import postgres_bindir
from tools.testing.harness import ROOT, DeclaredResource, Plan, run_program, with_overrides


@pytest.fixture
def own(plane: DataPlane) -> Iterator[DataPlane]:
    """A data plane of this test's own (``plane`` skips where PostgreSQL is missing)."""
    fresh = DataPlane(plane.logs / f"maintenance-{time.monotonic_ns()}")
    try:
        yield fresh
    finally:
        fresh.close()


def overridden(**maintenance) -> Plan:
    config, secret_keys = e2e_config("dev")
    return run_program("dev", config=with_overrides(config, {"maintenance": maintenance}), secret_keys=secret_keys)


def server_env(plan: Plan) -> dict[str, str]:
    deployment = DataPlane.tracking_deployment(plan)
    return resolve_env(plan, deployment.k8s_namespace, deployment.pod_spec()["containers"][0], "mlflow")


def cron_job(plan: Plan, suffix: str) -> DeclaredResource:
    (found,) = [c for c in plan.kinds("CronJob") if c.k8s_name.endswith(f"-{suffix}")]
    return found


def upload_args(workload: DeclaredResource) -> dict[str, str]:
    """The declared upload container's ``--flag value`` pairs (bucket, prefix, kind, keep)."""
    pod = workload.pod_spec()
    (upload,) = [c for c in pod.get("initContainers", []) + pod["containers"] if c["name"] == "upload"]
    args = upload["args"]
    return {args[i].removeprefix("--"): args[i + 1] for i in range(1, len(args) - 1, 2)}


def s3_client(plane: DataPlane, plan: Plan):
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=plane.hosts.rewrite(server_env(plan)["MLFLOW_S3_ENDPOINT_URL"]),
        aws_access_key_id="e2e",
        aws_secret_access_key="e2e",
        region_name="us-east-1",
    )


def dumps_under(plane: DataPlane, plan: Plan, kind: str) -> list[str]:
    where = upload_args(cron_job(plan, "backup"))
    keys = plane.s3_keys(urlsplit(s3_client(plane, plan).meta.endpoint_url).port, where["bucket"], f"{where['prefix']}/{kind}/")
    return sorted(keys)


def revision(plane: DataPlane, database: str | None = None) -> str:
    port, creds = plane.postgres
    conn = plane._pg_connect(port, creds, database or creds.database)
    try:
        cur = conn.cursor()
        cur.execute("SELECT version_num FROM alembic_version")
        return cur.fetchone()[0]
    finally:
        conn.close()


def head_revision() -> str:
    from alembic.script import ScriptDirectory
    from mlflow.store.db.utils import _get_alembic_config

    return ScriptDirectory.from_config(_get_alembic_config("sqlite://")).get_current_head()


def client_of(plane: DataPlane, plan: Plan):
    from mlflow import MlflowClient

    uri = plane.hosts.rewrite(plan.outputs["trackingUri"])
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def dump_url(plane: DataPlane, plan: Plan, database: str | None = None) -> str:
    """The database as the declared dump container names it (no password), through the host mapping."""
    job = cron_job(plan, "backup")
    (dump,) = [c for c in job.pod_spec()["initContainers"] if c["name"] == "dump"]
    url = plane.hosts.rewrite(next(a for a in dump["args"] if a.startswith("--dbname=")).removeprefix("--dbname="))
    return url if database is None else url.rsplit("/", 1)[0] + f"/{database}"


def tool_env(plane: DataPlane, plan: Plan) -> dict[str, str]:
    """An operator's environment for tools.operator.restore: the database password and S3 access, nothing inherited."""
    _, creds = plane.postgres
    return {
        **base_env(plane.home),
        "PATH": f"{Path(sys.executable).parent}:{postgres_bindir()}:/usr/bin:/bin",
        "PGPASSWORD": creds.password,
        "AWS_ENDPOINT_URL": s3_client(plane, plan).meta.endpoint_url,
        "AWS_ACCESS_KEY_ID": "e2e",
        "AWS_SECRET_ACCESS_KEY": "e2e",
        "AWS_DEFAULT_REGION": "us-east-1",
    }


def restore(plane: DataPlane, plan: Plan, *args: str) -> subprocess.CompletedProcess[str]:
    where = upload_args(cron_job(plan, "backup"))
    return subprocess.run(
        [sys.executable, "-m", "tools.operator.restore", "--bucket", where["bucket"], "--prefix", where["prefix"], *args],
        cwd=ROOT,
        env=tool_env(plane, plan),
        capture_output=True,
        text=True,
        timeout=600,
    )


# -- upgrade -----------------------------------------------------------------------------------


def test_upgrade_from_an_older_schema_dumps_first_then_keeps_every_run_model_version_and_alias(own, plan):
    python = old_mlflow_python()
    own.bring_up_storage(plan)
    database_uri = own.hosts.rewrite(server_env(plan)["MLFLOW_BACKEND_STORE_URI"])
    # MLflow 2.9 creates its schema and writes the history, the URI (with password) only in its env.
    written = subprocess.run(
        [str(python), str(Path(history.__file__)), "fill"],
        env={**base_env(own.home), "MLFLOW_TRACKING_URI": database_uri},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert written.returncode == 0, written.stderr[-3000:]
    before = json.loads(written.stdout.splitlines()[-1])
    assert len(before["runs"]) == 2 and before["models"][history.MODEL]["aliases"] == {"champion": "2", "previous": "1"}
    old = revision(own)
    assert old != head_revision(), f"MLflow {OLD_VERSION} already writes the current schema"
    assert dumps_under(own, plan, "pre-migration") == []

    own.run_migration(plan)

    (dump,) = dumps_under(own, plan, "pre-migration")
    (job,) = own.migration_jobs(plan, DataPlane.tracking_deployment(plan))
    # Named after the image whose migration followed it: v3.17.2-full.
    assert dump.endswith(f"-{upload_args(job)['label']}.dump") and upload_args(job)["label"] == MLFLOW_IMAGE.rsplit(":", 1)[1]
    # The dump holds the database as it was before the migration: restored aside, it is at the old revision.
    local = own.workdir / "pre-migration.dump"
    s3_client(own, plan).download_file(upload_args(cron_job(plan, "backup"))["bucket"], dump, str(local))
    port, creds = own.postgres
    own._pg_execute(port, creds, "postgres", 'CREATE DATABASE "aside"')
    subprocess.run(
        [str(postgres_bindir() / "pg_restore"), "--no-owner", "--exit-on-error", f"--dbname={dump_url(own, plan, 'aside')}", str(local)],
        env=tool_env(own, plan),
        check=True,
        capture_output=True,
        timeout=300,
    )
    assert revision(own, "aside") == old
    assert revision(own) == head_revision()

    own.start_deployment(plan, DataPlane.tracking_deployment(plan))
    assert history.snapshot(client_of(own, plan)) == before


# -- backup and restore ------------------------------------------------------------------------


def test_backup_then_drop_then_restore_brings_back_every_run_model_version_and_alias_and_refuses_another_database(own, plan):
    server = own.bring_up_tracking(plan)
    client = client_of(own, plan)
    history.fill(client)
    before = history.snapshot(client)
    assert len(before["runs"]) == 2

    own.run_job(plan, cron_job(plan, "backup"))
    (dump,) = dumps_under(own, plan, "scheduled")
    # A dump of another database is refused before anything is dropped.
    refused = restore(own, plan, "--latest", "--database-url", dump_url(own, plan, "other"))
    assert refused.returncode != 0 and "holds database 'mlflow'" in refused.stderr, refused.stderr[-2000:]

    own.stop_server(server)
    port, creds = own.postgres
    own._pg_execute(port, creds, "postgres", f'DROP DATABASE "{creds.database}" WITH (FORCE)')
    assert creds.database not in own._pg_databases()

    listed = restore(own, plan, "--list")
    assert listed.returncode == 0 and dump in listed.stdout.split(), listed.stderr
    result = restore(own, plan, "--latest", "--database-url", dump_url(own, plan))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "restored s3://" in result.stdout and dump in result.stdout

    own.start_deployment(plan, DataPlane.tracking_deployment(plan))
    assert history.snapshot(client_of(own, plan)) == before


def test_backup_keeps_the_newest_dumps_and_never_the_pre_migration_one(own):
    plan = overridden(backupsKept=2)
    own.bring_up_tracking(plan)
    assert upload_args(cron_job(plan, "backup"))["keep"] == "2"
    made = []
    for _ in range(3):
        own.run_job(plan, cron_job(plan, "backup"))
        made.append(dumps_under(own, plan, "scheduled")[-1])
    assert dumps_under(own, plan, "scheduled") == made[1:]
    assert len(dumps_under(own, plan, "pre-migration")) == 1


# -- garbage collection ------------------------------------------------------------------------


def test_gc_removes_a_deleted_runs_metadata_and_artifacts_after_older_than_and_leaves_live_runs(own, plan):
    from mlflow.exceptions import MlflowException

    own.bring_up_tracking(plan)
    client = client_of(own, plan)
    experiment = client.create_experiment("gc")
    live, deleted = (client.create_run(experiment).info.run_id for _ in range(2))
    for run_id in (live, deleted):
        client.log_text(run_id, f"artifact of {run_id}", "notes/a.txt")
        client.log_metric(run_id, "loss", 0.5)
    client.delete_run(deleted)
    root = urlsplit(plan.outputs["artifactRoot"])

    def artifacts(run_id: str) -> list[str]:
        return [
            k for k in own.s3_keys(urlsplit(s3_client(own, plan).meta.endpoint_url).port, root.netloc, root.path.strip("/")) if run_id in k
        ]

    assert artifacts(deleted) and artifacts(live)

    # As declared (--older-than 30d): a run deleted a moment ago is kept.
    declared = cron_job(plan, "gc")
    assert declared.pod_spec()["containers"][0]["args"] == ["--older-than", "30d"]
    own.run_job(plan, declared)
    assert client.get_run(deleted).info.lifecycle_stage == "deleted" and artifacts(deleted)

    # Declared with --older-than 1s, once it is older than that: gone, metadata and artifacts; the live run untouched.
    time.sleep(1.5)
    soon = overridden(gcOlderThan="1s")
    own.run_job(soon, cron_job(soon, "gc"))
    with pytest.raises(MlflowException, match="not found|RESOURCE_DOES_NOT_EXIST"):
        client.get_run(deleted)
    assert artifacts(deleted) == []
    assert client.get_run(live).data.metrics == {"loss": 0.5} and artifacts(live)
