"""Prometheus Operator objects and a Grafana dashboard for the MLflow tracking server."""

from mlops_platform.monitoring.stack import Monitoring, MonitoringArgs

__all__ = ["Monitoring", "MonitoringArgs"]
