"""`make plan`: the offline render a reviewer reads, and the policy gate over it."""

from __future__ import annotations

import json

import pytest
import yaml

from mlops_policies import audit_resources
from tools.dev import plan as plan_tool
from tools.testing.harness import MASK, ROOT
from tools.testing.plans import generated_secrets


@pytest.fixture(scope="module", params=["dev", "prod"])
def rendered(request, tmp_path_factory):
    plan = request.getfixturevalue(request.param)
    out = tmp_path_factory.mktemp("build") / request.param
    plan_tool.write_build(plan, out)
    return plan, out


def test_every_kubernetes_object_is_written_once(rendered):
    plan, out = rendered
    files = sorted((out / "manifests").glob("*.yaml")) + sorted((out / "patches").glob("*.yaml"))
    assert len(files) == len(list(plan.manifests()))
    for f in files:
        manifest = yaml.safe_load(f.read_text())
        assert list(manifest)[:3] == ["apiVersion", "kind", "metadata"], f.name


def test_resources_json_lists_every_resource_with_its_options(rendered):
    plan, out = rendered
    document = json.loads((out / "resources.json").read_text())
    assert document["stack"] == plan.stack
    assert [r["urn"] for r in document["resources"]] == [r.urn for r in plan.resources]
    for record in document["resources"]:
        assert set(record) == {
            "urn",
            "type",
            "name",
            "parent",
            "custom",
            "protect",
            "retainOnDelete",
            "dependencies",
            "inputs",
            "secretPaths",
        }
    assert document["outputs"]["databasePassword"] == MASK


def test_no_secret_value_is_written_anywhere(rendered):
    plan, out = rendered
    secrets = generated_secrets(plan)
    assert secrets
    for path in out.rglob("*"):
        if path.is_file():
            text = path.read_text()
            assert not [s for s in secrets if s in text], f"{path.name} holds a secret value"


def test_secrets_are_masked_leaf_by_leaf(rendered):
    plan, out = rendered
    path = next((out / "manifests").glob("*-secret-mlflow-mlflow-db.yaml"))
    data = yaml.safe_load(path.read_text())["stringData"]
    assert data == {k: MASK for k in ("password", "uri", "username", "database")}


def test_declared_resources_pass_the_policy_pack(dev, prod):
    for plan in (dev, prod):
        assert audit_resources([r.record() for r in plan.resources], stack=plan.stack) == []


def test_plan_fails_on_a_mandatory_violation(dev, monkeypatch, capsys):
    leaky = dev.k8s("Deployment", "mlflow", "mlflow")
    env = leaky.inputs["spec"]["template"]["spec"]["containers"][0]["env"]
    monkeypatch.setitem(env[0], "value", "postgresql://mlflow:s3cr3t-Pa55word@db:5432/mlflow")
    monkeypatch.setattr(plan_tool, "run_program", lambda *a, **k: dev)
    monkeypatch.setattr(plan_tool, "write_build", lambda *a, **k: None)
    assert plan_tool.main(["--stack", "dev"]) == 1
    out = capsys.readouterr().out
    assert "MANDATORY no-plaintext-credentials" in out and "spec.template.spec.containers[0].env[0].value" in out
    assert "s3cr3t-Pa55word" not in out


def test_secure_values_become_placeholders_and_mark_their_key_secret(tmp_path):
    from tools.testing.harness import SECURE_PLACEHOLDER, stack_config

    (tmp_path / "Pulumi.yaml").write_text((ROOT / "Pulumi.yaml").read_text())
    (tmp_path / "Pulumi.s.yaml").write_text(
        "config:\n"
        "  mlops-platform:target: microk8s\n"
        "  mlops-platform:token:\n    secure: v1:AAAA\n"
        "  mlops-platform:serving:\n    registryToken:\n      secure: v1:BBBB\n    enabled: true\n"
    )
    config, secret_keys = stack_config("s", tmp_path)
    assert config["mlops-platform:token"] == SECURE_PLACEHOLDER
    assert json.loads(config["mlops-platform:serving"]) == {"registryToken": SECURE_PLACEHOLDER, "enabled": True}
    assert sorted(secret_keys) == ["mlops-platform:serving", "mlops-platform:token"]
    assert "v1:" not in json.dumps(config)
