"""mlops-platform: MLflow tracking and registry on Kubernetes, wired into Kubeflow, served by KServe.

The tree is the architecture: ``config`` (typed stack config), ``preflight`` (what the cluster must have),
``rotation`` (credential generations), ``k8s`` (naming, the hardened container, mesh membership, RBAC, options for
stateful resources), ``storage`` (MinIO or S3 artifacts and who may read them), ``database`` (PostgreSQL in-cluster,
RDS or an external database; dumps and login rotation), and one component each in ``tracking`` (the MLflow server,
its authorization app, route and maintenance jobs), ``kubeflow`` (route, dashboard tab, profiles, workspaces),
``serving`` (KServe InferenceServices pinned from the registry), ``monitoring`` (ServiceMonitor, alerts, dashboard)
and ``training`` (Jobs and CronJobs logging to MLflow).
"""
