"""Decoding before detection (mlops_policies/decode.py, walk.py): each place a credential hides, and the bounds.

Each case names the decodings that must reach the credential (``via``): a case whose
decoder is broken finds nothing, or finds it another way.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

import pytest

from mlops_policies import decode, walk
from mlops_policies.walk import SECRET_SIG, SIG_KEY, leaves
from tests.policies.helpers import DB_PASSWORD, TOKEN, URI_UNSAFE_PASSWORD, b64, container, engine_findings, pod, workload

CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
SECRET = "kubernetes:core/v1:Secret"
INGRESS = "kubernetes:networking.k8s.io/v1:Ingress"
KEYWORD = ("Secret Keyword", "detect-secrets:KeywordDetector")
SETTING = ("credential in a platform setting", "mlops:credential-setting")
BASIC_AUTH = ("Basic Auth Credentials", "detect-secrets:BasicAuthDetector")
DEFAULT = ("well-known default credential", "mlops:tutorial-default")
PLAINTEXT = ("Pulumi secret in plaintext", "mlops:pulumi-plaintext")
SNIPPET = 'metadata.annotations["nginx.ingress.kubernetes.io/configuration-snippet"]'


@dataclass(frozen=True)
class Case:
    id: str
    type: str
    props: dict[str, Any]
    path: str
    found: tuple[str, str]
    via: tuple[str, ...]


def _snippet(text: str, annotation: str = "configuration-snippet") -> dict[str, Any]:
    return {"metadata": {"annotations": {f"nginx.ingress.kubernetes.io/{annotation}": text}}}


CASES = [
    # base64, where Kubernetes keeps it and where people put it
    Case(
        "base64-annotation",
        CONFIG_MAP,
        {"metadata": {"annotations": {"example.com/db": b64(f"postgresql://mlflow:{DB_PASSWORD}@db/mlflow")}}},
        'metadata.annotations["example.com/db"]',
        BASIC_AUTH,
        ("base64",),
    ),
    Case(
        "base64-binary-data",
        CONFIG_MAP,
        {"binaryData": {"env": b64(f"PGPASSWORD={DB_PASSWORD}\n")}},
        "binaryData.env",
        KEYWORD,
        ("base64",),
    ),
    Case("base64-secret-data", SECRET, {"data": {"secretkey": b64("minio123")}}, "data.secretkey", DEFAULT, ("base64",)),
    Case(
        "base64-then-yaml",
        CONFIG_MAP,
        {"metadata": {"annotations": {"example.com/cfg": b64(f"db:\n  host: db\n  password: {DB_PASSWORD}\n")}}},
        'metadata.annotations["example.com/cfg"].db.password',
        KEYWORD,
        ("base64", "yaml"),
    ),
    # documents held in a string
    Case(
        "json",
        CONFIG_MAP,
        {
            "metadata": {
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": json.dumps({"data": {"DB_PASSWORD": DB_PASSWORD}})}
            }
        },
        'metadata.annotations["kubectl.kubernetes.io/last-applied-configuration"].data.DB_PASSWORD',
        KEYWORD,
        ("json",),
    ),
    Case(
        "yaml",
        CONFIG_MAP,
        {"data": {"config.yaml": f"mlflow:\n  tracking:\n    token: {TOKEN}\n"}},
        'data["config.yaml"].mlflow.tracking.token',
        SETTING,
        ("yaml",),
    ),
    Case(
        "ini",
        CONFIG_MAP,
        {"data": {"my.cnf": f"[client]\nuser = mlflow\npassword = {DB_PASSWORD}\n"}},
        'data["my.cnf"].client.password',
        KEYWORD,
        ("ini",),
    ),
    Case(
        "ini-token",
        CONFIG_MAP,
        {"data": {"mlflow.ini": f"; client settings\n[tracking]\nuri = http://mlflow:5000\ntoken = {TOKEN}\n"}},
        'data["mlflow.ini"].tracking.token',
        SETTING,
        ("ini",),
    ),
    # URLs: a password BasicAuthDetector's pattern stops at, and tokens in query strings and fragments
    Case(
        "url-userinfo",
        CONFIG_MAP,
        {"data": {"DB": f"postgresql://mlflow:{URI_UNSAFE_PASSWORD}@db:5432/mlflow"}},
        "data.DB",
        KEYWORD,
        ("url-userinfo",),
    ),
    Case(
        "url-userinfo-percent-encoded",
        CONFIG_MAP,
        {"data": {"DB": f"mysql://root:{URI_UNSAFE_PASSWORD.replace('?', '%3F').replace('#', '%23')}%2F@mysql/mlflow"}},
        "data.DB",
        BASIC_AUTH,
        (),
    ),
    Case(
        "url-query",
        CONFIG_MAP,
        {"data": {"API": f"https://mlflow.example.com/mlflow/api?access_token={TOKEN}&experiment=1"}},
        "data.API",
        SETTING,
        ("url-query",),
    ),
    Case(
        "url-fragment",
        CONFIG_MAP,
        {"data": {"CALLBACK": f"https://kubeflow.example.com/cb#access_token={TOKEN}&token_type=bearer"}},
        "data.CALLBACK",
        SETTING,
        ("url-fragment",),
    ),
    # HTTP headers in proxy configuration
    Case(
        "nginx-proxy-set-header-basic",
        INGRESS,
        _snippet(f'proxy_set_header X-Forwarded-Proto $scheme;\nproxy_set_header Authorization "Basic {b64("mlflow:" + DB_PASSWORD)}";'),
        SNIPPET,
        KEYWORD,
        ("http-header", "http-basic"),
    ),
    Case(
        "nginx-more-set-headers-bearer",
        INGRESS,
        _snippet(f'more_set_input_headers "Authorization: Bearer {TOKEN}";', "server-snippet"),
        'metadata.annotations["nginx.ingress.kubernetes.io/server-snippet"]',
        SETTING,
        ("http-header", "http-authorization"),
    ),
    Case(
        "nginx-basic-tutorial-account",
        INGRESS,
        _snippet(f'proxy_set_header Authorization "Basic {b64("mlflow:mlflow")}";'),
        SNIPPET,
        DEFAULT,
        ("http-header", "http-basic"),
    ),
    Case(
        "haproxy-set-header",
        CONFIG_MAP,
        {"data": {"haproxy.cfg": f"backend mlflow\n  http-request set-header X-Api-Key {TOKEN}\n"}},
        'data["haproxy.cfg"]',
        KEYWORD,
        ("http-header",),
    ),
    Case(
        "istio-header-map",
        "kubernetes:networking.istio.io/v1:VirtualService",
        {"spec": {"http": [{"headers": {"request": {"set": {"Authorization": f"Bearer {TOKEN}"}}}}]}},
        "spec.http[0].headers.request.set.Authorization",
        SETTING,
        ("http-authorization",),
    ),
    Case(
        "docker-config-auth",
        CONFIG_MAP,
        {"data": {"config.json": json.dumps({"auths": {"ghcr.io": {"auth": b64(f"bot:{DB_PASSWORD}")}}})}},
        'data["config.json"].auths["ghcr.io"].auth',
        KEYWORD,
        ("json", "base64", "registry-auth"),
    ),
    # settings inside a script or config text
    Case("setting-flag", CONFIG_MAP, {"data": {"run.sh": f"exec mlflow-client --token {TOKEN}"}}, 'data["run.sh"]', SETTING, ("setting",)),
    # Pulumi secrets written out in plaintext form (a --show-secrets export kept in a ConfigMap)
    Case(
        "pulumi-plaintext",
        CONFIG_MAP,
        {"data": {"state.json": json.dumps({"db": {SIG_KEY: SECRET_SIG, "plaintext": json.dumps(DB_PASSWORD)}})}},
        'data["state.json"].db',
        PLAINTEXT,
        ("json", "pulumi-secret-plaintext"),
    ),
]

# Credentials a tool takes by position or in a short option, in a script: each one by its tool's decoder.
TOOL_LINES = [
    ("mc", f"mc alias set local http://minio.mlflow.svc:9000 mlops-admin {DB_PASSWORD} --api S3v4"),
    ("mc", f"/usr/bin/mc --quiet config host add local http://minio:9000 mlops-admin '{DB_PASSWORD}'"),
    ("mc", f"mc admin user add local mlflow {DB_PASSWORD}"),
    ("mc", f"#mc alias set local http://minio:9000 mlops-admin {DB_PASSWORD}"),
    ("curl", f"curl -fsSu mlflow:{DB_PASSWORD} http://mlflow.mlflow.svc:5000/mlflow/health"),
    ("curl", f'curl --user="mlflow:{DB_PASSWORD}" https://mlflow.example.com/mlflow'),
    ("curl", f"curl -H 'X-Api-Key: {DB_PASSWORD}' https://mlflow.example.com/api"),
    ("wget", f"wget -q --header 'X-Api-Key: {DB_PASSWORD}' https://models.example.com/model.pkl"),
    ("mysql", f"mysql -uroot -p{DB_PASSWORD} mlpipeline < schema.sql"),
    ("redis-cli", f"redis-cli -h redis -a {DB_PASSWORD} ping"),
    ("sshpass", f"sshpass -p {DB_PASSWORD} scp model.pkl host:/models/"),
    ("docker", f"docker login -u bot -p {DB_PASSWORD} ghcr.io"),
    ("htpasswd", f"htpasswd -bc /etc/nginx/htpasswd admin {DB_PASSWORD}"),
]
TOOL_LINES_FOUND = [(tool, line, KEYWORD) for tool, line in TOOL_LINES] + [
    ("kubectl", f"kubectl create secret generic registry --from-literal=username=mlflow --from-literal=token={TOKEN}", SETTING),
]
CASES += [
    Case(
        f"command-line-{tool}-{i}",
        CONFIG_MAP,
        {"data": {"run.sh": f"set -e\n{line}\necho done\n"}},
        'data["run.sh"]',
        found,
        (f"command-line:{tool}",),
    )
    for i, (tool, line, found) in enumerate(TOOL_LINES_FOUND)
]
CASES += [
    Case(
        "command-line-argument-list",
        "kubernetes:batch/v1:Job",
        workload(
            "kubernetes:batch/v1:Job",
            {"containers": [container(command=["mc"], args=["alias", "set", "l", "http://minio:9000", "u", DB_PASSWORD])]},
        ),
        "spec.template.spec.containers[0].args[5]",
        KEYWORD,
        ("command-line:mc",),
    ),
    Case(
        "command-line-bearer-header",
        "kubernetes:core/v1:Pod",
        pod(container(command=["curl", "-H", f"Authorization: Bearer {TOKEN}", "https://mlflow.example.com/api"])),
        "spec.containers[0].command[2]",
        SETTING,
        ("command-line:curl", "http-authorization"),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_a_credential_is_found_through_its_decodings(case: Case) -> None:
    found = engine_findings(case.type, case.props)
    assert [(f.path, (f.kind, f.rule), f.via) for f in found] == [(case.path, case.found, case.via)]


def test_every_decoder_has_a_case() -> None:
    reached = {step.split(":", 1)[0] for case in CASES for step in case.via}
    assert reached == {
        "base64",
        "yaml",
        "json",
        "ini",
        "url-userinfo",
        "url-query",
        "url-fragment",
        "http-header",
        "http-basic",
        "http-authorization",
        "registry-auth",
        "setting",
        "command-line",
        walk.PULUMI_PLAINTEXT,
    }
    assert {tool for tool, _, _ in TOOL_LINES_FOUND} | {"mcli", "mysqldump", "podman"} <= set(decode.TOOLS)


@pytest.mark.parametrize(
    ("type_", "props"),
    [
        (CONFIG_MAP, {"binaryData": {"model.bin": base64.b64encode(bytes(range(256)) * 8).decode()}}),
        (CONFIG_MAP, {"data": {"state.json": json.dumps({"db": {SIG_KEY: SECRET_SIG, "ciphertext": "v1:c2FsdA==:v1:Y2lwaGVy"}})}}),
        (INGRESS, _snippet("proxy_set_header Authorization $http_authorization;\nproxy_set_header X-Forwarded-User $remote_user;")),
        (CONFIG_MAP, {"data": {"API": "https://mlflow.example.com/mlflow/#/experiments/1?searchFilter=&orderByKey=attributes.start_time"}}),
        (CONFIG_MAP, {"data": {"DB": "postgresql+psycopg2://mlflow:$(DB_PASSWORD)@db:5432/mlflow?sslmode=require"}}),
        (CONFIG_MAP, {"data": {"my.cnf": "[client]\nuser = mlflow\npassword_file = /run/secrets/db\n"}}),
    ],
    ids=["binary-content", "pulumi-ciphertext", "proxy-variables", "url-without-credentials", "url-reference", "ini-without-credentials"],
)
def test_decoding_benign_values_finds_nothing(type_: str, props: dict[str, Any]) -> None:
    assert engine_findings(type_, props) == []


# -- bounds -------------------------------------------------------------------------------------


def _nested_base64(text: str, times: int) -> str:
    for _ in range(times):
        text = b64(text)
    return text


def test_decoding_nests_at_most_four_deep() -> None:
    credential = f"password: {DB_PASSWORD}\nhost: db\n"  # a YAML document: one more decoding
    reached = engine_findings(CONFIG_MAP, {"data": {"x": _nested_base64(credential, 3)}})
    assert [(f.kind, f.via) for f in reached] == [("Secret Keyword", ("base64", "base64", "base64", "yaml"))]
    beyond = engine_findings(CONFIG_MAP, {"data": {"x": _nested_base64(credential, 5)}})
    assert "Secret Keyword" not in {f.kind for f in beyond}


def test_a_string_longer_than_the_bound_is_judged_as_it_is_not_decoded() -> None:
    document = f"password: {DB_PASSWORD}\n" + "padding: x\n" * (walk.MAX_DECODED // 11)
    assert len(b64(document)) > walk.MAX_DECODED
    found = engine_findings(CONFIG_MAP, {"data": {"x": b64(document)}})
    assert {f.via for f in found} <= {()} and "Secret Keyword" not in {f.kind for f in found}
    assert {f.via for f in engine_findings(CONFIG_MAP, {"data": {"x": b64(document[: walk.MAX_DECODED // 2])}})} == {("base64", "yaml")}


def test_yaml_aliases_are_not_expanded() -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b]\n"
    assert decode.document(bomb) is None
    assert len(list(leaves({"data": {"bomb": bomb}}))) == 1


def test_one_string_gives_at_most_max_views_views() -> None:
    text = " ".join(f"https://h{i}.example.com/?a={i}&b={i}" for i in range(200))
    views = [leaf for leaf in leaves({"data": {"urls": text}}) if leaf.via]
    assert len(views) == decode.MAX_VIEWS


def test_without_documents_nothing_is_decoded() -> None:
    value = b64(f"password: {DB_PASSWORD}\nhost: db\n")
    assert [leaf.value for leaf in leaves({"data": {"x": value}}, documents=False)] == [value]
