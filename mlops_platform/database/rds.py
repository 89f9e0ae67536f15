"""Managed PostgreSQL (RDS) for the EKS target. Imported only when database.mode is rds.

pulumi_aws is large (about 3 s to import cold); the dev target never pays for it.
"""

from __future__ import annotations

import pulumi
from pulumi_aws import rds

from mlops_platform.database.settings import RdsConfig
from mlops_platform.k8s import options


def rds_postgres(
    name: str,
    *,
    config: RdsConfig,
    database: str,
    user: str,
    password: pulumi.Output[str],
    protect: bool,
    opts: pulumi.ResourceOptions,
) -> rds.Instance:
    """Managed PostgreSQL that refuses deletion and leaves a final snapshot if forced."""
    return rds.Instance(
        name,
        engine="postgres",
        engine_version=config.engine_version,
        instance_class=config.instance_class,
        allocated_storage=config.allocated_storage_gb,
        storage_type="gp3",
        storage_encrypted=True,
        db_name=database,
        username=user,
        password=password,
        db_subnet_group_name=config.subnet_group_name,
        vpc_security_group_ids=config.security_group_ids,
        publicly_accessible=False,
        multi_az=config.multi_az,
        backup_retention_period=config.backup_retention_days,
        deletion_protection=True,
        skip_final_snapshot=False,
        final_snapshot_identifier=f"{name}-final",
        copy_tags_to_snapshot=True,
        auto_minor_version_upgrade=True,
        iam_database_authentication_enabled=False,
        opts=options.stateful(opts, protect),
    )
