"""Preflight on real API servers: each missing prerequisite stops `pulumi preview` with one line, before any resource.

A second, small control plane (etcd and kube-apiserver only) runs with ``--authorization-mode=AlwaysAllow``, as MicroK8s
does until `microk8s enable rbac`, and holds exactly the CRDs and StorageClasses each test gives it; the session
cluster (RBAC, everything loaded) shows the pass. Previews run without the policy pack: what is tested is the program's
own refusal, which happens before anything is declared.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from pulumi import automation as auto

from mlops_platform.preflight import KSERVE, KUBEFLOW, MONITORING
from tools.local import cluster as local_cluster
from tools.local.engine import LocalEngine
from tools.testing import cluster_fixtures
from tools.testing.harness import stack_config
from tools.testing.processes import free_port

ROOT = Path(__file__).resolve().parents[2]
BARE = ROOT / "build" / "cluster-tests-allow-all"
STORAGE_CLASS = "microk8s-hostpath"


@pytest.fixture(scope="module")
def allow_all() -> Iterator[local_cluster.Cluster]:
    local_cluster.stop(BARE)
    shutil.rmtree(BARE, ignore_errors=True)
    started = local_cluster.start(BARE, authorization_mode="AlwaysAllow", api_only=True)
    try:
        yield started
    finally:
        local_cluster.stop(BARE)


def holding(cluster: local_cluster.Cluster, needs: tuple = (), storage_class: bool = False) -> None:
    """Make ``cluster`` serve exactly the CRDs of ``needs`` (and the StorageClass, or not), as a user's cluster might."""
    api = cluster.api()
    extensions = client.ApiextensionsV1Api(api)
    wanted = {cluster_fixtures.crd(f"{k.group}/{k.version}", k.kind)["metadata"]["name"]: k for n in needs for k in n.kinds}
    for crd in extensions.list_custom_resource_definition().items:
        if crd.metadata.name not in wanted:
            extensions.delete_custom_resource_definition(crd.metadata.name)
    for kind in wanted.values():
        try:
            extensions.create_custom_resource_definition(cluster_fixtures.crd(f"{kind.group}/{kind.version}", kind.kind))
        except ApiException as exc:
            if exc.status != 409:
                raise
    storage = client.StorageV1Api(api)
    present = {s.metadata.name for s in storage.list_storage_class().items}
    if storage_class and STORAGE_CLASS not in present:
        storage.create_storage_class(client.V1StorageClass(metadata=client.V1ObjectMeta(name=STORAGE_CLASS), provisioner="local.invalid"))
    if not storage_class and STORAGE_CLASS in present:
        storage.delete_storage_class(STORAGE_CLASS)
    # Discovery follows CRDs a moment later: wait (bounded) until it serves exactly what was asked.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        served = {(k.group, k.version, k.kind) for n in (KUBEFLOW, MONITORING, KSERVE) for k in n.kinds if _served(cluster, k)}
        if served == {(k.group, k.version, k.kind) for k in wanted.values()}:
            return
        time.sleep(0.3)
    raise AssertionError(f"discovery did not settle on {sorted(wanted)}")


def _served(cluster: local_cluster.Cluster, kind: Any) -> bool:
    status, body = cluster.get(f"/apis/{kind.group}/{kind.version}")
    return status == 200 and any(r["kind"] == kind.kind for r in json.loads(body)["resources"])


def refusal(engine: LocalEngine) -> str:
    """The one line preview stopped with; nothing was declared (no resource step started)."""
    with pytest.raises(auto.errors.CommandError) as caught:
        engine.preview(policy=False)
    text = str(caught.value)
    lines = [line.strip() for line in text.splitlines() if "mlops-platform:" in line and "error" in line.lower()]
    assert lines, text[-3000:]
    assert "Traceback" not in text
    declared = [line for line in text.splitlines() if re.match(r"^\s*\+\s+(kubernetes|random|mlops|pulumi-python|aws):", line)]
    assert declared == [], "a resource was previewed before the refusal"
    return lines[0].split("error: ", 1)[-1]


def engine_for(cluster: local_cluster.Cluster, tmp_path: Path, **overrides: Any) -> LocalEngine:
    return LocalEngine("dev", cluster.directory, workspace=tmp_path / "engine", overrides=overrides)


def test_without_kubeflows_and_istios_crds_preview_stops_naming_them_and_kubeflow_enabled(allow_all, tmp_path):
    holding(allow_all)
    line = refusal(engine_for(allow_all, tmp_path))
    assert line.startswith("mlops-platform:kubeflow.enabled: the cluster serves no PodDefault (kubeflow.org/v1alpha1), VirtualService")
    assert line.endswith("allowed: Kubeflow installed from kubeflow/manifests, or kubeflow.enabled false")


def test_without_the_prometheus_operators_crds_preview_stops_naming_monitoring_enabled(allow_all, tmp_path):
    holding(allow_all, (KUBEFLOW,))
    line = refusal(engine_for(allow_all, tmp_path))
    assert line.startswith(
        "mlops-platform:monitoring.enabled: the cluster serves no ServiceMonitor (monitoring.coreos.com/v1), "
        "PrometheusRule (monitoring.coreos.com/v1), which the Prometheus Operator define"
    )


def test_without_kserve_a_served_model_stops_preview_naming_serving_models(allow_all, tmp_path):
    holding(allow_all, (KUBEFLOW, MONITORING), storage_class=True)
    serving = json.loads(stack_config("dev")[0]["mlops-platform:serving"])
    model = {"name": "diabetes", "namespace": "kubeflow-user-example-com", "storageUri": "s3://mlflow-artifacts/dev/1/models/m/artifacts/"}
    line = refusal(engine_for(allow_all, tmp_path, serving={**serving, "models": [model]}))
    assert line.startswith("mlops-platform:serving.models: the cluster serves no InferenceService (serving.kserve.io/v1beta1)")


def test_without_the_storage_class_the_claims_name_preview_stops_naming_the_key(allow_all, tmp_path):
    holding(allow_all, (KUBEFLOW, MONITORING))
    line = refusal(engine_for(allow_all, tmp_path))
    assert line.startswith(
        "mlops-platform:database.storageClass: the cluster has no StorageClass microk8s-hostpath, which PostgreSQL's claim names; "
        "allowed: `microk8s enable hostpath-storage`"
    )


def test_an_authorizer_that_allows_everything_is_refused_with_workspaces(allow_all, tmp_path):
    holding(allow_all, (KUBEFLOW, MONITORING), storage_class=True)
    line = refusal(engine_for(allow_all, tmp_path))
    assert line.startswith("mlops-platform:kubeflow.workspaces: the cluster's authorizer allows everything")
    assert "allowed: `microk8s enable rbac`" in line


def test_on_an_rbac_cluster_with_everything_preview_passes_and_says_what_it_checked(scratch_engine, cluster):
    run = scratch_engine().preview(policy=False)
    assert (
        f"preflight: {cluster.server} has what the stack needs (PodDefault, VirtualService, AuthorizationPolicy, Sidecar, "
        "ServiceMonitor, PrometheusRule, StorageClass microk8s-hostpath, an authorizer that refuses)"
    ) in run.stdout


def test_a_cluster_the_program_cannot_reach_is_a_loud_warning(allow_all, tmp_path):
    dead = tmp_path / "dead"
    dead.mkdir()
    kubeconfig = yaml.safe_load(allow_all.kubeconfig.read_text())
    kubeconfig["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{free_port()}"
    (dead / "kubeconfig").write_text(yaml.safe_dump(kubeconfig))
    engine = LocalEngine("dev", dead, workspace=tmp_path / "engine")
    # The kubernetes provider previews an unreachable cluster too (nothing to compare with); the warning says what was not checked.
    run = engine.preview(policy=False)
    assert "warning: preflight: cannot reach the cluster (" in run.stdout
    assert "CRDs, StorageClasses and the authorizer were not checked" in run.stdout
