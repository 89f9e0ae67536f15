"""The policies (mlops_policies/checks.py), called the way the Pulumi engine calls them: what each reports, where, and what it must not.

Each leak case names the exact property path and the kind of credential expected
(the kind is the reporting rule's own: detect-secrets' secret type, or the
platform's), and no message may contain the credential itself.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from pulumi_policy import PolicyResource
from pulumi_policy.proxy import UNKNOWN_BOOLEAN_VALUE, UNKNOWN_STRING_VALUE

from mlops_policies import checks
from tests.policies.helpers import (
    AWS_KEY_ID,
    AWS_SECRET,
    CREDENTIALS,
    DB_PASSWORD,
    DEX_DEFAULT_HASH,
    GITHUB_TOKEN,
    HF_TOKEN,
    JWT,
    PEM,
    PEM_BODY,
    POD_SPEC_AT,
    TOKEN,
    URI_UNSAFE_PASSWORD,
    b64,
    findings,
    messages,
    parse,
    resource,
    stack_findings,
    traced,
    workload,
)

AWS = "AWS Access Key"
BASIC = "Basic Auth Credentials"
PRIVATE_KEY = "Private Key"
JWT_KIND = "JSON Web Token"
GITHUB = "GitHub Token"
BASE64_ENTROPY = "Base64 High Entropy String"
KEYWORD = "Secret Keyword"
SETTING = "credential in a platform setting"
DEFAULT = "well-known default credential"

# -- the leak corpus --------------------------------------------------------------------


@dataclass(frozen=True)
class Leak:
    id: str
    type: str
    props: dict[str, Any]
    path: str
    kind: str
    secret: str


SAFE_ENV = {"name": "DB_PASSWORD_FROM_SECRET", "valueFrom": {"secretKeyRef": {"name": "mlflow-db", "key": "password"}}}
CONTAINER_LEAKS = [
    # (location, container, init container, path below the pod spec, kind, secret)
    (
        "env",
        {"name": "app", "image": "app:1.0", "env": [SAFE_ENV, {"name": "DB_PASSWORD", "value": DB_PASSWORD}]},
        None,
        "containers[0].env[1].value",
        KEYWORD,
        DB_PASSWORD,
    ),
    (
        "args",
        {"name": "app", "image": "app:1.0", "args": ["server", f"--backend-store-uri=postgresql://mlflow:{DB_PASSWORD}@db:5432/mlflow"]},
        None,
        "containers[0].args[1]",
        BASIC,
        DB_PASSWORD,
    ),
    (
        "flag-pair",
        {"name": "app", "image": "app:1.0", "args": ["login", "--token", TOKEN]},
        None,
        "containers[0].args[2]",
        SETTING,
        TOKEN,
    ),
    (
        "sh-c",
        {"name": "app", "image": "app:1.0", "command": ["sh", "-c", f"export AWS_SECRET_ACCESS_KEY={AWS_SECRET} && aws s3 ls"]},
        None,
        "containers[0].command[2]",
        AWS,
        AWS_SECRET,
    ),
    (
        "init-env",
        {"name": "app", "image": "app:1.0"},
        {"name": "setup", "image": "setup:1.0", "env": [{"name": "AWS_ACCESS_KEY_ID", "value": AWS_KEY_ID}]},
        "initContainers[0].env[0].value",
        AWS,
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
        KEYWORD,
        DB_PASSWORD,
    ),
    (
        "positional-in-sh-c",
        {"name": "mc", "image": "mc:1.0", "command": ["sh", "-c", f"mc admin user add local mlflow {TOKEN} >/dev/null"]},
        None,
        "containers[0].command[2]",
        KEYWORD,
        TOKEN,
    ),
]


def _workload_leaks() -> Iterator[Leak]:
    for type_, at in POD_SPEC_AT.items():
        for location, container, init, path, kind, secret in CONTAINER_LEAKS:
            pod = {"containers": [container], **({"initContainers": [init]} if init else {})}
            yield Leak(f"{type_.rsplit(':', 1)[1]}-{location}", type_, workload(type_, pod), f"{at}.{path}", kind, secret)


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
    Leak("aws-key-id", CONFIG_MAP, {"data": {"S3_ID": AWS_KEY_ID}}, "data.S3_ID", AWS, AWS_KEY_ID),
    Leak(
        "aws-secret-key",
        CONFIG_MAP,
        {"data": {"AWS_SECRET_ACCESS_KEY": AWS_SECRET}},
        "data.AWS_SECRET_ACCESS_KEY",
        AWS,
        AWS_SECRET,
    ),
    Leak(
        "postgres-uri",
        CONFIG_MAP,
        {"data": {"DB_URI": f"postgresql://mlflow:{DB_PASSWORD}@db:5432/mlflow"}},
        "data.DB_URI",
        BASIC,
        DB_PASSWORD,
    ),
    Leak(
        "mysql-uri",
        CONFIG_MAP,
        {"data": {"KFP_DB": f"mysql://root:{DB_PASSWORD}@mysql:3306/mlpipeline"}},
        "data.KFP_DB",
        BASIC,
        DB_PASSWORD,
    ),
    Leak(
        "https-uri",
        CONFIG_MAP,
        {"data": {"REPO": f"https://bot:{TOKEN}@git.example.com/ml/models.git"}},
        "data.REPO",
        BASIC,
        TOKEN,
    ),
    Leak("pem", CONFIG_MAP, {"data": {"tls.key": PEM}}, 'data["tls.key"]', PRIVATE_KEY, PEM_BODY),
    Leak("pem-base64", CONFIG_MAP, {"data": {"client-key-data": b64(PEM)}}, "data.client-key-data", PRIVATE_KEY, b64(PEM)[:40]),
    Leak("jwt", CONFIG_MAP, {"data": {"KFP_BEARER": JWT}}, "data.KFP_BEARER", JWT_KIND, JWT),
    Leak("hugging-face-token", CONFIG_MAP, {"data": {"HF_HUB": HF_TOKEN}}, "data.HF_HUB", BASE64_ENTROPY, HF_TOKEN),
    Leak("github-token", CONFIG_MAP, {"data": {"GH": GITHUB_TOKEN}}, "data.GH", GITHUB, GITHUB_TOKEN),
    Leak("named-password", CONFIG_MAP, {"data": {"password": DB_PASSWORD}}, "data.password", KEYWORD, DB_PASSWORD),
    Leak("named-api-key", CONFIG_MAP, {"data": {"apiKey": TOKEN}}, "data.apiKey", KEYWORD, TOKEN),
    Leak(
        "named-star-key",
        CONFIG_MAP,
        {"data": {"MINIO_ACCESS_KEY": "mlflow-svc"}},
        "data.MINIO_ACCESS_KEY",
        SETTING,
        "mlflow-svc",
    ),
    Leak("named-client-secret", CONFIG_MAP, {"data": {"OIDC_CLIENT_SECRET": TOKEN}}, "data.OIDC_CLIENT_SECRET", KEYWORD, TOKEN),
    Leak(
        "default-minio123",
        CONFIG_MAP,
        {"data": {"MINIO_ROOT_PASSWORD": "minio123"}},
        "data.MINIO_ROOT_PASSWORD",
        DEFAULT,
        "minio123",
    ),
    Leak(
        "default-minioadmin",
        CONFIG_MAP,
        {"data": {"MINIO_ROOT_USER": "minioadmin"}},
        "data.MINIO_ROOT_USER",
        DEFAULT,
        "minioadmin",
    ),
    Leak(
        "default-kubeflow-user",
        CONFIG_MAP,
        {"data": {"DEFAULT_LOGIN": "user@example.com:12341234"}},
        "data.DEFAULT_LOGIN",
        DEFAULT,
        "12341234",
    ),
    Leak(
        "default-mlflow-password",
        CONFIG_MAP,
        {"data": {"POSTGRES": "mlflow_password"}},
        "data.POSTGRES",
        DEFAULT,
        "mlflow_password",
    ),
    Leak("default-password1234", CONFIG_MAP, {"data": {"PG": "password1234"}}, "data.PG", DEFAULT, "password1234"),
    # credentials inside documents and text
    Leak(
        "dex-config-yaml",
        CONFIG_MAP,
        {"data": {"config.yaml": DEX_CONFIG}},
        'data["config.yaml"].staticPasswords[0].hash',
        DEFAULT,
        DEX_DEFAULT_HASH,
    ),
    Leak(
        "properties-file",
        CONFIG_MAP,
        {"data": {"app.properties": f"db.host=db\ndb.password={DB_PASSWORD}\n"}},
        'data["app.properties"]',
        KEYWORD,
        DB_PASSWORD,
    ),
    Leak(
        "binary-data",
        CONFIG_MAP,
        {"binaryData": {"env": b64(f"PGPASSWORD={DB_PASSWORD}\n")}},
        "binaryData.env",
        KEYWORD,
        DB_PASSWORD,
    ),
    Leak(
        "mc-alias-script",
        CONFIG_MAP,
        {"data": {"setup.sh": "mc alias set local http://minio:9000 minioadmin minio123"}},
        'data["setup.sh"]',
        DEFAULT,
        "minio123",
    ),
    # credentials a command-line tool takes by position or in a short option, inside scripts
    *(
        Leak(f"command-line-{tool}", CONFIG_MAP, {"data": {"run.sh": f"set -e\n{line}\necho done\n"}}, 'data["run.sh"]', kind, secret)
        for tool, line, kind, secret in (
            (
                "mc-alias-set",
                f"mc alias set local http://minio.mlflow.svc:9000 mlops-admin {DB_PASSWORD} --api S3v4",
                KEYWORD,
                DB_PASSWORD,
            ),
            (
                "mc-config-host-add",
                f"/usr/bin/mc --quiet config host add local http://minio:9000 mlops-admin '{DB_PASSWORD}'",
                KEYWORD,
                DB_PASSWORD,
            ),
            ("mc-admin-user-add", f"mc admin user add local mlflow {TOKEN}", KEYWORD, TOKEN),
            ("commented-out", f"#mc alias set local http://minio:9000 mlops-admin {DB_PASSWORD}", KEYWORD, DB_PASSWORD),
            ("curl-user", f"curl -fsSu mlflow:{DB_PASSWORD} http://mlflow.mlflow.svc:5000/mlflow/health", KEYWORD, DB_PASSWORD),
            ("curl-user-long", f'curl --user="mlflow:{DB_PASSWORD}" https://mlflow.example.com/mlflow', KEYWORD, DB_PASSWORD),
            ("curl-authorization", f"curl -H 'Authorization: Bearer {TOKEN}' https://mlflow.example.com/api", SETTING, TOKEN),
            ("psql-uri", f"psql postgresql://mlflow:{DB_PASSWORD}@db:5432/mlflow -c 'select 1'", BASIC, DB_PASSWORD),
            (
                "psql-uri-unsafe-characters",
                f"psql 'postgresql://mlflow:{URI_UNSAFE_PASSWORD}@db:5432/mlflow' -c 'select 1'",
                KEYWORD,
                URI_UNSAFE_PASSWORD,
            ),
            (
                "pg-dump-dbname",
                f"pg_dump --dbname=postgresql://mlflow:{URI_UNSAFE_PASSWORD}@db/mlflow > /backup/db.sql",
                KEYWORD,
                URI_UNSAFE_PASSWORD,
            ),
            ("mysql", f"mysql -uroot -p{DB_PASSWORD} mlpipeline < schema.sql", KEYWORD, DB_PASSWORD),
            ("redis-cli", f"redis-cli -h redis -a {TOKEN} ping", KEYWORD, TOKEN),
            ("sshpass", f"sshpass -p {DB_PASSWORD} scp model.pkl host:/models/", KEYWORD, DB_PASSWORD),
            ("docker-login", f"docker login -u bot -p {TOKEN} ghcr.io", KEYWORD, TOKEN),
            ("htpasswd", f"htpasswd -bc /etc/nginx/htpasswd admin {DB_PASSWORD}", KEYWORD, DB_PASSWORD),
            (
                "kubectl-from-literal",
                f"kubectl create secret generic db --from-literal=username=mlflow --from-literal=password={DB_PASSWORD}",
                KEYWORD,
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
        KEYWORD,
        DB_PASSWORD,
    ),
    # a credential-named key is a credential unless it says which Secret key holds one and names such a key
    Leak(
        "secret-key-holding-a-value",
        CONFIG_MAP,
        {"data": {"DB_PASSWORD_SECRET_KEY": DB_PASSWORD}},
        "data.DB_PASSWORD_SECRET_KEY",
        KEYWORD,
        DB_PASSWORD,
    ),
    Leak(
        "minio-secret-key",
        CONFIG_MAP,
        {"data": {"MINIO_SECRET_KEY": "mlflow-bucket-key"}},
        "data.MINIO_SECRET_KEY",
        KEYWORD,
        "mlflow-bucket-key",
    ),
    # metadata
    Leak(
        "annotation",
        CONFIG_MAP,
        {"metadata": {"annotations": {"example.com/db": f"postgresql://u:{DB_PASSWORD}@db/x"}}},
        'metadata.annotations["example.com/db"]',
        BASIC,
        DB_PASSWORD,
    ),
    Leak("label", CONFIG_MAP, {"metadata": {"labels": {"key-id": AWS_KEY_ID}}}, "metadata.labels.key-id", AWS, AWS_KEY_ID),
    Leak(
        "last-applied",
        CONFIG_MAP,
        {"metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": LAST_APPLIED}}},
        'metadata.annotations["kubectl.kubernetes.io/last-applied-configuration"].data.MINIO_SECRET_KEY',
        KEYWORD,
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
        SETTING,
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
        AWS,
        AWS_SECRET,
    ),
    Leak(
        "any-custom-resource",
        "kubernetes:example.com/v1:Widget",
        {"spec": {"backend": {"connection": {"password": DB_PASSWORD}}}},
        "spec.backend.connection.password",
        KEYWORD,
        DB_PASSWORD,
    ),
    # Helm values
    Leak(
        "helm-values",
        "kubernetes:helm.sh/v3:Release",
        {"chart": "postgresql", "values": {"auth": {"postgresPassword": DB_PASSWORD}}},
        "values.auth.postgresPassword",
        KEYWORD,
        DB_PASSWORD,
    ),
    Leak(
        "helm-v4-values",
        "kubernetes:helm.sh/v4:Chart",
        {"chart": "minio", "values": {"rootPassword": "minio123"}},
        "values.rootPassword",
        DEFAULT,
        "minio123",
    ),
    # credential holders accept generated values, never published defaults
    Leak(
        "secret-default",
        "kubernetes:core/v1:Secret",
        {"stringData": {"MINIO_ROOT_PASSWORD": "minio123"}},
        "stringData.MINIO_ROOT_PASSWORD",
        DEFAULT,
        "minio123",
    ),
    Leak(
        "secret-data-default",
        "kubernetes:core/v1:Secret",
        {"data": {"secretkey": b64("minio123")}},
        "data.secretkey",
        DEFAULT,
        b64("minio123"),
    ),
    # not only Kubernetes
    Leak(
        "lambda-environment",
        "aws:lambda/function:Function",
        {"environment": {"variables": {"DB_PASSWORD": DB_PASSWORD}}},
        "environment.variables.DB_PASSWORD",
        KEYWORD,
        DB_PASSWORD,
    ),
]


@pytest.mark.parametrize("leak", LEAKS, ids=[leak.id for leak in LEAKS])
def test_leak_is_reported_at_its_path_with_its_kind_and_without_the_value(leak: Leak) -> None:
    reported = messages(CREDENTIALS, leak.type, leak.props)
    assert {parse(m)[1:3] for m in reported} == {(leak.path, leak.kind)}
    windows = {leak.secret[i : i + 6] for i in range(max(len(leak.secret) - 5, 1))}
    for message in reported:
        assert leak.secret not in message
        finding = message.split(". Keep the value", 1)[0]  # the remediation is fixed text (it says "password")
        assert not [w for w in windows if w in finding]  # not even partly
        assert f"{leak.type} 'subject'" in message


def test_the_corpus_covers_every_rule_a_leak_in_a_manifest_reaches() -> None:
    assert {leak.kind for leak in LEAKS} == {AWS, BASIC, PRIVATE_KEY, JWT_KIND, GITHUB, BASE64_ENTROPY, DEFAULT, KEYWORD, SETTING}


def test_one_credential_found_by_several_rules_is_reported_once_by_the_most_specific() -> None:
    """BasicAuthDetector and the tutorial defaults both read this password: the default says more."""
    assert traced(CONFIG_MAP, {"data": {"DB": "postgresql://mlflow:mlflow_password@db/mlflow"}}) == {
        ("data.DB", DEFAULT, "mlops:tutorial-default")
    }
    # Two credentials in one value are two findings.
    assert findings(CREDENTIALS, CONFIG_MAP, {"data": {"DB": f"postgresql://mlflow:mlflow_password@db/mlflow?sslkey={AWS_KEY_ID}"}}) == {
        ("data.DB", DEFAULT),
        ("data.DB", AWS),
    }


# -- what must not be flagged -------------------------------------------------------------

CLEAN: dict[str, tuple[str, dict[str, Any]]] = {
    "valueFrom-secretKeyRef": (
        "kubernetes:apps/v1:Deployment",
        workload(
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
        workload(
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
        workload(
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
        workload(
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
        workload(
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
    assert findings(CREDENTIALS, "kubernetes:core/v1:Pod", props) == {("spec.containers[0].env[1].value", KEYWORD)}
    assert messages("images-pinned", "kubernetes:core/v1:Pod", props) == []


# -- the other policies ---------------------------------------------------------------------


def test_an_iam_access_key_is_a_long_lived_credential() -> None:
    assert findings("no-static-iam-access-keys", "aws:iam/accessKey:AccessKey", {"user": "ci"}) == {("(resource)", checks.STATIC_KEY)}
    assert messages("no-static-iam-access-keys", "aws:iam/role:Role", {"name": "mlflow"}) == []


@pytest.mark.parametrize(
    ("type_", "props", "expected"),
    [
        (
            "kubernetes:apps/v1:Deployment",
            workload(
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
    from tools.testing.harness import run_program

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
