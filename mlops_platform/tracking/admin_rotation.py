"""The Job of rotation.trackingAdmin: basic-auth's admin password, changed in MLflow's auth tables.

The server pods need not roll: they read MLFLOW_AUTH_ADMIN_PASSWORD only to create a missing admin user, and
every request is checked against the tables. Clients of the admin user switch to the new password (the secret
output ``trackingAdminPassword``) when this Job completes; the old one is refused from then on.
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from mlops_platform import pod_scripts
from mlops_platform.database import postgres
from mlops_platform.k8s import jobs
from mlops_platform.k8s.containers import TMP, container, plain_env, secret_env
from mlops_platform.settings_base import Resources
from mlops_platform.tracking.auth import ADMIN_USER

COMPONENT = "mlflow-admin-password"
SOURCE = pod_scripts.source("admin_password")
_RESOURCES = Resources(cpu_request="50m", cpu_limit="500m", memory_request="256Mi", memory_limit="1Gi")


def admin_password_job(
    name: str,
    *,
    namespace: str,
    image: str,
    generation: int,
    backend_uri: tuple[pulumi.Input[str], str],
    auth_secret: k8s.core.v1.Secret,
    base_env: dict[str, str],
    opts: pulumi.ResourceOptions,
) -> k8s.batch.v1.Job:
    """One Job per generation; ``opts`` should wait for the migration (the auth tables) and any login rotation."""
    job_container = container(
        "admin-password",
        image,
        _RESOURCES,
        command=["python", "-c", SOURCE],
        env=[
            secret_env("MLFLOW_BACKEND_STORE_URI", *backend_uri),
            secret_env("MLFLOW_AUTH_ADMIN_PASSWORD", auth_secret.metadata.name, "admin-password"),
            *plain_env({"MLFLOW_AUTH_ADMIN_USERNAME": ADMIN_USER, **base_env}),
        ],
        scratch=[TMP],
    )
    return jobs.generation_job(
        f"{name}-admin-password",
        object_name=f"{name}-admin-password-{generation}",
        namespace=namespace,
        component=COMPONENT,
        instance=name,
        job_container=job_container,
        labels={postgres.CLIENT_LABEL: "true"},
        backoff_limit=3,
        opts=opts,
    )
