"""The program's config for the run: the committed dev stack plus the e2e overlay, and the one model it serves."""

from __future__ import annotations

import json
import os
from pathlib import Path

from mlops_platform.tracking.settings import MLFLOW_IMAGE
from tests.e2e.errors import DataPlaneError
from tools.testing.harness import DeclaredResource, Plan, stack_config

# The dev stack as committed, plus what the e2e needs to reach every path; nothing else changes.
E2E_EXTERNAL_HOST = "kubeflow.example.com"
E2E_REGISTERED_MODEL = "diabetes"
E2E_ALIAS = "production"
# One training Job in the first profile, logging to MLflow.
E2E_TRAINING_JOB = "diabetes-train"
E2E_TRAINING_MODEL = "diabetes-trained-by-job"
E2E_TRAINING_EXPERIMENT = "e2e-training-job"
TRAIN_SOURCE = Path(__file__).with_name("train_job.py").read_text()
E2E_CHALLENGER = "challenger"
E2E_CANARY_PERCENT = 10
# The e2e serves with MLServer 1.7.1 and MLflow 3.17, which load the MLflow 3 models the notebook logs;
# KServe 0.16's stock kserve-mlserver runtime declares mlflow formats 1 and 2 only.
E2E_MLFLOW_FORMATS = ["1", "2", "3"]
E2E_SCRATCH_SIZE = "256Mi"
REPLICAS_ENV = "E2E_TRACKING_REPLICAS"


def e2e_config(stack: str = "dev", registry_uri: str | None = None, canary: bool = False) -> tuple[dict[str, str], list[str]]:
    """The stack file's config with the e2e overlay.

    * ``kubeflow.externalHost`` (only if the stack sets none): so the external-host path
      (VirtualService host, MLflow's allowed hosts) is exercised with a real name;
    * ``tracking.scratch.size`` 256Mi (only if the stack sets none): the large-artifact test sends a
      model bigger than the server's scratch space, and a small one keeps that artifact small;
    * ``tracking.replicas`` from ``E2E_TRACKING_REPLICAS`` when set (e.g. 2: two server processes
      behind a round-robin balancer on the Service's port);
    * ``training``: one Job in the first profile running ``train_job.py``;
    * ``kubeflow.workspaces`` false: this lane has no API server for the Kubernetes authorization
      app to ask; the workspace path runs against a real one in tests/cluster/test_tenancy.py;
    * with ``registry_uri`` (after the notebook set the alias): ``serving.mlflowTrackingUri``
      points at the running server and ``serving.models`` is the one model the notebook
      registered, served in the first Kubeflow profile (the example in Pulumi.dev.yaml);
    * with ``canary``: the challenger alias takes ``E2E_CANARY_PERCENT`` of the traffic (Serverless, as KServe requires).
    """
    config, secret_keys = stack_config(stack)
    tracking = json.loads(config.get("mlops-platform:tracking", "{}"))
    tracking.setdefault("scratch", {}).setdefault("size", E2E_SCRATCH_SIZE)
    if os.environ.get(REPLICAS_ENV):
        tracking["replicas"] = int(os.environ[REPLICAS_ENV])
    config["mlops-platform:tracking"] = json.dumps(tracking)
    kubeflow = json.loads(config.get("mlops-platform:kubeflow", "{}"))
    kubeflow.setdefault("externalHost", E2E_EXTERNAL_HOST)
    kubeflow["workspaces"] = False
    config["mlops-platform:kubeflow"] = json.dumps(kubeflow)
    profiles = kubeflow.get("profiles") or []
    if profiles:
        config["mlops-platform:training"] = json.dumps(
            [
                {
                    "name": E2E_TRAINING_JOB,
                    "namespace": profiles[0],
                    "image": MLFLOW_IMAGE,
                    "command": ["python", "-c", TRAIN_SOURCE],
                    "env": {"ALPHA": "0.3", "REGISTERED_MODEL": E2E_TRAINING_MODEL},
                    "experiment": E2E_TRAINING_EXPERIMENT,
                }
            ]
        )
    if registry_uri is not None:
        serving = json.loads(config.get("mlops-platform:serving", "{}"))
        profiles = kubeflow.get("profiles") or []
        if not serving.get("enabled") or not profiles:
            raise DataPlaneError("serving", f"stack {stack} enables no serving or no Kubeflow profile to serve in")
        serving["mlflowTrackingUri"] = registry_uri
        serving["mlflowFormatVersions"] = E2E_MLFLOW_FORMATS
        model = {"name": E2E_REGISTERED_MODEL, "namespace": profiles[0], "registeredModel": E2E_REGISTERED_MODEL, "alias": E2E_ALIAS}
        if canary:
            serving["deploymentMode"] = "Serverless"
            model["canary"] = {"alias": E2E_CHALLENGER, "trafficPercent": E2E_CANARY_PERCENT}
        serving["models"] = [model]
        config["mlops-platform:serving"] = json.dumps(serving)
    return config, secret_keys


def served_model(plan: Plan) -> DeclaredResource:
    """The one InferenceService the e2e config declares."""
    found = plan.kinds("InferenceService")
    if len(found) != 1:
        raise DataPlaneError("serving", f"expected one InferenceService, the program declared {len(found)}")
    return found[0]
