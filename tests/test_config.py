"""Stack config: parsed once into typed objects; bad input stops before any resource, in one line."""

from __future__ import annotations

import ast
import functools
import json
import subprocess
import sys

import pytest

from mlops_platform.config import PlatformConfig, parse_config
from mlops_platform.settings_base import ConfigError
from tools.dev import plan as plan_tool
from tools.testing.harness import ROOT, run_program, stack_config
from tools.testing.plans import parse, refused

EKS_AWS = json.dumps(
    {
        "region": "eu-west-1",
        "oidcProviderArn": "arn:aws:iam::123456789012:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/ABC",
        "oidcProviderUrl": "oidc.eks.eu-west-1.amazonaws.com/id/ABC",
    }
)


def error(**values: object) -> str:
    with pytest.raises(ConfigError) as caught:
        parse(**values)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_both_stack_files_parse_to_their_targets():
    for stack, target in (("dev", "microk8s"), ("prod", "eks")):
        config, _ = stack_config(stack)
        parsed = parse_config(stack, config)
        assert parsed.target == target


def test_dev_defaults_suit_microk8s_and_protect_nothing():
    cfg = parse(target="microk8s")
    assert cfg.default_storage_class == "microk8s-hostpath"
    assert cfg.database.mode == "inCluster"
    assert cfg.protect_data is False


def test_eks_protects_data_by_default_and_uses_ebs():
    cfg = parse(target="eks", aws=json.loads(EKS_AWS))
    assert cfg.protect_data is True
    assert cfg.default_storage_class == "gp3"
    assert cfg.aws.oidc_issuer == "oidc.eks.eu-west-1.amazonaws.com/id/ABC"


@pytest.mark.parametrize(
    "values, expected",
    [
        ({}, "mlops-platform:target: is required"),
        ({"target": "gke"}, "mlops-platform:target: 'gke' is not allowed; allowed: 'microk8s' or 'eks'"),
        (
            {"target": "microk8s", "database": {"storageSize": "20Gigs"}},
            "mlops-platform:database.storageSize: '20Gigs' is not valid; allowed: a whole number with Mi, Gi or Ti, e.g. 20Gi",
        ),
        (
            {"target": "eks"},
            "mlops-platform:aws: is required for target eks; allowed: an object with region, oidcProviderArn and oidcProviderUrl",
        ),
        ({"target": "eks", "aws": {"region": "eu-west-1"}}, "mlops-platform:aws.oidcProviderArn: is required"),
        (
            {"target": "microk8s", "colour": "blue"},
            "mlops-platform:colour: is not a known key; allowed: artifacts, aws, dataProtection, database, kubeflow, "
            "kubernetesVersion, maintenance, monitoring, namespace, rotation, serving, target, tracking, training",
        ),
        (
            {"target": "microk8s", "tracking": {"imagee": "x"}},
            "mlops-platform:tracking.imagee: is not a known key; allowed: auth, autoscaling, dbMaxOverflow, dbPoolSize, externalHost, "
            "image, ingress, pathPrefix, replicas, requestTimeoutSeconds, resources, scratch, telemetry, workers",
        ),
        (
            {"target": "microk8s", "tracking": {"image": "ghcr.io/mlflow/mlflow:latest"}},
            "mlops-platform:tracking.image: 'ghcr.io/mlflow/mlflow:latest' is not pinned",
        ),
        (
            {"target": "microk8s", "tracking": {"image": "ghcr.io/mlflow/mlflow"}},
            "mlops-platform:tracking.image: 'ghcr.io/mlflow/mlflow' is not pinned",
        ),
        ({"target": "microk8s", "tracking": {"pathPrefix": "/mlflow/"}}, "mlops-platform:tracking.pathPrefix: '/mlflow/' is not valid"),
        (
            {"target": "microk8s", "tracking": {"replicas": 0}},
            "mlops-platform:tracking.replicas: 0 is not allowed; allowed: greater than or equal to 1",
        ),
        ({"target": "microk8s", "artifacts": {"bucket": "Bad_Bucket"}}, "mlops-platform:artifacts.bucket: 'Bad_Bucket' is not valid"),
        ({"target": "microk8s", "artifacts": {"prefix": "/dev/"}}, "mlops-platform:artifacts.prefix: '/dev/' is not valid"),
        ({"target": "microk8s", "namespace": "ML_Flow"}, "mlops-platform:namespace: 'ML_Flow' is not valid; allowed: a DNS-1123 label"),
        ({"target": "microk8s", "kubernetesVersion": "v1.30"}, "mlops-platform:kubernetesVersion: 'v1.30' is not valid"),
        (
            {"target": "eks", "aws": json.loads(EKS_AWS), "database": {"mode": "rds"}},
            "mlops-platform:database.rds: is required when database.mode is rds",
        ),
    ],
)
def test_invalid_config_names_the_key_and_what_is_allowed(values, expected):
    assert error(**values).startswith(expected)


def test_rds_is_only_for_eks():
    assert (
        error(target="microk8s", database={"mode": "rds", "rds": RDS})
        == "mlops-platform:database.mode: 'rds' needs target eks; allowed: 'inCluster'"
    )


RDS = {"subnetGroupName": "db", "securityGroupIds": ["sg-1"]}
EKS = {"target": "eks", "aws": json.loads(EKS_AWS)}


@pytest.mark.parametrize(
    "values, expected",
    [
        (
            {"target": "microk8s", "aws": json.loads(EKS_AWS)},
            "mlops-platform:aws: set, but target is microk8s; allowed: target eks, or aws left out",
        ),
        (
            {"target": "microk8s", "artifacts": {"kmsKeyArn": "arn:aws:kms:eu-west-1:123456789012:key/abc"}},
            "mlops-platform:artifacts.kmsKeyArn: set, but target is microk8s (MinIO); allowed: target eks, or artifacts.kmsKeyArn left out",
        ),
        (
            {"target": "microk8s", "artifacts": {"noncurrentVersionDays": 30}},
            "mlops-platform:artifacts.noncurrentVersionDays: set, but target is microk8s (MinIO); allowed: target eks, "
            "or artifacts.noncurrentVersionDays left out",
        ),
        (
            {**EKS, "artifacts": {"minio": {"storageSize": "50Gi"}}},
            "mlops-platform:artifacts.minio.storageSize: set, but target is eks (S3, no MinIO); allowed: target microk8s, "
            "or artifacts.minio.storageSize left out",
        ),
        (
            {**EKS, "database": {"rds": RDS}},
            "mlops-platform:database.rds: set, but database.mode is inCluster; allowed: database.mode rds, or database.rds left out",
        ),
        (
            {**EKS, "database": {"mode": "rds", "rds": RDS, "storageSize": "50Gi"}},
            "mlops-platform:database.storageSize: set, but database.mode is rds; allowed: database.mode inCluster, "
            "or database.storageSize left out",
        ),
    ],
    ids=["aws-on-microk8s", "kms-on-minio", "lifecycle-on-minio", "minio-on-eks", "rds-block-in-cluster", "volume-on-rds"],
)
def test_a_setting_the_target_or_mode_never_reads_is_refused(values, expected):
    """Otherwise the stack file promises encryption, a lifecycle or a volume size that nothing declares."""
    assert error(**values) == expected


def test_settings_that_do_take_effect_and_spelled_out_defaults_pass():
    assert parse(**EKS, artifacts={"kmsKeyArn": "arn:aws:kms:eu-west-1:123456789012:key/abc", "noncurrentVersionDays": 30}).is_eks
    assert parse(**EKS, database={"mode": "rds", "rds": RDS, "storageSize": "10Gi"}).database.mode == "rds"
    assert parse(target="microk8s", artifacts={"noncurrentVersionDays": 90, "minio": {"storageSize": "50Gi"}}).target == "microk8s"


def test_a_refused_setting_stops_the_program_before_any_resource():
    message, declared = refused("dev", artifacts=json.dumps({"kmsKeyArn": "arn:aws:kms:eu-west-1:123456789012:key/abc"}))
    assert message.startswith("mlops-platform:artifacts.kmsKeyArn: set, but target is microk8s")
    assert declared == []


def test_secret_values_are_never_echoed():
    with pytest.raises(ConfigError) as caught:
        parse_config("test", {"mlops-platform:target": "microk8s", "mlops-platform:namespace": "Hunter2-SECRET"}, frozenset({"namespace"}))
    assert "Hunter2" not in str(caught.value)
    assert str(caught.value).startswith("mlops-platform:namespace: is invalid")


def test_keys_of_other_namespaces_are_left_to_their_providers():
    assert (
        parse_config("test", {"mlops-platform:target": "microk8s", "aws:region": "eu-west-1", "kubernetes:context": "microk8s"}).target
        == "microk8s"
    )


def test_invalid_config_declares_no_resource():
    message, declared = refused("dev", database=json.dumps({"storageSize": "20Gigs"}))
    assert message.startswith("mlops-platform:database.storageSize: '20Gigs' is not valid")
    assert declared == []


def test_the_list_a_failed_run_is_judged_by_is_the_one_the_harness_fills():
    """Otherwise every `declared == []` above would pass however many resources were registered."""
    declared: list = []
    plan = run_program("dev", declared=declared)
    assert declared and declared == plan.resources


def test_make_plan_prints_one_line_and_exits_2_on_bad_config(tmp_path):
    (tmp_path / "Pulumi.yaml").write_text((ROOT / "Pulumi.yaml").read_text())
    (tmp_path / "Pulumi.broken.yaml").write_text(
        "config:\n  mlops-platform:target: microk8s\n  mlops-platform:database:\n    storageSize: 20Gigs\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "tools.dev.plan", "--stack", "broken", "--stack-dir", str(tmp_path), "--out", str(tmp_path / "build")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert (
        result.stderr
        == "error: mlops-platform:database.storageSize: '20Gigs' is not valid; allowed: a whole number with Mi, Gi or Ti, e.g. 20Gi\n"
    )
    assert not (tmp_path / "build").exists()


BROKEN_STACK_FILES = {
    "indentation": (
        "config:\n  mlops-platform:target: microk8s\n  mlops-platform:database:\n    storageSize: 20Gi\n   password: Hunter2-SECRET\n",
        "line 5, column 4: invalid YAML: expected <block end>, but found '<block mapping start>' (while parsing a "
        "block mapping at line 2, column 3)",
    ),
    "unterminated-quote": (
        "config:\n  mlops-platform:token: 'Hunter2-SECRET\n",
        "line 3, column 1: invalid YAML: found unexpected end of stream (while scanning a quoted scalar at line 2, column 25)",
    ),
    "colon-in-a-plain-value": (
        "config:\n  mlops-platform:token: Hunter2: SECRET\n",
        "line 2, column 32: invalid YAML: mapping values are not allowed here",
    ),
    "tab": (
        "config:\n\tmlops-platform:target: microk8s\n",
        "line 2, column 1: invalid YAML: found character '\\t' that cannot start any token",
    ),
    "value-its-tag-cannot-read": (
        "config:\n  mlops-platform:token: !!int Hunter2-SECRET\n",
        "line 2, column 25: invalid YAML: not a valid int",
    ),
    "control-character": (
        "config:\n  mlops-platform:token: Hunter2\x00SECRET\n",
        "line 2, column 32: invalid YAML: special characters are not allowed (#x0000)",
    ),
    "not-utf8": (b"config:\n  mlops-platform:token: Hunter2\xff\n", "line 2, column 32: not UTF-8 text"),
    "not-a-mapping": ("- mlops-platform:target: microk8s\n", "line 1, column 1: expected a mapping with a config key, found a list"),
    "config-not-a-mapping": (
        "config:\n  - Hunter2-SECRET\n",
        "line 2, column 3: config: expected a mapping of keys to values, found a list",
    ),
}


@pytest.mark.parametrize("content, problem", BROKEN_STACK_FILES.values(), ids=list(BROKEN_STACK_FILES))
def test_a_malformed_stack_file_stops_make_plan_in_one_line_with_line_and_column(tmp_path, monkeypatch, capsys, content, problem):
    """A YAML error must fail like any bad config (exit 2, one line, before any resource), not as a traceback quoting the file."""
    (tmp_path / "Pulumi.yaml").write_text((ROOT / "Pulumi.yaml").read_text())
    broken = tmp_path / "Pulumi.broken.yaml"
    broken.write_bytes(content if isinstance(content, bytes) else content.encode())
    declared: list = []
    monkeypatch.setattr(plan_tool, "run_program", functools.partial(run_program, declared=declared))
    code = plan_tool.main(["--stack", "broken", "--stack-dir", str(tmp_path), "--out", str(tmp_path / "build")])
    captured = capsys.readouterr()
    assert (code, captured.out, captured.err) == (2, "", f"error: Pulumi.broken.yaml: {problem}\n")
    assert "Hunter2" not in captured.err
    assert declared == []
    assert not (tmp_path / "build").exists()


def test_a_malformed_project_file_is_named_too(tmp_path):
    (tmp_path / "Pulumi.yaml").write_text("name: mlops-platform\nconfig:\n  mlops-platform:target:\n    type: string\n   default: eks\n")
    (tmp_path / "Pulumi.dev.yaml").write_text((ROOT / "Pulumi.dev.yaml").read_text())
    with pytest.raises(ConfigError) as caught:
        stack_config("dev", tmp_path)
    assert str(caught.value).startswith("Pulumi.yaml: line 5, column 4: invalid YAML: ")


def test_make_plan_on_a_malformed_stack_file_prints_no_traceback(tmp_path):
    (tmp_path / "Pulumi.yaml").write_text((ROOT / "Pulumi.yaml").read_text())
    (tmp_path / "Pulumi.broken.yaml").write_text(BROKEN_STACK_FILES["indentation"][0])
    result = subprocess.run(
        [sys.executable, "-m", "tools.dev.plan", "--stack", "broken", "--stack-dir", str(tmp_path), "--out", str(tmp_path / "build")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == f"error: Pulumi.broken.yaml: {BROKEN_STACK_FILES['indentation'][1]}\n"


# -- blocks with an `enabled` switch ------------------------------------------------------

SET_ONLY_WHEN_ENABLED = {
    "kubeflow": {
        "namespace": "kubeflow-system",
        "gateway": "istio-system/public-gateway",
        "ingressPrincipal": "cluster.local/ns/istio-system/sa/public-gateway",
        "allowedPrincipals": ["cluster.local/ns/ci/sa/trainer"],
        "externalHost": "kubeflow.example.com",
        "profiles": ["team-a"],
        "kfpAccess": True,
        "dashboardTab": False,
        "insecureCookies": True,
        "workspaces": False,
        "browser": {"replicas": 2},
        "mlflowConfigCrd": False,
    },
    "serving": {
        "mlflowTrackingUri": "https://mlflow.example.com/mlflow",
        "registryToken": "Hunter2-SECRET-token",
        "deploymentMode": "Serverless",
        "installKserve": True,
        "namespaces": ["team-a"],
        "mlflowFormatVersions": ["1", "2", "3"],
        "models": [{"name": "diabetes", "namespace": "team-a", "registeredModel": "diabetes", "alias": "production"}],
    },
    "monitoring": {
        "interval": "15s",
        "prometheusLabels": {"release": "kube-prometheus-stack"},
        "dashboard": False,
        "dashboardNamespace": "monitoring",
        "dashboardLabels": {"grafana_dashboard": "mlflow"},
        "alerts": {"errorRatio": 0.1},
        "meshPrincipal": "cluster.local/ns/observability/sa/prometheus",
    },
}


def test_every_key_of_a_switched_block_is_covered():
    """A key added to kubeflow, serving or monitoring must be decided on: here, or taking effect while disabled (then change the rule)."""
    for block in SET_ONLY_WHEN_ENABLED:
        model = PlatformConfig.model_fields[block]
        keys = {f.alias for name, f in model.annotation.model_fields.items() if name != "enabled"}
        assert keys == set(SET_ONLY_WHEN_ENABLED[block]), block


@pytest.mark.parametrize("block, key", [(block, key) for block, keys in SET_ONLY_WHEN_ENABLED.items() for key in keys], ids=lambda v: v)
def test_a_setting_of_a_disabled_block_is_refused_before_any_resource(block, key):
    """Nothing of a disabled block is declared, so the setting would be dropped without a word."""
    message, declared = refused("dev", **{block: json.dumps({"enabled": False, key: SET_ONLY_WHEN_ENABLED[block][key]})})
    assert (
        message
        == f"mlops-platform:{block}.{key}: set, but {block}.enabled is false; allowed: {block}.enabled true, or {block}.{key} left out"
    )
    assert declared == []


def test_a_block_without_its_switch_is_disabled_too():
    assert error(target="microk8s", serving={"namespaces": ["team-a"]}).startswith(
        "mlops-platform:serving.namespaces: set, but serving.enabled is false"
    )


def test_defaults_spelled_out_in_a_disabled_block_are_not_settings():
    cfg = parse(
        target="microk8s",
        kubeflow={"enabled": False, "namespace": "kubeflow", "profiles": [], "dashboardTab": True, "kfpAccess": False},
        serving={"enabled": False, "models": [], "namespaces": [], "deploymentMode": "RawDeployment", "installKserve": False},
    )
    assert cfg == parse(target="microk8s", kubeflow={"enabled": False}, serving={"enabled": False})


def test_the_switch_is_named_even_when_the_block_is_a_secret_key():
    """A secure registryToken makes the whole serving key secret; this message quotes no value, so it is not hidden."""
    with pytest.raises(ConfigError) as caught:
        parse_config(
            "test",
            {"mlops-platform:target": "microk8s", "mlops-platform:serving": json.dumps({"registryToken": "Hunter2-SECRET-token"})},
            frozenset({"serving"}),
        )
    assert str(caught.value).startswith("mlops-platform:serving.registryToken: set, but serving.enabled is false")
    assert "Hunter2" not in str(caught.value)


def test_make_plan_refuses_models_of_disabled_serving_with_exit_2(tmp_path, monkeypatch, capsys):
    (tmp_path / "Pulumi.yaml").write_text((ROOT / "Pulumi.yaml").read_text())
    (tmp_path / "Pulumi.off.yaml").write_text(
        "config:\n  mlops-platform:target: microk8s\n  mlops-platform:serving:\n    enabled: false\n    models:\n"
        "      - {name: diabetes, namespace: team-a, registeredModel: diabetes, alias: production}\n"
    )
    declared: list = []
    monkeypatch.setattr(plan_tool, "run_program", functools.partial(run_program, declared=declared))
    code = plan_tool.main(["--stack", "off", "--stack-dir", str(tmp_path), "--out", str(tmp_path / "build")])
    captured = capsys.readouterr()
    assert (code, captured.out) == (2, "")
    assert captured.err == (
        "error: mlops-platform:serving.models: set, but serving.enabled is false; allowed: serving.enabled true, or "
        "serving.models left out\n"
    )
    assert declared == []


def test_nothing_in_the_package_but_config_reads_pulumi_config():
    """Config is parsed once (mlops_platform/config.py); components get typed objects, so no other module may read it."""
    readers = []
    for path in sorted((ROOT / "mlops_platform").rglob("*.py")):
        if path == ROOT / "mlops_platform" / "config.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = {a.name for a in node.names} if isinstance(node, ast.ImportFrom) and node.module == "pulumi.runtime" else set()
            if "config" in names or (isinstance(node, ast.Attribute) and node.attr in {"Config", "config"} and _is_pulumi(node.value)):
                readers.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert readers == []


def _is_pulumi(node: ast.expr) -> bool:
    """``pulumi`` or ``pulumi.runtime``."""
    if isinstance(node, ast.Name):
        return node.id == "pulumi"
    return isinstance(node, ast.Attribute) and node.attr == "runtime" and _is_pulumi(node.value)
