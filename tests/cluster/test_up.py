"""`pulumi up` through the real engine: everything becomes ready, a second up is a no-op, config changes converge."""

from __future__ import annotations

import base64
import json
from typing import Any

from kubernetes import client, dynamic

from tests.cluster import expect
from tests.cluster.conftest import ADDED_PROFILE
from tools.testing import cluster_fixtures
from tools.testing.harness import run_program, stack_config, with_overrides

STACK_PROFILE = "kubeflow-user-example-com"


def _live(api: Any, manifest: dict[str, Any]) -> Any:
    resource = dynamic.DynamicClient(api).resources.get(api_version=manifest["apiVersion"], kind=manifest["kind"])
    meta = manifest["metadata"]
    return resource.get(name=meta["name"], namespace=meta.get("namespace")).to_dict()


def _contains(live: Any, declared: Any, path: str = "") -> list[str]:
    """Every declared field is stored with the declared value (the server may add defaults around it)."""
    if declared in ([], {}) and live is None:
        return []  # the provider omits empty lists and maps
    if isinstance(declared, dict):
        if not isinstance(live, dict):
            return [f"{path}: stored {type(live).__name__}"]
        return [p for k, v in declared.items() for p in _contains(live.get(k), v, f"{path}.{k}")]
    if isinstance(declared, list):
        if not isinstance(live, list) or len(live) != len(declared):
            return [f"{path}: stored {live!r:.80}"]
        return [p for i, (a, b) in enumerate(zip(live, declared, strict=True)) for p in _contains(a, b, f"{path}[{i}]")]
    if live != declared and not (isinstance(declared, (int, float)) and str(live) == str(declared)):
        return [f"{path}: stored {live!r:.60} declared {declared!r:.60}"]
    return []


def test_up_makes_every_workload_ready_and_stores_every_object_as_declared(cluster, deployment):
    deployment.ensure_up()
    plan = run_program("dev")
    api = cluster.api()
    apps, batch = client.AppsV1Api(api), client.BatchV1Api(api)

    for resource in plan.kinds("Deployment"):
        live = apps.read_namespaced_deployment(resource.k8s_name, resource.k8s_namespace)
        assert live.status.available_replicas == live.spec.replicas >= 1, resource.k8s_name
    for resource in plan.kinds("StatefulSet"):
        live = apps.read_namespaced_stateful_set(resource.k8s_name, resource.k8s_namespace)
        assert live.status.ready_replicas == live.spec.replicas >= 1, resource.k8s_name
    jobs = plan.kinds("Job")
    assert jobs
    for resource in jobs:
        live = batch.read_namespaced_job(resource.k8s_name, resource.k8s_namespace)
        assert any(c.type == "Complete" and c.status == "True" for c in live.status.conditions or []), resource.k8s_name

    checked = 0
    kinds = ("VirtualService", "AuthorizationPolicy", "Sidecar", "PodDefault", "NetworkPolicy", "Service", "ConfigMap")
    for kind in (*kinds, "ServiceMonitor", "PrometheusRule"):
        for resource, manifest in plan.manifests():
            if resource.kind == kind:
                problems = _contains(
                    _live(api, manifest).get("spec" if "spec" in manifest else "data"), manifest.get("spec", manifest.get("data"))
                )
                assert not problems, f"{kind} {resource.k8s_name}: {problems}"
                checked += 1
    assert checked >= 12
    assert plan.kinds("ServiceMonitor") and plan.kinds("PrometheusRule"), "the dev stack monitors MLflow"

    core = client.CoreV1Api(api)
    for resource in plan.kinds("Secret"):
        live = core.read_namespaced_secret(resource.k8s_name, resource.k8s_namespace)
        declared_keys = set(resource.inputs.get("stringData") or {}) | set(resource.inputs.get("data") or {})
        assert set(live.data or {}) == declared_keys, resource.k8s_name
        assert all(base64.b64decode(v) for v in live.data.values()), f"{resource.k8s_name} has an empty value"
        assert live.type == resource.inputs.get("type", "Opaque")


def test_dashboard_holds_our_tab_and_every_other_link(cluster, deployment):
    deployment.ensure_up()
    live = client.CoreV1Api(cluster.api()).read_namespaced_config_map(cluster_fixtures.DASHBOARD_CONFIG_MAP, "kubeflow")
    links = json.loads(live.data["links"])["menuLinks"]
    tab = "/mlflow/kubeflow/{ns}/"
    assert [link for link in links if link["link"] != tab] == cluster_fixtures.OTHER_LINKS
    assert [link["text"] for link in links if link["link"] == tab] == ["MLflow"]


def test_a_second_up_changes_nothing(deployment):
    deployment.ensure_up()
    again = deployment.engine.up(expect_no_changes=True)
    assert set(again.summary.resource_changes) == {"same"}, again.summary.resource_changes
    assert expect.engine_changes(again) == {"create": set(), "delete": set(), "change": set()}


def _profiles(*extra: str) -> dict[str, Any]:
    config, _ = stack_config("dev")
    kubeflow = json.loads(config["mlops-platform:kubeflow"])
    kubeflow["profiles"] = [*kubeflow["profiles"], *extra]
    return kubeflow


def _converge(deployment, overrides: dict[str, Any]) -> None:
    """Preview the change, check it is exactly what the offline plans predict, apply it, and check nothing is left to do."""
    config, secret_keys = stack_config("dev")
    before = run_program("dev", config=with_overrides(config, deployment.engine.current_overrides), secret_keys=secret_keys)
    after = run_program("dev", config=with_overrides(config, overrides), secret_keys=secret_keys)
    predicted = expect.expected_changes(before, after)
    assert any(predicted.values()), "the change must change something"

    deployment.engine.write_stack_file(overrides)
    deployment.changed()
    preview = deployment.engine.preview()
    assert expect.engine_changes(preview) == predicted
    deployment.engine.up()
    assert set(deployment.engine.up(expect_no_changes=True).summary.resource_changes) == {"same"}


def test_config_changes_preview_exactly_the_predicted_steps_and_converge(cluster, deployment):
    deployment.ensure_up()
    api = cluster.api()
    apps = client.AppsV1Api(api)
    try:
        config, _ = stack_config("dev")
        tracking = json.loads(config.get("mlops-platform:tracking", "{}"))
        _converge(deployment, {"tracking": {**tracking, "replicas": 2}})
        live = apps.read_namespaced_deployment("mlflow", "mlflow")
        assert live.spec.replicas == live.status.available_replicas == 2

        _converge(deployment, {"tracking": {**tracking, "replicas": 2}, "kubeflow": _profiles(ADDED_PROFILE)})
        pod_defaults = dynamic.DynamicClient(api).resources.get(api_version="kubeflow.org/v1alpha1", kind="PodDefault")
        assert pod_defaults.get(name="mlflow", namespace=ADDED_PROFILE).metadata.name == "mlflow"

        _converge(deployment, {"tracking": {**tracking, "replicas": 2}})
        names = [item.metadata.name for item in pod_defaults.get(namespace=ADDED_PROFILE).items]
        assert names == []
    finally:
        deployment.engine.write_stack_file({})
        deployment.changed()


def test_a_training_job_and_a_scheduled_one_are_created_in_the_profile_and_the_job_completes(cluster, deployment):
    """A training Job and a scheduled CronJob, through the real engine."""
    from mlops_platform.tracking.settings import MLFLOW_IMAGE

    deployment.ensure_up()
    job = {"name": "diabetes", "namespace": STACK_PROFILE, "image": MLFLOW_IMAGE, "command": ["python", "train.py"]}
    nightly = {**job, "name": "diabetes-nightly", "schedule": "0 3 * * *"}
    batch = client.BatchV1Api(cluster.api())
    try:
        _converge(deployment, {"training": [job, nightly]})
        live = batch.read_namespaced_job("diabetes", STACK_PROFILE)
        assert live.spec.template.metadata.labels["mlflow"] == "true"
        assert live.spec.backoff_limit == 0 and live.spec.ttl_seconds_after_finished == 24 * 3600
        cron = batch.read_namespaced_cron_job("diabetes-nightly", STACK_PROFILE)
        assert cron.spec.schedule == "0 3 * * *" and cron.spec.concurrency_policy == "Forbid"
    finally:
        deployment.engine.write_stack_file({})
        deployment.changed()


def test_autoscaling_and_a_per_pod_scratch_volume_are_accepted_and_converge(cluster, deployment):
    """The API server accepts the generic ephemeral volume and the HorizontalPodAutoscaler; each pod gets its own claim."""
    deployment.ensure_up()
    api = cluster.api()
    try:
        config, _ = stack_config("dev")
        tracking = json.loads(config.get("mlops-platform:tracking", "{}"))
        scaled = {
            **tracking,
            "scratch": {"medium": "volume", "size": "1Gi"},
            "autoscaling": {"enabled": True, "minReplicas": 2, "maxReplicas": 3},
        }
        # Three tracking pods and the browser server's: a database that admits their pools.
        database = {**json.loads(config.get("mlops-platform:database", "{}")), "maxConnections": 300}
        _converge(deployment, {"tracking": scaled, "database": database})
        live = client.AppsV1Api(api).read_namespaced_deployment("mlflow", "mlflow")
        scratch = next(v for v in live.spec.template.spec.volumes if v.name == "tmp")
        assert scratch.empty_dir is None and scratch.ephemeral.volume_claim_template.spec.resources.requests == {"storage": "1Gi"}
        hpa = client.AutoscalingV2Api(api).read_namespaced_horizontal_pod_autoscaler("mlflow", "mlflow")
        assert (hpa.spec.min_replicas, hpa.spec.max_replicas, hpa.spec.scale_target_ref.name) == (2, 3, "mlflow")
        assert client.PolicyV1Api(api).read_namespaced_pod_disruption_budget("mlflow", "mlflow").spec.min_available == 1
        pods = (
            client.CoreV1Api(api)
            .list_namespaced_pod("mlflow", label_selector="app.kubernetes.io/name=mlflow,app.kubernetes.io/instance=mlflow")
            .items
        )
        claims = {c.metadata.name: c for c in client.CoreV1Api(api).list_namespaced_persistent_volume_claim("mlflow").items}
        running = [p for p in pods if p.metadata.deletion_timestamp is None]
        assert running and all(f"{p.metadata.name}-tmp" in claims for p in running)
    finally:
        deployment.engine.write_stack_file({})
        deployment.changed()
