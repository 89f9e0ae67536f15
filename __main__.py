"""mlops-platform: MLflow tracking and registry, wired into Kubeflow, served by KServe."""

import pulumi

from components.config import load_config
from components.tracking import TrackingStack, TrackingStackArgs

config = load_config()

tracking = TrackingStack("mlflow", TrackingStackArgs(config=config))

pulumi.export("namespace", tracking.namespace)
pulumi.export("trackingUri", tracking.tracking_uri)
pulumi.export("externalUrl", tracking.external_url)
pulumi.export("bucket", tracking.bucket)
pulumi.export("artifactRoot", tracking.artifact_root)
pulumi.export("databasePassword", pulumi.Output.secret(tracking.database_password))
