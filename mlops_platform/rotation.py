"""Credential rotation as config: a generation per credential (``rotation.*``) feeds its RandomPasswords' keepers.

A generation of 0 adds no keepers and no annotation, so a stack that never rotated is declared exactly as
before rotation existed (adding keepers with a value to an existing RandomPassword would replace it).
"""

from __future__ import annotations

from collections.abc import Mapping

# On a pod template: the generations of the credentials its containers read at start, so a rotation rolls the pods.
ANNOTATION = "mlops-platform/credential-generations"


def keepers(generation: int) -> dict[str, str] | None:
    """pulumi-random replaces a password when a keeper's value changes; generation 0 keeps the password first generated."""
    return {"rotation": str(generation)} if generation else None


def pod_annotations(generations: Mapping[str, int]) -> dict[str, str]:
    """``{ANNOTATION: "database=1,minioUsers=2"}`` for the non-zero generations a pod reads; empty when none."""
    value = ",".join(f"{name}={generation}" for name, generation in sorted(generations.items()) if generation)
    return {ANNOTATION: value} if value else {}
