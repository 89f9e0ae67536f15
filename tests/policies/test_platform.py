"""The platform's own checks (mlops_policies/platform.py): tutorial defaults, credential settings, Pulumi secrets in the open."""

from __future__ import annotations

import json

import pytest

from mlops_policies import audit_resources, platform
from mlops_policies.walk import SECRET_SIG, SIG_KEY
from tests.policies.helpers import DEX_DEFAULT_HASH, TOKEN, b64, engine_findings

CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
DEFAULT = (platform.TUTORIAL_DEFAULT, platform.RULE_TUTORIAL_DEFAULT)
SETTING = (platform.CREDENTIAL_SETTING, platform.RULE_CREDENTIAL_SETTING)


def found(props: dict[str, object]) -> list[tuple[str, str, str]]:
    return [(f.path, f.kind, f.rule) for f in engine_findings(CONFIG_MAP, props)]


@pytest.mark.parametrize("default", platform.WELL_KNOWN_DEFAULTS)
def test_each_tutorial_default_is_found_wherever_it_is(default: str) -> None:
    assert found({"data": {"NOTES": f"login with {default} first"}}) == [("data.NOTES", *DEFAULT)]


@pytest.mark.parametrize(("user", "password"), sorted(platform.WELL_KNOWN_ACCOUNTS))
def test_a_tutorial_account_is_found_where_a_place_names_user_and_password(user: str, password: str) -> None:
    assert found({"data": {"DB": f"postgresql://{user}:{password}@db:5432/mlflow"}}) == [("data.DB", *DEFAULT)]
    assert found({"data": {"AUTH": f"Basic {b64(f'{user}:{password}')}"}, "metadata": {}}) == []  # no header name: no place
    assert [f[1] for f in found({"data": {"Authorization": f"Basic {b64(f'{user}:{password}')}"}})] == [platform.TUTORIAL_DEFAULT]


def test_a_tutorial_password_with_another_user_is_not_a_tutorial_account() -> None:
    assert [f[1] for f in found({"data": {"DB": "postgresql://analytics:mlflow@db/mlflow"}})] == ["Basic Auth Credentials"]


def test_a_default_inside_a_longer_word_is_not_the_default() -> None:
    assert found({"data": {"BUCKET": "minio1234-backups", "HASH": DEX_DEFAULT_HASH + "x"}}) == []


SETTINGS = [
    "MLFLOW_TRACKING_TOKEN",
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
    "registryToken",
    "AWS_SESSION_TOKEN",
    "MINIO_ACCESS_KEY",
    "accessKey",
    "GOOGLE_CREDENTIALS",
]


@pytest.mark.parametrize("name", SETTINGS)
def test_a_literal_in_a_credential_setting_is_reported(name: str) -> None:
    assert found({"data": {name: TOKEN}}) == [(f"data.{name}", *SETTING)]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TOKEN_TTL_SECONDS", "3600"),
        ("max_tokens", "512"),
        ("MLFLOW_TRACKING_TOKEN_PATH", "/var/run/secrets/kubernetes.io/serviceaccount/token"),
        ("tokenSecretName", "mlflow-token"),
        ("example.com/token", "rotated-monthly"),
        ("MLFLOW_TRACKING_TOKEN", "$(MLFLOW_TRACKING_TOKEN)"),
        ("HF_TOKEN", "${HF_TOKEN}"),
        ("registryToken", "[secret]"),
        ("AWS_ACCESS_KEY_ID", "<access-key-id>"),
        ("AWS_ACCESS_KEY_ID", "mlflow-svc-user"),  # an identifier (detect-secrets' id filter); an AKIA key id is AWSKeyDetector's
        ("MLFLOW_TRACKING_TOKEN", ""),
        ("HF_TOKEN", "12345678"),  # detect-secrets' filters: no letter
        ("registryToken", "abcdefghij"),  # a sequence
        ("MLFLOW_TRACKING_TOKEN", "f47ac10b-58cc-4372-a567-0e02b2c3d479"),  # a UUID
    ],
)
def test_what_is_not_a_credential_setting_or_not_a_literal(name: str, value: str) -> None:
    assert found({"data": {name: value}}) == []


def test_a_pulumi_secret_in_plaintext_form_inside_a_value_is_a_leak_and_ciphertext_is_not() -> None:
    plaintext = {"password": {SIG_KEY: SECRET_SIG, "plaintext": json.dumps("Hq4rTz8Lm2vXp9Kd7Wn3")}}
    ciphertext = {"password": {SIG_KEY: SECRET_SIG, "ciphertext": "v1:c2FsdA==:Y2lwaGVy"}}
    assert found({"data": {"stack.json": json.dumps(plaintext)}}) == [
        ('data["stack.json"].password', platform.PULUMI_SECRET_PLAINTEXT, platform.RULE_PULUMI_PLAINTEXT)
    ]
    assert found({"data": {"stack.json": json.dumps(ciphertext)}}) == []


def test_a_credential_holder_outside_a_pulumi_secret_is_reported_by_the_audit_only() -> None:
    record = {
        "urn": "urn:pulumi:dev::mlops-platform::kubernetes:core/v1:Secret::registry",
        "type": "kubernetes:core/v1:Secret",
        "inputs": {"stringData": {"token": TOKEN}, "data": {"ca.crt": b64("not a secret, but held as one")}},
    }
    assert {(v.path, v.kind, v.rule) for v in audit_resources([record])} == {
        ("stringData.token", platform.NOT_A_SECRET, platform.RULE_PULUMI_SECRET_REQUIRED),
        ('data["ca.crt"]', platform.NOT_A_SECRET, platform.RULE_PULUMI_SECRET_REQUIRED),
    }
    assert engine_findings("kubernetes:core/v1:Secret", record["inputs"]) == []  # CrossGuard: secretness unknown
    sealed = {**record, "inputs": {"stringData": "[secret]", "data": "[secret]"}, "secretPaths": ["stringData", "data"]}
    assert audit_resources([sealed]) == []
