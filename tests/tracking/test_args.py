"""What TrackingStack is told: the builder decides per stack, and other components' settings never reach the server."""

from __future__ import annotations

from mlops_platform.tracking.stack import TrackingStackArgs
from tools.testing.plans import config


def test_dev_runs_in_kubeflows_mesh_with_workspaces_metrics_and_minio():
    args = TrackingStackArgs.of(config("dev"))
    assert (args.in_mesh, args.metrics, args.workspaces, args.auth) == (True, True, True, "kubernetes")
    # No IRSA: MinIO in the cluster, tmpfs scratch, data not protected.
    assert (args.aws, args.scratch.medium, args.storage_class, args.protect_data) == (None, "memory", "microk8s-hostpath", False)
    assert args.external_hosts == ()
    assert args.backup_prefix == "backups/dev"


def test_prod_reaches_s3_through_irsa_behind_its_own_route_with_basic_auth():
    args = TrackingStackArgs.of(config("prod"))
    assert args.aws is not None and args.aws.region == "eu-west-1"
    assert (args.in_mesh, args.metrics, args.workspaces, args.auth) == (False, False, False, "basic")
    assert (args.scratch.medium, args.scratch.storage_class, args.protect_data) == ("volume", "gp3", True)
    assert args.external_hosts == ("mlflow.example.com",)


def test_mesh_and_metrics_follow_their_own_components():
    without_monitoring = TrackingStackArgs.of(config("dev", monitoring={"enabled": False}))
    assert (without_monitoring.in_mesh, without_monitoring.metrics) == (True, False)
    without_kubeflow = TrackingStackArgs.of(config("dev", kubeflow={"enabled": False}, monitoring={"enabled": False}))
    assert (without_kubeflow.in_mesh, without_kubeflow.workspaces, without_kubeflow.auth) == (False, False, "none")


def test_settings_of_other_components_leave_the_tracking_server_as_it_was():
    """Adding a profile, a served namespace, a training job or a dashboard label must not touch the server."""
    dev = TrackingStackArgs.of(config("dev"))
    changed = config(
        "dev",
        kubeflow={"enabled": True, "profiles": ["kubeflow-user-example-com", "team-b"], "kfpAccess": False, "dashboardTab": False},
        serving={"enabled": True, "namespaces": ["kubeflow-user-example-com", "team-b"], "models": []},
        monitoring={
            "enabled": True,
            "prometheusLabels": {"release": "other"},
            "dashboardNamespace": "grafana",
            "meshPrincipal": "cluster.local/ns/observability/sa/kube-prom-stack-kube-prome-prometheus",
        },
        training=[{"name": "nightly", "namespace": "kubeflow-user-example-com", "image": "registry.example.com/t:1", "command": ["true"]}],
    )
    assert TrackingStackArgs.of(changed) == dev
