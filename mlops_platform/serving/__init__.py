"""KServe serving of registered models, pinned from the registry at deploy time."""

from mlops_platform.serving.registry import resolve_models
from mlops_platform.serving.stack import ServingStack, ServingStackArgs

__all__ = ["ServingStack", "ServingStackArgs", "resolve_models"]
