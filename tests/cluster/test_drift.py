"""Drift on the real engine: `pulumi refresh` finds nothing after `up`, finds what changed behind the program's back,
and `pulumi up --refresh` puts it back.

A field someone else set (``kubectl scale`` owns ``.spec.replicas`` through the scale subresource) is a server-side
apply conflict for the provider: `up` fails on it (pulumi-kubernetes 4.25, pkg/await/await.go ``patchForce``) until
told to take the field back, with ``PULUMI_K8S_ENABLE_PATCH_FORCE=true`` for that one `up` (docs/operations.md, Drift).

The scheduled workflow (.github/workflows/drift.yml) runs the same check, `pulumi refresh --preview-only
--expect-no-changes`, against each real stack.
"""

from __future__ import annotations

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from pulumi import automation as auto

from tools.testing.plans import NS

DRIFT = ["refresh", "--preview-only", "--expect-no-changes", "--diff"]
# Read by the kubernetes provider: resolve server-side apply conflicts in the program's favour.
FORCE = "PULUMI_K8S_ENABLE_PATCH_FORCE"


def refresh_finds_nothing(deployment) -> None:
    """The CLI's own `pulumi refresh --expect-no-changes` (it refreshes the state, which must already match the cluster)."""
    done = deployment.engine.cli("refresh", "--yes", "--expect-no-changes", check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def test_refresh_finds_no_changes_after_up_and_after_a_no_op_up(deployment):
    deployment.ensure_up()
    refresh_finds_nothing(deployment)
    again = deployment.engine.up(expect_no_changes=True)
    assert set(again.summary.resource_changes) == {"same"}, again.summary.resource_changes
    refresh_finds_nothing(deployment)
    # The drift check itself, as the scheduled workflow runs it.
    done = deployment.engine.cli(*DRIFT, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def test_a_change_behind_the_programs_back_shows_up_in_the_drift_check_and_up_with_refresh_puts_it_back(cluster, deployment, monkeypatch):
    deployment.ensure_up()
    api = cluster.api()
    apps, networking = client.AppsV1Api(api), client.NetworkingV1Api(api)
    declared_replicas = apps.read_namespaced_deployment("mlflow", NS).spec.replicas
    declared_policy = networking.read_namespaced_network_policy("mlflow-server", NS)
    try:
        # `kubectl scale deploy/mlflow --replicas 3` and `kubectl delete networkpolicy mlflow-server`.
        apps.patch_namespaced_deployment_scale("mlflow", NS, {"spec": {"replicas": declared_replicas + 2}})
        networking.delete_namespaced_network_policy("mlflow-server", NS)

        found = deployment.engine.cli(*DRIFT, check=False)
        report = found.stdout + found.stderr
        assert found.returncode != 0, "the drift check must fail on drift"
        assert "kubernetes:apps/v1:Deployment" in report and "replicas" in report, report[-3000:]
        assert "mlflow-netpol-server" in report and "delete" in report, report[-3000:]
        # --preview-only changed nothing: the state still believes the cluster is as declared.
        assert deployment.engine.cli(*DRIFT, check=False).returncode != 0

        # `pulumi up --refresh` creates the deleted policy again, and stops at the field kubectl took over.
        with pytest.raises(auto.errors.CommandError, match="Server-Side Apply field conflict"):
            deployment.engine.up(refresh=True)
        assert networking.read_namespaced_network_policy("mlflow-server", NS).spec.to_dict() == declared_policy.spec.to_dict()
        # The repair: the same up, taking back the fields the program declares.
        monkeypatch.setenv(FORCE, "true")
        fixed = deployment.engine.up(refresh=True)
        assert fixed.summary.resource_changes.get("update") == 1, fixed.summary.resource_changes
        assert apps.read_namespaced_deployment("mlflow", NS).spec.replicas == declared_replicas
        done = deployment.engine.cli(*DRIFT, check=False)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    finally:
        try:
            networking.read_namespaced_network_policy("mlflow-server", NS)
            drifted = apps.read_namespaced_deployment("mlflow", NS).spec.replicas != declared_replicas
        except ApiException:
            drifted = True
        if drifted:
            # A plain `up` compares with the state only: the next test gets the stack as declared again.
            monkeypatch.setenv(FORCE, "true")
            deployment.engine.up(refresh=True)
