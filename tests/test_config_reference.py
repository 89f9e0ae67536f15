"""The configuration reference and Pulumi.yaml's declarations are what the settings models give, and change nothing."""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel, Field

from mlops_platform.config import PlatformConfig, parse_config
from mlops_platform.settings_base import Model
from tools.dev.config_reference import PROJECT_FILE, REFERENCE, REGENERATE, project_config, project_file, reference, rows

EKS_AWS = {
    "region": "eu-west-1",
    "oidcProviderArn": "arn:aws:iam::123456789012:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/ABC",
    "oidcProviderUrl": "oidc.eks.eu-west-1.amazonaws.com/id/ABC",
}
TARGETS = {
    "microk8s": {"mlops-platform:target": "microk8s"},
    "eks": {"mlops-platform:target": "eks", "mlops-platform:aws": json.dumps(EKS_AWS)},
}


def test_docs_configuration_md_is_the_reference_the_models_give():
    assert REFERENCE.read_text() == reference(), f"docs/configuration.md is stale: run `{REGENERATE}` and commit it"


def test_pulumi_yaml_declares_the_keys_the_models_give():
    assert PROJECT_FILE.read_text() == project_file(PROJECT_FILE.read_text()), f"Pulumi.yaml is stale: run `{REGENERATE}`"


def test_regenerating_pulumi_yaml_keeps_the_rest_of_the_file_and_is_stable():
    once = project_file(PROJECT_FILE.read_text())
    assert project_file(once) == once
    assert once.startswith("name: mlops-platform\n") and "\nruntime:\n" in once


def test_every_nested_key_is_a_row_with_the_default_it_takes_when_its_block_is_left_out():
    by_key = {r.key: r for r in rows(PlatformConfig)}
    # The Ingress's certificate defaults to the letsencrypt issuer when tracking.ingress.tls is left out.
    assert by_key["tracking.ingress.tls.issuer"].default == "`letsencrypt`"
    assert by_key["tracking.resources.memoryLimit"].default == "`2Gi`"
    assert by_key["database.resources.memoryLimit"].default == "`1Gi`"
    assert by_key["serving.models[].canary.trafficPercent"].default == "required"
    assert "stack" not in by_key


def test_exactly_the_credential_keys_are_marked_secret():
    assert [r.key for r in rows(PlatformConfig) if r.secret] == ["database.external.uri", "serving.registryToken"]


def test_a_field_without_a_description_stops_the_generator():
    class Undocumented(Model):
        documented: int = Field(default=1, description="Has one.")
        bare: int = 2

    with pytest.raises(ValueError, match=r"Undocumented\.bare \(bare\) has no description"):
        rows(Undocumented)


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("key", [k for k, spec in project_config().items() if "default" in spec])
def test_each_default_declared_in_pulumi_yaml_parses_as_the_key_left_out(target, key):
    """The engine hands a declared default to the program for every key a stack leaves out: it must change nothing."""
    default = project_config()[key]["default"]
    text = default if isinstance(default, str) else json.dumps(default)
    declared, left_out = parse_config("test", {**TARGETS[target], key: text}), parse_config("test", TARGETS[target])
    assert declared == left_out
    # Rules may ask which keys a block set (tracking.replicas beside autoscaling): the default sets none.
    assert _keys_set(declared) == _keys_set(left_out)


def _keys_set(config: PlatformConfig) -> dict[str, object]:
    """Each block as the keys its stack config set: what ``model_fields_set`` rules see."""
    blocks = {name: getattr(config, name) for name in PlatformConfig.model_fields}
    return {name: b.model_dump(exclude_unset=True) if isinstance(b, BaseModel) else b for name, b in blocks.items()}


def test_only_target_is_declared_without_a_default():
    """The engine refuses a stack that leaves out a declared key without a default."""
    assert [k for k, spec in project_config().items() if "default" not in spec] == ["mlops-platform:target"]
