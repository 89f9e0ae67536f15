"""Prometheus Operator objects and a Grafana dashboard for the MLflow tracking server."""
