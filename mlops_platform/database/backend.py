"""The one place that knows where MLflow's metadata lives (in-cluster PostgreSQL, RDS or the owner's database) and how it is reached.

``declare`` returns a :class:`Backend`: the Secret key the server and its jobs read the backend store URI from,
whatever pg_dump needs (nothing for the owner's database, which is not ours to dump), and the rotating logins.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from mlops_platform.database import external, postgres
from mlops_platform.database.rotation import LoginRotation
from mlops_platform.database.settings import DatabaseConfig


@dataclass(frozen=True)
class Dump:
    """How pg_dump reaches the database: a libpq URL without password.

    The password (key ``password``) is in the Secret that holds the backend store URI (``Backend.uri_secret``).
    """

    url: pulumi.Input[str]
    # Upper bound of one dump's size (the database's own storage size): a custom-format dump holds the rows
    # compressed and no indexes, so it never outgrows the volume the database lives on.
    size: str
    # What the engine awaits until the database answers (the StatefulSet, or the RDS instance).
    server: pulumi.Resource
    # With rotating logins the URL names no user: PGUSER comes from this key of the Secret.
    user_key: str | None = None


@dataclass(frozen=True)
class Backend:
    """The metadata database as its clients see it."""

    # (Secret name, key) of MLFLOW_BACKEND_STORE_URI.
    uri_secret: tuple[pulumi.Input[str], str]
    # The backend store URI itself, for the authorization app's own tables; None for the owner's database.
    uri: pulumi.Output[str] | None = None
    # The generated password (of the login the server uses); None for the owner's database.
    password: pulumi.Output[str] | None = None
    # None for the owner's database: no dump or backup of ours (it may not even be PostgreSQL).
    dump: Dump | None = None
    # rotation.database on in-cluster PostgreSQL: the login's generations, retired once every server rolled.
    logins: LoginRotation | None = None

    @property
    def rotated(self) -> list[pulumi.Resource]:
        """Nothing reads a rotated login before its rotation Job gave it its password."""
        return [self.logins.login.rotated] if self.logins else []


def declare(
    name: str,
    *,
    config: DatabaseConfig,
    namespace: str,
    namespace_resource: pulumi.Resource,
    storage_class: str,
    secret_metadata: k8s.meta.v1.ObjectMetaArgs,
    rotation_image: str,
    generation: int,
    protect: bool,
    opts: pulumi.ResourceOptions,
) -> Backend:
    """The backend store: the owner's (``external``), or PostgreSQL with a generated password in the cluster or on RDS.

    ``opts`` parents what is declared; what runs in ``namespace`` also waits for it. ``generation`` is rotation.database,
    whose logins are generated and rotated by Jobs in ``rotation_image`` (in-cluster PostgreSQL only).
    """
    in_namespace = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[namespace_resource]))
    if config.mode == "external":
        return Backend(external.backend_secret(f"{name}-db", config=config.required_external, metadata=secret_metadata, opts=in_namespace))

    password = random.RandomPassword(f"{name}-db-password", length=32, special=False, opts=opts)
    secret_name = f"{name}-db"
    server: pulumi.Resource
    if config.mode == "rds":
        from mlops_platform.database import rds

        instance = rds.rds_postgres(
            f"{name}-db",
            config=config.required_rds,
            database=config.name,
            user=config.user,
            password=password.result,
            protect=protect,
            opts=opts,
        )
        host: pulumi.Input[str] = instance.address
        server = instance
    else:
        host, server = postgres.deploy(
            f"{name}-postgresql",
            namespace=namespace,
            config=config,
            storage_class=storage_class,
            credentials_secret=secret_name,
            protect=protect,
            opts=in_namespace,
        )
    dump_size = f"{config.required_rds.allocated_storage_gb}Gi" if config.mode == "rds" else config.storage_size
    uri = pulumi.Output.concat("postgresql+psycopg2://", config.user, ":", password.result, "@", host, f":{postgres.PORT}/", config.name)
    secret = k8s.core.v1.Secret(
        f"{name}-db",
        metadata=secret_metadata,
        type="Opaque",
        string_data={"username": config.user, "password": password.result, "database": config.name, "uri": uri},
        opts=in_namespace,
    )
    if config.mode == "inCluster" and generation:
        logins = LoginRotation(
            name,
            namespace=namespace,
            user=config.user,
            database=config.name,
            host=host,
            generation=generation,
            owner_secret=secret_name,
            owner_password=password.result,
            image=rotation_image,
            opts=in_namespace,
        )
        login = logins.login
        # The login changes with the generation: pg_dump takes its user from the Secret (PGUSER), not the URL.
        url = pulumi.Output.concat("postgresql://", host, f":{postgres.PORT}/", config.name)
        return Backend((login.secret, "uri"), login.uri, login.password, Dump(url, dump_size, server, "username"), logins)
    dump = Dump(postgres.url_without_password(config.user, host, config.name), dump_size, server)
    return Backend((secret.metadata.name, "uri"), uri, password.result, dump)
