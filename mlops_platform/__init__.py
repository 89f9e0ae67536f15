"""mlops-platform: MLflow tracking and registry on Kubernetes, wired into Kubeflow, served by KServe.

The tree is the architecture: ``config`` (typed stack config), ``k8s`` (naming, the hardened
container, mesh membership, options for stateful resources), ``storage`` (MinIO or S3 artifacts and
who may read them), ``database`` (PostgreSQL in-cluster or RDS), and one component each in
``tracking``, ``kubeflow`` and ``serving``.
"""
