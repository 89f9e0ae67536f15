"""The CrossGuard front end (mlops_policies/crossguard.py) and the pack as the Pulumi engine loads it (policies/__main__.py)."""

from __future__ import annotations

import json
import runpy
from typing import Any

import pytest
from google.protobuf import struct_pb2
from pulumi.runtime import proto

from mlops_policies import POLICIES, checks, crossguard_policies
from tests.policies.helpers import (
    CREDENTIALS,
    DB_PASSWORD,
    FIXTURES,
    ROOT,
    crossguard_on_export,
    fixture_credentials,
    urn,
    workload,
)

# -- the audit's stack-export fixtures, as CrossGuard would see them --------------------------------


def on_export(name: str) -> set[tuple[str, str, str, str]]:
    """(policy, resource name, path, kind) CrossGuard reports over a --show-secrets fixture export."""
    return crossguard_on_export(json.loads((FIXTURES / name).read_text()), fixture_credentials())


def test_crossguard_passes_the_clean_export(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PULUMI_STACK", "prod")
    assert on_export("clean-export-show-secrets.json") == set()


def test_crossguard_on_the_leaky_export_differs_from_the_audit_only_where_secretness_matters(monkeypatch: pytest.MonkeyPatch) -> None:
    """The audit alone sees stack outputs and values that should be secrets but are not (a RandomPassword
    result, a Secret's data). CrossGuard alone flags a Pulumi secret written into a pod spec, where the
    cluster stores it in plaintext; the audit trusts the state's encryption."""
    monkeypatch.setenv("PULUMI_STACK", "prod")
    env = "spec.template.spec.containers[0].env"
    assert on_export("leaky-export-show-secrets.json") == {
        (CREDENTIALS, "mlflow-env", "data.AWS_ACCESS_KEY_ID", "AWS Access Key"),
        (CREDENTIALS, "mlflow-env", "data.MLFLOW_BACKEND_STORE_URI", "Basic Auth Credentials"),
        (CREDENTIALS, "mlflow", f"{env}[1].value", "AWS Access Key"),
        (CREDENTIALS, "mlflow", f"{env}[2].value", "Secret Keyword"),
        ("images-pinned", "mlflow", "spec.template.spec.initContainers[0].image", checks.LATEST_TAG),
        (
            CREDENTIALS,
            "minio-bucket-setup",
            "spec.jobTemplate.spec.template.spec.containers[0].command[2]",
            "well-known default credential",
        ),
        ("images-pinned", "minio-bucket-setup", "spec.jobTemplate.spec.template.spec.containers[0].image", checks.NO_TAG),
        (CREDENTIALS, "wine", "spec.predictor.model.env[0].value", "credential in a platform setting"),
        (CREDENTIALS, "postgres", "values.auth.postgresPassword", "Secret Keyword"),
        ("no-static-iam-access-keys", "ci-user-key", "(resource)", checks.STATIC_KEY),
        ("s3-bucket-public-access-block", "artifacts", "(resource)", checks.NO_PUBLIC_ACCESS_BLOCK),
        ("s3-bucket-encryption", "artifacts", "(resource)", checks.NO_ENCRYPTION),
        ("s3-bucket-versioning", "artifacts", "(resource)", checks.NO_VERSIONING),
        ("stateful-resources-protected", "artifacts", "protect", checks.NOT_PROTECTED),
        ("stateful-resources-protected", "postgres-data", "protect", checks.NOT_PROTECTED),
        ("mlflow-minio-not-exposed", "mlflow-public", "spec.type", "mlflow exposed outside the cluster by a LoadBalancer Service"),
        # The export's MLflow runs no authorization app, and the same Service routes the internet to it.
        ("mlflow-route-authenticated", "mlflow-public", "spec.type", checks.UNAUTHENTICATED_ROUTE),
        (CREDENTIALS, "minio-users", "spec.template.spec.containers[0].args[5]", "Secret Keyword"),
        (CREDENTIALS, "minio-users", "spec.template.spec.containers[1].command[2]", "Secret Keyword"),
        (CREDENTIALS, "minio-users", "spec.template.spec.initContainers[0].command[3]", "Secret Keyword"),
        (CREDENTIALS, "db-backup", "spec.jobTemplate.spec.template.spec.containers[0].args[0]", "Secret Keyword"),
    }


# -- the pack as the Pulumi engine loads it ------------------------------------------------


class _FakeServer:
    def add_insecure_port(self, address: str) -> int:
        return 0

    def start(self) -> None:
        pass

    def stop(self, grace: Any) -> None:
        pass


@pytest.fixture(scope="module")
def analyzer() -> Any:
    """Run policies/__main__.py for real, minus the network: the gRPC servicer it would serve."""
    import pulumi_policy.policy as sdk

    served: list[Any] = []

    def interrupt(_seconds: float) -> None:
        raise KeyboardInterrupt

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sdk.grpc, "server", lambda *a, **k: _FakeServer())
        patch.setattr(sdk.analyzer_pb2_grpc, "add_AnalyzerServicer_to_server", lambda servicer, server: served.append(servicer))
        patch.setattr(sdk.time, "sleep", interrupt)
        patch.setattr(sdk.sys, "stdout", type("Out", (), {"buffer": type("B", (), {"write": lambda self, b: None})()})())
        runpy.run_path(str(ROOT / "policies" / "__main__.py"), run_name="__main__")
    assert len(served) == 1
    return served[0]


def test_the_pack_assembles_every_policy_with_its_level_and_config_schema(analyzer: Any) -> None:
    info = analyzer.GetAnalyzerInfo(None, None)
    levels = {p.name: proto.EnforcementLevel.Name(p.enforcementLevel) for p in info.policies}
    assert info.name == "mlops-platform"
    assert levels == {
        "no-plaintext-credentials": "MANDATORY",
        "no-static-iam-access-keys": "MANDATORY",
        "s3-bucket-public-access-block": "MANDATORY",
        "s3-bucket-encryption": "ADVISORY",
        "s3-bucket-versioning": "ADVISORY",
        "stateful-resources-protected": "MANDATORY",
        "images-pinned": "MANDATORY",
        "mlflow-minio-not-exposed": "MANDATORY",
        "mlflow-route-authenticated": "MANDATORY",
    }
    schema = {p.name: set(p.configSchema.properties) for p in info.policies}
    assert schema["no-plaintext-credentials"] == {"allowedPaths", "allowedValues"}
    assert schema["stateful-resources-protected"] == {"allowedPaths", "prod", "prodStacks"}


def _struct(value: dict[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(value)
    return struct


def test_the_engine_path_unwraps_secrets_and_reports_without_the_value(analyzer: Any) -> None:
    secret = {"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", "value": DB_PASSWORD}
    request = proto.AnalyzeRequest(
        type="kubernetes:apps/v1:Deployment",
        name="mlflow",
        urn=urn("kubernetes:apps/v1:Deployment", "mlflow"),
        properties=_struct(
            workload(
                "kubernetes:apps/v1:Deployment",
                {
                    "containers": [
                        {"name": "mlflow", "image": "ghcr.io/mlflow/mlflow:v3.17.2", "env": [{"name": "DB_PASSWORD", "value": secret}]}
                    ]
                },
            )
        ),
        options=proto.AnalyzerResourceOptions(protect=False),
    )
    diagnostics = list(analyzer.Analyze(request, None).diagnostics)
    assert [(x.policyName, proto.EnforcementLevel.Name(x.enforcementLevel)) for x in diagnostics] == [
        ("no-plaintext-credentials", "MANDATORY")
    ]
    assert (
        "Secret Keyword at spec.template.spec.containers[0].env[0].value in kubernetes:apps/v1:Deployment 'mlflow' "
        "(rule detect-secrets:KeywordDetector). Keep the value in a Kubernetes Secret" in diagnostics[0].message
    )
    assert DB_PASSWORD not in diagnostics[0].message

    analyzer.Configure(
        proto.ConfigureAnalyzerRequest(
            policyConfig={
                "no-plaintext-credentials": proto.PolicyConfig(
                    enforcementLevel=proto.ADVISORY, properties=_struct({"allowedPaths": [{"path": "spec.*.env[0].value"}]})
                )
            }
        ),
        None,
    )
    try:
        assert list(analyzer.Analyze(request, None).diagnostics) == []
    finally:
        analyzer.Configure(proto.ConfigureAnalyzerRequest(), None)


def test_every_policy_in_the_package_is_in_the_pack() -> None:
    assert [p.name for p in crossguard_policies()] == [spec.name for spec in POLICIES]
