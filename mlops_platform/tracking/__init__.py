"""The MLflow tracking server and registry."""
