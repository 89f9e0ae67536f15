"""mlops-platform: MLflow tracking and registry, wired into Kubeflow, served by KServe."""

import asyncio

import pulumi
from pulumi.errors import RunError

from mlops_platform.config import load_cluster_access, load_config
from mlops_platform.contracts import METRICS_PATH, Scraper
from mlops_platform.kubeflow.integration import KubeflowIntegration, KubeflowIntegrationArgs
from mlops_platform.monitoring.stack import Monitoring, MonitoringArgs
from mlops_platform.preflight import preflight
from mlops_platform.serving.registry import resolve_models
from mlops_platform.serving.stack import ServingStack, ServingStackArgs
from mlops_platform.tracking.stack import TrackingStack, TrackingStackArgs
from mlops_platform.training.jobs import TrainingJobs, TrainingJobsArgs

config = load_config()
# What every pod will pull, shown before anything is declared (and kept as the `images` output for PR previews).
images = config.images()
pulumi.log.info("images to pull: " + ", ".join(f"{role}={image}" for role, image in images.items()))
if not config.tracking_image_published:
    pulumi.log.warn(f"{config.tracking_image} is published nowhere: build and push it first with `make image` (README, Quick start)")
# Before any resource is declared: a cluster missing what the stack needs (CRDs, StorageClasses, an authorizer that can
# refuse), or a model the registry cannot resolve, leaves the stack untouched.
preflight(config, load_cluster_access())
models = resolve_models(config)

tracking = TrackingStack("mlflow", TrackingStackArgs.of(config))
endpoint = tracking.endpoint
# Prometheus's mesh identity, admitted by Kubeflow's access policy to the metrics path only.
principal = config.monitoring.mesh_principal
scraper = Scraper(principal, METRICS_PATH) if config.monitoring.enabled and principal else None

kubeflow = (
    KubeflowIntegration("kubeflow", KubeflowIntegrationArgs(kubeflow=config.kubeflow, tracking=endpoint, scraper=scraper))
    if config.kubeflow.enabled
    else None
)

serving = ServingStack("serving", ServingStackArgs.of(config, endpoint, models)) if config.serving.enabled else None

monitoring = Monitoring("monitoring", MonitoringArgs(config.monitoring, endpoint)) if config.monitoring.enabled else None

training = (
    TrainingJobs(
        "training",
        TrainingJobsArgs(
            jobs=config.training,
            tracking_namespace=endpoint.namespace,
            client_env=endpoint.client_env,
            tracking_ready=[endpoint.server],
            profiles=kubeflow.clients if kubeflow else None,
        ),
    )
    if config.training
    else None
)

pulumi.export("namespace", endpoint.namespace)
pulumi.export("trackingUri", endpoint.uri)
pulumi.export("externalUrl", tracking.external_url)
pulumi.export("bucket", endpoint.artifact_store.bucket)
pulumi.export("artifactRoot", endpoint.artifact_root)
pulumi.export("databasePassword", pulumi.Output.secret(tracking.database_password) if tracking.database_password is not None else None)
# basic-auth's admin password (the default authorization app with tracking.externalHost), else None.
pulumi.export("trackingAdminPassword", pulumi.Output.secret(tracking.admin_password) if tracking.admin_password else None)
pulumi.export("trackingAuth", config.tracking_auth)
pulumi.export("kubeflowUrl", kubeflow.url if kubeflow else None)
pulumi.export("kubeflowProfiles", kubeflow.profiles if kubeflow else [])
pulumi.export("servingModels", serving.models if serving else {})
pulumi.export("trainingJobs", training.names if training else [])
pulumi.export("images", images)


async def _start_registrations() -> None:
    """Let every registration above start before the SDK's shutdown wait (docs/scale.md).

    The program returns with each registration a task not yet started. Finding no RPC to await,
    the SDK's wait (pulumi.runtime.stack.wait_for_rpcs) polls every outstanding Output with
    asyncio.wait(FIRST_COMPLETED) until all resolve: work in proportion to the outstanding Outputs
    at each resolution, quadratic in the stack's size. Started, the registrations are awaited one
    by one instead.
    """
    await asyncio.sleep(0)


try:
    pulumi.run(_start_registrations)
except RunError:
    # Under Pulumi's mocks (tools/testing/harness.py) the root stack is finished before the program runs, and nothing waits.
    pass
