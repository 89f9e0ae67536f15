"""Training as Kubernetes Jobs and CronJobs that log to MLflow."""

from mlops_platform.training.jobs import TrainingJobs, TrainingJobsArgs

__all__ = ["TrainingJobs", "TrainingJobsArgs"]
