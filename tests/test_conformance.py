"""Conformance gate: every rendered object is valid for its API and clean under checkov."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

from mlops_platform.config import parse_config
from tools.dev.plan import write_build
from tools.testing import conformance
from tools.testing.harness import stack_config
from tools.testing.plans import run_with

LINT_VENV = Path(__file__).resolve().parent.parent / ".venv-lint"
needs_checkov = pytest.mark.skipif(not (LINT_VENV / "bin" / "checkov").exists(), reason="checkov not installed: run `make lint-venv`")


@pytest.fixture(scope="module", params=["dev", "prod"])
def render(request, tmp_path_factory):
    """The stack's plan written exactly as `make plan` writes it."""
    plan = request.getfixturevalue(request.param)
    out = tmp_path_factory.mktemp(request.param)
    write_build(plan, out)
    version = parse_config(request.param, stack_config(request.param)[0]).kubernetes_version
    return plan, out, version


def test_every_rendered_object_is_valid_for_its_api(render):
    plan, out, version = render
    report = conformance.validate_directory(out / "manifests", version)
    if (out / "patches").exists():
        conformance.validate_directory(out / "patches", version, partial=True, report=report)
    assert report.errors == []
    assert "none" not in report.checked
    assert sum(report.checked.values()) == len(list(plan.manifests())) > 10


@needs_checkov
@pytest.mark.slow
def test_checkov_finds_nothing_unsuppressed(render):
    _, out, _ = render
    result = conformance.checkov(out / "manifests")
    assert result.failed == []
    assert result.passed > 150
    assert {s.split()[0] for s in result.skipped} == {"CKV_K8S_43", "CKV_K8S_35"}


def test_every_suppression_is_an_annotation_with_a_reason(render):
    plan, _, _ = render
    suppressions = 0
    for resource, manifest in plan.manifests():
        for key, value in (manifest["metadata"].get("annotations") or {}).items():
            if key.startswith("checkov.io/skip"):
                suppressions += 1
                check, _, reason = value.partition("=")
                assert check.startswith("CKV") and len(reason.split()) >= 8, f"{resource.name}: {value}"
    assert suppressions >= 1


def _deployment(out: Path) -> dict:
    path = next((out / "manifests").glob("*-deployment-mlflow-mlflow.yaml"))
    return yaml.safe_load(path.read_text())


@pytest.mark.parametrize(
    "break_it, expected",
    [
        (
            lambda d: d["spec"]["template"]["spec"]["containers"][0].update(imagee="x"),
            "spec.template.spec.containers[0]: Additional properties are not allowed ('imagee' was unexpected)",
        ),
        (lambda d: d["spec"].update(replicas="two"), "spec.replicas: 'two' is not of type 'integer', 'null'"),
        (lambda d: d["spec"].pop("selector"), "spec: 'selector' is a required property"),
    ],
)
def test_a_broken_manifest_fails_with_object_and_path(render, tmp_path, break_it, expected):
    _, out, version = render
    broken = copy.deepcopy(_deployment(out))
    break_it(broken)
    (tmp_path / "broken.yaml").write_text(yaml.safe_dump(broken))
    report = conformance.validate_directory(tmp_path, version)
    assert report.errors == [f"broken.yaml: Deployment mlflow: {expected}"]


@needs_checkov
@pytest.mark.slow
def test_checkov_fails_a_container_without_hardening(render, tmp_path):
    _, out, _ = render
    broken = _deployment(out)
    broken["metadata"].pop("annotations", None)
    for c in broken["spec"]["template"]["spec"]["containers"]:
        c.pop("securityContext")
    (tmp_path / "broken.yaml").write_text(yaml.safe_dump(broken))
    failed = conformance.checkov(tmp_path).failed
    assert any(f.startswith("CKV_K8S_20 Deployment.mlflow.mlflow") for f in failed)
    assert any(f.startswith("CKV_K8S_43 ") for f in failed), "without its annotation the digest check is not suppressed"


def test_an_unknown_kind_is_an_error_not_a_pass(tmp_path):
    (tmp_path / "x.yaml").write_text(yaml.safe_dump({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}))
    report = conformance.validate_directory(tmp_path, "1.34")
    assert report.errors == ["x.yaml: Widget w: no schema or validator for example.com/v1 Widget"]


INFERENCE_SERVICE = {
    "apiVersion": "serving.kserve.io/v1beta1",
    "kind": "InferenceService",
    "metadata": {"name": "diabetes", "namespace": "models"},
    "spec": {
        "predictor": {"minReplicas": 1, "model": {"modelFormat": {"name": "mlflow"}, "protocolVersion": "v2", "storageUri": "s3://b/p/"}}
    },
}


def test_inference_services_are_checked_against_the_kserve_sdk_models():
    assert conformance.inference_service_errors(INFERENCE_SERVICE) == []
    broken = copy.deepcopy(INFERENCE_SERVICE)
    broken["spec"]["predictor"]["model"]["storageURI"] = broken["spec"]["predictor"]["model"].pop("storageUri")
    broken["spec"]["predictor"]["minReplicas"] = "1"
    assert conformance.inference_service_errors(broken) == [
        "InferenceService.spec.predictor.minReplicas: expected int, got str",
        "InferenceService.spec.predictor.model.storageURI: unknown field for V1beta1ModelSpec",
    ]


def test_istio_and_kubeflow_resources_are_checked_structurally():
    route = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "mlflow", "namespace": "mlflow"},
        "spec": {
            "hosts": ["*"],
            "gateways": ["kubeflow/kubeflow-gateway"],
            "http": [
                {"match": [{"uri": {"prefix": "/mlflow/"}}], "route": [{"destination": {"host": "mlflow", "port": {"number": 5000}}}]}
            ],
        },
    }
    assert conformance.validate_manifest(route, "1.34") == ("structural", [])
    route["spec"]["http"][0]["route"][0]["destination"]["port"] = 5000
    how, errors = conformance.validate_manifest(route, "1.34")
    assert errors == ["spec.http[0].route[0].destination.port: 5000 is not of type 'object'"]


@pytest.mark.parametrize("format_", ["mlflow", "sklearn"])
def test_declared_inference_services_pass_the_kserve_models(format_):
    serving = {
        "enabled": True,
        "namespaces": ["kubeflow-user-example-com"],
        "models": [
            {
                "name": "diabetes",
                "namespace": "kubeflow-user-example-com",
                "storageUri": "s3://mlflow-artifacts/dev/1/models/m-1/artifacts/",
                "format": format_,
            }
        ],
    }
    plan = run_with("dev", serving=json.dumps(serving))
    (isvc,) = plan.kinds("InferenceService")
    assert conformance.validate_manifest(isvc.masked_inputs(), "1.34") == ("kserve-sdk", [])
