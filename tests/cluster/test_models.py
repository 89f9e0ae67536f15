"""A model pinned from a real MLflow registry on 127.0.0.1: moving its alias is one InferenceService update."""

from __future__ import annotations

import json

from kubernetes import dynamic

from tests.cluster import expect
from tests.serving.test_registry import MODEL, NAMESPACE, entry, registry, serving  # noqa: F401 - registry is a fixture


def plain_registry_overrides(serving_config: dict) -> dict:
    """The registry fixture is a plain MLflow server, without workspaces (tests/cluster/test_tenancy.py runs them).

    Without them the Kubeflow route would reach a server that authenticates nobody, which the policy pack refuses,
    so Kubeflow is off; monitoring's mesh principal is only accepted with Kubeflow, so monitoring is off too.
    """
    return {"serving": serving_config, "kubeflow": {"enabled": False}, "monitoring": {"enabled": False}}


def test_moving_the_alias_previews_exactly_the_inference_service_update(cluster, deployment, registry):  # noqa: F811
    deployment.ensure_up()
    config = serving(registry.uri, entry(alias="production"))
    config["namespaces"] = [NAMESPACE]
    overrides = plain_registry_overrides(config)
    isvcs = dynamic.DynamicClient(cluster.api()).resources.get(api_version="serving.kserve.io/v1beta1", kind="InferenceService")
    try:
        registry.promote("1")
        deployment.engine.write_stack_file(overrides)
        deployment.changed()
        deployment.engine.up()
        live = isvcs.get(name=MODEL, namespace=NAMESPACE).to_dict()
        assert live["spec"]["predictor"]["model"]["storageUri"] == registry.versions["1"].location

        registry.promote("2")
        preview = deployment.engine.preview()
        changes = expect.engine_changes(preview)
        assert changes == {
            "create": set(),
            "delete": set(),
            "change": {("kubernetes:serving.kserve.io/v1beta1:InferenceService", f"serving-{NAMESPACE}-{MODEL}")},
        }, changes
        (step,) = [s for s in preview.steps() if s["op"] == "update"]
        assert expect.changed_paths(step["old_inputs"], step["inputs"]) == {
            "spec.predictor.model.storageUri",
            "metadata.annotations.mlops-platform/model-version",
            "metadata.annotations.mlops-platform/run-id",
        }
        assert step["old_inputs"]["spec"]["predictor"]["model"]["storageUri"] == registry.versions["1"].location
        assert step["inputs"]["spec"]["predictor"]["model"]["storageUri"] == registry.versions["2"].location
        assert step["inputs"]["metadata"]["annotations"]["mlops-platform/model-version"] == "2"

        deployment.engine.up()
        live = isvcs.get(name=MODEL, namespace=NAMESPACE).to_dict()
        assert live["spec"]["predictor"]["model"]["storageUri"] == registry.versions["2"].location
        assert json.dumps(live).count(registry.versions["1"].location) == 0
    finally:
        deployment.engine.write_stack_file({})
        deployment.changed()


def test_moving_the_challenger_previews_exactly_the_canary_update(cluster, deployment, registry):  # noqa: F811
    """During a canary, a new challenger changes what the latest revision serves and nothing else: production's fields stay."""
    deployment.ensure_up()
    config = serving(
        registry.uri, entry(alias="production", canary={"alias": "challenger", "trafficPercent": 10}), deploymentMode="Serverless"
    )
    config["namespaces"] = [NAMESPACE]
    isvcs = dynamic.DynamicClient(cluster.api()).resources.get(api_version="serving.kserve.io/v1beta1", kind="InferenceService")
    v1, v2, v3 = (registry.versions[v] for v in ("1", "2", "3"))
    try:
        registry.promote("1")
        registry.promote("2", "challenger")
        deployment.engine.write_stack_file(plain_registry_overrides(config))
        deployment.changed()
        deployment.engine.up()
        live = isvcs.get(name=MODEL, namespace=NAMESPACE).to_dict()
        assert live["spec"]["predictor"]["canaryTrafficPercent"] == 10
        assert live["spec"]["predictor"]["model"]["storageUri"] == v2.location
        assert live["metadata"]["annotations"]["mlops-platform/model-version"] == "1"

        registry.promote("3", "challenger")
        preview = deployment.engine.preview()
        assert expect.engine_changes(preview) == {
            "create": set(),
            "delete": set(),
            "change": {("kubernetes:serving.kserve.io/v1beta1:InferenceService", f"serving-{NAMESPACE}-{MODEL}")},
        }
        (step,) = [s for s in preview.steps() if s["op"] == "update"]
        assert expect.changed_paths(step["old_inputs"], step["inputs"]) == {
            "spec.predictor.model.storageUri",
            "metadata.annotations.mlops-platform/canary-version",
            "metadata.annotations.mlops-platform/canary-run-id",
        }
        old, new = step["old_inputs"], step["inputs"]
        assert (old["spec"]["predictor"]["model"]["storageUri"], new["spec"]["predictor"]["model"]["storageUri"]) == (
            v2.location,
            v3.location,
        )
        assert new["metadata"]["annotations"]["mlops-platform/canary-version"] == "3"
        assert new["metadata"]["annotations"]["mlops-platform/run-id"] == v1.run_id
        assert new["spec"]["predictor"]["canaryTrafficPercent"] == 10
    finally:
        deployment.engine.write_stack_file({})
        deployment.changed()
