"""The CrossGuard pack, called the way the Pulumi engine calls it: what each policy reports, where, and what it must not.

Every credential below is fake. Each leak case names the exact property path and
kind of credential expected, and no message may contain the credential itself.
"""

from __future__ import annotations

import base64
import json
import re
import runpy
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import struct_pb2
from pulumi.runtime import proto
from pulumi_policy import (
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    StackValidationArgs,
)
from pulumi_policy.proxy import UNKNOWN_BOOLEAN_VALUE, UNKNOWN_STRING_VALUE, unknown_checking_proxy

from mlops_policies import POLICIES, ConfigError, checks, crossguard_policies
from mlops_policies import detectors as d

ROOT = Path(__file__).resolve().parent.parent

# -- fake credentials ---------------------------------------------------------------

AWS_KEY_ID = "AKIAQWB5PDKHX6PYGPAN"
AWS_SECRET = "su9mI4ROnl89Sm995ytbxAk7jqevt0MLaMRTve/+"
DB_PASSWORD = "RJlNONwktN9ugkZeESG6"
TOKEN = "PAjd6OcZFv1niUK8iO5YAgkB"
HF_TOKEN = "hf_xjd2AsjD7N2kHD9FSUuErsEz5jhy0I9lO7"
GITHUB_TOKEN = "ghp_F3vlfFrGYJ3GxeYYXwSLQcWtxJTQr1FqXSTs"
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJrdWJlZmxvdy1waXBlbGluZXMiLCJpc3MiOiJtbG9wcyJ9"
    ".bWWbjkloG1QX647kdNl9cDo_-GbVMszvR4_EPZGz3zB"
)
PEM_BODY = "575yx8xm5MslfY5ubiheyEd7P4zDL/ak6J0kGODKdinZnLXicaBAg8WY1jzIRlNQ"
PEM = f"-----BEGIN RSA PRIVATE KEY-----\n{PEM_BODY}\n-----END RSA PRIVATE KEY-----\n"
DEX_DEFAULT_HASH = "$2y$12$4K/VkmDd1q1Orb3xAt82zu8gk7Ad6ReFR4LCP9UeYE90NLiN9Df72"
# A password with characters a URI pattern stops at ('?', '#'); libpq reads it up to the '@'.
URI_UNSAFE_PASSWORD = "w8Kq?Tz3#LmPv2Rx"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


# -- calling the policies as the engine does ------------------------------------------

POLICY = {p.name: p for p in crossguard_policies()}
CREDENTIALS = "no-plaintext-credentials"
_MESSAGE = re.compile(r"(?P<kind>.+?) at (?P<path>\S+) in (?P<type>\S+) '(?P<name>[^']+)'\. ")


def _options(protect: bool = False) -> PolicyResourceOptions:
    return PolicyResourceOptions(protect, [], None, [], PolicyCustomTimeouts(0, 0, 0), [])


def urn(type_: str, name: str) -> str:
    return f"urn:pulumi:dev::mlops-platform::{type_}::{name}"


def messages(
    policy: str, type_: str, props: dict[str, Any], *, name: str = "subject", protect: bool = False, config: dict[str, Any] | None = None
) -> list[str]:
    """Run one resource policy on ``props``, wrapped in the engine's unknown-checking proxy."""
    args = ResourceValidationArgs(
        type_, unknown_checking_proxy(props), urn(type_, name), name, _options(protect), None, config=config or {}
    )
    reported: list[str] = []
    POLICY[policy].validate(args, lambda message, _urn=None: reported.append(message))
    return reported


def parse(message: str) -> tuple[str, str, str]:
    """(resource name, path, kind) from a violation message."""
    match = _MESSAGE.match(message)
    assert match, message
    return match["name"], match["path"], match["kind"]


def findings(policy: str, type_: str, props: dict[str, Any], **kwargs: Any) -> set[tuple[str, str]]:
    """(path, kind) reported by a resource policy."""
    return {parse(m)[1:] for m in messages(policy, type_, props, **kwargs)}


def stack_messages(policy: str, resources: list[PolicyResource]) -> list[str]:
    reported: list[str] = []
    POLICY[policy].validate(StackValidationArgs(resources, {}), lambda message, _urn=None: reported.append(message))
    return reported


def stack_findings(policy: str, resources: list[PolicyResource]) -> set[tuple[str, str, str]]:
    """(resource name, path, kind) reported by a stack policy."""
    return {parse(m) for m in stack_messages(policy, resources)}


# -- the leak corpus --------------------------------------------------------------------


@dataclass(frozen=True)
class Leak:
    id: str
    type: str
    props: dict[str, Any]
    path: str
    kind: str
    secret: str


POD_SPEC_AT = {
    "kubernetes:apps/v1:Deployment": "spec.template.spec",
    "kubernetes:apps/v1:StatefulSet": "spec.template.spec",
    "kubernetes:apps/v1:DaemonSet": "spec.template.spec",
    "kubernetes:batch/v1:Job": "spec.template.spec",
    "kubernetes:batch/v1:CronJob": "spec.jobTemplate.spec.template.spec",
    "kubernetes:core/v1:Pod": "spec",
}

SAFE_ENV = {"name": "DB_PASSWORD_FROM_SECRET", "valueFrom": {"secretKeyRef": {"name": "mlflow-db", "key": "password"}}}
CONTAINER_LEAKS = [
    # (location, container, init container, path below the pod spec, kind, secret)
    (
        "env",
        {"name": "app", "image": "app:1.0", "env": [SAFE_ENV, {"name": "DB_PASSWORD", "value": DB_PASSWORD}]},
        None,
        "containers[0].env[1].value",
        d.NAMED_CREDENTIAL,
        DB_PASSWORD,
    ),
    (
        "args",
        {"name": "app", "image": "app:1.0", "args": ["server", f"--backend-store-uri=postgresql://mlflow:{DB_PASSWORD}@db:5432/mlflow"]},
        None,
        "containers[0].args[1]",
        d.URI_PASSWORD,
        DB_PASSWORD,
    ),
    (
        "flag-pair",
        {"name": "app", "image": "app:1.0", "args": ["login", "--token", TOKEN]},
        None,
        "containers[0].args[2]",
        d.NAMED_CREDENTIAL,
        TOKEN,
    ),
    (
        "sh-c",
        {"name": "app", "image": "app:1.0", "command": ["sh", "-c", f"export AWS_SECRET_ACCESS_KEY={AWS_SECRET} && aws s3 ls"]},
        None,
        "containers[0].command[2]",
        d.AWS_SECRET_ACCESS_KEY,
        AWS_SECRET,
    ),
    (
        "init-env",
        {"name": "app", "image": "app:1.0"},
        {"name": "setup", "image": "setup:1.0", "env": [{"name": "AWS_ACCESS_KEY_ID", "value": AWS_KEY_ID}]},
        "initContainers[0].env[0].value",
        d.AWS_ACCESS_KEY_ID,
        AWS_KEY_ID,
    ),
    # the container's args follow its command: `mc alias set ALIAS URL ACCESSKEY SECRETKEY`
    (
        "positional",
        {
            "name": "mc",
            "image": "mc:1.0",
            "command": ["mc"],
            "args": ["alias", "set", "local", "http://minio:9000", "mlops-admin", DB_PASSWORD],
        },
        None,
        "containers[0].args[5]",
        d.COMMAND_LINE,
        DB_PASSWORD,
    ),
    (
        "positional-in-sh-c",
        {"name": "mc", "image": "mc:1.0", "command": ["sh", "-c", f"mc admin user add local mlflow {TOKEN} >/dev/null"]},
        None,
        "containers[0].command[2]",
        d.COMMAND_LINE,
        TOKEN,
    ),
]


def _workload(type_: str, pod_spec: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = {"template": {"spec": pod_spec}}
    if type_.endswith(":CronJob"):
        spec = {"jobTemplate": {"spec": spec}}
    elif type_.endswith(":Pod"):
        spec = pod_spec
    return {"metadata": {"name": "w"}, "spec": spec}


def _workload_leaks() -> Iterator[Leak]:
    for type_, at in POD_SPEC_AT.items():
        for location, container, init, path, kind, secret in CONTAINER_LEAKS:
            pod = {"containers": [container], **({"initContainers": [init]} if init else {})}
            yield Leak(f"{type_.rsplit(':', 1)[1]}-{location}", type_, _workload(type_, pod), f"{at}.{path}", kind, secret)


CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
DEX_CONFIG = f"""issuer: http://dex.auth.svc.cluster.local:5556/dex
staticPasswords:
- email: user@example.com
  hash: {DEX_DEFAULT_HASH}
"""
LAST_APPLIED = json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "data": {"MINIO_SECRET_KEY": DB_PASSWORD}})

LEAKS: list[Leak] = [
    *_workload_leaks(),
    # every detector, in a ConfigMap
    Leak("aws-key-id", CONFIG_MAP, {"data": {"S3_ID": AWS_KEY_ID}}, "data.S3_ID", d.AWS_ACCESS_KEY_ID, AWS_KEY_ID),
    Leak(
        "aws-secret-key",
        CONFIG_MAP,
        {"data": {"AWS_SECRET_ACCESS_KEY": AWS_SECRET}},
        "data.AWS_SECRET_ACCESS_KEY",
        d.AWS_SECRET_ACCESS_KEY,
        AWS_SECRET,
    ),
    Leak(
        "postgres-uri",
        CONFIG_MAP,
        {"data": {"DB_URI": f"postgresql://mlflow:{DB_PASSWORD}@db:5432/mlflow"}},
        "data.DB_URI",
        d.URI_PASSWORD,
        DB_PASSWORD,
    ),
    Leak(
        "mysql-uri",
        CONFIG_MAP,
        {"data": {"KFP_DB": f"mysql://root:{DB_PASSWORD}@mysql:3306/mlpipeline"}},
        "data.KFP_DB",
        d.URI_PASSWORD,
        DB_PASSWORD,
    ),
    Leak(
        "https-uri",
        CONFIG_MAP,
        {"data": {"REPO": f"https://bot:{TOKEN}@git.example.com/ml/models.git"}},
        "data.REPO",
        d.URI_PASSWORD,
        TOKEN,
    ),
    Leak("pem", CONFIG_MAP, {"data": {"tls.key": PEM}}, 'data["tls.key"]', d.PRIVATE_KEY, PEM_BODY),
    Leak("pem-base64", CONFIG_MAP, {"data": {"client-key-data": b64(PEM)}}, "data.client-key-data", d.PRIVATE_KEY, b64(PEM)[:40]),
    Leak("jwt", CONFIG_MAP, {"data": {"KFP_BEARER": JWT}}, "data.KFP_BEARER", d.JWT, JWT),
    Leak("hugging-face-token", CONFIG_MAP, {"data": {"HF_HUB": HF_TOKEN}}, "data.HF_HUB", d.API_TOKEN, HF_TOKEN),
    Leak("github-token", CONFIG_MAP, {"data": {"GH": GITHUB_TOKEN}}, "data.GH", d.API_TOKEN, GITHUB_TOKEN),
    Leak("named-password", CONFIG_MAP, {"data": {"password": DB_PASSWORD}}, "data.password", d.NAMED_CREDENTIAL, DB_PASSWORD),
    Leak("named-api-key", CONFIG_MAP, {"data": {"apiKey": TOKEN}}, "data.apiKey", d.NAMED_CREDENTIAL, TOKEN),
    Leak(
        "named-star-key",
        CONFIG_MAP,
        {"data": {"MINIO_ACCESS_KEY": "mlflow-svc"}},
        "data.MINIO_ACCESS_KEY",
        d.NAMED_CREDENTIAL,
        "mlflow-svc",
    ),
    Leak("named-client-secret", CONFIG_MAP, {"data": {"OIDC_CLIENT_SECRET": TOKEN}}, "data.OIDC_CLIENT_SECRET", d.NAMED_CREDENTIAL, TOKEN),
    Leak(
        "default-minio123",
        CONFIG_MAP,
        {"data": {"MINIO_ROOT_PASSWORD": "minio123"}},
        "data.MINIO_ROOT_PASSWORD",
        d.DEFAULT_CREDENTIAL,
        "minio123",
    ),
    Leak(
        "default-minioadmin",
        CONFIG_MAP,
        {"data": {"MINIO_ROOT_USER": "minioadmin"}},
        "data.MINIO_ROOT_USER",
        d.DEFAULT_CREDENTIAL,
        "minioadmin",
    ),
    Leak(
        "default-kubeflow-user",
        CONFIG_MAP,
        {"data": {"DEFAULT_LOGIN": "user@example.com:12341234"}},
        "data.DEFAULT_LOGIN",
        d.DEFAULT_CREDENTIAL,
        "12341234",
    ),
    Leak(
        "default-mlflow-password",
        CONFIG_MAP,
        {"data": {"POSTGRES": "mlflow_password"}},
        "data.POSTGRES",
        d.DEFAULT_CREDENTIAL,
        "mlflow_password",
    ),
    Leak("default-password1234", CONFIG_MAP, {"data": {"PG": "password1234"}}, "data.PG", d.DEFAULT_CREDENTIAL, "password1234"),
    # credentials inside documents and text
    Leak(
        "dex-config-yaml",
        CONFIG_MAP,
        {"data": {"config.yaml": DEX_CONFIG}},
        'data["config.yaml"].staticPasswords[0].hash',
        d.DEFAULT_CREDENTIAL,
        DEX_DEFAULT_HASH,
    ),
    Leak(
        "properties-file",
        CONFIG_MAP,
        {"data": {"app.properties": f"db.host=db\ndb.password={DB_PASSWORD}\n"}},
        'data["app.properties"]',
        d.NAMED_CREDENTIAL,
        DB_PASSWORD,
    ),
    Leak(
        "binary-data",
        CONFIG_MAP,
        {"binaryData": {"env": b64(f"PGPASSWORD={DB_PASSWORD}\n")}},
        "binaryData.env",
        d.NAMED_CREDENTIAL,
        DB_PASSWORD,
    ),
    Leak(
        "mc-alias-script",
        CONFIG_MAP,
        {"data": {"setup.sh": "mc alias set local http://minio:9000 minioadmin minio123"}},
        'data["setup.sh"]',
        d.DEFAULT_CREDENTIAL,
        "minio123",
    ),
    # credentials a command-line tool takes by position or in a short option, inside scripts
    *(
        Leak(f"command-line-{tool}", CONFIG_MAP, {"data": {"run.sh": f"set -e\n{line}\necho done\n"}}, 'data["run.sh"]', kind, secret)
        for tool, line, kind, secret in (
            (
                "mc-alias-set",
                f"mc alias set local http://minio.mlflow.svc:9000 mlops-admin {DB_PASSWORD} --api S3v4",
                d.COMMAND_LINE,
                DB_PASSWORD,
            ),
            (
                "mc-config-host-add",
                f"/usr/bin/mc --quiet config host add local http://minio:9000 mlops-admin '{DB_PASSWORD}'",
                d.COMMAND_LINE,
                DB_PASSWORD,
            ),
            ("mc-admin-user-add", f"mc admin user add local mlflow {TOKEN}", d.COMMAND_LINE, TOKEN),
            ("commented-out", f"#mc alias set local http://minio:9000 mlops-admin {DB_PASSWORD}", d.COMMAND_LINE, DB_PASSWORD),
            ("curl-user", f"curl -fsSu mlflow:{DB_PASSWORD} http://mlflow.mlflow.svc:5000/mlflow/health", d.COMMAND_LINE, DB_PASSWORD),
            ("curl-user-long", f'curl --user="mlflow:{DB_PASSWORD}" https://mlflow.example.com/mlflow', d.COMMAND_LINE, DB_PASSWORD),
            ("curl-authorization", f"curl -H 'Authorization: Bearer {TOKEN}' https://mlflow.example.com/api", d.COMMAND_LINE, TOKEN),
            ("psql-uri", f"psql postgresql://mlflow:{DB_PASSWORD}@db:5432/mlflow -c 'select 1'", d.URI_PASSWORD, DB_PASSWORD),
            (
                "psql-uri-unsafe-characters",
                f"psql 'postgresql://mlflow:{URI_UNSAFE_PASSWORD}@db:5432/mlflow' -c 'select 1'",
                d.COMMAND_LINE,
                URI_UNSAFE_PASSWORD,
            ),
            (
                "pg-dump-dbname",
                f"pg_dump --dbname=postgresql://mlflow:{URI_UNSAFE_PASSWORD}@db/mlflow > /backup/db.sql",
                d.COMMAND_LINE,
                URI_UNSAFE_PASSWORD,
            ),
            ("mysql", f"mysql -uroot -p{DB_PASSWORD} mlpipeline < schema.sql", d.COMMAND_LINE, DB_PASSWORD),
            ("redis-cli", f"redis-cli -h redis -a {TOKEN} ping", d.COMMAND_LINE, TOKEN),
            ("sshpass", f"sshpass -p {DB_PASSWORD} scp model.pkl host:/models/", d.COMMAND_LINE, DB_PASSWORD),
            ("docker-login", f"docker login -u bot -p {TOKEN} ghcr.io", d.COMMAND_LINE, TOKEN),
            ("htpasswd", f"htpasswd -bc /etc/nginx/htpasswd admin {DB_PASSWORD}", d.COMMAND_LINE, DB_PASSWORD),
            (
                "kubectl-from-literal",
                f"kubectl create secret generic db --from-literal=username=mlflow --from-literal=password={DB_PASSWORD}",
                d.COMMAND_LINE,
                DB_PASSWORD,
            ),
        )
    ),
    Leak(
        "curl-in-an-argument-list",
        "kubernetes:core/v1:Pod",
        {
            "spec": {
                "containers": [
                    {
                        "name": "probe",
                        "image": "curl:8.10.1",
                        "command": ["curl", "-fsS", "-u", f"mlflow:{DB_PASSWORD}", "http://mlflow.mlflow.svc:5000/mlflow/health"],
                    }
                ]
            }
        },
        "spec.containers[0].command[3]",
        d.COMMAND_LINE,
        DB_PASSWORD,
    ),
    # a credential-named key is a credential unless it says which Secret key holds one and names such a key
    Leak(
        "secret-key-holding-a-value",
        CONFIG_MAP,
        {"data": {"DB_PASSWORD_SECRET_KEY": DB_PASSWORD}},
        "data.DB_PASSWORD_SECRET_KEY",
        d.NAMED_CREDENTIAL,
        DB_PASSWORD,
    ),
    Leak(
        "minio-secret-key",
        CONFIG_MAP,
        {"data": {"MINIO_SECRET_KEY": "mlflow-bucket-key"}},
        "data.MINIO_SECRET_KEY",
        d.NAMED_CREDENTIAL,
        "mlflow-bucket-key",
    ),
    # metadata
    Leak(
        "annotation",
        CONFIG_MAP,
        {"metadata": {"annotations": {"example.com/db": f"postgresql://u:{DB_PASSWORD}@db/x"}}},
        'metadata.annotations["example.com/db"]',
        d.URI_PASSWORD,
        DB_PASSWORD,
    ),
    Leak("label", CONFIG_MAP, {"metadata": {"labels": {"key-id": AWS_KEY_ID}}}, "metadata.labels.key-id", d.AWS_ACCESS_KEY_ID, AWS_KEY_ID),
    Leak(
        "last-applied",
        CONFIG_MAP,
        {"metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": LAST_APPLIED}}},
        'metadata.annotations["kubectl.kubernetes.io/last-applied-configuration"].data.MINIO_SECRET_KEY',
        d.NAMED_CREDENTIAL,
        DB_PASSWORD,
    ),
    # custom resources, walked generically
    Leak(
        "inference-service",
        "kubernetes:serving.kserve.io/v1beta1:InferenceService",
        {
            "spec": {
                "predictor": {
                    "model": {
                        "modelFormat": {"name": "mlflow"},
                        "storageUri": "s3://models/wine",
                        "env": [{"name": "HF_TOKEN", "value": HF_TOKEN}],
                    }
                }
            }
        },
        "spec.predictor.model.env[0].value",
        d.API_TOKEN,
        HF_TOKEN,
    ),
    Leak(
        "pod-default",
        "kubernetes:kubeflow.org/v1alpha1:PodDefault",
        {
            "spec": {
                "selector": {"matchLabels": {"access-ml-pipeline": "true"}},
                "env": [{"name": "AWS_SECRET_ACCESS_KEY", "value": AWS_SECRET}],
            }
        },
        "spec.env[0].value",
        d.AWS_SECRET_ACCESS_KEY,
        AWS_SECRET,
    ),
    Leak(
        "any-custom-resource",
        "kubernetes:example.com/v1:Widget",
        {"spec": {"backend": {"connection": {"password": DB_PASSWORD}}}},
        "spec.backend.connection.password",
        d.NAMED_CREDENTIAL,
        DB_PASSWORD,
    ),
    # Helm values
    Leak(
        "helm-values",
        "kubernetes:helm.sh/v3:Release",
        {"chart": "postgresql", "values": {"auth": {"postgresPassword": DB_PASSWORD}}},
        "values.auth.postgresPassword",
        d.NAMED_CREDENTIAL,
        DB_PASSWORD,
    ),
    Leak(
        "helm-v4-values",
        "kubernetes:helm.sh/v4:Chart",
        {"chart": "minio", "values": {"rootPassword": "minio123"}},
        "values.rootPassword",
        d.DEFAULT_CREDENTIAL,
        "minio123",
    ),
    # credential holders accept generated values, never published defaults
    Leak(
        "secret-default",
        "kubernetes:core/v1:Secret",
        {"stringData": {"MINIO_ROOT_PASSWORD": "minio123"}},
        "stringData.MINIO_ROOT_PASSWORD",
        d.DEFAULT_CREDENTIAL,
        "minio123",
    ),
    Leak(
        "secret-data-default",
        "kubernetes:core/v1:Secret",
        {"data": {"secretkey": b64("minio123")}},
        "data.secretkey",
        d.DEFAULT_CREDENTIAL,
        b64("minio123"),
    ),
    # not only Kubernetes
    Leak(
        "lambda-environment",
        "aws:lambda/function:Function",
        {"environment": {"variables": {"DB_PASSWORD": DB_PASSWORD}}},
        "environment.variables.DB_PASSWORD",
        d.NAMED_CREDENTIAL,
        DB_PASSWORD,
    ),
]


@pytest.mark.parametrize("leak", LEAKS, ids=[leak.id for leak in LEAKS])
def test_leak_is_reported_at_its_path_with_its_kind_and_without_the_value(leak: Leak) -> None:
    reported = messages(CREDENTIALS, leak.type, leak.props)
    assert {parse(m)[1:] for m in reported} == {(leak.path, leak.kind)}
    for message in reported:
        assert leak.secret not in message
        assert f"{leak.type} 'subject'" in message


def test_the_corpus_covers_every_credential_kind_crossguard_can_see() -> None:
    assert {leak.kind for leak in LEAKS} == {
        d.AWS_ACCESS_KEY_ID,
        d.AWS_SECRET_ACCESS_KEY,
        d.URI_PASSWORD,
        d.PRIVATE_KEY,
        d.JWT,
        d.API_TOKEN,
        d.DEFAULT_CREDENTIAL,
        d.NAMED_CREDENTIAL,
        d.COMMAND_LINE,
    }


def test_a_value_holding_several_credentials_reports_each_kind_once() -> None:
    assert findings(CREDENTIALS, CONFIG_MAP, {"data": {"DB": "postgresql://mlflow:mlflow_password@db/mlflow"}}) == {
        ("data.DB", d.URI_PASSWORD),
        ("data.DB", d.DEFAULT_CREDENTIAL),
    }


# -- what must not be flagged -------------------------------------------------------------

CLEAN: dict[str, tuple[str, dict[str, Any]]] = {
    "valueFrom-secretKeyRef": (
        "kubernetes:apps/v1:Deployment",
        _workload(
            "kubernetes:apps/v1:Deployment",
            {
                "containers": [
                    {
                        "name": "app",
                        "image": "app:1.0",
                        "env": [
                            SAFE_ENV,
                            {
                                "name": "AWS_SECRET_ACCESS_KEY",
                                "valueFrom": {"secretKeyRef": {"name": "s3", "key": "AWS_SECRET_ACCESS_KEY"}},
                            },
                        ],
                    }
                ]
            },
        ),
    ),
    "envFrom": (
        "kubernetes:apps/v1:Deployment",
        _workload(
            "kubernetes:apps/v1:Deployment",
            {"containers": [{"name": "app", "image": "app:1.0", "envFrom": [{"secretRef": {"name": "mlflow-db"}}]}]},
        ),
    ),
    "k8s-var-reference": (
        "kubernetes:core/v1:Pod",
        {
            "spec": {
                "containers": [
                    {
                        "name": "app",
                        "image": "app:1.0",
                        "env": [
                            {"name": "MLFLOW_BACKEND_STORE_URI", "value": "postgresql+psycopg2://mlflow:$(DB_PASSWORD)@db:5432/mlflow"},
                            {"name": "PASSWORD", "value": "$(DB_PASSWORD)"},
                        ],
                    }
                ]
            }
        },
    ),
    "shell-var-reference": (
        "kubernetes:batch/v1:Job",
        _workload(
            "kubernetes:batch/v1:Job",
            {
                "containers": [
                    {
                        "name": "mc",
                        "image": "mc:1.0",
                        "command": [
                            "sh",
                            "-c",
                            'mc alias set local http://minio:9000 "$MINIO_ROOT_USER" "${MINIO_ROOT_PASSWORD}" && export PGPASSWORD=$(cat '
                            "/run/pw)",
                        ],
                    }
                ]
            },
        ),
    ),
    "flag-with-reference": (
        "kubernetes:core/v1:Pod",
        {
            "spec": {
                "containers": [
                    {"name": "a", "image": "a:1", "args": ["--password", "$(DB_PASSWORD)", "--token-file", "/var/run/secrets/token"]}
                ]
            }
        },
    ),
    "image-digest": (
        "kubernetes:core/v1:Pod",
        {"spec": {"containers": [{"name": "a", "image": "ghcr.io/mlflow/mlflow@sha256:" + "3f" * 32}]}},
    ),
    "git-sha-uuid-arn": (
        CONFIG_MAP,
        {
            "metadata": {
                "labels": {"app.kubernetes.io/version": "3f786850e387550fdab836ed7e6dc881de23001b"},
                "annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/mlflow"},
            },
            "data": {
                "GIT_SHA": "3F786850E387550FDAB836ED7E6DC881DE23001B",
                "CLIENT_SECRET_ID": "f47ac10b-58cc-4372-a567-0e02b2c3d479",
                "token": "f47ac10b-58cc-4372-a567-0e02b2c3d479",
                "SECRET_ARN": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:mlflow-db-AbCdEf",
            },
        },
    ),
    "urls-without-credentials": (
        CONFIG_MAP,
        {
            "data": {
                "MLFLOW_TRACKING_URI": "http://mlflow.mlflow.svc.cluster.local:5000/mlflow",
                "MLFLOW_S3_ENDPOINT_URL": "http://minio.mlflow.svc:9000",
                "ARTIFACTS": "s3://mlflow-artifacts/mlflow",
                "TOKEN_URL": "https://dex.example.com/dex/token",
                "CLONE": "https://git@github.com/org/repo.git",
            }
        },
    ),
    "settings-named-like-credentials": (
        CONFIG_MAP,
        {
            "data": {
                "PASSWORD_MIN_LENGTH": "12",
                "TOKEN_TTL_SECONDS": "3600",
                "secretName": "mlflow-db",
                "existingSecret": "mlflow-db",
                "PASSWORD_FILE": "/run/secrets/pw",
                "ALLOW_EMPTY_PASSWORD": "no",
                "max_tokens": "512",
                "hashKey": "id",
                "kmsKeyId": "alias/mlflow",
                "SECRET_KEY_REF": "mlflow-db",
                "nginx.ingress.kubernetes.io/auth-secret": "basic-auth",
            }
        },
    ),
    "names-of-secret-keys": (
        CONFIG_MAP,
        {
            "data": {
                "DB_PASSWORD_SECRET_KEY": "password",
                "DB_USERNAME_SECRET_KEY": "username",
                "DB_URI_SECRET_KEY": "uri",
                "MINIO_ROOT_PASSWORD_SECRET_KEY": "rootPassword",
                "TOKEN_SECRET_KEY": "registry-token",
                "passwordSecretKey": "postgres-password",
                "ADMIN_PASSWORD_KEY": "admin-password",
                "ACCESS_KEY_SECRET_KEY": "AWS_ACCESS_KEY_ID",
            }
        },
    ),
    "env-naming-a-secret-key": (
        "kubernetes:apps/v1:Deployment",
        _workload(
            "kubernetes:apps/v1:Deployment",
            {
                "containers": [
                    {
                        "name": "app",
                        "image": "app:1.0",
                        "env": [
                            {"name": "MLFLOW_DB_PASSWORD_SECRET_KEY", "value": "password"},
                            {"name": "DB_SECRET_NAME", "value": "mlflow-db"},
                        ],
                        "command": ["sh", "-c", "export DB_PASSWORD_SECRET_KEY=password && exec app"],
                    }
                ]
            },
        ),
    ),
    "command-line-references": (
        "kubernetes:batch/v1:Job",
        _workload(
            "kubernetes:batch/v1:Job",
            {
                "containers": [
                    {
                        "name": "mc",
                        "image": "mc:1.0",
                        "command": ["mc"],
                        "args": ["alias", "set", "local", "$(MINIO_URL)", "$(MINIO_ROOT_USER)", "$(MINIO_ROOT_PASSWORD)"],
                    },
                    {
                        "name": "sh",
                        "image": "sh:1.0",
                        "command": [
                            "sh",
                            "-c",
                            "\n".join(
                                [
                                    'mc alias set local "$MINIO_URL" "$MINIO_ROOT_USER" "${MINIO_ROOT_PASSWORD}" >/dev/null',
                                    'mc admin user add local mlflow "$SECRET_KEY_MLFLOW"',
                                    'curl -fsS -u "mlflow:$(cat /run/secrets/mlflow/password)" http://mlflow:5000/mlflow/health',
                                    "curl -fsS -u mlflow:$(cat /run/secrets/mlflow/password) http://mlflow:5000/mlflow/health",
                                    "mc admin user add local kserve `cat /run/secrets/kserve/key`",
                                    "curl -u admin https://prompts.example.com  # no password: curl prompts",
                                    'curl -H "Authorization: Bearer $TOKEN" -H "Accept: application/json" https://mlflow.example.com/api',
                                    'psql "$DATABASE_URL" -p 5432 -c "select 1"',
                                    "mysql -u root -p mlpipeline",
                                    "docker run -p 8080:80 registry.local/app:1.0 login",
                                    'kubectl create secret generic db --from-literal=password="$(openssl rand -hex 16)" '
                                    "--from-literal=username=mlflow",
                                    "echo 'mc alias set local http://minio:9000 <user> <password>'",
                                    'htpasswd -b /etc/nginx/htpasswd admin "$ADMIN_PASSWORD"  # rotated monthly',
                                    "# usage: mc alias set local http://minio:9000 <accesskey> <secretkey>",
                                ]
                            ),
                        ],
                    },
                ]
            },
        ),
    ),
    "placeholders": (
        CONFIG_MAP,
        {"data": {"password": "<your-password>", "DB_PASSWORD": "********", "TOKEN": "{{ .Values.token }}", "API_KEY": "[secret]"}},
    ),
    "secret-holding-generated-values": (
        "kubernetes:core/v1:Secret",
        {"stringData": {"password": DB_PASSWORD, "AWS_ACCESS_KEY_ID": AWS_KEY_ID}, "data": {"token": b64(TOKEN)}},
    ),
    "random-password-inputs": ("random:index/randomPassword:RandomPassword", {"length": 32, "special": False}),
    "rds-password-from-random": ("aws:rds/instance:Instance", {"password": DB_PASSWORD, "username": "mlflow"}),
    "helm-existing-secret": (
        "kubernetes:helm.sh/v3:Release",
        {"values": {"auth": {"existingSecret": "pg", "secretKeys": {"adminPasswordKey": "postgres-password"}}}},
    ),
    "inference-service-s3": (
        "kubernetes:serving.kserve.io/v1beta1:InferenceService",
        {
            "spec": {
                "predictor": {
                    "serviceAccountName": "kserve-s3",
                    "model": {"modelFormat": {"name": "mlflow"}, "storageUri": "s3://models/wine/1"},
                }
            }
        },
    ),
    "serving-kserve-s3-annotations": (
        "kubernetes:core/v1:ServiceAccount",
        {
            "metadata": {"annotations": {"serving.kserve.io/s3-endpoint": "minio.mlflow.svc:9000", "serving.kserve.io/s3-usehttps": "0"}},
            "secrets": [{"name": "kserve-s3"}],
        },
    ),
}


@pytest.mark.parametrize("case", CLEAN.values(), ids=list(CLEAN))
def test_clean_case_is_silent(case: tuple[str, dict[str, Any]]) -> None:
    type_, props = case
    assert messages(CREDENTIALS, type_, props) == []


def test_a_leak_is_still_found_next_to_values_unknown_during_preview() -> None:
    props = {
        "spec": {
            "containers": [
                {
                    "name": "a",
                    "image": UNKNOWN_STRING_VALUE,
                    "env": [{"name": "ENDPOINT", "value": UNKNOWN_STRING_VALUE}, {"name": "DB_PASSWORD", "value": DB_PASSWORD}],
                }
            ],
            "hostNetwork": UNKNOWN_BOOLEAN_VALUE,
        }
    }
    assert findings(CREDENTIALS, "kubernetes:core/v1:Pod", props) == {("spec.containers[0].env[1].value", d.NAMED_CREDENTIAL)}
    assert messages("images-pinned", "kubernetes:core/v1:Pod", props) == []


# -- allowlists --------------------------------------------------------------------------


def test_allowed_paths_accept_a_finding_on_matching_resources_only() -> None:
    props = {"data": {"password": DB_PASSWORD, "other": f"postgresql://u:{DB_PASSWORD}@h/db"}}
    config = {"allowedPaths": [{"resource": "kubernetes:core/v1:ConfigMap", "path": "data.pass*"}]}
    assert findings(CREDENTIALS, CONFIG_MAP, props, config=config) == {("data.other", d.URI_PASSWORD)}
    by_name = {"allowedPaths": [{"resource": "someone-else", "path": "data.*"}]}
    assert len(messages(CREDENTIALS, CONFIG_MAP, props, config=by_name)) == 2


def test_allowed_values_accept_a_value_given_literally_or_by_digest() -> None:
    import hashlib

    props = {"data": {"DEMO_TOKEN": "public-demo-token"}}
    assert messages(CREDENTIALS, CONFIG_MAP, props, config={"allowedValues": ["public-demo-token"]}) == []
    digest = "sha256:" + hashlib.sha256(b"public-demo-token").hexdigest()
    assert messages(CREDENTIALS, CONFIG_MAP, props, config={"allowedValues": [digest]}) == []
    assert findings(CREDENTIALS, CONFIG_MAP, props) == {("data.DEMO_TOKEN", d.NAMED_CREDENTIAL)}


def test_a_setting_the_policy_does_not_have_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"no-plaintext-credentials\.allowedPath: not a setting"):
        messages(CREDENTIALS, CONFIG_MAP, {}, config={"allowedPath": []})


# -- the other policies ---------------------------------------------------------------------


def test_an_iam_access_key_is_a_long_lived_credential() -> None:
    assert findings("no-static-iam-access-keys", "aws:iam/accessKey:AccessKey", {"user": "ci"}) == {("(resource)", checks.STATIC_KEY)}
    assert messages("no-static-iam-access-keys", "aws:iam/role:Role", {"name": "mlflow"}) == []


@pytest.mark.parametrize(
    ("type_", "props", "expected"),
    [
        (
            "kubernetes:apps/v1:Deployment",
            _workload(
                "kubernetes:apps/v1:Deployment",
                {"containers": [{"name": "a", "image": "busybox"}], "initContainers": [{"name": "b", "image": "quay.io/minio/mc:latest"}]},
            ),
            {("spec.template.spec.containers[0].image", checks.NO_TAG), ("spec.template.spec.initContainers[0].image", checks.LATEST_TAG)},
        ),
        (
            "kubernetes:core/v1:Pod",
            {"spec": {"containers": [{"name": "a", "image": "registry.local:5000/team/app"}]}},
            {("spec.containers[0].image", checks.NO_TAG)},
        ),
        (
            "kubernetes:serving.kserve.io/v1beta1:InferenceService",
            {"spec": {"predictor": {"containers": [{"name": "kserve-container", "image": "ghcr.io/acme/model:latest"}]}}},
            {("spec.predictor.containers[0].image", checks.LATEST_TAG)},
        ),
        (
            "kubernetes:helm.sh/v3:Release",
            {"values": {"image": {"repository": "bitnami/postgresql", "tag": "latest"}, "metrics": {"image": "bitnami/postgres-exporter"}}},
            {("values.image.tag", checks.LATEST_TAG)},
        ),
    ],
    ids=["deployment", "registry-port-is-not-a-tag", "inference-service", "helm-values"],
)
def test_unpinned_images_are_reported(type_: str, props: dict[str, Any], expected: set[tuple[str, str]]) -> None:
    assert findings("images-pinned", type_, props) == expected


def test_pinned_images_are_accepted() -> None:
    pod = {
        "spec": {
            "containers": [
                {"name": "a", "image": "ghcr.io/mlflow/mlflow:v3.17.2-full"},
                {"name": "b", "image": "docker.io/library/postgres@sha256:" + "ab" * 32},
                {"name": "c", "image": "localhost:5000/app:1.0"},
            ]
        }
    }
    assert messages("images-pinned", "kubernetes:core/v1:Pod", pod) == []


def _service(name: str, type_: str, app: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {"app.kubernetes.io/part-of": "mlops"}},
        "spec": {"type": type_, "selector": {"app.kubernetes.io/name": app}, "ports": [{"port": 80}]},
    }


def test_mlflow_and_minio_services_stay_inside_the_cluster() -> None:
    service = "kubernetes:core/v1:Service"
    assert findings("mlflow-minio-not-exposed", service, _service("tracking", "LoadBalancer", "mlflow")) == {
        ("spec.type", "mlflow exposed outside the cluster by a LoadBalancer Service")
    }
    assert findings("mlflow-minio-not-exposed", service, _service("minio-console", "NodePort", "object-store")) == {
        ("spec.type", "minio exposed outside the cluster by a NodePort Service")
    }
    assert messages("mlflow-minio-not-exposed", service, _service("mlflow", "ClusterIP", "mlflow")) == []
    assert messages("mlflow-minio-not-exposed", service, _service("istio-ingressgateway", "LoadBalancer", "istio")) == []
    assert findings("mlflow-minio-not-exposed", service, _service("gw", "LoadBalancer", "istio"), config={"apps": ["istio"]}) == {
        ("spec.type", "istio exposed outside the cluster by a LoadBalancer Service")
    }


PVC = "kubernetes:core/v1:PersistentVolumeClaim"
STATEFUL_SET = {
    "spec": {"volumeClaimTemplates": [{"metadata": {"name": "data"}}], "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Delete"}}
}


def test_stateful_resources_must_be_protected_in_prod(monkeypatch: pytest.MonkeyPatch) -> None:
    policy = "stateful-resources-protected"
    monkeypatch.setenv("PULUMI_STACK", "prod")
    assert findings(policy, PVC, {}) == {("protect", checks.NOT_PROTECTED)}
    assert findings(policy, "aws:rds/instance:Instance", {}) == {("protect", checks.NOT_PROTECTED)}
    assert findings(policy, "kubernetes:apps/v1:StatefulSet", STATEFUL_SET, protect=True) == {
        ("spec.persistentVolumeClaimRetentionPolicy.whenDeleted", checks.VOLUMES_DELETED)
    }
    assert messages(policy, PVC, {}, protect=True) == []
    assert messages(policy, "kubernetes:apps/v1:StatefulSet", {"spec": {"replicas": 1}}) == []
    assert messages(policy, PVC, {}, config={"prod": False}) == []


def test_outside_prod_stateful_resources_may_be_unprotected(monkeypatch: pytest.MonkeyPatch) -> None:
    policy = "stateful-resources-protected"
    monkeypatch.setenv("PULUMI_STACK", "dev")
    assert messages(policy, PVC, {}) == []
    assert findings(policy, PVC, {}, config={"prod": True}) == {("protect", checks.NOT_PROTECTED)}
    assert findings(policy, PVC, {}, config={"prodStacks": ["dev"]}) == {("protect", checks.NOT_PROTECTED)}


# -- S3 buckets: stack policies, which see the bucket's companion resources ---------------------

BUCKET = "aws:s3/bucket:Bucket"


def resource(
    type_: str, name: str, props: dict[str, Any], *, depends_on: tuple[PolicyResource, ...] = (), protect: bool = False
) -> PolicyResource:
    """A resource as CrossGuard's stack analysis sees it; companions depend on their bucket."""
    deps = list(depends_on)
    return PolicyResource(
        type_, unknown_checking_proxy(props), urn(type_, name), name, _options(protect), None, None, deps, {"bucket": deps} if deps else {}
    )


def _hardened_bucket(bucket_name: Any = "mlflow-artifacts") -> list[PolicyResource]:
    """Companions refer to the bucket by its id, which is unknown while the bucket is new."""
    bucket = resource(BUCKET, "artifacts", {"bucket": bucket_name})
    ref = {"bucket": UNKNOWN_STRING_VALUE}
    return [
        bucket,
        resource(
            "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
            "artifacts-pab",
            {**ref, **{flag: True for flag in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")}},
            depends_on=(bucket,),
        ),
        resource(
            "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
            "artifacts-sse",
            {**ref, "rules": [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "aws:kms"}}]},
            depends_on=(bucket,),
        ),
        resource(
            "aws:s3/bucketVersioning:BucketVersioning",
            "artifacts-versioning",
            {**ref, "versioningConfiguration": {"status": "Enabled"}},
            depends_on=(bucket,),
        ),
    ]


S3_POLICIES = ("s3-bucket-public-access-block", "s3-bucket-encryption", "s3-bucket-versioning")


def test_a_bare_bucket_misses_public_access_block_encryption_and_versioning() -> None:
    bare = [resource(BUCKET, "artifacts", {"bucket": "mlflow-artifacts"})]
    assert [stack_findings(p, bare) for p in S3_POLICIES] == [
        {("artifacts", "(resource)", checks.NO_PUBLIC_ACCESS_BLOCK)},
        {("artifacts", "(resource)", checks.NO_ENCRYPTION)},
        {("artifacts", "(resource)", checks.NO_VERSIONING)},
    ]


def test_a_bucket_with_its_companions_passes_even_while_its_name_is_unknown() -> None:
    for bucket_name in ("mlflow-artifacts", UNKNOWN_STRING_VALUE):
        assert [stack_findings(p, _hardened_bucket(bucket_name)) for p in S3_POLICIES] == [set(), set(), set()]


def test_a_companion_that_leaves_the_bucket_open_is_reported_on_the_companion() -> None:
    bucket = resource(BUCKET, "artifacts", {"bucket": "mlflow-artifacts"})
    weak = [
        bucket,
        resource(
            "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
            "artifacts-pab",
            {"bucket": "mlflow-artifacts", "blockPublicAcls": True, "blockPublicPolicy": False, "ignorePublicAcls": True},
        ),
        resource(
            "aws:s3/bucketVersioning:BucketVersioning",
            "artifacts-versioning",
            {"bucket": "mlflow-artifacts", "versioningConfiguration": {"status": "Suspended"}},
        ),
    ]
    assert stack_findings("s3-bucket-public-access-block", weak) == {
        ("artifacts-pab", "blockPublicPolicy", checks.PUBLIC_ACCESS_ALLOWED),
        ("artifacts-pab", "restrictPublicBuckets", checks.PUBLIC_ACCESS_ALLOWED),
    }
    assert stack_findings("s3-bucket-versioning", weak) == {
        ("artifacts-versioning", "versioningConfiguration.status", checks.VERSIONING_OFF)
    }


def test_an_account_public_access_block_covers_every_bucket() -> None:
    flags = {flag: True for flag in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")}
    stack = [resource(BUCKET, "artifacts", {}), resource("aws:s3/accountPublicAccessBlock:AccountPublicAccessBlock", "account", flags)]
    assert stack_findings("s3-bucket-public-access-block", stack) == set()


def test_inline_bucket_settings_count() -> None:
    inline = [
        resource(
            BUCKET,
            "legacy",
            {
                "versioning": {"enabled": True},
                "serverSideEncryptionConfiguration": {"rule": {"applyServerSideEncryptionByDefault": {"sseAlgorithm": "AES256"}}},
            },
        )
    ]
    assert stack_findings("s3-bucket-encryption", inline) == set()
    assert stack_findings("s3-bucket-versioning", inline) == set()


# -- the audit's stack-export fixtures, as CrossGuard would see them --------------------------------

FIXTURES = ROOT / "tests" / "fixtures" / "policies"
SIG_KEY, SECRET_SIG = "4dabf18193072939515e22adb298388d", "1b47061264138c4ac30d75fd1eb44270"


def _unwrapped(value: Any) -> Any:
    """Secrets as validate functions receive them: plain values, no marker."""
    if isinstance(value, dict):
        if value.get(SIG_KEY) == SECRET_SIG:
            return json.loads(value["plaintext"])
        return {k: _unwrapped(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unwrapped(v) for v in value]
    return value


def crossguard_on_export(name: str) -> set[tuple[str, str, str, str]]:
    """(policy, resource name, path, kind) for every policy over a --show-secrets export.

    Resource policies get each resource's inputs, stack policies its outputs, as in a preview.
    """
    state = json.loads((FIXTURES / name).read_text())["deployment"]["resources"]
    credentials = [
        c for group in json.loads((FIXTURES / "credentials.json").read_text()).values() if isinstance(group, list) for c in group
    ]
    reported: list[tuple[str, str]] = []
    stack: dict[str, PolicyResource] = {}
    for r in state:
        logical = r["urn"].rsplit("::", 1)[1]
        stack[r["urn"]] = PolicyResource(
            r["type"],
            unknown_checking_proxy(_unwrapped(r.get("outputs", {}))),
            r["urn"],
            logical,
            _options(r.get("protect", False)),
            None,
            None,
            [],
            {},
        )
        if r.get("custom"):
            reported += [
                (spec.name, m)
                for spec in POLICIES
                if spec.resource_check
                for m in messages(spec.name, r["type"], _unwrapped(r["inputs"]), name=logical, protect=r.get("protect", False))
            ]
    for r in state:
        stack[r["urn"]].dependencies.extend(stack[d] for d in r.get("dependencies", []))
    reported += [(spec.name, m) for spec in POLICIES if spec.stack_check for m in stack_messages(spec.name, list(stack.values()))]
    assert not [m for _, m in reported for c in credentials if c in m]
    return {(policy, *parse(m)) for policy, m in reported}


def test_crossguard_passes_the_clean_export(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PULUMI_STACK", "prod")
    assert crossguard_on_export("clean-export-show-secrets.json") == set()


def test_crossguard_on_the_leaky_export_differs_from_the_audit_only_where_secretness_matters(monkeypatch: pytest.MonkeyPatch) -> None:
    """The audit alone sees stack outputs and values that should be secrets but are not (a RandomPassword
    result, a Secret's data). CrossGuard alone flags a Pulumi secret written into a pod spec, where the
    cluster stores it in plaintext; the audit trusts the state's encryption."""
    monkeypatch.setenv("PULUMI_STACK", "prod")
    env = "spec.template.spec.containers[0].env"
    assert crossguard_on_export("leaky-export-show-secrets.json") == {
        (CREDENTIALS, "mlflow-env", "data.AWS_ACCESS_KEY_ID", d.AWS_ACCESS_KEY_ID),
        (CREDENTIALS, "mlflow-env", "data.MLFLOW_BACKEND_STORE_URI", d.URI_PASSWORD),
        (CREDENTIALS, "mlflow", f"{env}[1].value", d.AWS_SECRET_ACCESS_KEY),
        (CREDENTIALS, "mlflow", f"{env}[2].value", d.NAMED_CREDENTIAL),
        ("images-pinned", "mlflow", "spec.template.spec.initContainers[0].image", checks.LATEST_TAG),
        (CREDENTIALS, "minio-bucket-setup", "spec.jobTemplate.spec.template.spec.containers[0].command[2]", d.DEFAULT_CREDENTIAL),
        ("images-pinned", "minio-bucket-setup", "spec.jobTemplate.spec.template.spec.containers[0].image", checks.NO_TAG),
        (CREDENTIALS, "wine", "spec.predictor.model.env[0].value", d.API_TOKEN),
        (CREDENTIALS, "postgres", "values.auth.postgresPassword", d.NAMED_CREDENTIAL),
        ("no-static-iam-access-keys", "ci-user-key", "(resource)", checks.STATIC_KEY),
        ("s3-bucket-public-access-block", "artifacts", "(resource)", checks.NO_PUBLIC_ACCESS_BLOCK),
        ("s3-bucket-encryption", "artifacts", "(resource)", checks.NO_ENCRYPTION),
        ("s3-bucket-versioning", "artifacts", "(resource)", checks.NO_VERSIONING),
        ("stateful-resources-protected", "artifacts", "protect", checks.NOT_PROTECTED),
        ("stateful-resources-protected", "postgres-data", "protect", checks.NOT_PROTECTED),
        ("mlflow-minio-not-exposed", "mlflow-public", "spec.type", "mlflow exposed outside the cluster by a LoadBalancer Service"),
        # The export's MLflow runs no authorization app, and the same Service routes the internet to it.
        ("mlflow-route-authenticated", "mlflow-public", "spec.type", checks.UNAUTHENTICATED_ROUTE),
        (CREDENTIALS, "minio-users", "spec.template.spec.containers[0].args[5]", d.COMMAND_LINE),
        (CREDENTIALS, "minio-users", "spec.template.spec.containers[1].command[2]", d.COMMAND_LINE),
        (CREDENTIALS, "minio-users", "spec.template.spec.initContainers[0].command[3]", d.COMMAND_LINE),
        (CREDENTIALS, "db-backup", "spec.jobTemplate.spec.template.spec.containers[0].args[0]", d.COMMAND_LINE),
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
            _workload(
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
    assert "literal value of a credential-named key at spec.template.spec.containers[0].env[0].value" in diagnostics[0].message
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


# -- mlflow-route-authenticated -----------------------------------------------------------

ROUTE = "mlflow-route-authenticated"
MLFLOW_LABELS = {"app.kubernetes.io/name": "mlflow", "app.kubernetes.io/instance": "mlflow"}


def _mlflow_server(*extra_args: str, namespace: str = "mlflow") -> PolicyResource:
    container = {
        "name": "mlflow",
        "image": "ghcr.io/x/mlflow:3.17.2",
        "command": ["mlflow", "server"],
        "args": ["--port", "5000", *extra_args],
    }
    return resource(
        "kubernetes:apps/v1:Deployment",
        "mlflow",
        {
            "metadata": {"name": "mlflow", "namespace": namespace},
            "spec": {"template": {"metadata": {"labels": {**MLFLOW_LABELS, "extra": "x"}}, "spec": {"containers": [container]}}},
        },
    )


def _mlflow_service(type_: str = "ClusterIP", name: str = "mlflow") -> PolicyResource:
    return resource(
        "kubernetes:core/v1:Service",
        f"svc-{name}-{type_}",
        {"metadata": {"name": name, "namespace": "mlflow"}, "spec": {"type": type_, "selector": MLFLOW_LABELS, "ports": [{"port": 5000}]}},
    )


def _ingress(service: str = "mlflow") -> PolicyResource:
    backend = {"service": {"name": service, "port": {"number": 5000}}}
    return resource(
        "kubernetes:networking.k8s.io/v1:Ingress",
        "route",
        {
            "metadata": {"name": "mlflow", "namespace": "mlflow"},
            "spec": {"rules": [{"host": "mlflow.example.com", "http": {"paths": [{"path": "/mlflow/", "backend": backend}]}}]},
        },
    )


def _virtual_service(host: str) -> PolicyResource:
    return resource(
        "kubernetes:networking.istio.io/v1:VirtualService",
        "vs",
        {
            "metadata": {"name": "mlflow", "namespace": "mlflow"},
            "spec": {"hosts": ["*"], "http": [{"route": [{"destination": {"host": host, "port": {"number": 5000}}}]}]},
        },
    )


def test_every_route_to_an_mlflow_server_without_authentication_is_a_violation() -> None:
    server = _mlflow_server()
    routes = [
        _mlflow_service(),
        _ingress(),
        _virtual_service("mlflow.mlflow.svc.cluster.local"),
        _mlflow_service("LoadBalancer", "mlflow-lb"),
        _mlflow_service("NodePort", "mlflow-np"),
    ]
    assert stack_findings(ROUTE, [server, *routes]) == {
        ("route", "spec.rules[0].http.paths[0].backend", checks.UNAUTHENTICATED_ROUTE),
        ("vs", "spec.http[0].route[0].destination.host", checks.UNAUTHENTICATED_ROUTE),
        ("svc-mlflow-lb-LoadBalancer", "spec.type", checks.UNAUTHENTICATED_ROUTE),
        ("svc-mlflow-np-NodePort", "spec.type", checks.UNAUTHENTICATED_ROUTE),
    }


@pytest.mark.parametrize("args", [("--app-name", "basic-auth"), ("--app-name=kubernetes-auth",)])
def test_routes_to_an_authenticating_mlflow_server_pass(args: tuple[str, ...]) -> None:
    routes = [_mlflow_service(), _ingress(), _virtual_service("mlflow.mlflow.svc.cluster.local"), _mlflow_service("LoadBalancer", "lb")]
    assert stack_findings(ROUTE, [_mlflow_server(*args), *routes]) == set()


def test_an_app_that_authenticates_nobody_and_routes_elsewhere_are_told_apart() -> None:
    # Another --app-name (MLflow's own list includes apps that do not authenticate) counts as none.
    assert stack_findings(ROUTE, [_mlflow_server("--app-name", "custom"), _mlflow_service(), _ingress()]) != set()
    # A route to another Service, or the same Service name in another namespace, reaches no MLflow server.
    other = _virtual_service("mlflow.elsewhere.svc.cluster.local")
    assert stack_findings(ROUTE, [_mlflow_server(), _mlflow_service(), _ingress("dashboard"), other]) == set()


def test_the_stacks_as_declared_pass_and_dropping_the_auth_app_from_prod_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    from tools.harness import run_program

    def policy_resources(plan: Any, drop_auth: bool = False) -> list[PolicyResource]:
        out = []
        for r in plan.resources:
            props = json.loads(json.dumps(r.inputs))
            if drop_auth and r.kind == "Deployment" and r.k8s_name == "mlflow":
                c = props["spec"]["template"]["spec"]["containers"][0]
                c["args"] = [a for a in c["args"] if a not in ("--app-name", "basic-auth")]
            out.append(resource(r.type, r.name, props))
        return out

    for stack in ("dev", "prod"):
        assert stack_findings(ROUTE, policy_resources(run_program(stack))) == set(), stack
    assert {f[2] for f in stack_findings(ROUTE, policy_resources(run_program("prod"), drop_auth=True))} == {checks.UNAUTHENTICATED_ROUTE}
