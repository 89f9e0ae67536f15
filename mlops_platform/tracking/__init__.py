"""The MLflow tracking server and registry."""

from mlops_platform.tracking.stack import TrackingStack, TrackingStackArgs

__all__ = ["TrackingStack", "TrackingStackArgs"]
