"""MLflow inside an existing Kubeflow: route, access policy, dashboard tab, per-profile access."""

from mlops_platform.kubeflow.integration import KubeflowIntegration, KubeflowIntegrationArgs

__all__ = ["KubeflowIntegration", "KubeflowIntegrationArgs"]
