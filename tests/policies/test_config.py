"""Policy configuration (mlops_policies/config.py): allowlists and settings, as --policy-pack-config passes them."""

from __future__ import annotations

import hashlib

import pytest

from mlops_policies import ConfigError
from tests.policies.helpers import CREDENTIALS, DB_PASSWORD, findings, messages

CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
BASIC = "Basic Auth Credentials"

# -- allowlists --------------------------------------------------------------------------


def test_allowed_paths_accept_a_finding_on_matching_resources_only() -> None:
    props = {"data": {"password": DB_PASSWORD, "other": f"postgresql://u:{DB_PASSWORD}@h/db"}}
    config = {"allowedPaths": [{"resource": "kubernetes:core/v1:ConfigMap", "path": "data.pass*"}]}
    assert findings(CREDENTIALS, CONFIG_MAP, props, config=config) == {("data.other", BASIC)}
    by_name = {"allowedPaths": [{"resource": "someone-else", "path": "data.*"}]}
    assert len(messages(CREDENTIALS, CONFIG_MAP, props, config=by_name)) == 2


def test_allowed_values_accept_a_value_given_literally_or_by_digest() -> None:
    props = {"data": {"DEMO_TOKEN": "public-demo-token"}}
    assert messages(CREDENTIALS, CONFIG_MAP, props, config={"allowedValues": ["public-demo-token"]}) == []
    digest = "sha256:" + hashlib.sha256(b"public-demo-token").hexdigest()
    assert messages(CREDENTIALS, CONFIG_MAP, props, config={"allowedValues": [digest]}) == []
    assert findings(CREDENTIALS, CONFIG_MAP, props) == {("data.DEMO_TOKEN", "credential in a platform setting")}


def test_a_setting_the_policy_does_not_have_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"no-plaintext-credentials\.allowedPath: not a setting"):
        messages(CREDENTIALS, CONFIG_MAP, {}, config={"allowedPath": []})
