"""No false alarm on anything this program renders: dev, prod and every documented option (README, docs/*.md).

Each variant runs the real program under mocks (tools/testing/harness.py) and goes through
both front ends: the audit over the records `make plan` writes (secrets masked, the
stack's outputs included), and CrossGuard's validate functions over the inputs as
the engine hands them over (secrets unwrapped). Registry-resolved models are given
run ids and versions by a stand-in resolver, as MLflow's registry would answer.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from mlops_platform.serving import registry
from mlops_policies import audit_resources
from tests.policies.helpers import CREDENTIALS, messages
from tools.testing.harness import Plan, run_program, stack_config, with_overrides

# Every documented variant rendered and audited: seconds, so left to `make test`.
pytestmark = pytest.mark.slow

PROFILE = "kubeflow-user-example-com"
KUBEFLOW = {"enabled": True, "profiles": [PROFILE, "team-a"], "kfpAccess": True}
REGISTRY_TOKEN = "Zr8Kq2Wp5Tn9Lx3Vb7Mc"
ARTIFACTS = "7/models/m-0123456789abcdef0123456789abcdef/artifacts"
TRAINING = [
    {"name": "diabetes", "namespace": PROFILE, "image": "registry.example.com/team/trainer:1.4.2", "command": ["python", "train.py"]},
    {
        "name": "diabetes-nightly",
        "namespace": PROFILE,
        "image": "registry.example.com/team/trainer:1.4.2",
        "command": ["python", "train.py"],
        "args": ["--alpha", "0.5", "--experiment", "diabetes"],
        "env": {"ALPHA": "0.5", "MLFLOW_RUN_NAME": "nightly"},
        "schedule": "0 3 * * *",
        "experiment": "diabetes",
    },
]


def _serving(stack: str, **extra: Any) -> dict[str, Any]:
    root = {"dev": "s3://mlflow-artifacts/dev", "prod": "s3://example-mlops-mlflow-artifacts/prod"}[stack]
    namespace = PROFILE if stack == "dev" else "models"
    return {
        "enabled": True,
        "namespaces": [namespace],
        "models": [
            {"name": "diabetes", "namespace": namespace, "storageUri": f"{root}/{ARTIFACTS}", "format": "mlflow"},
            {"name": "diabetes-sklearn", "namespace": namespace, "storageUri": f"{root}/{ARTIFACTS}/", "format": "sklearn"},
        ],
        **extra,
    }


REGISTRY_SERVING = {
    "enabled": True,
    "deploymentMode": "Serverless",
    "namespaces": [PROFILE],
    "mlflowTrackingUri": "http://mlflow.mlflow.svc.cluster.local:5000/mlflow",
    "registryToken": REGISTRY_TOKEN,
    "models": [
        {"name": "wine", "namespace": PROFILE, "registeredModel": "wine", "alias": "production"},
        {
            "name": "diabetes",
            "namespace": PROFILE,
            "registeredModel": "diabetes",
            "alias": "production",
            "canary": {"alias": "challenger", "trafficPercent": 10},
        },
    ],
}

# id -> (stack, config overrides, keys set with --secret)
VARIANTS: dict[str, tuple[str, dict[str, Any], tuple[str, ...]]] = {
    "dev": ("dev", {}, ()),
    "prod": ("prod", {}, ()),
    "dev-without-kubeflow-and-monitoring": ("dev", {"kubeflow": {"enabled": False}, "monitoring": {"enabled": False}}, ()),
    "dev-kubeflow-external-host": (
        "dev",
        {
            "kubeflow": {
                **KUBEFLOW,
                "externalHost": "kubeflow.example.com",
                "allowedPrincipals": ["cluster.local/ns/ci/sa/trainer"],
                "gateway": "istio-system/corp-gateway",
                "ingressPrincipal": "corp.example/ns/istio-system/sa/gateway",
                "insecureCookies": True,
            }
        },
        (),
    ),
    "dev-kubeflow-without-workspaces-tab-kfp": (
        "dev",
        {"kubeflow": {**KUBEFLOW, "workspaces": False, "dashboardTab": False, "kfpAccess": False}},
        (),
    ),
    "dev-tracking-options": (
        "dev",
        {
            "tracking": {
                "pathPrefix": "/tracking",
                "telemetry": True,
                "replicas": 2,
                "workers": 3,
                "dbPoolSize": 4,
                "dbMaxOverflow": 4,
                "requestTimeoutSeconds": 3600,
                "scratch": {"medium": "volume", "size": "8Gi", "storageClass": "fast-ssd"},
                "image": "ghcr.io/mlflow/mlflow:v3.18.0-full",
            }
        },
        (),
    ),
    "dev-tracking-autoscaling": ("dev", {"tracking": {"autoscaling": {"enabled": True, "minReplicas": 1, "maxReplicas": 2}}}, ()),
    "dev-external-host-tls-secret": (
        "dev",
        {"tracking": {"externalHost": "mlflow.example.com", "ingress": {"className": "nginx", "tls": {"secretName": "mlflow-tls"}}}},
        (),
    ),
    "prod-auth-kubernetes-alb": (
        "prod",
        {
            "tracking": {
                "externalHost": "mlflow.example.com",
                "auth": "kubernetes",
                "ingress": {"className": "alb"},
                "image": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/mlops-platform/mlflow:3.17.2-k8s2.1.0",
            },
            "kubeflow": KUBEFLOW,
            "monitoring": {"enabled": True, "meshPrincipal": "cluster.local/ns/monitoring/sa/prometheus"},
        },
        (),
    ),
    "dev-external-mysql-uri": (
        "dev",
        {"database": {"mode": "external", "external": {"uri": f"mysql+pymysql://mlflow:{REGISTRY_TOKEN}@mysql.kubeflow.svc:3306/mlflow"}}},
        ("database",),
    ),
    "dev-external-existing-secret": (
        "dev",
        {"database": {"mode": "external", "external": {"existingSecret": {"name": "kubeflow-mysql", "key": "mlflow-uri"}}}},
        (),
    ),
    "prod-rds-kms": (
        "prod",
        {
            "database": {"mode": "rds", "rds": {"subnetGroupName": "mlflow-db", "securityGroupIds": ["sg-0123456789abcdef0"]}},
            "artifacts": {
                "bucket": "example-mlops-mlflow-artifacts",
                "prefix": "prod",
                "kmsKeyArn": "arn:aws:kms:eu-west-1:123456789012:key/mrk-1234abcd",
            },
            "maintenance": {"gcOlderThan": "12h", "gcSchedule": "0 1 * * 0"},
        },
        (),
    ),
    "dev-maintenance": (
        "dev",
        {"maintenance": {"backupSchedule": "0 */6 * * *", "backupsKept": 3, "backupPrefix": "dumps/dev", "gcOlderThan": "7d"}},
        (),
    ),
    "dev-database-options": ("dev", {"database": {"storageSize": "5Gi", "maxConnections": 400, "storageClass": "fast-ssd"}}, ()),
    "dev-monitoring-without-dashboard": (
        "dev",
        {
            "monitoring": {
                "enabled": True,
                "dashboard": False,
                "interval": "15s",
                "prometheusLabels": {"release": "kube-prom-stack"},
                "meshPrincipal": "cluster.local/ns/observability/sa/kube-prom-stack-kube-prome-prometheus",
            }
        },
        (),
    ),
    "dev-training": ("dev", {"training": TRAINING}, ()),
    "dev-serving-pinned": ("dev", {"serving": _serving("dev")}, ()),
    "dev-serving-serverless": ("dev", {"serving": _serving("dev", deploymentMode="Serverless")}, ()),
    "prod-serving-install-kserve": ("prod", {"serving": _serving("prod", installKserve=True)}, ()),
    "dev-serving-registry-canary-token": ("dev", {"serving": REGISTRY_SERVING}, ("serving",)),
}


def _resolved(config: Any) -> list[registry.ResolvedModel]:
    """What the registry answers for each entry: a version's physical location and its run id (uuid4().hex)."""
    models = []
    for index, source in enumerate(config.serving.models):
        if source.storage_uri is not None:
            models.append(registry.ResolvedModel(source, str(source.storage_uri)))
            continue
        location = f"{config.artifacts.root}/{index + 3}/models/m-{uuid.uuid4().hex}/artifacts/"
        canary = None
        if source.canary is not None:
            canary = registry.ResolvedCanary(
                location.replace("/models/", "/models/c"), "5", uuid.uuid4().hex, source.canary.alias, source.canary.traffic_percent
            )
        models.append(registry.ResolvedModel(source, location, version="4", run_id=uuid.uuid4().hex, canary=canary))
    return models


def render(stack: str, overrides: dict[str, Any], secret: tuple[str, ...]) -> Plan:
    config, secret_keys = stack_config(stack)
    config = with_overrides(config, {key: json.dumps(value) for key, value in overrides.items()})
    return run_program(stack, config=config, secret_keys=[*secret_keys, *(f"mlops-platform:{key}" for key in secret)])


@pytest.fixture(scope="module", params=list(VARIANTS), ids=list(VARIANTS))
def variant(request: pytest.FixtureRequest) -> Plan:
    stack, overrides, secret = VARIANTS[request.param]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("mlops_platform.serving.registry.resolve_models", _resolved)
        return render(stack, overrides, secret)


def _stack_record(plan: Plan) -> dict[str, Any]:
    urn = f"urn:pulumi:{plan.stack}::mlops-platform::pulumi:pulumi:Stack::mlops-platform-{plan.stack}"
    return {"urn": urn, "type": "pulumi:pulumi:Stack", "inputs": {}, "outputs": plan.masked_outputs()}


def test_the_audit_finds_nothing_in_what_make_plan_records(variant: Plan) -> None:
    assert len(variant.resources) > 15
    records = [r.record() for r in variant.resources] + [_stack_record(variant)]
    assert [v.line() for v in audit_resources(records, stack=variant.stack) if v.policy == CREDENTIALS] == []


def test_crossguard_finds_nothing_in_the_inputs_the_engine_sends(variant: Plan) -> None:
    reported = [
        message
        for r in variant.resources
        for message in messages(CREDENTIALS, r.type, json.loads(json.dumps(r.inputs)), name=r.name, protect=r.protect)
    ]
    assert reported == []


def test_the_variants_render_what_they_are_about() -> None:
    """Each variant changes what is declared (a typo in its overrides would render the plain stack)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("mlops_platform.serving.registry.resolve_models", _resolved)
        canary = render(*VARIANTS["dev-serving-registry-canary-token"])
    annotations = canary.k8s("InferenceService", "diabetes", PROFILE).inputs["metadata"]["annotations"]
    assert len(annotations["mlops-platform/run-id"]) == len(annotations["mlops-platform/canary-run-id"]) == 32
    assert all(len(m["runId"]) == 32 for m in canary.outputs["servingModels"].values())
    plain = run_program("dev")
    for name in ("dev-external-mysql-uri", "dev-training", "dev-tracking-options", "prod-rds-kms"):
        stack, overrides, secret = VARIANTS[name]
        rendered = render(stack, overrides, secret)
        assert [r.inputs for r in rendered.resources] != [r.inputs for r in (plain if stack == "dev" else run_program("prod")).resources], (
            name
        )
