"""The maintained rule set (mlops_policies/rules.py): every detect-secrets plugin the pack runs, one credential each."""

from __future__ import annotations

import re

import pytest
from detect_secrets.plugins.base import BasePlugin
from detect_secrets.plugins.ip_public import IPPublicDetector

from mlops_policies import rules
from tests.policies.helpers import AWS_KEY_ID, AWS_SECRET, DB_PASSWORD, GITHUB_TOKEN, JWT, PEM, ROOT, engine_findings, messages

CONFIG_MAP = "kubernetes:core/v1:ConfigMap"

# (plugin, setting name, fake credential): each is reported at data.<name> by that plugin alone.
PLUGIN_CASES = [
    ("PrivateKeyDetector", "tls.key", PEM),
    ("AWSKeyDetector", "S3_ID", AWS_KEY_ID),
    (
        "AzureStorageKeyDetector",
        "AZURE_STORAGE_CONNECTION_STRING",
        "DefaultEndpointsProtocol=https;AccountName=mlflowartifacts;AccountKey="
        "Jq3vT9xW2kLp7NzR4mY8cB1sD6fH0gA5eU+iO/wQ3rXtZ9vK2nM7bL4pS8dF1hG6jC0aE5yU3iW7qT9xR2kN4m==;EndpointSuffix=core.windows.net",
    ),
    ("GitHubTokenDetector", "GH", GITHUB_TOKEN),
    ("GitLabTokenDetector", "GL", "glpat-Xk8vT2nQ7rW4mZ9pL3sY"),
    ("SlackDetector", "ALERTS", "https://hooks.slack.com/services/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"),
    ("StripeDetector", "PAYMENTS", "sk_live_4eC39HqLyjWDarjtT1zdp7dc"),
    ("SendGridDetector", "MAIL", "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"),
    ("OpenAIDetector", "LLM", "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"),
    (
        "PypiTokenDetector",
        "UPLOAD",
        "pypi-AgEIcHlwaS5vcmcCJGQ2ZjNlNzQtZWQ4Yy00YjFhLWI5ZjctNmY5YWM0ZDk2ZWQ0AAIqWzMsIjE0NjY5YTc2LTk0YjUtNGNkNi04N2FjLTUxNGIwNTkzNDg3YSJdAAAGIKx",
    ),
    ("NpmDetector", ".npmrc", "//registry.npmjs.org/:_authToken=npm_Q7vX2kT9nR4mW8pL3sZ6yB1cD5fG0hJ2kM4n"),
    ("DiscordBotTokenDetector", "BOT", "MTA4NzQ5MjM1NjE3ODk0NDAxMg.GhT3kq.Zx8vQ2nR7mW4pL9sT3yB6cF1dG5hJ0k"),
    ("TelegramBotTokenDetector", "BOT", "5829104736:AAGx7Qv2kT9nR4mW8pL3sZ6yB1cD5fG0hJ2"),
    ("TwilioKeyDetector", "SMS", "SK2b7e4d91c0a8f36e5b2d7c4a9e1f0b3d"),
    ("MailchimpDetector", "NEWSLETTER", "3f9a1c7e5b2d8f4a6c0e9b1d7a3f5c2e-us14"),
    ("SquareOAuthDetector", "POS", "sq0csp-Q7vX2kT9nR4mW8pL3sZ6yB1cD5fG0hJ2kM4nP6qR8tV"),
    ("ArtifactoryDetector", "ARTIFACTORY", "AKCp8jQvX2kT9nR4mW8pL3sZ6yB1cD5fG0hJ2kM4nP6qR8tV0wX2yZ4aB6cD8eF0gH2jK4"),
    ("IbmCloudIamDetector", "IBM_CLOUD_API_KEY", "Xk8vT2nQ7rW4mZ9pL3sY6bC1dF5gH0jK2lM4nP6qR8tV"),
    ("IbmCosHmacDetector", "COS_HMAC_SECRET_ACCESS_KEY", "3f9a1c7e5b2d8f4a6c0e9b1d7a3f5c2e8b4d6f0a2c4e6b8d"),
    (
        "CloudantDetector",
        "CLOUDANT_URL",
        "https://mlops:3f9a1c7e5b2d8f4a6c0e9b1d7a3f5c2e8b4d6f0a2c4e6b8d1a3c5e7f9b0d2e4f@mlops.cloudant.com",
    ),
    ("SoftlayerDetector", "SOFTLAYER_API_KEY", "3f9a1c7e5b2d8f4a6c0e9b1d7a3f5c2e8b4d6f0a2c4e6b8d1a3c5e7f9b0d2e4f"),
    ("JwtTokenDetector", "KFP_BEARER", JWT),
    ("BasicAuthDetector", "DB_URI", f"postgresql://mlflow:{DB_PASSWORD}@db:5432/mlflow"),
    ("KeywordDetector", "DB_PASSWORD", DB_PASSWORD),
    ("Base64HighEntropyString", "SESSION", "Zq8vT2mR5nK9wX3bL7pY4cF1dH6jG0sA+E/u=="),
    ("HexHighEntropyString", "SIGNATURE", "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b"),
]


@pytest.mark.parametrize(("plugin", "key", "value"), PLUGIN_CASES, ids=[f"{p}-{k}" for p, k, _ in PLUGIN_CASES])
def test_each_plugin_reports_its_credential_under_its_own_name(plugin: str, key: str, value: str) -> None:
    found = engine_findings(CONFIG_MAP, {"data": {key: value}})
    kind = next(p.secret_type for p in rules.PLUGINS if type(p).__name__ == plugin)
    path = f"data.{key}" if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key) else f'data["{key}"]'
    assert [(f.path, f.kind, f.rule) for f in found] == [(path, kind, f"detect-secrets:{plugin}")]


def test_the_table_covers_every_plugin_the_pack_runs_and_only_ip_addresses_are_left_out() -> None:
    ran = {type(p).__name__ for p in rules.PLUGINS}
    assert ran == {plugin for plugin, _, _ in PLUGIN_CASES}
    shipped = {cls.__name__ for cls in _plugin_classes()}
    assert shipped - ran == set(rules.EXCLUDED) == {"IPPublicDetector"}


def _plugin_classes() -> list[type[BasePlugin]]:
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class

    return list(get_mapping_from_secret_type_to_class().values())


def test_a_public_address_is_not_a_credential() -> None:
    address = "203.0.113.7"
    assert list(IPPublicDetector().analyze_string(address))  # the excluded plugin would report it
    assert engine_findings("kubernetes:core/v1:Service", {"spec": {"loadBalancerIP": address, "externalIPs": [address]}}) == []


def test_an_aws_secret_access_key_is_read_as_detect_secrets_reads_a_yaml_value() -> None:
    """AWSKeyDetector wants the 40 characters quoted after an aws...key name, as its YAML reader quotes scalars."""
    found = engine_findings(CONFIG_MAP, {"data": {"AWS_SECRET_ACCESS_KEY": AWS_SECRET}})
    assert [(f.kind, f.rule) for f in found] == [("AWS Access Key", "detect-secrets:AWSKeyDetector")]


@pytest.mark.parametrize(
    "value",
    ["$(DB_PASSWORD)", "${DB_PASSWORD}", "{{ .Values.password }}", "<your-password>", "********", "[secret]", "abcdefgh", "12345678"],
    ids=["k8s-reference", "shell-reference", "template", "placeholder", "mask", "redacted", "sequence", "digits"],
)
def test_detect_secrets_own_filters_keep_references_templates_and_masks_out(value: str) -> None:
    assert engine_findings(CONFIG_MAP, {"data": {"DB_PASSWORD": value}}) == []


def test_the_rule_set_never_verifies_a_secret_over_the_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("a plugin tried to verify a secret")

    monkeypatch.setattr("requests.sessions.Session.request", no_network)
    monkeypatch.setattr(BasePlugin, "verify", no_network)
    for plugin, key, value in PLUGIN_CASES:
        assert messages("no-plaintext-credentials", CONFIG_MAP, {"data": {key: value}}), plugin


def test_the_installed_rule_set_is_the_pinned_one() -> None:
    pins = [
        line.strip()
        for requirements in (ROOT / "policies" / "requirements.txt", ROOT / "requirements-dev.txt")
        for line in requirements.read_text().splitlines()
        if line.startswith("detect-secrets")
    ]
    assert pins == [f"detect-secrets=={rules.VERSION}"] * 2
    assert rules.VERSION == "1.5.0"


def test_program_source_in_a_value_is_read_as_detect_secrets_reads_a_source_file() -> None:
    """A job's ``python -c`` source binds names to names (code, not a credential); a quoted literal is still one."""
    source = 'import os\nlogin = {"user": user, "password": password}\npassword = os.environ["OLD"]\n'
    assert rules.is_python_source(source)
    assert [m for m in rules.scan("command[2]", source) if m.rule.endswith("KeywordDetector")] == []
    leaking = source + f'db_password = "{DB_PASSWORD}"\n'
    assert {m.secret for m in rules.scan("command[2]", leaking) if m.rule.endswith("KeywordDetector")} == {DB_PASSWORD}
    # Settings text is not source, though it may parse as Python (annotations): there a bare value still counts.
    settings = f"password: {DB_PASSWORD}\nuser: admin\n"
    assert not rules.is_python_source(settings)
    assert {m.secret for m in rules.scan("config.yaml", settings)} == {DB_PASSWORD}


@pytest.mark.parametrize("value", ["true", "False", "null"])
def test_a_switch_named_like_a_credential_is_not_one(value: str) -> None:
    """The kubernetes provider's ``enableSecretMutable: "true"``: a literal, not a password; a word there still is one."""
    assert [m for m in rules.scan("enableSecretMutable", value) if m.rule.endswith("KeywordDetector")] == []
    assert {m.secret for m in rules.scan("enableSecretMutable", DB_PASSWORD)} == {DB_PASSWORD}
