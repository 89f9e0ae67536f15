"""KServe as its v0.16.0 controller runs a declared InferenceService: storage env, runtime selection, download, MLServer."""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypedDict

from tests.e2e.declared import declared_name, declared_namespace, secret_data
from tests.e2e.errors import DataPlaneError
from tests.e2e.launch import RUN_TIMEOUT, START_TIMEOUT, VENV_BIN, Server, await_ready, base_env, http_ready, run_once, spawn
from tests.e2e.part import Part
from tools.testing.harness import DeclaredResource, Plan
from tools.testing.processes import HOST, free_port, http

# KServe v0.16.0 config/configmap/inferenceservice.yaml, "credentials": the s3 defaults.
KSERVE_S3_CONFIG = {"s3AccessKeyIDName": "AWS_ACCESS_KEY_ID", "s3SecretAccessKeyName": "AWS_SECRET_ACCESS_KEY"}
KSERVE_STORAGE_SECRET_ANNOTATION = "serving.kserve.io/storageSecretName"
_S3_ANNOTATION = "serving.kserve.io/s3-"


def kserve_s3_env(secret: Mapping[str, Any], data: Mapping[str, str]) -> dict[str, str]:
    """The storage env the KServe v0.16.0 controller derives from an S3 credentials Secret.

    A transcription of ``pkg/credentials/s3`` (``BuildSecretEnvs`` / ``BuildS3EnvVars``):
    keys from the Secret, then each setting from its annotation, else the Secret's data,
    else the (empty) configmap default.
    """
    annotations = (secret.get("metadata") or {}).get("annotations") or {}
    env = {
        "AWS_ACCESS_KEY_ID": data.get(KSERVE_S3_CONFIG["s3AccessKeyIDName"], ""),
        "AWS_SECRET_ACCESS_KEY": data.get(KSERVE_S3_CONFIG["s3SecretAccessKeyName"], ""),
    }

    def value(annotation: str, data_key: str) -> str:
        if _S3_ANNOTATION + annotation in annotations:
            return annotations[_S3_ANNOTATION + annotation]
        return data.get(data_key, "")

    use_https = value("usehttps", "S3_USE_HTTPS")
    if use_https:
        env["S3_USE_HTTPS"] = use_https
    endpoint = value("endpoint", "S3_ENDPOINT")
    if endpoint:
        env["S3_ENDPOINT"] = endpoint
        env["AWS_ENDPOINT_URL"] = ("http://" if use_https == "0" else "https://") + endpoint
    for annotation, data_key, name in (
        ("verifyssl", "S3_VERIFY_SSL", "S3_VERIFY_SSL"),
        ("useanoncredential", "awsAnonymousCredential", "awsAnonymousCredential"),
        ("region", "AWS_DEFAULT_REGION", "AWS_DEFAULT_REGION"),
        ("usevirtualbucket", "S3_USER_VIRTUAL_BUCKET", "S3_USER_VIRTUAL_BUCKET"),
        ("useaccelerate", "S3_USE_ACCELERATE", "S3_USE_ACCELERATE"),
        ("cabundle", "AWS_CA_BUNDLE", "AWS_CA_BUNDLE"),
        ("cabundle-configmap", "AWS_CA_BUNDLE_CONFIGMAP", "AWS_CA_BUNDLE_CONFIGMAP"),
    ):
        found = value(annotation, data_key)
        if found:
            env[name] = found
    return env


def storage_initializer_env(plan: Plan, isvc: DeclaredResource) -> dict[str, str]:
    """How the KServe v0.16.0 controller finds the storage Secret of an InferenceService, and the env it derives.

    ``serving.kserve.io/storageSecretName`` on the InferenceService wins; otherwise every
    Secret listed by the predictor's ServiceAccount (``default`` if none) that has the
    secret-access-key key is used (``CreateSecretVolumeAndEnvFromServiceAccount``).
    """
    component = "storage-initializer"
    namespace = declared_namespace(isvc)
    annotations = isvc.inputs["metadata"].get("annotations") or {}
    if KSERVE_STORAGE_SECRET_ANNOTATION in annotations:
        names = [annotations[KSERVE_STORAGE_SECRET_ANNOTATION]]
    else:
        account = isvc.inputs["spec"]["predictor"].get("serviceAccountName") or "default"
        try:
            sa = plan.k8s("ServiceAccount", account, namespace).inputs
        except LookupError:
            raise DataPlaneError(
                component, f"the predictor's ServiceAccount {namespace}/{account} is not declared: no storage credentials"
            ) from None
        names = [s["name"] for s in sa.get("secrets") or []]
        if not names:
            raise DataPlaneError(
                component, f"ServiceAccount {namespace}/{account} lists no secrets: KServe would inject no storage credentials"
            )
    env: dict[str, str] = {}
    for name in names:
        data = secret_data(plan, namespace, name, component)
        if KSERVE_S3_CONFIG["s3SecretAccessKeyName"] in data:
            env.update(kserve_s3_env(plan.k8s("Secret", name, namespace).inputs, data))
    if not env:
        raise DataPlaneError(
            component,
            f"none of the Secrets {names} has key {KSERVE_S3_CONFIG['s3SecretAccessKeyName']}: KServe would inject no S3 credentials",
        )
    return env


class ServingRuntime(TypedDict):
    """What runtime selection reads of a ClusterServingRuntime: its model formats as (name, version, priority), its protocols,
    and the env its container declares."""

    formats: list[tuple[str, str, int]]
    protocols: list[str]
    env: dict[str, str]


# KServe v0.16.0 config/runtimes: the ClusterServingRuntimes that serve mlflow or sklearn models.
KSERVE_RUNTIMES: dict[str, ServingRuntime] = {
    "kserve-mlserver": {
        "formats": [("sklearn", "0", 2), ("sklearn", "1", 2), ("mlflow", "1", 1), ("mlflow", "2", 1)],
        "protocols": ["v2"],
        "env": {"MLSERVER_HTTP_PORT": "8080", "MLSERVER_GRPC_PORT": "9000", "MODELS_DIR": "/mnt/models"},
    },
    "kserve-sklearnserver": {"formats": [("sklearn", "1", 1)], "protocols": ["v1", "v2"], "env": {}},
}
MLSERVER_MODEL_CLASS = {"mlflow": "mlserver_mlflow.MLflowRuntime", "sklearn": "mlserver_sklearn.SKLearnModel"}
MODEL_MOUNT = "/mnt/models"


def select_runtime(isvc: DeclaredResource) -> str:
    """KServe v0.16.0's runtime auto-selection (``GetSupportingRuntimes``) for the predictor's model."""
    model = isvc.inputs["spec"]["predictor"].get("model")
    if not model:
        raise DataPlaneError("serving", "the InferenceService has no spec.predictor.model")
    fmt = model["modelFormat"]
    label = fmt["name"] + (f":{fmt['version']}" if fmt.get("version") else "")
    protocol = model.get("protocolVersion", "v1")
    if model.get("runtime"):
        # A named runtime must still support the format (autoSelect or not) and the protocol.
        runtime = KSERVE_RUNTIMES.get(model["runtime"])
        if runtime is None:
            raise DataPlaneError(
                "serving", f"runtime {model['runtime']} is not one of KServe's ClusterServingRuntimes {sorted(KSERVE_RUNTIMES)}"
            )
        labels = {f for n, v, _ in runtime["formats"] for f in (n, f"{n}:{v}")}
        if label not in labels or protocol not in runtime["protocols"]:
            raise DataPlaneError("serving", f"runtime {model['runtime']} does not serve modelFormat {label} over protocol {protocol}")
        return model["runtime"]
    candidates = []
    for name, runtime in KSERVE_RUNTIMES.items():
        labels = {f for n, v, _ in runtime["formats"] for f in (n, f"{n}:{v}")}
        if label in labels and protocol in runtime["protocols"]:
            priority = max(p for n, _, p in runtime["formats"] if n == fmt["name"])
            candidates.append((-priority, name))
    if not candidates:
        raise DataPlaneError(
            "serving", f"no KServe runtime serves modelFormat {label} over protocol {protocol} (kserve-mlserver: mlflow 1|2 on v2)"
        )
    return sorted(candidates)[0][1]


def mlserver_env(isvc: DeclaredResource, runtime: str) -> dict[str, str]:
    """The kserve-container env KServe gives an MLServer predictor (runtime env + ``SetMlServerDefaults``)."""
    model = isvc.inputs["spec"]["predictor"]["model"]
    env = dict(KSERVE_RUNTIMES[runtime]["env"])
    env["MLSERVER_MODEL_IMPLEMENTATION"] = MLSERVER_MODEL_CLASS[model["modelFormat"]["name"]]
    env.update({"MLSERVER_MODEL_NAME": declared_name(isvc), "MLSERVER_MODEL_URI": MODEL_MOUNT})
    for var in model.get("env") or []:
        if "value" not in var:
            raise DataPlaneError("mlserver", f"predictor env {var['name']} is not a literal")
        env[var["name"]] = var["value"]
    return env


# What KServe v0.16.0's storage-initializer image runs (python/storage-initializer/scripts/initializer-entrypoint).
STORAGE_INITIALIZER = """
import sys
from kserve_storage import Storage
from kserve_storage.logging import configure_logging
configure_logging()
Storage.download_files(sys.argv[1::2], sys.argv[2::2])
"""


class KServe(Part):
    """The KServe part of a :class:`~tests.e2e.plane.DataPlane`: the storage initializer, then the predictor."""

    def download_model(self, plan: Plan, isvc: DeclaredResource) -> Path:
        """Download the InferenceService's storageUri with KServe's storage-initializer code and the env KServe derives."""
        component = "storage-initializer"
        source = "derived by KServe from the predictor's storage Secret and its serving.kserve.io/s3-* annotations"
        try:
            env = self.hosts.rewrite_env(storage_initializer_env(plan, isvc), component)
        except DataPlaneError as exc:
            raise DataPlaneError(component, f"{str(exc).split(': ', 1)[1]} ({source})") from None
        endpoint = env.get("AWS_ENDPOINT_URL", "")
        if not endpoint.startswith(("http://" + HOST + ":", "https://" + HOST + ":")):
            raise DataPlaneError(
                component,
                f"AWS_ENDPOINT_URL is {endpoint or 'unset'} ({source}): the download would not go to the declared MinIO; "
                "without it KServe downloads from AWS",
            )
        uri = isvc.inputs["spec"]["predictor"]["model"].get("storageUri")
        if not uri:
            raise DataPlaneError(component, "the InferenceService declares no storageUri")
        # The model volume KServe mounts at /mnt/models: a per-run directory.
        target = Path(tempfile.mkdtemp(prefix=f"mnt-models-{isvc.k8s_name}-", dir=self.workdir))
        started = time.monotonic()
        run_once(
            component,
            [str(VENV_BIN / "python"), "-c", STORAGE_INITIALIZER, uri, str(target)],
            {**base_env(self.home), **env},
            self.log(f"{component}-{isvc.k8s_name}"),
            RUN_TIMEOUT[component],
        )
        self.timings[component] = time.monotonic() - started
        return target

    def start_predictor(self, isvc: DeclaredResource, model_dir: Path) -> Server:
        """The predictor container as the selected runtime runs it, on ``model_dir`` (its /mnt/models)."""
        runtime = select_runtime(isvc)
        if runtime != "kserve-mlserver":
            raise DataPlaneError("serving", f"runtime {runtime} is not reproduced by this e2e (only kserve-mlserver)")
        component = "mlserver"
        env = mlserver_env(isvc, runtime)
        # Listen mapping: the runtime's ports (and MLServer's default metrics port 8082) on loopback ports.
        port, grpc, metrics = free_port(), free_port(), free_port()
        env.update(
            {"MLSERVER_HOST": HOST, "MLSERVER_HTTP_PORT": str(port), "MLSERVER_GRPC_PORT": str(grpc), "MLSERVER_METRICS_PORT": str(metrics)}
        )
        env = {k: str(model_dir) if v == MODEL_MOUNT else v for k, v in env.items()}
        # The MLServer image's command: `mlserver start $MLSERVER_MODELS_DIR` (/mnt/models).
        service = spawn(
            component, ["mlserver", "start", str(model_dir)], {**base_env(self.home), **env}, self.log(f"{component}-{isvc.k8s_name}")
        )
        server = Server(component, service, port, other_ports=(grpc, metrics))
        self.servers.append(server)
        name = env["MLSERVER_MODEL_NAME"]
        server.seconds_to_ready = await_ready(
            service, http_ready(f"{server.base}/v2/models/{name}/ready"), START_TIMEOUT[component], f"model {name} ready"
        )
        return server

    def infer(self, server: Server, model: str, columns: Mapping[str, Sequence[float]]) -> list[float]:
        """One Open Inference Protocol (v2) request with a pandas-encoded input; returns the first output."""
        rows = len(next(iter(columns.values())))
        body = {
            "parameters": {"content_type": "pd"},
            "inputs": [{"name": name, "shape": [rows], "datatype": "FP64", "data": list(values)} for name, values in columns.items()],
        }
        status, payload = http(f"{server.base}/v2/models/{model}/infer", method="POST", body=body)
        if status != 200:
            raise server.error(f"POST /v2/models/{model}/infer answered {status}: {payload[:300].decode(errors='replace')}")
        return json.loads(payload)["outputs"][0]["data"]
