"""Credential rotation as config: a generation per credential (``rotation.*``) feeds its RandomPasswords' keepers.

A generation of 0 adds no keepers and no annotation, so a stack that never rotated is declared exactly as
before rotation existed (adding keepers with a value to an existing RandomPassword would replace it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

from pydantic import Field

from mlops_platform.settings_base import Model

# On a pod template: the generations of the credentials its containers read at start, so a rotation rolls the pods.
ANNOTATION = "mlops-platform/credential-generations"

Generation = Annotated[int, Field(ge=0, le=1_000_000)]


class RotationConfig(Model):
    """A generation per generated credential: raising one by one rotates that credential at the next `pulumi up`.

    0 (the default) is the credential as first generated. Each number feeds its RandomPasswords' ``keepers``
    only when above 0, so a stack that never rotates is declared exactly as before rotation existed.
    """

    # The PostgreSQL login of the server and its jobs (two logins take turns: docs/operations.md).
    database: Generation = Field(default=0, description="Generation of the PostgreSQL login of the server and its jobs (inCluster only).")
    # MinIO's root user (MinIO restarts to read it).
    minio_root: Generation = Field(default=0, description="Generation of MinIO's root user (microk8s only).")
    # Every per-client MinIO user: the tracking server's, the backup job's, each profile's and serving namespace's.
    minio_users: Generation = Field(default=0, description="Generation of every per-client MinIO user (microk8s only).")
    # basic-auth's admin user (its password lives in MLflow's auth tables).
    tracking_admin: Generation = Field(default=0, description="Generation of basic-auth's admin password (tracking.auth basic only).")


def keepers(generation: int) -> dict[str, str] | None:
    """pulumi-random replaces a password when a keeper's value changes; generation 0 keeps the password first generated."""
    return {"rotation": str(generation)} if generation else None


def pod_annotations(generations: Mapping[str, int]) -> dict[str, str]:
    """``{ANNOTATION: "database=1,minioUsers=2"}`` for the non-zero generations a pod reads; empty when none."""
    value = ",".join(f"{name}={generation}" for name, generation in sorted(generations.items()) if generation)
    return {ANNOTATION: value} if value else {}
