"""The migration Job through the real engine: created and completed before the Deployment, never rerun by a no-op up, rerun by a new image.

kwok completes Job pods (toolchain/kwok-stages.yaml); no container runs here, so this shows
the engine's and the API server's side: order, awaiting completion, names, reruns. What the
containers do is the loopback e2e's part (tests/e2e/test_maintenance.py).
"""

from __future__ import annotations

import json
from typing import Any

from kubernetes import client

from tests.cluster import expect
from tools.local.engine import EngineRun
from tools.testing.harness import stack_config
from tools.testing.plans import NS

OTHER_IMAGE = "ghcr.io/mlflow/mlflow:v3.17.1-full"
# Steps that create or change an object (a delete or an unchanged resource says nothing of the order).
STEPS = {"create", "update", "replace", "create-replacement"}


EVENTS = {"pre": "resource_pre_event", "outputs": "res_outputs_event"}


def _index(run: EngineRun, kind: str, urn_suffix: str) -> int | None:
    """Position in the engine's event stream of a resource's step start ("pre") or completion ("outputs")."""
    for position, event in enumerate(run.events):
        found = getattr(event, EVENTS[kind], None)
        if (
            found is not None
            and found.metadata.urn.endswith(urn_suffix)
            and str(getattr(found.metadata.op, "value", found.metadata.op)) in STEPS
        ):
            return position
    return None


def _migration_jobs(api: Any) -> dict[str, Any]:
    jobs = client.BatchV1Api(api).list_namespaced_job(NS).items
    return {j.metadata.name: j for j in jobs if j.metadata.name.startswith("mlflow-migrate-")}


def _complete(job: Any) -> bool:
    return any(c.type == "Complete" and c.status == "True" for c in job.status.conditions or [])


def _assert_migrated_before_rollout(run: EngineRun) -> None:
    done = _index(run, "outputs", "Job::mlflow-migrate")
    rollout = _index(run, "pre", "Deployment::mlflow")
    assert done is not None and rollout is not None, "the up neither created the migration Job nor changed the Deployment"
    assert done < rollout, "the Deployment's step started before the migration Job completed"


def test_up_completes_the_migration_job_before_the_deployment_and_a_no_op_up_does_not_rerun_it(cluster, deployment):
    run = deployment.ensure_up()
    if _index(run, "outputs", "Job::mlflow-migrate") is None:
        # An earlier test left the stack deployed: start from nothing to see the creation order.
        deployment.engine.destroy()
        deployment.changed()
        run = deployment.ensure_up()
    _assert_migrated_before_rollout(run)
    api = cluster.api()
    (job,) = _migration_jobs(api).values()
    assert _complete(job)
    live = client.AppsV1Api(api).read_namespaced_deployment("mlflow", NS)
    assert live.metadata.creation_timestamp >= job.status.completion_time
    assert live.spec.template.spec.init_containers is None

    again = deployment.engine.up(expect_no_changes=True)
    assert expect.engine_changes(again) == {"create": set(), "delete": set(), "change": set()}
    assert {name: j.metadata.uid for name, j in _migration_jobs(api).items()} == {job.metadata.name: job.metadata.uid}


def test_a_new_image_runs_a_new_migration_job_once_before_the_rollout(cluster, deployment):
    deployment.ensure_up()
    api = cluster.api()
    (before,) = _migration_jobs(api)
    config, _ = stack_config("dev")
    tracking = json.loads(config.get("mlops-platform:tracking", "{}"))
    try:
        deployment.engine.write_stack_file({"tracking": {**tracking, "image": OTHER_IMAGE}})
        deployment.changed()
        run = deployment.engine.up()
        _assert_migrated_before_rollout(run)
        (after,) = _migration_jobs(api).values()
        assert after.metadata.name != before and _complete(after)
        assert {c.image for c in after.spec.template.spec.containers} == {OTHER_IMAGE}
        live = client.AppsV1Api(api).read_namespaced_deployment("mlflow", NS)
        assert live.spec.template.spec.containers[0].image == OTHER_IMAGE

        again = deployment.engine.up(expect_no_changes=True)
        assert expect.engine_changes(again) == {"create": set(), "delete": set(), "change": set()}
        assert {j.metadata.uid for j in _migration_jobs(api).values()} == {after.metadata.uid}
    finally:
        deployment.engine.write_stack_file({})
        deployment.changed()
