"""The rotations' one-shot Jobs (mlops_platform/k8s/jobs.py): one per generation, retried by the next `pulumi up`."""

from __future__ import annotations

import json

import pytest

from mlops_platform.tracking.settings import MLFLOW_IMAGE
from tools.testing.plans import job, rotated, run_with

PROFILE = "kubeflow-user-example-com"
TRAINING = {"name": "nightly", "namespace": PROFILE, "image": MLFLOW_IMAGE, "command": ["python", "train.py"]}

# (Pulumi name, the generation its object is named with, backoffLimit)
JOBS = [
    ("mlflow-db-rotate", "mlflow-db-rotate-3", 2),
    ("mlflow-db-retire", "mlflow-db-retire-3", 2),
    ("mlflow-admin-password", "mlflow-admin-password-2", 3),
]


@pytest.fixture(scope="module")
def plan():
    return rotated(basic=True, database=3, trackingAdmin=2)


@pytest.mark.parametrize(("name", "object_name", "backoff"), JOBS, ids=[n for n, _, _ in JOBS])
def test_a_generation_job_is_named_by_its_generation_and_replaced_not_awaited_again(plan, name, object_name, backoff):
    declared = job(plan, name)
    metadata, spec = declared.inputs["metadata"], declared.inputs["spec"]
    assert metadata["name"] == object_name
    # A Job's spec is immutable: a new generation replaces it, the old one deleted first.
    assert declared.delete_before_replace
    # A failed step is tried again by the next `pulumi up` rather than awaited again.
    assert metadata["annotations"]["pulumi.com/replaceUnready"] == "true"
    assert (spec["backoffLimit"], spec["activeDeadlineSeconds"]) == (backoff, 900)
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert [v["name"] for v in pod["volumes"]] == ["tmp"]
    assert [m["mountPath"] for m in pod["containers"][0]["volumeMounts"]] == ["/tmp"]


def test_every_job_the_program_declares_is_deleted_before_it_is_replaced(dev, prod, plan):
    """A Job's template is immutable: one replaced under the same name must go first, or the new one never runs."""
    training = run_with("dev", training=json.dumps([TRAINING]))
    jobs = [(p.stack, r.name, r.delete_before_replace) for p in (dev, prod, plan, training) for r in p.kinds("Job")]
    assert {name for _, name, _ in jobs} >= {"mlflow-migrate", "mlflow-bootstrap", "mlflow-db-rotate", f"training-{PROFILE}-nightly"}
    assert [j for j in jobs if not j[2]] == []
