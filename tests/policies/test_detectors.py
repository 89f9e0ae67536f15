"""Detection over decoded leaves (mlops_policies/detectors.py): one credential once, by its most specific rule, and traceable."""

from __future__ import annotations

import pytest

from mlops_policies import detectors, platform, rules
from tests.policies.helpers import AWS_KEY_ID, DB_PASSWORD, GITHUB_TOKEN, TOKEN, URI_UNSAFE_PASSWORD, engine_findings, messages, traced

CONFIG_MAP = "kubernetes:core/v1:ConfigMap"


def test_precedence_puts_platform_rules_then_vendor_shapes_then_keywords_settings_and_entropy_last() -> None:
    order = detectors.PRECEDENCE
    assert order[:2] == (platform.RULE_PULUMI_PLAINTEXT, platform.RULE_TUTORIAL_DEFAULT)
    assert order[-4:] == (
        "detect-secrets:KeywordDetector",
        platform.RULE_CREDENTIAL_SETTING,
        "detect-secrets:Base64HighEntropyString",
        "detect-secrets:HexHighEntropyString",
    )
    assert set(order) == {rules.rule_id(p) for p in rules.PLUGINS} | {
        platform.RULE_PULUMI_PLAINTEXT,
        platform.RULE_TUTORIAL_DEFAULT,
        platform.RULE_CREDENTIAL_SETTING,
    }


@pytest.mark.parametrize(
    ("data", "rule"),
    [
        ({"GH": GITHUB_TOKEN}, "detect-secrets:GitHubTokenDetector"),  # also Base64HighEntropyString
        ({"api_token": GITHUB_TOKEN}, "detect-secrets:GitHubTokenDetector"),  # also the credential setting
        (
            {"DB_URI": f"postgresql://mlflow:{DB_PASSWORD}@db/mlflow"},
            "detect-secrets:BasicAuthDetector",
        ),  # also KeywordDetector on the userinfo
        ({"DB_PASSWORD": "minio123"}, platform.RULE_TUTORIAL_DEFAULT),  # also KeywordDetector
        ({"MLFLOW_TRACKING_TOKEN": TOKEN + "Zq8vT2mR5nK9"}, platform.RULE_CREDENTIAL_SETTING),  # also the entropy rule
    ],
    ids=["vendor-over-entropy", "vendor-over-setting", "shape-over-keyword", "default-over-keyword", "setting-over-entropy"],
)
def test_a_credential_several_rules_match_is_reported_once_by_the_most_specific(data: dict[str, str], rule: str) -> None:
    assert [f.rule for f in engine_findings(CONFIG_MAP, {"data": data})] == [rule]


def test_a_percent_encoded_and_a_decoded_reading_of_one_password_are_one_credential() -> None:
    encoded = URI_UNSAFE_PASSWORD.replace("?", "%3F").replace("#", "%23")
    assert [(f.rule, f.via) for f in engine_findings(CONFIG_MAP, {"data": {"DB": f"mysql://root:{encoded}@mysql/mlflow"}})] == [
        ("detect-secrets:BasicAuthDetector", ())
    ]


def test_distinct_credentials_at_one_path_are_each_reported_once_per_kind() -> None:
    script = f"export PGPASSWORD={DB_PASSWORD}\nexport AWS_ACCESS_KEY_ID={AWS_KEY_ID}\nexport DB_PASSWORD=other{DB_PASSWORD}\n"
    assert {(f.kind, f.rule) for f in engine_findings(CONFIG_MAP, {"data": {"env.sh": script}})} == {
        ("Secret Keyword", "detect-secrets:KeywordDetector"),
        ("AWS Access Key", "detect-secrets:AWSKeyDetector"),
    }


def test_a_message_names_resource_path_kind_rule_and_decodings_and_no_part_of_the_value() -> None:
    (message,) = messages("no-plaintext-credentials", "kubernetes:networking.k8s.io/v1:Ingress", _nginx_basic(DB_PASSWORD))
    assert message.startswith(
        'Secret Keyword at metadata.annotations["nginx.ingress.kubernetes.io/configuration-snippet"] in '
        "kubernetes:networking.k8s.io/v1:Ingress 'subject' (rule detect-secrets:KeywordDetector via http-header, http-basic). "
    )
    assert not [DB_PASSWORD[i : i + 5] for i in range(len(DB_PASSWORD) - 4) if DB_PASSWORD[i : i + 5] in message]


def _nginx_basic(password: str) -> dict[str, object]:
    import base64

    basic = base64.b64encode(f"mlflow:{password}".encode()).decode()
    return {
        "metadata": {
            "annotations": {"nginx.ingress.kubernetes.io/configuration-snippet": f'proxy_set_header Authorization "Basic {basic}";'}
        }
    }


def test_what_an_allowance_accepts_can_be_traced_too() -> None:
    from mlops_policies.walk import leaves

    explained: list[detectors.Allowed] = []
    for group in detectors.by_path(leaves({"volumes": [{"secret": {"secretName": "mlflow-db"}}]})):
        assert detectors.detect("kubernetes:apps/v1:Deployment", group, explained) == []
    assert explained == [detectors.Allowed("Secret Keyword", "detect-secrets:KeywordDetector", "kubernetes-reference-field")]
    assert traced(CONFIG_MAP, {"data": {"x": "y"}}) == set()
