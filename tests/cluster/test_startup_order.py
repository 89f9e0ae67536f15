"""Start-up order on the real engine: the migration Job is created only once PostgreSQL is ready, however long that takes.

kwok plays a slow first start (a volume attaching, initdb) by keeping the database pod unready for READY_AFTER
(toolchain/kwok-stages.yaml reads the delay from the pod's annotation, which a stack transform adds to the
StatefulSet's pod template for this test only). The engine awaits the StatefulSet until its pod is ready, and the
Job depends on it; without that dependency the Job would be created at once and its pod would race the database.
"""

from __future__ import annotations

import datetime
from typing import Any

import pulumi
from kubernetes import client

from tools.local.engine import EngineRun, program
from tools.testing.plans import NS

READY_AFTER = 20
DELAY_ANNOTATION = "pod-ready.stage.kwok.x-k8s.io/delay"


def _slow_database(args: pulumi.ResourceTransformArgs) -> pulumi.ResourceTransformResult | None:
    if args.type_ != "kubernetes:apps/v1:StatefulSet":
        return None
    props: dict[str, Any] = dict(args.props)
    template = props["spec"]["template"]
    metadata = dict(template.get("metadata") or {})
    metadata["annotations"] = {**(metadata.get("annotations") or {}), DELAY_ANNOTATION: f"{READY_AFTER}s"}
    props["spec"] = {**props["spec"], "template": {**template, "metadata": metadata}}
    return pulumi.ResourceTransformResult(props=props, opts=args.opts)


def slow_database_program() -> None:
    pulumi.runtime.register_stack_transform(_slow_database)
    program()


def _position(run: EngineRun, event: str, urn_suffix: str) -> int:
    for index, item in enumerate(run.events):
        found = getattr(item, event, None)
        if (
            found is not None
            and found.metadata.urn.endswith(urn_suffix)
            and str(getattr(found.metadata.op, "value", found.metadata.op)) == "create"
        ):
            return index
    raise AssertionError(f"no create of {urn_suffix} in the engine's events")


def _ready_since(pod: Any) -> datetime.datetime:
    (ready,) = [c for c in pod.status.conditions if c.type == "Ready" and c.status == "True"]
    return ready.last_transition_time


def test_the_migration_job_is_created_only_after_the_database_is_ready(cluster, deployment, scratch_engine):
    deployment.ensure_up()
    deployment.engine.destroy()
    deployment.changed()
    engine = scratch_engine(pulumi_program=slow_database_program)
    try:
        run = engine.up()
        api = cluster.api()
        pod = client.CoreV1Api(api).read_namespaced_pod("mlflow-postgresql-0", NS)
        assert pod.metadata.annotations[DELAY_ANNOTATION] == f"{READY_AFTER}s"
        ready = _ready_since(pod)
        # kwok held it unready as asked (timestamps are whole seconds).
        assert (ready - pod.metadata.creation_timestamp).total_seconds() >= READY_AFTER - 1
        (job,) = [j for j in client.BatchV1Api(api).list_namespaced_job(NS).items if j.metadata.name.startswith("mlflow-migrate-")]
        assert job.metadata.creation_timestamp >= ready, (
            f"the Job was created at {job.metadata.creation_timestamp}, the database ready at {ready}"
        )
        # The engine's own order: the StatefulSet's create completed before the Job's began.
        assert _position(run, "res_outputs_event", "StatefulSet::mlflow-postgresql") < _position(
            run, "resource_pre_event", "Job::mlflow-migrate"
        )
    finally:
        engine.destroy()
