"""Settings of MLflow's metadata database (``database.*``): PostgreSQL in the cluster, RDS, or a database of yours."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, SecretStr, model_validator

from mlops_platform.settings_base import (
    Allowed,
    ConfigError,
    DnsLabel,
    DnsName,
    Image,
    KeyRuleError,
    Model,
    Resources,
    Storage,
    check,
)

# The major the end-to-end test runs against (Debian 12 ships PostgreSQL 15).
POSTGRES_IMAGE = "docker.io/library/postgres:15.18"
# Of PostgreSQL's max_connections: superuser_reserved_connections (3) and room for the migration, psql and backups.
POSTGRES_RESERVED_CONNECTIONS = 10
# SQLAlchemy dialect+driver of an external database, as the MLflow image's drivers name them (psycopg2, PyMySQL).
EXTERNAL_SCHEMES = ("postgresql+psycopg2", "mysql+pymysql")
_EXTERNAL_URI = re.compile(
    "^(" + "|".join(map(re.escape, EXTERNAL_SCHEMES)) + r")://[^:@/\s]+:[^@\s]+@[A-Za-z0-9.-]+(:[0-9]{1,5})?/[A-Za-z0-9_-]+(\?\S*)?$"
)
# The keys only a PostgreSQL this program runs in the cluster reads.
IN_CLUSTER_DATABASE_KEYS = frozenset({"image", "storageClass", "storageSize", "maxConnections", "resources"})


class RdsConfig(Model):
    """An RDS PostgreSQL instance (target eks)."""

    instance_class: str = Field(default="db.t4g.medium", description="The RDS instance class.")
    allocated_storage_gb: int = Field(default=50, ge=20, le=65536, description="Storage of the instance, in GB.")
    engine_version: str = Field(default="15", description="PostgreSQL version of the instance; not newer than database.image's pg_dump.")
    subnet_group_name: str = Field(description="The DB subnet group the instance is placed in.")
    security_group_ids: list[str] = Field(min_length=1, description="Security groups of the instance.")
    backup_retention_days: int = Field(default=14, ge=1, le=35, description="Days RDS keeps its automated backups.")
    multi_az: bool = Field(default=True, description="A standby in a second availability zone.")


def _external_uri(value: SecretStr) -> SecretStr:
    """The URI holds a password: the message names the allowed forms and never the value."""
    if not _EXTERNAL_URI.match(value.get_secret_value()):
        raise KeyRuleError(
            "",
            "is not a database URI of an allowed form (value hidden); allowed: "
            "postgresql+psycopg2://USER:PASSWORD@HOST:PORT/DATABASE or mysql+pymysql://USER:PASSWORD@HOST:PORT/DATABASE",
            quotes_value=False,
        )
    return value


class ExistingSecret(Model):
    """A Secret the user manages in the tracking namespace, holding the backend URI under ``key``."""

    name: DnsLabel = Field(description="Name of the Secret in the tracking namespace.")
    key: Annotated[str, check(re.compile(r"^[-._a-zA-Z0-9]{1,253}$"), "a Secret data key, e.g. uri")] = Field(
        default="uri", description="The Secret's data key holding the URI."
    )


class ExternalDatabaseConfig(Model):
    """A database this program does not run: the URI from secret config, or from an existing Secret."""

    # Accepted only as a secret (checked in parse_config): it carries the password.
    uri: (
        Annotated[
            SecretStr, AfterValidator(_external_uri), Allowed("a postgresql+psycopg2:// or mysql+pymysql:// URI with user and password")
        ]
        | None
    ) = Field(default=None, description="postgresql+psycopg2://USER:PASSWORD@HOST:PORT/DATABASE or mysql+pymysql://...; secret only.")
    existing_secret: ExistingSecret | None = Field(default=None, description="A Secret of yours holding the URI (instead of uri).")

    @model_validator(mode="after")
    def _one_source(self) -> ExternalDatabaseConfig:
        if (self.uri is None) == (self.existing_secret is None):
            raise KeyRuleError(
                "uri",
                "exactly one of uri and existingSecret is required; allowed: secret uri "
                "(`pulumi config set --secret --path database.external.uri ...`) or existingSecret {name, key}",
                quotes_value=False,
            )
        return self


class DatabaseConfig(Model):
    """MLflow's metadata database."""

    mode: Literal["inCluster", "rds", "external"] = Field(
        default="inCluster", description="inCluster (PostgreSQL in the cluster), rds (eks only) or external (a database of yours)."
    )
    image: Image = Field(
        default=POSTGRES_IMAGE, description="In-cluster PostgreSQL's image; its pg_dump also takes the pre-migration dump."
    )
    name: DnsLabel = Field(default="mlflow", description="The database's name.")
    user: DnsLabel = Field(default="mlflow", description="The login the server and its jobs use.")
    storage_class: DnsName | None = Field(
        default=None, description="StorageClass of in-cluster PostgreSQL's volume. Default: the target's."
    )
    storage_size: Storage = Field(default="10Gi", description="Size of in-cluster PostgreSQL's volume.")
    # The image's default is 100; the tracking server's pools are checked against it (see TrackingConfig.db_pool_size).
    max_connections: int = Field(
        default=200, ge=20, le=5000, description="In-cluster PostgreSQL's max_connections; the servers' pools must fit in it less 10."
    )
    resources: Resources = Field(
        default=Resources(cpu_request="100m", memory_request="256Mi", memory_limit="1Gi"),
        description="In-cluster PostgreSQL's requests and limits.",
    )
    rds: RdsConfig | None = Field(default=None, description="The RDS instance (mode rds).")
    external: ExternalDatabaseConfig | None = Field(default=None, description="Where the database is (mode external).")

    @model_validator(mode="after")
    def _rds_needs_settings(self) -> DatabaseConfig:
        if self.mode == "rds" and self.rds is None:
            raise KeyRuleError("rds", "is required when database.mode is rds; allowed: an object with subnetGroupName and securityGroupIds")
        if self.mode == "external" and self.external is None:
            raise KeyRuleError(
                "external",
                "is required when database.mode is external; allowed: an object with a secret uri or existingSecret",
                quotes_value=False,
            )
        if self.mode != "external" and self.external is not None:
            raise KeyRuleError("external", f"is set, but database.mode is {self.mode}; allowed: mode external, or external left out", False)
        return self

    @property
    def required_external(self) -> ExternalDatabaseConfig:
        """The external block, which validation requires in external mode."""
        if self.external is None:
            raise ConfigError("mlops-platform:database.external: is required when database.mode is external")
        return self.external

    @property
    def required_rds(self) -> RdsConfig:
        """The rds block, which validation requires in rds mode: the typed way for RDS code to read it."""
        if self.rds is None:
            raise ConfigError("mlops-platform:database.rds: is required when database.mode is rds")
        return self.rds


def postgres_major(version_or_image: str) -> int | None:
    """The PostgreSQL major of ``15.18`` or ``docker.io/library/postgres:15.18`` (None when not spelled that way)."""
    match = re.match(r"^(\d+)", version_or_image.rsplit(":", 1)[-1] if "/" in version_or_image else version_or_image)
    return int(match.group(1)) if match else None
