"""The database logins' rotation (mlops_platform/database/rotation.py): a second login, the Jobs that switch and retire, who reads it.

The e2e lane (tests/e2e/test_rotation.py) runs these steps against real PostgreSQL.
"""

from __future__ import annotations

from mlops_platform.tracking.maintenance import DUMP_FILE
from tools.testing.plans import NS, container, job, passwords, rotated, secret_ref


def test_a_database_generation_adds_a_second_login_and_leaves_the_owner_and_postgresql_alone(dev):
    plan = rotated(database=1)
    assert passwords(plan)["mlflow-db-password"] == passwords(dev)["mlflow-db-password"], "the owner's initdb password stays"
    assert passwords(plan)["mlflow-db-password-b"]["keepers"] == {"rotation": "1"}
    assert "mlflow-db-password-a" not in passwords(plan)
    for kind, name in (("StatefulSet", "mlflow-postgresql"), ("Secret", "mlflow-db")):
        assert plan.k8s(kind, name, NS).inputs == dev.k8s(kind, name, NS).inputs, f"{kind} {name} must not change"
    login = plan.k8s("Secret", "mlflow-db-login", NS)
    assert login.inputs["stringData"]["username"] == "mlflow_b" and login.inputs["stringData"]["generation"] == "1"
    assert "stringData" in login.secret_paths or any(p.startswith("stringData") for p in login.secret_paths)


def test_the_next_generation_returns_to_the_owner_with_a_password_of_its_own():
    plan = rotated(database=2)
    keepers = {name: inputs.get("keepers") for name, inputs in passwords(plan).items() if name.startswith("mlflow-db-password")}
    assert keepers == {"mlflow-db-password": None, "mlflow-db-password-a": {"rotation": "2"}, "mlflow-db-password-b": {"rotation": "1"}}
    assert plan.k8s("Secret", "mlflow-db-login", NS).inputs["stringData"]["username"] == "mlflow"
    assert rotated(database=3).k8s("Secret", "mlflow-db-login", NS).inputs["stringData"]["username"] == "mlflow_b"
    # Only the slot of the new generation gets a new password: the login in use keeps its own.
    assert passwords(rotated(database=3))["mlflow-db-password-a"] == passwords(plan)["mlflow-db-password-a"]


def test_the_rotation_job_runs_before_anything_reads_the_new_login_and_the_retirement_after_the_rollout():
    plan = rotated(database=1)
    rotate, retire = job(plan, "mlflow-db-rotate"), job(plan, "mlflow-db-retire")
    assert (rotate.k8s_name, retire.k8s_name) == ("mlflow-db-rotate-1", "mlflow-db-retire-1")
    deployment = plan.k8s("Deployment", "mlflow", NS)
    login = plan.k8s("Secret", "mlflow-db-login", NS)
    migrate = [j for j in plan.kinds("Job") if j.k8s_name.startswith("mlflow-migrate-")][0]
    assert rotate.urn in login.dependencies and rotate.urn in deployment.dependencies and rotate.urn in migrate.dependencies
    assert deployment.urn in retire.dependencies
    # The live login is read from its Secret as it is when the pod starts, absent before the first rotation.
    live = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container(rotate, "rotate")["env"] if e["name"].startswith("LIVE_")}
    assert {v["name"] for v in live.values()} == {"mlflow-db-login"} and all(v["optional"] for v in live.values())
    assert secret_ref(container(retire, "retire"), "LOGIN_PASSWORD")["name"] == "mlflow-db-login"


def test_from_the_first_rotation_the_server_and_every_job_log_in_with_the_login_secret():
    plan = rotated(database=1)
    server = container(plan.k8s("Deployment", "mlflow", NS), "mlflow")
    assert secret_ref(server, "MLFLOW_BACKEND_STORE_URI") == {"name": "mlflow-db-login", "key": "uri"}
    migrate = [j for j in plan.kinds("Job") if j.k8s_name.startswith("mlflow-migrate-")][0]
    assert secret_ref(container(migrate, "migrate"), "MLFLOW_BACKEND_STORE_URI")["name"] == "mlflow-db-login"
    for workload in (migrate, plan.k8s("CronJob", "mlflow-backup", NS)):
        dump = container(workload, "dump")
        # pg_dump takes the login's user from the Secret, so the Job's declaration stays the same at every generation.
        assert secret_ref(dump, "PGUSER") == {"name": "mlflow-db-login", "key": "username"}
        assert secret_ref(dump, "PGPASSWORD") == {"name": "mlflow-db-login", "key": "password"}
        assert dump["args"] == ["--dbname=postgresql://mlflow-postgresql.mlflow.svc.cluster.local:5432/mlflow"]
        assert f"--file={DUMP_FILE}" in dump["command"]
    assert secret_ref(container(plan.k8s("CronJob", "mlflow-gc", NS), "gc"), "MLFLOW_BACKEND_STORE_URI")["name"] == "mlflow-db-login"
    assert migrate.inputs == [j for j in rotated(database=2).kinds("Job") if j.k8s_name.startswith("mlflow-migrate-")][0].inputs
