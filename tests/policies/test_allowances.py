"""Named allowances (mlops_policies/allowances.py): each accepts its benign shape, and the rule still reports a credential beside it.

Every case first shows that the maintained rule does fire on the benign shape
(without the allowance this would be a false alarm), then that the allowance
accepts it, then that a credential of the same rule next to it is still reported.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import Any

import pytest

from mlops_policies import allowances, detectors
from mlops_policies.walk import leaves
from tests.policies.helpers import DB_PASSWORD, RUN_ID, engine_findings

CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
DIGEST = hashlib.sha256(b"mlflow").hexdigest()
PICKLE = base64.b64encode(
    b"\x80\x04\x95\x8e\x00\x00\x00\x00\x00\x00\x00\x8c!mlops_platform.kubeflow.dashboard\x94\x8c\x15DashboardLinkProvider\x94\x93\x94"
).decode()


@dataclass(frozen=True)
class Case:
    allowance: str
    type: str
    benign: dict[str, Any]
    rule: str
    # The same place holding a credential the same rule reports.
    leaking: dict[str, Any]


CASES = [
    Case(
        "kubernetes-reference-field",
        CONFIG_MAP,
        {"env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "keys", "key": "SECRET_KEY_PROFILE_KUBEFLOW_USER_EXAMPLE_COM"}}}]},
        "detect-secrets:IbmCloudIamDetector",
        {
            "env": [
                {
                    "name": "X",
                    "value": "SECRET_KEY_PROFILE_KUBEFLOW_USER_EXAMPLE_COM",
                    "key": "Xk8vT2nQ7rW4mZ9pL3sY6bC1dF5gH0jK2lM4nP6qR8tV",
                }
            ]
        },
    ),
    Case(
        "kubernetes-object-name",
        "kubernetes:apps/v1:StatefulSet",
        {"volumes": [{"name": "db", "secret": {"secretName": "mlflow-db"}}], "existingSecret": "mlflow-db"},
        allowances.KEYWORD,
        {"volumes": [{"name": "db", "secret": {"secret": "mlflow-db"}}], "existingSecret": f"{DB_PASSWORD}!"},
    ),
    Case(
        "kubernetes-object-name",
        "kubernetes:networking.k8s.io/v1:Ingress",
        {"metadata": {"annotations": {"nginx.ingress.kubernetes.io/auth-secret": "mlflow-basic-auth"}}},
        allowances.KEYWORD,
        {"metadata": {"annotations": {"example.com/auth-secret": f"{DB_PASSWORD}!"}}},
    ),
    Case(
        "secret-data-key-name",
        CONFIG_MAP,
        {
            "data": {
                "DB_PASSWORD_SECRET_KEY": "password",
                "ACCESS_KEY_SECRET_KEY": "AWS_ACCESS_KEY_ID",
                "TOKEN_SECRET_KEY": "registry-token",
            }
        },
        allowances.KEYWORD,
        {"data": {"MINIO_SECRET_KEY": "mlflowbucketkey"}},
    ),
    Case(
        "content-digest",
        CONFIG_MAP,
        {"data": {"checksum/config": DIGEST, "GIT_SHA": DIGEST[:40], "IMAGE": f"ghcr.io/mlflow/mlflow@sha256:{DIGEST}"}},
        allowances.HEX_ENTROPY,
        {"data": {"SIGNATURE": DIGEST}},
    ),
    Case(
        "mlflow-run-id",
        "kubernetes:serving.kserve.io/v1beta1:InferenceService",
        {
            "metadata": {"annotations": {"mlops-platform/run-id": RUN_ID}},
            "runId": RUN_ID,
            "env": [{"name": "MLFLOW_RUN_ID", "value": RUN_ID}],
        },
        allowances.HEX_ENTROPY,
        {"metadata": {"annotations": {"mlops-platform/session": RUN_ID}}},
    ),
    Case(
        "aws-arn",
        CONFIG_MAP,
        {"data": {"SECRET_ARN": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:mlflow-db-AbCdEf"}},
        allowances.KEYWORD,
        {"data": {"SECRET_ARN": "arn-aws-secretsmanager-mlflow-db-AbCdEf"}},
    ),
    Case(
        "comment-prose",
        CONFIG_MAP,
        {"data": {"run.sh": "curl -u admin https://mlflow.example.com  # no password: curl prompts\n"}},
        allowances.KEYWORD,
        {"data": {"run.sh": "curl -u admin https://mlflow.example.com\n# password: curl prompts\n# password: Xk8vT2nQ7rW4\n"}},
    ),
    Case(
        "pulumi-dynamic-provider",
        "pulumi-python:dynamic/kubeflow:DashboardLink",
        {"__provider": PICKLE},
        allowances.BASE64_ENTROPY,
        {"__provider": "Zq8vT2mR5nK9wX3bL7pY4cF1dH6jG0sA+E/uQw8Rt3Lx"},
    ),
]


def _raw_matches(type_: str, props: dict[str, Any]) -> set[str]:
    """Rules that match before allowances, over every leaf."""
    return {m.rule for leaf in leaves(props) for m in detectors.matches(leaf)}


def _explained(type_: str, props: dict[str, Any]) -> set[str]:
    explained: list[detectors.Allowed] = []
    for group in detectors.by_path(leaves(props)):
        detectors.detect(type_, group, explained)
    return {a.allowance for a in explained}


@pytest.mark.parametrize("case", CASES, ids=[f"{c.allowance}-{i}" for i, c in enumerate(CASES)])
def test_an_allowance_accepts_its_shape_and_not_a_credential_beside_it(case: Case) -> None:
    assert case.rule in _raw_matches(case.type, case.benign)  # the rule fires: without the allowance, a false alarm
    assert engine_findings(case.type, case.benign) == []
    assert case.allowance in _explained(case.type, case.benign)
    assert case.rule in {f.rule for f in engine_findings(case.type, case.leaking)}


def test_every_allowance_has_a_case() -> None:
    assert {a.name for a in allowances.ALLOWANCES} == {c.allowance for c in CASES}


def test_no_allowance_accepts_tutorial_defaults() -> None:
    assert all("mlops:tutorial-default" not in a.applies_to for a in allowances.ALLOWANCES)
    found = engine_findings("kubernetes:apps/v1:Deployment", {"volumes": [{"secret": {"secretName": "minio123"}}]})
    assert [f.kind for f in found] == ["well-known default credential"]


@pytest.mark.parametrize(
    "props",
    [
        {
            "storageUri": "s3://mlflow-artifacts/dev/7/models/m-9a1e6c2f4b8d47e0b3c5a7d9e1f2a4b6/artifacts/",
            "modelId": "m-9a1e6c2f4b8d47e0b3c5a7d9e1f2a4b6",
        },
        {"metadata": {"uid": "29e2b8ea-7c62-4fbc-8fbc-de0ea7164dbc", "resourceVersion": "8812734", "generation": 3}},
        {"data": {"ca.crt": base64.b64encode(b"-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n-----END CERTIFICATE-----\n").decode()}},
    ],
    ids=["mlflow-model-id", "kubernetes-server-fields", "base64-ca-certificate"],
)
def test_shapes_that_need_no_allowance(props: dict[str, Any]) -> None:
    """A logged model id cannot reach the entropy limit (at most 18 distinct characters), UUIDs fall to detect-secrets'
    own filter, resourceVersions are digits, and a base64 CA bundle is decoded before the rules see it."""
    assert _raw_matches(CONFIG_MAP, props) == set()
    assert engine_findings(CONFIG_MAP, props) == []
