"""database.mode external: no database server declared, the URI only in a Secret (or the user's own), a one-line error on a bad URI."""

from __future__ import annotations

import json

import pytest

from mlops_platform.settings_base import ConfigError
from tools.testing.harness import run_program, stack_config, with_overrides
from tools.testing.plans import NS, container, env_of, strings

PASSWORD = "S3cret-Pa55word-xyz"
MYSQL_URI = f"mysql+pymysql://mlflow:{PASSWORD}@mysql.kubeflow.svc.cluster.local:3306/mlflow"


def external(database: dict, *, secret: bool = True, stack: str = "dev"):
    """The stack with ``database`` replaced, as `pulumi config set [--secret] --path database...` leaves it."""
    config, secret_keys = stack_config(stack)
    config = with_overrides(config, {"database": json.dumps(database)})
    keys = [*secret_keys, "mlops-platform:database"] if secret else [k for k in secret_keys if k != "mlops-platform:database"]
    return run_program(stack, config=config, secret_keys=keys)


def refusal(database: dict, *, secret: bool = True) -> str:
    with pytest.raises(ConfigError) as caught:
        external(database, secret=secret)
    message = str(caught.value)
    assert "\n" not in message and PASSWORD not in message
    return message


def test_a_mysql_uri_from_secret_config_goes_only_into_the_backend_secret():
    plan = external({"mode": "external", "external": {"uri": MYSQL_URI}})
    # No database server and no generated database password: both are the owner's.
    assert plan.kinds("StatefulSet") == []
    assert "mlflow-db-password" not in {r.name for r in plan.of_type("random:index/randomPassword:RandomPassword")}
    secret = plan.k8s("Secret", "mlflow-db", NS)
    assert secret.inputs["stringData"] == {"uri": MYSQL_URI}
    assert "stringData.uri" in secret.secret_paths or "stringData" in secret.secret_paths
    server = container(plan.k8s("Deployment", "mlflow", NS), "mlflow")
    (migration,) = [j for j in plan.kinds("Job") if j.k8s_name.startswith("mlflow-migrate-")]
    for c in (server, container(migration, "migrate")):
        assert env_of(c)["MLFLOW_BACKEND_STORE_URI"]["valueFrom"]["secretKeyRef"] == {"name": "mlflow-db", "key": "uri"}
    # The owner's database, the owner's backups: the migration runs without a dump of ours, and no backup is scheduled.
    # It waits (bounded) for the database to answer with the same URI: nothing of ours could be awaited instead.
    (wait,) = migration.pod_spec()["initContainers"]
    assert wait["name"] == "wait-for-database"
    assert env_of(wait)["MLFLOW_BACKEND_STORE_URI"]["valueFrom"]["secretKeyRef"] == {"name": "mlflow-db", "key": "uri"}
    assert [c.k8s_name for c in plan.kinds("CronJob")] == ["mlflow-gc"]
    assert not [s for s in plan.kinds("ServiceAccount") if s.k8s_name == "mlflow-backup"]
    holders = [r.k8s_name for r, m in plan.manifests() if any(PASSWORD in s for s in strings(r.inputs))]
    assert holders == ["mlflow-db"]
    assert not plan.outputs.get("databasePassword")
    # No NetworkPolicy for a database pod that does not exist.
    assert [p.k8s_name for p in plan.kinds("NetworkPolicy") if "postgresql" in p.k8s_name] == []


def test_an_existing_secret_is_referenced_and_no_secret_is_declared_for_it():
    plan = external({"mode": "external", "external": {"existingSecret": {"name": "kubeflow-mysql", "key": "mlflow-uri"}}}, secret=False)
    assert [s.k8s_name for s in plan.kinds("Secret") if s.k8s_name == "mlflow-db"] == []
    server = container(plan.k8s("Deployment", "mlflow", NS), "mlflow")
    assert env_of(server)["MLFLOW_BACKEND_STORE_URI"]["valueFrom"]["secretKeyRef"] == {"name": "kubeflow-mysql", "key": "mlflow-uri"}


@pytest.mark.parametrize(
    "uri",
    [
        f"postgresql://mlflow:{PASSWORD}@db:5432/mlflow",  # SQLAlchemy 2.1 needs psycopg 3 for the bare scheme
        f"mysql://mlflow:{PASSWORD}@db:3306/mlflow",  # mysqlclient is not in the image
        f"sqlite:///{PASSWORD}.db",
        f"mysql+pymysql://mlflow@db:3306/mlflow?{PASSWORD}",
        f"mysql+pymysql://mlflow:{PASSWORD}@db:3306/",
    ],
    ids=["postgresql-without-driver", "mysql-without-driver", "sqlite", "no-password", "no-database"],
)
def test_a_uri_of_another_form_is_refused_in_one_line_without_echoing_it(uri):
    assert refusal({"mode": "external", "external": {"uri": uri}}) == (
        "mlops-platform:database.external.uri: is not a database URI of an allowed form (value hidden); allowed: "
        "postgresql+psycopg2://USER:PASSWORD@HOST:PORT/DATABASE or mysql+pymysql://USER:PASSWORD@HOST:PORT/DATABASE"
    )


def test_a_uri_in_plain_text_is_refused():
    assert refusal({"mode": "external", "external": {"uri": MYSQL_URI}}, secret=False).startswith(
        "mlops-platform:database.external.uri: is in plain text in the stack file; allowed: a secret"
    )


@pytest.mark.parametrize(
    "database, expected",
    [
        ({"mode": "external"}, "mlops-platform:database.external: is required when database.mode is external"),
        (
            {"mode": "external", "external": {}},
            "mlops-platform:database.external.uri: exactly one of uri and existingSecret is required",
        ),
        (
            {"mode": "external", "external": {"uri": MYSQL_URI, "existingSecret": {"name": "x"}}},
            "mlops-platform:database.external.uri: exactly one of uri and existingSecret is required",
        ),
        ({"external": {"uri": MYSQL_URI}}, "mlops-platform:database.external: is set, but database.mode is inCluster"),
    ],
)
def test_external_settings_that_cannot_take_effect_are_refused(database, expected):
    assert refusal(database).startswith(expected)


def test_in_cluster_settings_cannot_take_effect_on_an_external_database():
    message = refusal({"mode": "external", "storageSize": "5Gi", "external": {"uri": MYSQL_URI}})
    assert message == (
        "mlops-platform:database.storageSize: set, but database.mode is external; allowed: database.mode inCluster, "
        "or database.storageSize left out"
    )
