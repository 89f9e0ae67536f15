"""Training as Kubernetes Jobs and CronJobs that log to MLflow."""
