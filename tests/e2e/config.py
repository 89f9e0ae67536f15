"""The program's config for the run: the committed dev stack plus the e2e overlay, and the one model it serves."""

from __future__ import annotations

import json

from tests.e2e.errors import DataPlaneError
from tools.harness import DeclaredResource, Plan, stack_config

# The dev stack as committed, plus what the e2e needs to reach every path; nothing else changes.
E2E_EXTERNAL_HOST = "kubeflow.example.com"
E2E_REGISTERED_MODEL = "diabetes"
E2E_ALIAS = "production"


def e2e_config(stack: str = "dev", registry_uri: str | None = None) -> tuple[dict[str, str], list[str]]:
    """The stack file's config with the e2e overlay.

    * ``kubeflow.externalHost`` (only if the stack sets none): so the external-host path
      (VirtualService host, MLflow's allowed hosts) is exercised with a real name;
    * with ``registry_uri`` (after the notebook set the alias): ``serving.mlflowTrackingUri``
      points at the running server and ``serving.models`` is the one model the notebook
      registered, served in the first Kubeflow profile (the example in Pulumi.dev.yaml).
    """
    config, secret_keys = stack_config(stack)
    kubeflow = json.loads(config.get("mlops-platform:kubeflow", "{}"))
    kubeflow.setdefault("externalHost", E2E_EXTERNAL_HOST)
    config["mlops-platform:kubeflow"] = json.dumps(kubeflow)
    if registry_uri is not None:
        serving = json.loads(config.get("mlops-platform:serving", "{}"))
        profiles = kubeflow.get("profiles") or []
        if not serving.get("enabled") or not profiles:
            raise DataPlaneError("serving", f"stack {stack} enables no serving or no Kubeflow profile to serve in")
        serving["mlflowTrackingUri"] = registry_uri
        serving["models"] = [
            {"name": E2E_REGISTERED_MODEL, "namespace": profiles[0], "registeredModel": E2E_REGISTERED_MODEL, "alias": E2E_ALIAS}
        ]
        config["mlops-platform:serving"] = json.dumps(serving)
    return config, secret_keys


def served_model(plan: Plan) -> DeclaredResource:
    """The one InferenceService the e2e config declares."""
    found = plan.kinds("InferenceService")
    if len(found) != 1:
        raise DataPlaneError("serving", f"expected one InferenceService, the program declared {len(found)}")
    return found[0]
