"""`pulumi destroy`: everything the program made goes, other tools' dashboard links stay, protected data is refused."""

from __future__ import annotations

import json

import pytest
from kubernetes import client, dynamic
from kubernetes.dynamic.exceptions import NotFoundError
from pulumi import automation as auto

from tools.testing import cluster_fixtures
from tools.testing.harness import run_program, stack_config


def _exists(api, manifest) -> bool:
    resource = dynamic.DynamicClient(api).resources.get(api_version=manifest["apiVersion"], kind=manifest["kind"])
    meta = manifest["metadata"]
    try:
        resource.get(name=meta["name"], namespace=meta.get("namespace"))
    except NotFoundError:
        return False
    return True


# The dashboard tab opens the selected profile's workspace through the browser server (kubeflow/integration.py).
TAB = "/mlflow/kubeflow/{ns}/"


def _links(api) -> list[dict]:
    live = client.CoreV1Api(api).read_namespaced_config_map(cluster_fixtures.DASHBOARD_CONFIG_MAP, "kubeflow")
    return json.loads(live.data["links"])["menuLinks"]


def _gone(api, manifest) -> bool:
    """Deleted, or on its way out: namespaces and claims finish terminating after the engine returns."""
    if not _exists(api, manifest):
        return True
    resource = dynamic.DynamicClient(api).resources.get(api_version=manifest["apiVersion"], kind=manifest["kind"])
    meta = manifest["metadata"]
    return resource.get(name=meta["name"], namespace=meta.get("namespace")).metadata.deletionTimestamp is not None


def _unlabelled(api, manifest) -> bool:
    resource = dynamic.DynamicClient(api).resources.get(api_version=manifest["apiVersion"], kind=manifest["kind"])
    meta = manifest["metadata"]
    live = resource.get(name=meta["name"], namespace=meta.get("namespace")).metadata.labels or {}
    return not set(meta.get("labels") or {}) & set(live)


def test_destroy_removes_what_the_program_made_and_keeps_other_links(cluster, deployment):
    deployment.ensure_up()
    api = cluster.api()
    plan = run_program("dev")
    made = [(r, m) for r, m in plan.manifests()]
    manifests = [m for _, m in made]
    assert all(_exists(api, m) for m in manifests)
    assert TAB in [link["link"] for link in _links(api)]
    try:
        deployment.engine.destroy()
        # A patch changed an object someone else made: destroy takes back the labels it set, not the object.
        left = [
            f"{m['kind']} {m['metadata'].get('namespace')}/{m['metadata']['name']}"
            for r, m in made
            if not (_unlabelled(api, m) if r.type.endswith("Patch") else _gone(api, m))
        ]
        assert left == []
        assert _links(api) == cluster_fixtures.OTHER_LINKS
    finally:
        deployment.changed()


def test_with_data_protection_destroy_is_refused_and_retained_objects_outlive_the_state(cluster, deployment, scratch_engine):
    deployment.ensure_up()
    deployment.engine.destroy()
    deployment.changed()
    engine = scratch_engine(overrides={"dataProtection": True})
    config, secret_keys = stack_config("dev")
    config["mlops-platform:dataProtection"] = "true"
    plan = run_program("dev", config=config, secret_keys=secret_keys)
    protected = [r for r in plan.resources if r.protect]
    retained = [(r, r.inputs) for r in plan.resources if r.retain_on_delete and r.is_kubernetes]
    assert protected and retained
    api = cluster.api()
    try:
        engine.up()
        with pytest.raises(auto.errors.CommandError) as refused:
            engine.destroy()
        assert "protected" in str(refused.value)
        assert all(_exists(api, inputs) for _, inputs in retained)

        engine.cli("state", "unprotect", "--all", "--yes")
        engine.destroy()
        assert engine.stack().export_stack().deployment.get("resources") in (None, [])
        kept = [inputs for _, inputs in retained if _exists(api, inputs)]
        assert len(kept) == len(retained), "every retained object stays in the API server after it leaves the state"
    finally:
        for _, inputs in retained:
            resource = dynamic.DynamicClient(api).resources.get(api_version=inputs["apiVersion"], kind=inputs["kind"])
            try:
                resource.delete(name=inputs["metadata"]["name"], namespace=inputs["metadata"].get("namespace"))
            except NotFoundError:
                pass
