"""Registry resolution against a real MLflow tracking server on 127.0.0.1.

The server runs as the TrackingStack configures it (SQLite instead of
PostgreSQL): artifacts proxied to ``s3://mlflow-artifacts/dev`` on moto's S3
server, the dev stack's artifact root. A model is logged, registered and aliased
the way a training run does it; then the real program runs with
``serving.mlflowTrackingUri`` pointing at the server, and the declared
InferenceService is compared with where the artifacts actually are in S3.

Gates are checked on versions built in the same registry and bucket: a missing
artifact, flavors the runtime cannot load, an MLflow format the runtime does not
declare, no signature.
"""

from __future__ import annotations

import contextlib
import json
import os
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import boto3
import mlflow
import pytest
import yaml
from mlflow import MlflowClient

from mlops_platform.serving import catalog, mlflow_rest
from mlops_platform.serving import registry as registry_module
from mlops_platform.serving.registry import physical_uri
from mlops_platform.settings_base import ConfigError
from mlops_platform.tracking.settings import MLFLOW_VERSION
from tests.serving.recorded import record_requests
from tools.dev.plan import table
from tools.testing import harness
from tools.testing.harness import Plan, run_program, stack_config
from tools.testing.processes import HOST, free_port, mlflow_registry, running

BIN = Path(sys.executable).parent
BUCKET = "mlflow-artifacts"
ROOT_URI = f"s3://{BUCKET}/dev"
NAMESPACE = "kubeflow-user-example-com"
MODEL = "diabetes"
AWS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@dataclass(frozen=True)
class Logged:
    """A registered version as the training run left it: its run and where its files are in S3."""

    version: str
    run_id: str
    location: str


@dataclass
class Registry:
    uri: str
    client: MlflowClient
    versions: dict[str, Logged]
    s3: object

    def promote(self, version: str, alias: str = "production") -> None:
        self.client.set_registered_model_alias(MODEL, alias, version)


# A real MLflow server on moto's S3: the tests that take it are marked slow (left to `make test`).
@pytest.fixture(scope="module")
def registry(tmp_path_factory) -> Iterator[Registry]:
    work = tmp_path_factory.mktemp("registry")
    s3_url = f"http://{HOST}:{free_port()}"
    with contextlib.ExitStack() as services:
        services.enter_context(
            running(
                "moto-s3",
                [str(BIN / "moto_server"), "-H", HOST, "-p", s3_url.rsplit(":", 1)[1]],
                health_url=f"{s3_url}/moto-api/",
                log_dir=work,
                timeout=30,
            )
        )
        s3 = boto3.client(
            "s3",
            endpoint_url=s3_url,
            region_name=AWS["AWS_DEFAULT_REGION"],
            aws_access_key_id=AWS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=AWS["AWS_SECRET_ACCESS_KEY"],
        )
        s3.create_bucket(Bucket=BUCKET)
        uri = services.enter_context(mlflow_registry(work, ROOT_URI, env={**AWS, "MLFLOW_S3_ENDPOINT_URL": s3_url}))
        yield Registry(uri, MlflowClient(uri, registry_uri=uri), _train_versions(uri, s3), s3)


def _train_versions(uri: str, s3) -> dict[str, Logged]:
    """Log and register three signed sklearn models as a training script would; find each one's files in S3."""
    versions = {}
    for alpha in (1.0, 0.1, 0.01):
        logged = log_model(uri, s3, MODEL, alpha)
        versions[logged.version] = logged
    assert list(versions) == ["1", "2", "3"]
    return versions


def log_model(uri: str, s3, name: str, alpha: float, *, signed: bool = True, serialization: str = "pickle") -> Logged:
    from mlflow.models import infer_signature
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import Ridge

    features, target = load_diabetes(return_X_y=True, as_frame=True)
    model = Ridge(alpha=alpha).fit(features, target)
    signature = infer_signature(features, model.predict(features)) if signed else None
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        assert mlflow.get_tracking_uri() == uri, "something in this process pinned MLflow's tracking URI"
        with mlflow.start_run() as run:
            info = mlflow.sklearn.log_model(
                model, name="model", registered_model_name=name, signature=signature, serialization_format=serialization
            )
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]]
    (mlmodel,) = [k for k in keys if k.endswith(f"/{info.model_id}/artifacts/MLmodel")]
    assert any(k == mlmodel.replace("MLmodel", f"model.{'pkl' if serialization == 'pickle' else serialization}") for k in keys)
    return Logged(str(info.registered_model_version), run.info.run_id, f"s3://{BUCKET}/{mlmodel.removesuffix('MLmodel')}")


# This process serves with MLServer 1.7.1 and MLflow 3.17, which load MLflow 3 models; KServe 0.16's stock runtime declares 1 and 2.
FORMATS = ["1", "2", "3"]


def serving(uri: str, *models: dict, **settings: object) -> dict:
    return {"enabled": True, "mlflowTrackingUri": uri, "mlflowFormatVersions": FORMATS, "models": list(models), **settings}


def entry(name: str = MODEL, namespace: str = NAMESPACE, **source: object) -> dict:
    return {"name": name, "namespace": namespace, "registeredModel": MODEL, **source}


def deploy(config: dict, *, preview: bool = False, secret: bool = False) -> Plan:
    """The real program on the dev stack with ``serving`` replaced; ``secret`` marks it as secret config.

    The registry here is a plain MLflow server, so Kubeflow workspaces are off; resolution inside a
    workspace with its reader's token runs against the real authorization app in tests/cluster/test_tenancy.py.
    """
    values, secret_keys = plain_registry_values(config)
    return run_program("dev", config=values, secret_keys=secret_keys + (["mlops-platform:serving"] if secret else []), preview=preview)


def plain_registry_values(config: dict) -> tuple[dict[str, str], list[str]]:
    """The dev stack's config with ``serving`` replaced and Kubeflow workspaces off (the registry here has none)."""
    values, secret_keys = stack_config("dev")
    values["mlops-platform:serving"] = json.dumps(config)
    values["mlops-platform:kubeflow"] = json.dumps({**json.loads(values["mlops-platform:kubeflow"]), "workspaces": False})
    return values, secret_keys


def failure(monkeypatch, config: dict, **options) -> tuple[str, list]:
    """The one-line error of a failed deploy, and every resource declared before it."""
    declared: list = []
    record_into = harness._monitor
    monkeypatch.setattr(harness, "_monitor", lambda mocks, _: record_into(mocks, declared))
    with pytest.raises(ConfigError) as caught:
        deploy(config, **options)
    return str(caught.value), declared


def isvc(plan: Plan, name: str = MODEL) -> dict:
    return plan.k8s("InferenceService", name, NAMESPACE).inputs


# -- resolution -------------------------------------------------------------------------------


@pytest.mark.slow
def test_alias_resolves_to_exactly_that_versions_s3_location(registry):
    registry.promote("1")
    plan = deploy(serving(registry.uri, entry(alias="production")))
    v1 = registry.versions["1"]
    manifest = isvc(plan)
    assert manifest["spec"]["predictor"]["model"]["storageUri"] == v1.location
    assert manifest["metadata"]["annotations"] == {
        "serving.kserve.io/deploymentMode": "RawDeployment",
        "mlops-platform/registered-model": MODEL,
        "mlops-platform/model-version": "1",
        "mlops-platform/model-alias": "production",
        "mlops-platform/run-id": v1.run_id,
    }


@pytest.mark.slow
def test_moving_the_alias_changes_the_storage_uri_annotations_and_plan(registry):
    config = serving(registry.uri, entry(alias="production"))
    registry.promote("1")
    before = deploy(config)
    registry.promote("2")
    after = deploy(config)

    v1, v2 = registry.versions["1"], registry.versions["2"]
    assert v1.location != v2.location
    assert isvc(before)["spec"]["predictor"]["model"]["storageUri"] == v1.location
    assert isvc(after)["spec"]["predictor"]["model"]["storageUri"] == v2.location
    annotations = isvc(after)["metadata"]["annotations"]
    assert (annotations["mlops-platform/model-version"], annotations["mlops-platform/run-id"]) == ("2", v2.run_id)
    assert after.outputs["servingModels"][f"{NAMESPACE}/{MODEL}"] == {
        "storageUri": v2.location,
        "registeredModel": MODEL,
        "version": "2",
        "alias": "production",
        "runId": v2.run_id,
    }
    assert "diabetes v1 @production" in table(before)
    assert "diabetes v2 @production" in table(after)


@pytest.mark.slow
def test_a_version_pins_regardless_of_aliases(registry):
    registry.promote("2")
    plan = deploy(serving(registry.uri, entry(version=1)))
    manifest = isvc(plan)
    assert manifest["spec"]["predictor"]["model"]["storageUri"] == registry.versions["1"].location
    assert manifest["metadata"]["annotations"]["mlops-platform/model-version"] == "1"
    assert "mlops-platform/model-alias" not in manifest["metadata"]["annotations"]


@pytest.mark.slow
def test_one_client_resolves_every_model(registry, monkeypatch):
    created = []

    class CountingClient(registry_module.MlflowRest):
        def __init__(self, *args, **kwargs):
            created.append(args)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(registry_module, "MlflowRest", CountingClient)
    registry.promote("2")
    plan = deploy(
        serving(registry.uri, entry(alias="production"), entry("diabetes-v1", version=1), entry(namespace="team-a", alias="production"))
    )
    assert len(plan.kinds("InferenceService")) == 3
    assert len(created) == 1


def test_the_registry_is_not_asked_for_pinned_sources(monkeypatch):
    monkeypatch.setattr(registry_module, "MlflowRest", None)
    plan = deploy(
        serving(f"http://{HOST}:{free_port()}", {"name": MODEL, "namespace": NAMESPACE, "storageUri": f"{ROOT_URI}/1/models/m-1/artifacts"})
    )
    assert isvc(plan)["spec"]["predictor"]["model"]["storageUri"] == f"{ROOT_URI}/1/models/m-1/artifacts/"


@pytest.mark.slow
def test_resolving_and_gating_never_imports_mlflow(registry):
    """Importing MLflow alone costs more than the time budget for a hundred models (tools/bench/serving.py)."""
    registry.promote("1")
    values, _ = plain_registry_values(
        serving(registry.uri, entry(alias="production"), entry("pinned", storageUri=f"{ROOT_URI}/1/m/artifacts"))
    )
    code = (
        "import json, sys; from mlops_platform.config import parse_config; from mlops_platform.serving.registry import resolve_models; "
        f"values = json.loads({json.dumps(values)!r}); "
        "resolved = resolve_models(parse_config('dev', values)); "
        "print(json.dumps({'resolved': [[m.version, m.storage_uri] for m in resolved], 'mlflow': 'mlflow' in sys.modules}))"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=harness.ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.splitlines()[-1]) == {
        "resolved": [["1", registry.versions["1"].location], [None, f"{ROOT_URI}/1/m/artifacts/"]],
        "mlflow": False,
    }


# -- canary: production stays the stable revision, the challenger takes its share ------------------

CANARY = {"alias": "challenger", "trafficPercent": 10}


def canary_config(registry: Registry, **canary: object) -> dict:
    return serving(registry.uri, entry(alias="production", canary={**CANARY, **canary}), deploymentMode="Serverless")


@pytest.mark.slow
def test_a_canary_resolves_production_and_challenger_to_their_own_locations(registry):
    registry.promote("1")
    registry.promote("2", "challenger")
    plan = deploy(canary_config(registry))
    v1, v2 = registry.versions["1"], registry.versions["2"]
    manifest = isvc(plan)
    assert manifest["spec"]["predictor"]["canaryTrafficPercent"] == 10
    assert manifest["spec"]["predictor"]["model"]["storageUri"] == v2.location
    assert manifest["metadata"]["annotations"] == {
        "serving.kserve.io/deploymentMode": "Serverless",
        "mlops-platform/registered-model": MODEL,
        "mlops-platform/model-version": "1",
        "mlops-platform/model-alias": "production",
        "mlops-platform/run-id": v1.run_id,
        "mlops-platform/canary-version": "2",
        "mlops-platform/canary-alias": "challenger",
        "mlops-platform/canary-run-id": v2.run_id,
    }
    assert plan.outputs["servingModels"][f"{NAMESPACE}/{MODEL}"] == {
        "storageUri": v1.location,
        "registeredModel": MODEL,
        "version": "1",
        "alias": "production",
        "runId": v1.run_id,
        "canary": {"storageUri": v2.location, "version": "2", "alias": "challenger", "runId": v2.run_id, "trafficPercent": 10},
    }
    assert "diabetes v1 @production 90% | v2 @challenger 10%" in table(plan)


@pytest.mark.slow
def test_moving_the_challenger_changes_only_the_canary_fields(registry):
    registry.promote("1")
    registry.promote("2", "challenger")
    before = isvc(deploy(canary_config(registry)))
    registry.promote("3", "challenger")
    after = isvc(deploy(canary_config(registry)))
    assert changed(before, after) == {
        "spec.predictor.model.storageUri": (registry.versions["2"].location, registry.versions["3"].location),
        "metadata.annotations.mlops-platform/canary-version": ("2", "3"),
        "metadata.annotations.mlops-platform/canary-run-id": (registry.versions["2"].run_id, registry.versions["3"].run_id),
    }


@pytest.mark.slow
def test_promoting_is_moving_production_and_dropping_the_canary(registry):
    registry.promote("1")
    registry.promote("2", "challenger")
    during = isvc(deploy(canary_config(registry)))
    registry.promote("2")
    after = isvc(deploy(serving(registry.uri, entry(alias="production"), deploymentMode="Serverless")))
    # The latest revision keeps the challenger's files and now takes all the traffic.
    assert after["spec"]["predictor"]["model"]["storageUri"] == during["spec"]["predictor"]["model"]["storageUri"]
    assert "canaryTrafficPercent" not in after["spec"]["predictor"]
    assert after["metadata"]["annotations"]["mlops-platform/model-version"] == "2"


@pytest.mark.slow
def test_a_canary_on_the_version_production_serves_is_refused(registry, monkeypatch):
    """Moving production to the challenger but keeping the canary would leave 90% on the old revision while the alias says otherwise."""
    registry.promote("2")
    registry.promote("2", "challenger")
    message, declared = failure(monkeypatch, canary_config(registry))
    assert message == (
        f"{ENTRY}: canary alias 'challenger' is version 2, the version already served; "
        "allowed: a canary on another version, or no canary once the model is promoted"
    )
    assert declared == []


def changed(old: dict, new: dict, path: str = "") -> dict[str, tuple]:
    if isinstance(old, dict) and isinstance(new, dict):
        found: dict[str, tuple] = {}
        for key in set(old) | set(new):
            found |= changed(old.get(key), new.get(key), f"{path}.{key}" if path else key)
        return found
    return {} if old == new else {path: (old, new)}


# -- failures: one line naming the entry, nothing declared ---------------------------------------


@pytest.fixture(scope="module")
def elsewhere(registry) -> str:
    """A registered model whose only version lives in a bucket KServe's credentials cannot read."""
    registry.client.create_registered_model("elsewhere")
    return registry.client.create_model_version("elsewhere", "s3://another-bucket/team/model/artifacts").version


ENTRY = f"mlops-platform:serving.models[0] ({MODEL})"


@pytest.mark.parametrize(
    "source, expected",
    [
        (
            {"registeredModel": "no-such-model", "alias": "production"},
            f"{ENTRY}: registered model 'no-such-model' not found in the registry at {{uri}}",
        ),
        ({"alias": "champion"}, f"{ENTRY}: registered model 'diabetes' has no alias 'champion'"),
        ({"version": 99}, f"{ENTRY}: registered model 'diabetes' has no version 99"),
        (
            {"registeredModel": "elsewhere", "version": 1},
            f"{ENTRY}: source s3://another-bucket/team/model/artifacts is not under {ROOT_URI}/, the only prefix KServe's "
            "storage credentials can read",
        ),
    ],
)
@pytest.mark.slow
def test_an_unresolvable_model_stops_before_any_resource(registry, elsewhere, monkeypatch, source, expected):
    message, declared = failure(
        monkeypatch, serving(registry.uri, {"name": MODEL, "namespace": NAMESPACE, "registeredModel": MODEL, **source})
    )
    assert message == expected.format(uri=registry.uri)
    assert declared == []


@pytest.mark.slow
def test_of_several_failures_the_first_entry_in_config_order_is_reported(registry, monkeypatch):
    registry.promote("1")
    entries = [entry(alias="production"), entry("second", alias="champion"), entry("third", registeredModel="no-such-model", version=1)]
    message, _ = failure(monkeypatch, serving(registry.uri, *entries))
    assert message == "mlops-platform:serving.models[1] (second): registered model 'diabetes' has no alias 'champion'"


@pytest.mark.slow
def test_a_wrong_path_prefix_is_named_as_such(registry, monkeypatch):
    message, _ = failure(monkeypatch, serving(f"{registry.uri}/mlflow", entry(alias="production")))
    assert message == (
        f"{ENTRY}: no MLflow API at {registry.uri}/mlflow (HTTP 404); check serving.mlflowTrackingUri, including the "
        "server's --static-prefix"
    )


@pytest.mark.slow
def test_a_registry_without_workspaces_is_named_when_the_stack_has_them(registry, monkeypatch):
    """A plain MLflow server answers HTTP 500 to any request naming a workspace; the message says what that likely means."""
    values, secret_keys = stack_config("dev")
    values["mlops-platform:serving"] = json.dumps(serving(registry.uri, entry(alias="production")))
    with pytest.raises(ConfigError) as caught:
        run_program("dev", config=values, secret_keys=secret_keys)
    assert str(caught.value) == (
        f"{ENTRY}: the registry at {registry.uri} failed a request in MLflow workspace {NAMESPACE!r} (HTTP 500), as a server "
        "without workspaces answers them all; check that serving.mlflowTrackingUri is a server with workspaces, or set "
        "kubeflow.workspaces false"
    )


@pytest.mark.parametrize("preview", [True, False], ids=["preview", "up"])
def test_an_unreachable_registry_fails_fast_in_preview_and_up(monkeypatch, preview):
    uri = f"http://{HOST}:{free_port()}"
    start = time.monotonic()
    message, declared = failure(monkeypatch, serving(uri, entry(alias="production")), preview=preview)
    assert time.monotonic() - start < 15
    assert message == (
        f"{ENTRY}: the registry at {uri} is unreachable or failing (Connection refused); preview and deploy need it to "
        "resolve aliases and versions"
    )
    assert declared == []


# -- gates: what would be pinned must be servable ----------------------------------------------------


def handmade(registry: Registry, name: str, mlmodel: dict | None) -> str:
    """A registered model whose only version has exactly this MLmodel (or none) under the artifact root."""
    key = f"dev/handmade/{name}/artifacts"
    if mlmodel is not None:
        registry.s3.put_object(Bucket=BUCKET, Key=f"{key}/MLmodel", Body=yaml.safe_dump(mlmodel).encode())
    registry.client.create_registered_model(name)
    registry.client.create_model_version(name, f"s3://{BUCKET}/{key}")
    return f"s3://{BUCKET}/{key}/"


@pytest.fixture(scope="module")
def gated(registry) -> dict[str, str]:
    """One registered model per gate, each failing only that gate; values are where storageUri would point."""
    signature = {"inputs": '[{"type": "double", "name": "age"}]', "outputs": '[{"type": "tensor"}]'}
    pyfunc = {"loader_module": "mlflow.sklearn", "model_path": "model.pkl"}
    return {
        "missing": handmade(registry, "missing", None),
        "onnx-only": handmade(
            registry, "onnx-only", {"flavors": {"onnx": {"onnx_version": "1.17.0"}}, "mlflow_version": "2.9.2", "signature": signature}
        ),
        "pyfunc-only": handmade(
            registry, "pyfunc-only", {"flavors": {"python_function": pyfunc}, "mlflow_version": "2.9.2", "signature": signature}
        ),
        "skops": handmade(
            registry,
            "skops",
            {
                "flavors": {"python_function": pyfunc, "sklearn": {"pickled_model": "model.skops", "serialization_format": "skops"}},
                "mlflow_version": "3.17.2",
                "signature": signature,
            },
        ),
        "unsigned": log_model(registry.uri, registry.s3, "unsigned", 1.0, signed=False).location,
    }


def version_of(name: str) -> str:
    return f"{ENTRY}: version 1 of registered model {name!r}"


@pytest.mark.parametrize(
    "name, settings, expected",
    [
        ("missing", {}, "{v}: has no MLmodel file at {uri} (artifact missing or deleted)"),
        ("onnx-only", {}, "{v}: has flavors onnx; format mlflow is served by kserve-mlserver, which loads the python_function flavor"),
        (
            "pyfunc-only",
            {"format": "sklearn"},
            "{v}: has flavors python_function; format sklearn is served by kserve-sklearnserver, which loads the sklearn flavor",
        ),
        (
            "skops",
            {"format": "sklearn"},
            "{v}: stores its model as model.skops; kserve-sklearnserver loads only model.joblib, model.pkl, model.pickle "
            "(log it with serialization_format='pickle')",
        ),
        ("unsigned", {}, "{v}: has no signature; allowed: a model logged with a signature, or requireSignature: false"),
    ],
)
@pytest.mark.slow
def test_a_version_failing_a_gate_stops_before_any_resource(registry, gated, monkeypatch, name, settings, expected):
    message, declared = failure(monkeypatch, serving(registry.uri, entry(registeredModel=name, version=1, **settings)))
    assert message == expected.format(v=version_of(name), uri=gated[name])
    assert declared == []


@pytest.mark.slow
def test_make_plan_exits_2_with_the_gates_one_line(registry, gated, tmp_path, monkeypatch, capsys):
    from tools.dev import plan as plan_tool

    document = yaml.safe_load((harness.ROOT / "Pulumi.dev.yaml").read_text())
    document["config"]["mlops-platform:serving"] = serving(registry.uri, entry(registeredModel="unsigned", version=1))
    document["config"]["mlops-platform:kubeflow"]["workspaces"] = False
    (tmp_path / "Pulumi.yaml").write_text((harness.ROOT / "Pulumi.yaml").read_text())
    (tmp_path / "Pulumi.gated.yaml").write_text(yaml.safe_dump(document))
    declared: list = []
    record_into = harness._monitor
    monkeypatch.setattr(harness, "_monitor", lambda mocks, _: record_into(mocks, declared))
    code = plan_tool.main(["--stack", "gated", "--stack-dir", str(tmp_path), "--out", str(tmp_path / "build")])
    captured = capsys.readouterr()
    assert (code, captured.out, declared) == (2, "", [])
    assert captured.err == (
        f"error: {version_of('unsigned')}: has no signature; allowed: a model logged with a signature, or requireSignature: false\n"
    )


@pytest.mark.slow
def test_an_mlflow_format_the_runtime_does_not_declare_is_refused(registry, monkeypatch):
    """KServe 0.16's kserve-mlserver declares mlflow formats 1 and 2; this registry's models were written by MLflow 3."""
    config = serving(registry.uri, entry(version=1))
    del config["mlflowFormatVersions"]
    message, declared = failure(monkeypatch, config)
    assert message == (
        f"{ENTRY}: version 1 of registered model 'diabetes': was written by MLflow {MLFLOW_VERSION} (mlflow format 3); "
        "kserve-mlserver serves mlflow format versions 1, 2 (serving.mlflowFormatVersions)"
    )
    assert declared == []


@pytest.mark.slow
def test_each_gate_passes_for_what_it_does_not_check(registry, gated):
    """The same versions pass where their one defect does not matter: the gates test what they claim."""
    plan = deploy(
        serving(
            registry.uri,
            entry("unsigned", registeredModel="unsigned", version=1, requireSignature=False),
            entry("pyfunc-only", registeredModel="pyfunc-only", version=1),
            entry("pickled", version=1, format="sklearn"),
        )
    )
    assert isvc(plan, "unsigned")["spec"]["predictor"]["model"]["storageUri"] == gated["unsigned"]
    assert isvc(plan, "pyfunc-only")["spec"]["predictor"]["model"]["storageUri"] == gated["pyfunc-only"]
    assert isvc(plan, "pickled")["spec"]["predictor"]["model"]["storageUri"] == registry.versions["1"].location


@pytest.mark.slow
def test_the_challenger_is_gated_too(registry, gated, monkeypatch):
    unsigned = log_model(registry.uri, registry.s3, MODEL, 2.0, signed=False)
    registry.promote("1")
    registry.promote(unsigned.version, "challenger")
    message, declared = failure(monkeypatch, canary_config(registry))
    assert message == (
        f"{ENTRY}: canary version {unsigned.version} of registered model 'diabetes': has no signature; "
        "allowed: a model logged with a signature, or requireSignature: false"
    )
    assert declared == []
    registry.client.delete_registered_model_alias(MODEL, "challenger")
    message, _ = failure(monkeypatch, canary_config(registry))
    assert message == f"{ENTRY}: registered model 'diabetes' has no canary alias 'challenger'"


# -- cost: a few searches per workspace, then one MLmodel read per version ------------------------


@pytest.fixture
def calls(monkeypatch) -> list[str]:
    """Every request resolution sends, by endpoint (``artifacts`` for a file read through the proxy)."""
    return record_requests(monkeypatch)


SEARCHES = ["experiments/search", "logged-models/search", "model-versions/search", "registered-models/search"]
ALONE = ["model-versions/get", "model-versions/get-download-uri", "registered-models/alias"]


def three_entries(registry: Registry) -> tuple[dict, dict[str, str]]:
    """Two aliases and a version of one registered model, and the storageUri each must resolve to."""
    registry.promote("2")
    config = serving(registry.uri, entry(alias="production"), entry("diabetes-v1", version=1), entry("again", alias="production"))
    return config, {
        MODEL: registry.versions["2"].location,
        "diabetes-v1": registry.versions["1"].location,
        "again": registry.versions["2"].location,
    }


def storage_uris(plan: Plan) -> dict[str, str]:
    return {r.k8s_name: r.inputs["spec"]["predictor"]["model"]["storageUri"] for r in plan.kinds("InferenceService")}


@pytest.mark.slow
def test_a_few_searches_answer_every_entry_then_each_version_costs_one_mlmodel_read(registry, calls):
    config, expected = three_entries(registry)
    assert storage_uris(deploy(config)) == expected
    assert sorted(calls) == sorted(SEARCHES + ["artifacts"] * 3)


def _refused(*args, **kwargs):
    raise mlflow_rest.RegistryError("INVALID_PARAMETER_VALUE", "HTTP 400")


def _other_shape(*args, **kwargs):
    return [{"name": MODEL, "aliases": "production", "version": None}]


@pytest.mark.parametrize(
    "case, alone",
    [
        # A server or proxy refusing the searches: every entry is asked alone, as before the searches.
        ("searches refused", ["model-versions/get"] + ["model-versions/get-download-uri"] * 3 + ["registered-models/alias"] * 2),
        # Answers of another shape than MLflow 3.17's: the same.
        ("answers of another shape", ["model-versions/get"] + ["model-versions/get-download-uri"] * 3 + ["registered-models/alias"] * 2),
        # Version 1 is older than the versions listed per model; the aliased version 2 is listed.
        ("older than listed", ["model-versions/get", "model-versions/get-download-uri"]),
        # More experiments than one page: logged models are not searched, so their locations are asked per version.
        ("experiments beyond a page", ["model-versions/get-download-uri"] * 3),
    ],
)
@pytest.mark.slow
def test_what_the_searches_leave_open_is_asked_per_entry_with_the_same_result(registry, calls, monkeypatch, case, alone):
    config, expected = three_entries(registry)
    if case in ("searches refused", "answers of another shape"):
        for method in ("search_registered_models", "search_model_versions", "experiment_ids", "search_logged_models"):
            monkeypatch.setattr(mlflow_rest.MlflowRest, method, _refused if case == "searches refused" else _other_shape)
    elif case == "older than listed":
        newest = max(int(v.version) for v in registry.client.search_model_versions(f"name = '{MODEL}'"))
        monkeypatch.setattr(catalog, "VERSIONS_PER_MODEL", newest - 1)
    else:
        registry.client.create_experiment(f"another-{os.urandom(4).hex()}")
        monkeypatch.setattr(catalog, "EXPERIMENTS", 1)
    assert storage_uris(deploy(config)) == expected
    assert sorted(c for c in calls if c in ALONE) == alone
    assert calls.count("artifacts") == 3


@pytest.mark.slow
def test_a_name_no_filter_can_list_verbatim_is_looked_up_alone(registry, calls):
    """MLflow allows quotes and brackets in names; they are never spliced into a search filter."""
    name = "churn's model (v2)"
    signature = {"inputs": '[{"type": "double", "name": "age"}]'}
    pyfunc = {"loader_module": "mlflow.sklearn", "model_path": "model.pkl"}
    location = handmade(registry, name, {"flavors": {"python_function": pyfunc}, "mlflow_version": "2.9.2", "signature": signature})
    plan = deploy(serving(registry.uri, entry("churn", registeredModel=name, version=1)))
    assert storage_uris(plan) == {"churn": location}
    # Its source is already a location on the bucket, which is what get-download-uri would answer.
    assert calls == ["model-versions/get", "artifacts"]


def test_a_dead_registry_costs_one_attempt_per_search_not_per_entry(monkeypatch, calls):
    uri = f"http://{HOST}:{free_port()}"
    message, _ = failure(monkeypatch, serving(uri, entry(alias="production"), entry("second", version=2), entry("third", alias="x")))
    assert message.startswith(f"{ENTRY}: the registry at {uri} is unreachable or failing (Connection refused)")
    assert sorted(calls) == ["experiments/search", "model-versions/search", "registered-models/search"]


# -- credentials -----------------------------------------------------------------------------------


class _TokenRegistry(BaseHTTPRequestHandler):
    """The registry endpoints an alias resolution calls, answering only the bearer token it was given."""

    token = ""
    seen: list[str | None] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self.seen.append(self.headers.get("Authorization"))
        path, query = urlsplit(self.path).path, parse_qs(urlsplit(self.path).query)
        if self.headers.get("Authorization") != f"Bearer {self.token}":
            return self._send(401, {"error_code": "UNAUTHENTICATED", "message": "credentials required"})
        if path == "/api/2.0/mlflow/registered-models/alias":
            return self._send(
                200,
                {
                    "model_version": {
                        "name": query["name"][0],
                        "version": "5",
                        "status": "READY",
                        "run_id": "0123abcd",
                        "source": "models:/m-5",
                    }
                },
            )
        if path == "/api/2.0/mlflow/registered-models/get":
            return self._send(200, {"registered_model": {"name": query["name"][0]}})
        if path == "/api/2.0/mlflow/model-versions/get-download-uri":
            return self._send(200, {"artifact_uri": "mlflow-artifacts:/3/models/m-5/artifacts"})
        if path == "/api/2.0/mlflow-artifacts/artifacts/3/models/m-5/artifacts/MLmodel":
            mlmodel = {
                "flavors": {"python_function": {"loader_module": "mlflow.sklearn"}},
                "mlflow_version": "2.22.0",
                "signature": {"inputs": "[]"},
            }
            return self._send(200, mlmodel)
        return self._send(404, {"error_code": "ENDPOINT_NOT_FOUND", "message": path})

    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


@contextlib.contextmanager
def http_server(handler: type[BaseHTTPRequestHandler], certificate: tuple[Path, Path] | None = None) -> Iterator[str]:
    """``handler`` served on 127.0.0.1 for the block, over TLS with ``certificate`` (cert, key) when given; yields its URI."""
    server = ThreadingHTTPServer((HOST, 0), handler)
    if certificate is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(*certificate)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"{'https' if certificate else 'http'}://{HOST}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@contextlib.contextmanager
def stub_registry(certificate: tuple[Path, Path] | None = None) -> Iterator[tuple[str, type[_TokenRegistry]]]:
    """The token-checking stub with a token of its own, over TLS with ``certificate`` when given."""
    handler = type("Handler", (_TokenRegistry,), {"token": "tok-" + os.urandom(12).hex(), "seen": []})
    with http_server(handler, certificate) as uri:
        yield uri, handler


@pytest.fixture
def token_registry() -> Iterator[tuple[str, type[_TokenRegistry]]]:
    with stub_registry() as registry:
        yield registry


def test_a_secret_config_token_is_sent_as_bearer_and_scoped_to_resolution(token_registry, monkeypatch):
    uri, handler = token_registry
    monkeypatch.delenv("MLFLOW_TRACKING_TOKEN", raising=False)
    plan = deploy({**serving(uri, entry(alias="production")), "registryToken": handler.token}, secret=True)
    assert handler.seen and set(handler.seen) == {f"Bearer {handler.token}"}
    assert isvc(plan)["spec"]["predictor"]["model"]["storageUri"] == f"{ROOT_URI}/3/models/m-5/artifacts/"
    assert "MLFLOW_TRACKING_TOKEN" not in os.environ
    assert not [r.name for r in plan.resources if handler.token in json.dumps(r.inputs)]


def test_the_standard_mlflow_token_variable_works_too(token_registry, monkeypatch):
    uri, handler = token_registry
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", handler.token)
    plan = deploy(serving(uri, entry(alias="production")))
    assert isvc(plan)["metadata"]["annotations"]["mlops-platform/model-version"] == "5"
    assert os.environ["MLFLOW_TRACKING_TOKEN"] == handler.token


def test_a_refused_token_is_reported_without_the_token(token_registry, monkeypatch):
    uri, handler = token_registry
    wrong = "tok-wrong-" + os.urandom(12).hex()
    message, declared = failure(monkeypatch, {**serving(uri, entry(alias="production")), "registryToken": wrong}, secret=True)
    assert message == (
        f"{ENTRY}: the registry at {uri} refused access (UNAUTHENTICATED); provide MLFLOW_TRACKING_TOKEN "
        "(or MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD) or secret serving.registryToken"
    )
    assert wrong not in message and declared == []
    assert set(handler.seen) == {f"Bearer {wrong}"}


class _LoginPage(BaseHTTPRequestHandler):
    """What an SSO proxy in front of a registry answers an unauthenticated API call with: a page, status 200."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        data = b"<html><body><form>Sign in</form></body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_POST = do_GET  # noqa: N815

    def log_message(self, *args) -> None:
        pass


def test_a_page_that_is_not_mlflows_answer_is_named_as_such(monkeypatch):
    with http_server(_LoginPage) as uri:
        message, declared = failure(monkeypatch, serving(uri, entry(alias="production"), entry("v1", version=1)))
    assert (message, declared) == (
        f"{ENTRY}: the registry at {uri} is unreachable or failing (not an MLflow API answer); preview and deploy need it to "
        "resolve aliases and versions",
        [],
    )


# -- TLS: MLflow's own settings ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1: what a registry behind a private CA presents."""
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "registry.crt", directory / "registry.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1"]
        + ["-subj", f"/CN={HOST}", "-addext", f"subjectAltName=IP:{HOST}"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


@pytest.mark.parametrize(
    "settings, error",
    [
        ({}, "TLS: CERTIFICATE_VERIFY_FAILED"),
        ({"MLFLOW_TRACKING_SERVER_CERT_PATH": "{cert}"}, None),
        ({"MLFLOW_TRACKING_INSECURE_TLS": "true"}, None),
    ],
    ids=["unknown CA refused", "CA from MLFLOW_TRACKING_SERVER_CERT_PATH", "MLFLOW_TRACKING_INSECURE_TLS"],
)
def test_an_https_registry_is_verified_as_mlflows_client_would(certificate, monkeypatch, settings, error):
    with stub_registry(certificate) as (uri, handler):
        monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", handler.token)
        for name, value in settings.items():
            monkeypatch.setenv(name, value.format(cert=certificate[0]))
        if error is None:
            assert isvc(deploy(serving(uri, entry(alias="production"))))["metadata"]["annotations"]["mlops-platform/model-version"] == "5"
        else:
            message, declared = failure(monkeypatch, serving(uri, entry(alias="production")))
            assert (message, declared) == (
                f"{ENTRY}: the registry at {uri} is unreachable or failing ({error}); preview and deploy "
                "need it to resolve aliases and versions",
                [],
            )


def test_a_plain_http_registry_never_loads_the_ca_bundle(token_registry, monkeypatch):
    """Loading it costs about 30 ms of the plan (tools/bench/serving.py); only HTTPS needs it."""
    uri, handler = token_registry
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", handler.token)
    monkeypatch.setattr(mlflow_rest, "_tls", lambda env: pytest.fail("the CA bundle was loaded for a plain-HTTP registry"))
    assert isvc(deploy(serving(uri, entry(alias="production"))))["metadata"]["annotations"]["mlops-platform/model-version"] == "5"


# -- the mapping rules -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "source, expected",
    [
        ("mlflow-artifacts:/1/models/m-1/artifacts", f"{ROOT_URI}/1/models/m-1/artifacts/"),
        ("mlflow-artifacts://mlflow.mlflow:5000/1/models/m-1/artifacts", f"{ROOT_URI}/1/models/m-1/artifacts/"),
        (f"{ROOT_URI}/1/models/m-1/artifacts/", f"{ROOT_URI}/1/models/m-1/artifacts/"),
        (f"{ROOT_URI}//1/./models/m-1/artifacts", f"{ROOT_URI}/1/models/m-1/artifacts/"),
        ("mlflow-artifacts:/../prod/1/artifacts", None),
        (f"{ROOT_URI}/../prod/1/artifacts", None),
        (f"{ROOT_URI}-old/1/artifacts", None),
        (ROOT_URI, None),
        ("s3://another-bucket/dev/1/artifacts", None),
        ("runs:/0123/model", None),
        ("file:///tmp/mlruns/1/artifacts", None),
    ],
)
def test_sources_map_onto_the_artifact_root_or_are_refused(source, expected):
    assert physical_uri(source, ROOT_URI) == expected


def test_a_refusal_by_the_kubernetes_authorization_app_is_named_as_one():
    """The plugin nests its error code (``{"error": {"code": ...}}``) instead of MLflow's ``error_code``."""
    import io
    import urllib.error

    from mlops_platform.serving import mlflow_rest

    body = json.dumps({"error": {"code": "PERMISSION_DENIED", "message": "Permission denied for requested operation."}}).encode()
    refusal = urllib.error.HTTPError("https://mlflow.example.com/mlflow", 400, "Bad Request", None, io.BytesIO(body))  # type: ignore[arg-type]
    assert mlflow_rest._http_error(refusal).error_code == "PERMISSION_DENIED"
