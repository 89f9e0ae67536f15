"""In-cluster PostgreSQL for MLflow's metadata: a single-replica StatefulSet."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from mlops_platform.database.settings import DatabaseConfig
from mlops_platform.k8s import naming, options
from mlops_platform.k8s.containers import ExecProbe, ScratchDir, container, plain_env, pod_spec, scanner_exceptions, scratch_volumes

COMPONENT = "postgresql"
PORT = 5432
DATA_DIR = "/var/lib/postgresql/data"
CREDENTIALS_DIR = "/etc/postgresql-credentials"
# Pods carrying this label may reach PostgreSQL besides the tracking server (its migration, backup and gc jobs).
CLIENT_LABEL = "mlops-platform/database-client"


def url_without_password(user: str, host: pulumi.Input[str], database: str) -> pulumi.Output[str]:
    """A libpq connection URL for pg_dump and friends; the password travels separately (PGPASSWORD from the Secret)."""
    return pulumi.Output.concat("postgresql://", user, "@", host, f":{PORT}/", database)


def deploy(
    name: str,
    *,
    namespace: str,
    config: DatabaseConfig,
    storage_class: str,
    credentials_secret: pulumi.Input[str],
    protect: bool,
    opts: pulumi.ResourceOptions,
) -> tuple[str, k8s.apps.v1.StatefulSet]:
    """Declare PostgreSQL; returns the in-cluster host name of its headless Service, and the StatefulSet.

    The kubernetes provider awaits a StatefulSet until its pod is ready (the ``pg_isready`` probe), so whatever
    depends on it starts only once the database answers: on EBS that includes attaching the volume and initdb.
    """
    instance = name
    selector = naming.selector_labels(COMPONENT, instance)
    scratch = [ScratchDir("run", "/var/run/postgresql", "16Mi"), ScratchDir("tmp", "/tmp", "64Mi")]
    db = container(
        "postgresql",
        config.image,
        config.resources,
        # The image's entrypoint hands arguments starting with '-' to postgres.
        args=["-c", f"max_connections={config.max_connections}"],
        # The image reads each *_FILE at initdb time: credentials stay files, not env.
        env=plain_env(
            {
                "POSTGRES_USER_FILE": f"{CREDENTIALS_DIR}/username",
                "POSTGRES_PASSWORD_FILE": f"{CREDENTIALS_DIR}/password",
                "POSTGRES_DB_FILE": f"{CREDENTIALS_DIR}/database",
                "PGDATA": f"{DATA_DIR}/pgdata",
            }
        ),
        ports={"postgresql": PORT},
        # Exec probes get no shell expansion; sh reads the user from the environment.
        probe=ExecProbe(
            ["/bin/sh", "-c", f'exec pg_isready -h 127.0.0.1 -U "$(cat {CREDENTIALS_DIR}/username)" -d "$(cat {CREDENTIALS_DIR}/database)"']
        ),
        scratch=scratch,
        mounts=[
            k8s.core.v1.VolumeMountArgs(name="data", mount_path=DATA_DIR),
            k8s.core.v1.VolumeMountArgs(name="credentials", mount_path=CREDENTIALS_DIR, read_only=True),
        ],
    )
    k8s.core.v1.Service(
        f"{name}-headless",
        metadata=naming.metadata(name, namespace, component=COMPONENT, instance=instance),
        spec=k8s.core.v1.ServiceSpecArgs(
            cluster_ip="None",
            selector=selector,
            ports=[k8s.core.v1.ServicePortArgs(name="postgresql", port=PORT, target_port="postgresql")],
        ),
        opts=opts,
    )
    statefulset = k8s.apps.v1.StatefulSet(
        name,
        metadata=naming.metadata(name, namespace, component=COMPONENT, instance=instance, annotations=scanner_exceptions(db)),
        spec=k8s.apps.v1.StatefulSetSpecArgs(
            service_name=name,
            replicas=1,
            selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector),
            # The claim outlives the StatefulSet, whatever happens to it.
            persistent_volume_claim_retention_policy=k8s.apps.v1.StatefulSetPersistentVolumeClaimRetentionPolicyArgs(
                when_deleted="Retain", when_scaled="Retain"
            ),
            template=k8s.core.v1.PodTemplateSpecArgs(
                metadata=k8s.meta.v1.ObjectMetaArgs(labels=naming.labels(COMPONENT, instance)),
                spec=pod_spec(
                    [db],
                    volumes=scratch_volumes([scratch])
                    + [
                        k8s.core.v1.VolumeArgs(
                            name="credentials",
                            secret=k8s.core.v1.SecretVolumeSourceArgs(secret_name=credentials_secret, default_mode=0o440),
                        )
                    ],
                ),
            ),
            volume_claim_templates=[
                k8s.core.v1.PersistentVolumeClaimArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(name="data", labels=naming.labels(COMPONENT, instance)),
                    spec=k8s.core.v1.PersistentVolumeClaimSpecArgs(
                        access_modes=["ReadWriteOnce"],
                        storage_class_name=config.storage_class or storage_class,
                        resources=k8s.core.v1.VolumeResourceRequirementsArgs(requests={"storage": config.storage_size}),
                    ),
                )
            ],
        ),
        # A first start attaches a volume and runs initdb before the probe answers; the provider's default is 10 minutes.
        opts=options.stateful(
            pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(custom_timeouts=pulumi.CustomTimeouts(create="30m"))), protect
        ),
    )
    return naming.service_host(name, namespace), statefulset
