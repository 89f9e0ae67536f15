"""Credential rotation as declared: which RandomPasswords a generation renews, who waits for whom, what rolls.

The e2e lane (tests/e2e/test_rotation.py) runs the database and admin steps against real PostgreSQL and
basic-auth; the real-engine lane (tests/cluster/test_rotation.py) shows the engine's steps and order.
"""

from __future__ import annotations

import json

import pytest

from mlops_platform.rotation import ANNOTATION
from mlops_platform.settings_base import ConfigError
from mlops_policies import audit_resources
from tools.testing.harness import Plan, run_program, stack_config, with_overrides
from tools.testing.plans import BASIC, NS, container, env_of, job, passwords, refused, rotated, run_with


def template_annotations(plan: Plan, name: str) -> dict[str, str]:
    return plan.k8s("Deployment", name, NS).inputs["spec"]["template"]["metadata"].get("annotations") or {}


def declared(plan: Plan) -> list[tuple[str, str, str, dict, tuple]]:
    return sorted((r.type, r.name, r.parent or "", r.inputs, tuple(r.dependencies)) for r in plan.resources)


@pytest.mark.parametrize("stack, basic", [("dev", False), ("dev", True), ("prod", False)])
def test_generation_zero_declares_exactly_what_a_stack_without_rotation_declares(stack, basic):
    """No keepers, no annotation, no Job: upgrading to rotation-aware code replaces no password (see CHANGELOG.md)."""
    zero = {"database": 0, "trackingAdmin": 0} | ({} if stack == "prod" else {"minioRoot": 0, "minioUsers": 0})
    without = run_with(stack, **(BASIC if basic else {}))
    assert declared(rotated(stack, basic, **zero)) == declared(without)
    assert all("keepers" not in inputs for inputs in passwords(without).values())


def test_the_server_pods_roll_for_the_credentials_they_read_and_only_those():
    assert ANNOTATION not in template_annotations(rotated(database=0), "mlflow")
    assert template_annotations(rotated(database=1, minioUsers=2), "mlflow")[ANNOTATION] == "database=1,minioUsers=2"
    # MinIO's root key is MinIO's: its pod restarts, the server's do not.
    root = rotated(minioRoot=3)
    assert ANNOTATION not in template_annotations(root, "mlflow")
    assert template_annotations(root, "mlflow-minio")[ANNOTATION] == "minioRoot=3"
    # The admin password is checked against MLflow's tables: no pod needs to restart for it.
    assert ANNOTATION not in template_annotations(rotated(basic=True, trackingAdmin=1), "mlflow")


def test_a_minio_users_generation_renews_every_users_key_and_reruns_its_provisioning_job(dev):
    plan = rotated(minioUsers=1)
    users = {n: i for n, i in passwords(plan).items() if n.endswith("-key")}
    assert len(users) == 4 and all(i["keepers"] == {"rotation": "1"} for i in users.values())
    assert passwords(plan)["mlflow-minio-root-password"] == passwords(dev)["mlflow-minio-root-password"]
    provisioning = [j for j in plan.kinds("Job") if j.replacement_trigger is not None]
    assert len(provisioning) == 4
    before = {j.name: j.replacement_trigger for j in dev.kinds("Job") if j.replacement_trigger is not None}
    assert all(j.replacement_trigger != before[j.name] and j.replacement_trigger_secret for j in provisioning), (
        "a new key replaces (reruns) the Job that gives it to MinIO"
    )


def test_a_minio_root_generation_renews_the_root_password_and_provisioning_waits_for_the_restarted_minio(dev):
    plan = rotated(minioRoot=1)
    assert passwords(plan)["mlflow-minio-root-password"]["keepers"] == {"rotation": "1"}
    minio = plan.k8s("Deployment", "mlflow-minio", NS)
    for provisioning in (j for j in plan.kinds("Job") if j.replacement_trigger is not None):
        assert minio.urn in provisioning.dependencies, provisioning.name


def test_an_admin_generation_sets_the_password_in_mlflows_tables_after_the_migration():
    plan = rotated(basic=True, trackingAdmin=1)
    assert passwords(plan)["mlflow-admin-password"]["keepers"] == {"rotation": "1"}
    admin = job(plan, "mlflow-admin-password")
    assert admin.k8s_name == "mlflow-admin-password-1"
    migrate = [j for j in plan.kinds("Job") if j.k8s_name.startswith("mlflow-migrate-")][0]
    assert migrate.urn in admin.dependencies
    env = env_of(container(admin, "admin-password"))
    assert env["MLFLOW_AUTH_ADMIN_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "mlflow-auth", "key": "admin-password"}
    assert env["MLFLOW_BACKEND_STORE_URI"]["valueFrom"]["secretKeyRef"]["name"] == "mlflow-db"
    assert plan.outputs["trackingAdminPassword"] != rotated(basic=True).outputs["trackingAdminPassword"]
    assert "trackingAdminPassword" in plan.secret_outputs


@pytest.mark.parametrize(
    "generations, basic",
    [({"database": 1, "minioRoot": 1, "minioUsers": 1}, False), ({"database": 2, "trackingAdmin": 1}, True)],
)
def test_rotated_stacks_pass_the_policy_pack(generations, basic):
    plan = rotated(basic=basic, **generations)
    assert audit_resources([r.record() for r in plan.resources], stack=plan.stack) == []


@pytest.mark.parametrize(
    "stack, overrides, expected",
    [
        ("dev", {"rotation": json.dumps({"database": -1})}, "mlops-platform:rotation.database: -1 is not allowed; allowed: greater than"),
        ("dev", {"rotation": json.dumps({"dbPassword": 1})}, "mlops-platform:rotation.dbPassword: is not a known key; allowed: database,"),
        (
            "dev",
            {"rotation": json.dumps({"trackingAdmin": 1})},
            "mlops-platform:rotation.trackingAdmin: set, but tracking.auth is kubernetes",
        ),
        ("prod", {"rotation": json.dumps({"minioUsers": 1})}, "mlops-platform:rotation.minioUsers: set, but target is eks"),
        (
            "prod",
            {
                "rotation": json.dumps({"database": 1}),
                "database": json.dumps({"mode": "rds", "rds": {"subnetGroupName": "db", "securityGroupIds": ["sg-1"]}}),
            },
            "mlops-platform:rotation.database: set, but database.mode is rds",
        ),
    ],
)
def test_a_generation_that_cannot_take_effect_is_refused_in_one_line_before_any_resource(stack, overrides, expected):
    message, declared_before = refused(stack, **overrides)
    assert message.startswith(expected) and "\n" not in message
    assert declared_before == []


def test_rotation_needs_secrets_updated_in_place_by_the_kubernetes_provider():
    """Otherwise pulumi-kubernetes 4.25 replaces a Secret whose data changes, and every Deployment reading it with it."""
    config, secret_keys = stack_config("dev")
    assert config["kubernetes:enableSecretMutable"] == "true"
    del config["kubernetes:enableSecretMutable"]
    declared_before: list = []
    with pytest.raises(ConfigError) as caught:
        rotating = with_overrides(config, {"rotation": {"minioUsers": 1}})
        run_program("dev", config=rotating, secret_keys=secret_keys, declared=declared_before)
    assert str(caught.value).startswith("mlops-platform:rotation.minioUsers: set, but kubernetes:enableSecretMutable is not true")
    assert declared_before == []
    # Without rotation the stack needs nothing of it.
    assert run_program("dev", config=config, secret_keys=secret_keys).resources
