"""An external database (``database.mode: external``): PostgreSQL or MySQL that this program does not run.

The backend URI comes from secret config and goes only into a Secret, or it stays in a
Secret the user already manages in the tracking namespace. Nothing else is declared: the
server, its backups and its users are the owner's.
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from mlops_platform.database.settings import ExternalDatabaseConfig

URI_KEY = "uri"


def backend_secret(
    name: str, *, config: ExternalDatabaseConfig, metadata: k8s.meta.v1.ObjectMetaArgs, opts: pulumi.ResourceOptions
) -> tuple[pulumi.Input[str], str]:
    """(Secret name, key) under which the tracking server and its migration read ``MLFLOW_BACKEND_STORE_URI``."""
    if config.existing_secret is not None:
        return config.existing_secret.name, config.existing_secret.key
    if config.uri is None:
        raise ValueError("database.external: validation requires uri or existingSecret")
    secret = k8s.core.v1.Secret(
        name,
        metadata=metadata,
        type="Opaque",
        string_data={URI_KEY: pulumi.Output.secret(config.uri.get_secret_value())},
        opts=opts,
    )
    return secret.metadata.name, URI_KEY
