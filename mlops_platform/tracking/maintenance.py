"""Day-two jobs of the tracking stack: the schema migration, the scheduled backup, MLflow's garbage collection.

- Migration: one Job per MLflow image (its name carries a hash of the image), so a new
  version migrates once and an unchanged one never again, whatever the replica count.
  The engine creates it only once the database server is ready (the StatefulSet or the
  RDS instance), and its first init container waits, bounded, until the database answers
  a query (the only check there is for an external database). It then dumps the database
  to the artifact store (pg_dump, then the upload); if either fails, the migration never
  starts. The Deployment waits for it.
- Backup: a CronJob doing the same dump and upload, keeping the newest ``backupsKept``.
- GC: a CronJob running ``mlflow gc --older-than`` with the server's own access (database
  and artifact prefix) and nothing else.

Dumps go under the backups prefix through the artifact store's own grant: a MinIO user
limited to that prefix on dev, an IRSA role limited to it on eks. RDS keeps its own
automated backups: no backup CronJob there (the pre-migration dump still runs). An external
database (``database.mode: external``) is its owner's: the migration runs without a dump, and
neither dump nor backup is declared.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from mlops_platform import pod_scripts
from mlops_platform.contracts import ArtifactStore, Consumer, Grant
from mlops_platform.database import postgres
from mlops_platform.database.backend import Dump
from mlops_platform.k8s import naming
from mlops_platform.k8s.containers import (
    TMP,
    ScratchDir,
    api_token,
    container,
    plain_env,
    pod_spec,
    scanner_exceptions,
    scratch_volumes,
    secret_env,
)
from mlops_platform.settings_base import Resources
from mlops_platform.tracking.settings import MaintenanceConfig

COMPONENT = "mlflow-maintenance"
DUMP_DIR = "/backup"
DUMP_FILE = f"{DUMP_DIR}/mlflow.dump"
_JOB_RESOURCES = Resources(cpu_request="100m", cpu_limit="1", memory_request="256Mi", memory_limit="1Gi")

# `mlflow db upgrade` takes the URI as an argument, which would put the password
# on the process command line; calling the same click command in-process does not.
_UPGRADE = (
    "import os; from mlflow.db import upgrade; "
    "upgrade.main([os.environ['MLFLOW_BACKEND_STORE_URI']], prog_name='mlflow db upgrade', standalone_mode=False)"
)
# basic-auth keeps its users in tables of the same database, which its app would otherwise migrate at each server start.
_UPGRADE_AUTH = (
    "; from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore; SqlAlchemyStore().init_db(os.environ['MLFLOW_BACKEND_STORE_URI'])"
)


def migrate_command(basic_auth: bool) -> list[str]:
    return ["python", "-c", _UPGRADE + (_UPGRADE_AUTH if basic_auth else "")]


# They run in the MLflow image, which does not have this package: the source travels in the command.
DUMPS_SOURCE = pod_scripts.source("dumps")
WAIT_SOURCE = pod_scripts.source("wait")
# How long the migration waits for the database to answer before the attempt fails (the Job retries 3 times).
WAIT_SECONDS = 600
GC_SOURCE = pod_scripts.source("gc")


@dataclass(frozen=True)
class MaintenanceArgs:
    name: str
    namespace: str
    mlflow_image: str
    postgres_image: str
    resources: Resources
    config: MaintenanceConfig
    # (Secret name, key) of MLFLOW_BACKEND_STORE_URI.
    backend_uri: tuple[pulumi.Input[str], str]
    # What pg_dump needs; None for an external database (no dumps of ours).
    database: Dump | None
    # Where dumps are written: a generic ephemeral volume of the dump's size from this class, or (None) an emptyDir
    # on the node's disk whose size the pod requests as ephemeral storage.
    dump_storage_class: str | None
    # Scheduled backups (False with RDS, whose automated backups take their place).
    scheduled_backups: bool
    bucket: str
    backup_prefix: str
    artifact_root: str
    # The tracking server's access (env, ServiceAccount, pod labels): what gc needs too.
    server_env: list[k8s.core.v1.EnvVarArgs]
    server_account: pulumi.Input[str]
    server_client_labels: dict[str, str]
    base_env: dict[str, str]
    # With workspaces, what gc needs to collect in every one of them (auth.workspace_env); empty without.
    workspace_env: dict[str, str] = field(default_factory=dict)
    # basic-auth's tables are migrated by the Job too, so no server pod migrates anything.
    basic_auth: bool = False


def migration_job_name(name: str, image: str) -> str:
    return f"{name}-migrate-{hashlib.sha256(image.encode()).hexdigest()[:10]}"


def image_label(image: str) -> str:
    """The image's tag (or digest) for the pre-migration dump's key: which version's schema the dump holds."""
    return image.rsplit("@", 1)[-1] if "@" in image else image.rsplit(":", 1)[-1]


class Maintenance:
    """The migration Job (``migration``, which the server's Deployment waits for) and the two CronJobs."""

    def __init__(self, args: MaintenanceArgs, store: ArtifactStore, opts: pulumi.ResourceOptions):
        self._args = a = args
        self.backup: k8s.batch.v1.CronJob | None = None
        gc_labels = {**a.server_client_labels, postgres.CLIENT_LABEL: "true"}
        # Listing the workspaces (profile namespaces) takes the server's own API token, as the server does.
        token = api_token() if a.workspace_env else None
        self.gc = self._cron_job(
            "gc",
            a.config.gc_schedule,
            [],
            [self._gc(token[1] if token else None)],
            gc_labels,
            a.server_account,
            opts,
            volumes=[token[0]] if token else [],
        )
        if a.database is None:
            self.migration = self._migration_job([self._wait()], {postgres.CLIENT_LABEL: "true"}, None, opts)
            return
        backup_account = f"{a.name}-backup"
        consumer = Consumer(
            backup_account,
            provisioning=f"{a.name}-backup-user",
            key_secret=lambda ns: naming.metadata(f"{backup_account}-s3", ns, component=COMPONENT, instance=a.name),
        )
        access = store.grant(
            consumer, {a.namespace: Grant(a.backup_prefix, "write", identity=backup_account, service_account=backup_account)}, opts=opts
        )[a.namespace]
        sa = k8s.core.v1.ServiceAccount(
            f"{backup_account}-sa",
            metadata=naming.metadata(
                backup_account, a.namespace, component=COMPONENT, instance=a.name, annotations=access.service_account_annotations() or None
            ),
            automount_service_account_token=False,
            opts=opts,
        )
        self._backup_env = access.env
        self._backup_labels = {**access.pod_labels, postgres.CLIENT_LABEL: "true"}
        ready = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=list(access.ready)))
        database_up = pulumi.ResourceOptions.merge(ready, pulumi.ResourceOptions(depends_on=[a.database.server]))

        pre_migration = [self._wait(), self._dump(a.database), self._upload("pre-migration", label=image_label(a.mlflow_image))]
        self.migration = self._migration_job(pre_migration, self._backup_labels, sa.metadata.name, database_up)
        if a.scheduled_backups:
            self.backup = self._cron_job(
                "backup",
                a.config.backup_schedule,
                [self._dump(a.database)],
                [self._upload("scheduled", keep=a.config.backups_kept)],
                self._backup_labels,
                sa.metadata.name,
                ready,
            )

    # -- containers ---------------------------------------------------------------------

    @property
    def _scratch(self) -> list[ScratchDir]:
        a = self._args
        if a.database is None:
            return [TMP]
        if a.dump_storage_class is not None:
            dumps_dir = ScratchDir("backup", DUMP_DIR, a.database.size, medium="volume", storage_class=a.dump_storage_class)
        else:
            dumps_dir = ScratchDir("backup", DUMP_DIR, a.database.size)
        return [TMP, dumps_dir]

    def _wait(self) -> k8s.core.v1.ContainerArgs:
        """A query with the server's own URI, retried until the database answers (bounded), before anything touches it."""
        a = self._args
        return container(
            "wait-for-database",
            a.mlflow_image,
            _JOB_RESOURCES,
            command=["python", "-c", WAIT_SOURCE],
            args=["--timeout", str(WAIT_SECONDS)],
            env=[secret_env("MLFLOW_BACKEND_STORE_URI", *a.backend_uri), *plain_env(a.base_env)],
            scratch=[TMP],
        )

    def _dump(self, database: Dump) -> k8s.core.v1.ContainerArgs:
        """pg_dump of the whole database (custom format) into the shared scratch volume; the password only from the Secret."""
        a = self._args
        secret = a.backend_uri[0]
        return container(
            "dump",
            a.postgres_image,
            _JOB_RESOURCES,
            command=["pg_dump", "--format=custom", "--no-password", f"--file={DUMP_FILE}"],
            args=[pulumi.Output.concat("--dbname=", database.url)],
            env=[
                *([secret_env("PGUSER", secret, database.user_key)] if database.user_key else []),
                secret_env("PGPASSWORD", secret, "password"),
                *plain_env({"HOME": "/tmp"}),
            ],
            scratch=self._scratch,
        )

    def _upload(self, kind: str, *, keep: int = 0, label: str = "") -> k8s.core.v1.ContainerArgs:
        a = self._args
        args = ["upload", "--file", DUMP_FILE, "--bucket", a.bucket, "--prefix", a.backup_prefix, "--kind", kind]
        args += ["--keep", str(keep)] if keep else []
        args += ["--label", label] if label else []
        return container(
            "upload",
            a.mlflow_image,
            _JOB_RESOURCES,
            command=["python", "-c", DUMPS_SOURCE],
            args=args,
            env=[*self._backup_env, *plain_env(a.base_env)],
            scratch=self._scratch,
        )

    def _migrate(self) -> k8s.core.v1.ContainerArgs:
        a = self._args
        return container(
            "migrate",
            a.mlflow_image,
            a.resources,
            command=migrate_command(a.basic_auth),
            env=[secret_env("MLFLOW_BACKEND_STORE_URI", *a.backend_uri), *plain_env(a.base_env)],
            scratch=[TMP],
        )

    def _gc(self, token: k8s.core.v1.VolumeMountArgs | None) -> k8s.core.v1.ContainerArgs:
        a = self._args
        return container(
            "gc",
            a.mlflow_image,
            a.resources,
            command=["python", "-c", GC_SOURCE],
            args=["--older-than", a.config.gc_older_than, *(["--all-workspaces"] if a.workspace_env else [])],
            env=[
                secret_env("MLFLOW_BACKEND_STORE_URI", *a.backend_uri),
                *a.server_env,
                *plain_env({"MLFLOW_ARTIFACTS_DESTINATION": a.artifact_root, **a.workspace_env, **a.base_env}),
            ],
            scratch=[TMP],
            mounts=[token] if token else [],
        )

    # -- workloads ----------------------------------------------------------------------

    def _pod(
        self,
        init: list[k8s.core.v1.ContainerArgs],
        main: list[k8s.core.v1.ContainerArgs],
        labels: dict[str, str],
        account: pulumi.Input[str] | None,
        volumes: Sequence[k8s.core.v1.VolumeArgs] = (),
    ) -> k8s.core.v1.PodTemplateSpecArgs:
        a = self._args
        return k8s.core.v1.PodTemplateSpecArgs(
            metadata=k8s.meta.v1.ObjectMetaArgs(labels=naming.labels(COMPONENT, a.name, **labels)),
            spec=pod_spec(
                main,
                init_containers=init,
                volumes=[*scratch_volumes([self._scratch if init else [TMP]]), *volumes],
                service_account=account,
                restart_policy="Never",
            ),
        )

    def _job_spec(self, pod: k8s.core.v1.PodTemplateSpecArgs) -> k8s.batch.v1.JobSpecArgs:
        # A failed pod is retried (the database may still be starting); every retry dumps again before migrating.
        return k8s.batch.v1.JobSpecArgs(backoff_limit=3, active_deadline_seconds=3600, template=pod)

    def _migration_job(
        self, init: list[k8s.core.v1.ContainerArgs], labels: dict[str, str], account: pulumi.Input[str] | None, opts: pulumi.ResourceOptions
    ) -> k8s.batch.v1.Job:
        a = self._args
        main = [self._migrate()]
        return k8s.batch.v1.Job(
            f"{a.name}-migrate",
            metadata=naming.metadata(
                migration_job_name(a.name, a.mlflow_image),
                a.namespace,
                component=COMPONENT,
                instance=a.name,
                # A failed migration is retried (dump included) by the next `pulumi up`, instead of waiting on the failed Job again.
                annotations={**scanner_exceptions(*init, *main), "pulumi.com/replaceUnready": "true"},
            ),
            spec=self._job_spec(self._pod(init, main, labels, account)),
            # A Job's spec is immutable: any change replaces it (delete first, as the name may stay the same).
            opts=pulumi.ResourceOptions.merge(
                opts, pulumi.ResourceOptions(delete_before_replace=True, custom_timeouts=pulumi.CustomTimeouts(create="60m"))
            ),
        )

    def _cron_job(
        self,
        suffix: str,
        schedule: str,
        init: list[k8s.core.v1.ContainerArgs],
        main: list[k8s.core.v1.ContainerArgs],
        labels: dict[str, str],
        account: pulumi.Input[str],
        opts: pulumi.ResourceOptions,
        volumes: Sequence[k8s.core.v1.VolumeArgs] = (),
    ) -> k8s.batch.v1.CronJob:
        a = self._args
        return k8s.batch.v1.CronJob(
            f"{a.name}-{suffix}",
            metadata=naming.metadata(
                f"{a.name}-{suffix}", a.namespace, component=COMPONENT, instance=a.name, annotations=scanner_exceptions(*init, *main)
            ),
            spec=k8s.batch.v1.CronJobSpecArgs(
                schedule=schedule,
                time_zone="Etc/UTC",
                concurrency_policy="Forbid",
                starting_deadline_seconds=3600,
                successful_jobs_history_limit=3,
                failed_jobs_history_limit=3,
                job_template=k8s.batch.v1.JobTemplateSpecArgs(spec=self._job_spec(self._pod(init, main, labels, account, volumes))),
            ),
            opts=opts,
        )
