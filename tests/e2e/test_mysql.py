"""End-to-end on MySQL: ``database.mode: external`` with a MariaDB the platform does not run (as Kubeflow's own MySQL would be).

The same declared migration and server as on PostgreSQL, configured from the plan with the
URI given as secret config; then a notebook logs, registers and sets an alias.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator

import pytest

from tests.e2e.config import E2E_ALIAS, E2E_REGISTERED_MODEL, e2e_config
from tests.e2e.conftest import LOGS
from tests.e2e.launch import Server
from tests.e2e.mysql import MySQLDatabase, mariadb_binaries
from tests.e2e.plane import DataPlane
from tests.e2e.prerequisites import require
from tools.testing.harness import Plan, run_program


@pytest.fixture(scope="module")
def mysql_plane() -> Iterator[DataPlane]:
    require("mariadb-server", mariadb_binaries() is not None)
    plane = DataPlane(LOGS / f"mysql-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
    try:
        yield plane
    finally:
        plane.close()


@pytest.fixture(scope="module")
def database(mysql_plane: DataPlane) -> MySQLDatabase:
    return mysql_plane.start_mysql()


@pytest.fixture(scope="module")
def mysql_plan(database: MySQLDatabase) -> Plan:
    """The dev stack with ``database.mode: external`` and the URI as `pulumi config set --secret --path` leaves it."""
    config, secret_keys = e2e_config("dev")
    # The dev stack's in-cluster settings (storageSize) cannot take effect on an external database: replaced, not merged.
    config["mlops-platform:database"] = json.dumps({"mode": "external", "external": {"uri": database.uri()}})
    return run_program("dev", config=config, secret_keys=[*secret_keys, "mlops-platform:database"])


@pytest.fixture(scope="module")
def mysql_tracking(mysql_plane: DataPlane, mysql_plan: Plan) -> Server:
    return mysql_plane.bring_up_tracking(mysql_plan)


def test_the_declared_migration_creates_mlflows_schema_in_mysql(database, mysql_tracking):
    assert {
        "alembic_version",
        "experiments",
        "runs",
        "registered_models",
        "model_versions",
        "registered_model_aliases",
    } <= database.tables()


def test_a_notebook_logs_registers_and_sets_the_alias_on_mysql(mysql_plane, mysql_plan, mysql_tracking, database):
    from mlflow import MlflowClient

    profile = mysql_plan.outputs["kubeflowProfiles"][0]
    trained = mysql_plane.notebook(mysql_plan, profile, E2E_REGISTERED_MODEL, E2E_ALIAS, experiment="e2e-mysql")
    uri = mysql_plane.hosts.rewrite(mysql_plan.outputs["trackingUri"])
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    version = client.get_model_version_by_alias(E2E_REGISTERED_MODEL, E2E_ALIAS)
    assert (version.version, version.run_id, version.status) == (trained["version"], trained["run_id"], "READY")
    # The rows are in MySQL, not anywhere else.
    conn = database.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT name, alias, version FROM registered_model_aliases")
            assert cur.fetchall() == ((E2E_REGISTERED_MODEL, E2E_ALIAS, int(trained["version"])),)
    finally:
        conn.close()
