"""The offline audit: `make audit STATE=<file>` over `pulumi stack export` files, and the audit_resources API
that `make plan` calls on build/<stack>/resources.json.

The fixtures are stack exports of a prod stack, each in two forms: secrets as
ciphertext, and as plaintext (``--show-secrets``). Both forms must give the same
answer, and no output may contain any credential from them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mlops_policies import AuditError, ConfigError, Violation, audit_resources
from mlops_policies.audit import main

ROOT = Path(__file__).resolve().parent.parent

FIXTURES = ROOT / "tests" / "fixtures" / "policies"
P = "urn:pulumi:prod::mlops-platform::"
LAST_APPLIED = 'metadata.annotations["kubectl.kubernetes.io/last-applied-configuration"]'

DS = "detect-secrets"
KEYWORD = f"Secret Keyword [{DS}:KeywordDetector"
NOT_SECRET = "credential not stored as a Pulumi secret [mlops:pulumi-secret-required]"
LEAKY_LINES = [
    f"no-plaintext-credentials {P}pulumi:pulumi:Stack::mlops-platform-prod adminPassword: {KEYWORD}]",
    f"no-plaintext-credentials {P}random:index/randomPassword:RandomPassword::db-password result: {NOT_SECRET}",
    f"no-plaintext-credentials {P}kubernetes:core/v1:Secret::mlflow-db stringData.password: {NOT_SECRET}",
    f"no-plaintext-credentials {P}kubernetes:core/v1:ConfigMap::mlflow-env data.AWS_ACCESS_KEY_ID: AWS Access Key [{DS}:AWSKeyDetector]",
    f"no-plaintext-credentials {P}kubernetes:core/v1:ConfigMap::mlflow-env data.MLFLOW_BACKEND_STORE_URI: "
    f"Basic Auth Credentials [{DS}:BasicAuthDetector]",
    f"no-plaintext-credentials {P}kubernetes:core/v1:ConfigMap::mlflow-env {LAST_APPLIED}.data.AWS_ACCESS_KEY_ID: "
    f"AWS Access Key [{DS}:AWSKeyDetector via json]",
    f"no-plaintext-credentials {P}kubernetes:core/v1:ConfigMap::mlflow-env {LAST_APPLIED}.data.MLFLOW_BACKEND_STORE_URI: "
    f"Basic Auth Credentials [{DS}:BasicAuthDetector via json]",
    f"no-plaintext-credentials {P}kubernetes:apps/v1:Deployment::mlflow spec.template.spec.containers[0].env[2].value: {KEYWORD}]",
    f"images-pinned {P}kubernetes:apps/v1:Deployment::mlflow spec.template.spec.initContainers[0].image: image uses the latest tag",
    f"no-plaintext-credentials {P}kubernetes:batch/v1:CronJob::minio-bucket-setup "
    "spec.jobTemplate.spec.template.spec.containers[0].command[2]: well-known default credential [mlops:tutorial-default]",
    f"images-pinned {P}kubernetes:batch/v1:CronJob::minio-bucket-setup spec.jobTemplate.spec.template.spec.containers[0].image: "
    "image has no tag or digest",
    f"no-plaintext-credentials {P}kubernetes:serving.kserve.io/v1beta1:InferenceService::wine spec.predictor.model.env[0].value: "
    "credential in a platform setting [mlops:credential-setting]",
    f"no-plaintext-credentials {P}kubernetes:helm.sh/v3:Release::postgres values.auth.postgresPassword: {KEYWORD}]",
    f"no-static-iam-access-keys {P}aws:iam/accessKey:AccessKey::ci-user-key (resource): long-lived IAM access key",
    f"s3-bucket-public-access-block {P}aws:s3/bucket:Bucket::artifacts (resource): bucket without a public access block",
    f"s3-bucket-encryption {P}aws:s3/bucket:Bucket::artifacts (resource): bucket without default encryption",
    f"s3-bucket-versioning {P}aws:s3/bucket:Bucket::artifacts (resource): bucket without versioning",
    f"stateful-resources-protected {P}aws:s3/bucket:Bucket::artifacts protect: stateful resource not protected in prod",
    f"stateful-resources-protected {P}kubernetes:core/v1:PersistentVolumeClaim::postgres-data protect: stateful "
    "resource not protected in prod",
    f"mlflow-minio-not-exposed {P}kubernetes:core/v1:Service::mlflow-public spec.type: mlflow exposed outside the "
    "cluster by a LoadBalancer Service",
    f"mlflow-route-authenticated {P}kubernetes:core/v1:Service::mlflow-public spec.type: route to an MLflow server without authentication",
    f"no-plaintext-credentials {P}kubernetes:batch/v1:Job::minio-users spec.template.spec.containers[0].args[5]: "
    f"{KEYWORD} via command-line:mc]",
    f"no-plaintext-credentials {P}kubernetes:batch/v1:Job::minio-users spec.template.spec.containers[1].command[2]: "
    f"{KEYWORD} via command-line:mc]",
    f"no-plaintext-credentials {P}kubernetes:batch/v1:Job::minio-users spec.template.spec.initContainers[0].command[3]: "
    f"{KEYWORD} via command-line:curl]",
    f"no-plaintext-credentials {P}kubernetes:batch/v1:CronJob::db-backup spec.jobTemplate.spec.template.spec.containers[0].args[0]: "
    f"{KEYWORD} via url-userinfo]",
]

_CREDENTIALS = json.loads((FIXTURES / "credentials.json").read_text())
LEAKED: list[str] = _CREDENTIALS["leaked"]
HELD_AS_SECRETS: list[str] = _CREDENTIALS["heldAsSecrets"]


def audit(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    for credential in LEAKED + HELD_AS_SECRETS:
        assert credential not in captured.out + captured.err
    return code, captured.out, captured.err


def fixture(name: str) -> str:
    return str(FIXTURES / name)


def test_the_credentials_this_suite_guards_are_in_the_fixtures() -> None:
    leaky = (FIXTURES / "leaky-export.json").read_text()
    shown = (FIXTURES / "leaky-export-show-secrets.json").read_text() + (FIXTURES / "clean-export-show-secrets.json").read_text()
    assert all(credential in leaky for credential in LEAKED)
    assert all(credential in shown for credential in HELD_AS_SECRETS)
    assert not any(credential in leaky for credential in HELD_AS_SECRETS)


@pytest.mark.parametrize("name", ["leaky-export.json", "leaky-export-show-secrets.json"])
def test_a_leaky_export_prints_one_line_per_violation_and_exits_1(capsys: pytest.CaptureFixture[str], name: str) -> None:
    code, out, err = audit(capsys, fixture(name))
    assert out.splitlines() == LEAKY_LINES
    assert err == "audit: 17 resources, 25 violations, 23 mandatory\n"
    assert code == 1


@pytest.mark.parametrize("name", ["clean-export.json", "clean-export-show-secrets.json"])
def test_a_clean_export_with_secrets_as_ciphertext_or_plaintext_passes(capsys: pytest.CaptureFixture[str], name: str) -> None:
    code, out, err = audit(capsys, fixture(name))
    assert (code, out, err) == (0, "", "audit: 22 resources, 0 violations, 0 mandatory\n")


def test_advisory_violations_alone_exit_0(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"all": "advisory", "images-pinned": {"enforcementLevel": "disabled"}}))
    code, out, err = audit(capsys, fixture("leaky-export.json"), "--config", str(config))
    assert out.splitlines() == [line for line in LEAKY_LINES if not line.startswith("images-pinned ")]
    assert (code, err) == (0, "audit: 17 resources, 23 violations, 0 mandatory\n")


def test_the_stack_name_decides_prod_only_policies(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = audit(capsys, fixture("leaky-export.json"), "--stack", "dev")
    assert out.splitlines() == [line for line in LEAKY_LINES if not line.startswith("stateful-resources-protected ")]
    assert code == 1


def test_the_script_reads_stdin_and_runs_from_anywhere(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "operator" / "audit.py"), "-"],
        input=(FIXTURES / "clean-export.json").read_text(),
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert (result.returncode, result.stdout) == (0, "")


UNREADABLE = {
    "missing": (None, "cannot read: No such file or directory"),
    "not-json": ('{"version": 3, "deployment": {', "not JSON: Expecting property name enclosed in double quotes at line 1 column 31"),
    "not-utf8": (b"\xff\xfe{}", "not UTF-8 text"),
    "version-2": ({"version": 2, "deployment": {}}, 'not a version 3 stack export (expected {"version": 3, "deployment": ...})'),
    "no-deployment": ({"version": 3}, "'deployment' must be an object"),
    "resources-not-a-list": ({"version": 3, "deployment": {"resources": {"urn": "x"}}}, "'deployment.resources' must be a list"),
    "resource-without-urn": (
        {"version": 3, "deployment": {"resources": [{"type": "aws:s3/bucket:Bucket", "inputs": {"password": "hunter2x"}}]}},
        "resource 0: 'urn' and 'type' must be strings",
    ),
    "inputs-not-an-object": (
        {"version": 3, "deployment": {"resources": [{"urn": "urn:pulumi:dev::p::t::n", "type": "t", "inputs": ["hunter2x"]}]}},
        "urn:pulumi:dev::p::t::n: 'inputs' must be an object",
    ),
}


@pytest.mark.parametrize("content, problem", UNREADABLE.values(), ids=list(UNREADABLE))
def test_an_unreadable_or_malformed_file_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, content: Any, problem: str
) -> None:
    path = tmp_path / "state.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, str):
        path.write_text(content)
    elif content is not None:
        path.write_text(json.dumps(content))
    code, out, err = audit(capsys, str(path))
    assert (code, out, err) == (2, "", f"audit: {path}: {problem}\n")
    assert "hunter2x" not in err


def test_a_bad_policy_config_is_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"no-plaintext-credentials": {"enforcementLevel": "strict"}}))
    code, out, err = audit(capsys, fixture("clean-export.json"), "--config", str(config))
    assert (code, out, err) == (
        2,
        "",
        f"audit: {config}: no-plaintext-credentials.enforcementLevel: 'strict' is not one of advisory, mandatory, remediate, disabled\n",
    )


# -- audit_resources: the API `make plan` calls on build/<stack>/resources.json ---------------------

DEV = "urn:pulumi:dev::mlops-platform::"
ENV_VALUE = "spec.template.spec.containers[0].env[0].value"


def record(type_: str, name: str, inputs: dict[str, Any], secret_paths: tuple[str, ...] = (), **extra: Any) -> dict[str, Any]:
    """A resource as tools/testing/harness.py records it (secret values masked as "[secret]")."""
    return {
        "urn": f"{DEV}{type_}::{name}",
        "type": type_,
        "name": name,
        "parent": None,
        "custom": True,
        "protect": False,
        "retainOnDelete": False,
        "dependencies": [],
        "inputs": inputs,
        "secretPaths": list(secret_paths),
        **extra,
    }


def deployment_with_env_value(value: str) -> dict[str, Any]:
    return {
        "spec": {
            "template": {
                "spec": {"containers": [{"name": "mlflow", "image": "mlflow:3.17.2", "env": [{"name": "DB_PASSWORD", "value": value}]}]}
            }
        }
    }


def test_a_value_at_or_under_a_secret_path_is_protected() -> None:
    deployment = "kubernetes:apps/v1:Deployment"
    assert (
        audit_resources(
            [
                record(deployment, "masked", deployment_with_env_value("[secret]"), (ENV_VALUE,)),
                record(deployment, "unmasked", deployment_with_env_value("Hq4rTz8Lm2vXp9Kd7Wn3"), (ENV_VALUE,)),
                record(deployment, "whole-spec", deployment_with_env_value("Hq4rTz8Lm2vXp9Kd7Wn3"), ("spec",)),
            ]
        )
        == []
    )
    assert audit_resources([record(deployment, "plain", deployment_with_env_value("Hq4rTz8Lm2vXp9Kd7Wn3"))]) == [
        Violation(
            "no-plaintext-credentials", f"{DEV}{deployment}::plain", ENV_VALUE, "Secret Keyword", True, "detect-secrets:KeywordDetector"
        )
    ]


def test_a_credential_holder_must_hold_a_secret() -> None:
    secret = "kubernetes:core/v1:Secret"
    generated = {"stringData": {"password": "Hq4rTz8Lm2vXp9Kd7Wn3"}}
    assert audit_resources([record(secret, "sealed", {"stringData": "[secret]"}, ("stringData",))]) == []
    assert [v.line() for v in audit_resources([record(secret, "open", generated)])] == [
        f"no-plaintext-credentials {DEV}{secret}::open stringData.password: {NOT_SECRET}"
    ]


def test_a_random_password_result_outside_a_secret_is_a_leak() -> None:
    password = "random:index/randomPassword:RandomPassword"
    outputs = {"length": 20, "result": "Hq4rTz8Lm2vXp9Kd7Wn3"}
    assert audit_resources([record(password, "p", {"length": 20}, outputs=outputs, outputSecretPaths=["result"])]) == []
    assert [(v.path, v.kind) for v in audit_resources([record(password, "p", {"length": 20}, outputs=outputs)])] == [
        ("result", "credential not stored as a Pulumi secret")
    ]


def test_secret_paths_in_the_recorders_plain_dotted_form_match_quoted_keys() -> None:
    config = {"data": {"config.yaml": "staticClients:\n- id: kubeflow\n  secret: pUBnBOY80SnXgjibTYM9ZWNzY2xreNGQok\n"}}
    config_map = "kubernetes:core/v1:ConfigMap"
    assert audit_resources([record(config_map, "dex", config, ("data.config.yaml",))]) == []
    assert [v.path for v in audit_resources([record(config_map, "dex", config)])] == ['data["config.yaml"].staticClients[0].secret']


def test_prod_comes_from_the_urns_unless_given() -> None:
    pvc = record("kubernetes:core/v1:PersistentVolumeClaim", "data", {"spec": {}})
    prod_pvc = {**pvc, "urn": pvc["urn"].replace(":dev::", ":prod::")}
    assert audit_resources([pvc]) == []
    assert [v.policy for v in audit_resources([prod_pvc])] == ["stateful-resources-protected"]
    assert [v.policy for v in audit_resources([pvc], stack="prod")] == ["stateful-resources-protected"]
    assert audit_resources([prod_pvc], config={"stateful-resources-protected": {"prod": False}}) == []


def test_enforcement_levels_from_the_pack_config_set_mandatory() -> None:
    pod = record("kubernetes:core/v1:Pod", "p", {"spec": {"containers": [{"name": "a", "image": "busybox"}]}})
    assert audit_resources([pod]) == [
        Violation("images-pinned", pod["urn"], "spec.containers[0].image", "image has no tag or digest", True)
    ]
    assert [v.mandatory for v in audit_resources([pod], config={"images-pinned": "advisory"})] == [False]
    assert audit_resources([pod], config={"images-pinned": {"enforcementLevel": "disabled"}}) == []


def test_violation_line_format() -> None:
    violation = Violation(
        "images-pinned", "urn:pulumi:dev::p::kubernetes:core/v1:Pod::p", "spec.containers[0].image", "image has no tag or digest", False
    )
    assert (
        violation.line()
        == "images-pinned urn:pulumi:dev::p::kubernetes:core/v1:Pod::p spec.containers[0].image: image has no tag or digest"
    )


def test_bad_input_to_the_api_raises() -> None:
    with pytest.raises(AuditError, match="resource 0: 'urn' and 'type' must be strings"):
        audit_resources([{"type": "x"}])
    with pytest.raises(AuditError, match="'secretPaths' must be a list of strings"):
        audit_resources([record("t", "n", {}, secretPaths="spec")])
    with pytest.raises(ConfigError, match="no-plaintext-credential: no such policy"):
        audit_resources([], config={"no-plaintext-credential": "advisory"})


def test_the_documented_example_config_is_valid_and_does_what_it_says() -> None:
    example = json.loads((ROOT / "policies" / "config.example.json").read_text())
    config_map = record(
        "kubernetes:core/v1:ConfigMap",
        "kfp",
        {"data": {"KFP_PUBLIC_DEMO_TOKEN": "Zq8vT2mR5nK9wX3b", "DEMO_TOKEN": "kfp-public-demo-token"}},
    )
    bucket = record("aws:s3/bucket:Bucket", "artifacts", {"bucket": "artifacts"})
    assert [(v.policy, v.mandatory) for v in audit_resources([config_map, bucket], config=example)] == [
        ("s3-bucket-public-access-block", True),
        ("s3-bucket-encryption", True),
        ("s3-bucket-versioning", True),
    ]


def test_the_tool_also_reads_the_plan_that_make_plan_writes(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    pod = record("kubernetes:core/v1:Pod", "p", {"spec": {"containers": [{"name": "a", "image": "busybox:latest"}]}})
    plan = tmp_path / "resources.json"
    plan.write_text(json.dumps({"stack": "dev", "resources": [pod], "outputs": {}}))
    code, out, _ = audit(capsys, str(plan))
    assert (code, out) == (1, f"images-pinned {pod['urn']} spec.containers[0].image: image uses the latest tag\n")


def test_explain_names_what_each_allowance_accepted_without_a_value(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    job = record(
        "kubernetes:batch/v1:Job",
        "profiles",
        {"spec": {"template": {"spec": {"volumes": [{"name": "keys", "secret": {"secretName": "mlflow-profile-keys"}}]}}}},
    )
    plan = tmp_path / "resources.json"
    plan.write_text(json.dumps({"stack": "dev", "resources": [job], "outputs": {}}))
    assert audit(capsys, str(plan)) == (0, "", "audit: 1 resources, 0 violations, 0 mandatory\n")
    code, out, _ = audit(capsys, str(plan), "--explain")
    assert (code, out) == (
        0,
        f"allowed {job['urn']} spec.template.spec.volumes[0].secret.secretName: Secret Keyword "
        "[detect-secrets:KeywordDetector] by kubernetes-reference-field\n",
    )
    assert "mlflow-profile-keys" not in out
