"""MLflow inside an existing Kubeflow: route, access policy, dashboard tab, per-profile access."""
