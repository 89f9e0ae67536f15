"""The prod route's authentication, end to end on 127.0.0.1: MLflow's basic-auth app with the generated admin password.

The stack is dev with ``tracking.externalHost`` and no Kubeflow, which is prod's shape (an Ingress
in front, basic-auth by default) on the data plane this lane can run. Its image is MLflow's published
-full one (mlflow[...,auth] on Python 3.11), so the server starts from the project's own virtualenv,
which pins the same MLflow and basic-auth's Flask-WTF; its config file is the declared Secret's
content (database address mapped to 127.0.0.1), mounted at its declared path and mode (tests/e2e/sandbox.py).
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from mlops_platform.tracking.settings import MLFLOW_IMAGE
from tests.e2e.declared import resolve_env
from tests.e2e.launch import Server, base_env
from tests.e2e.plane import DataPlane
from tools.testing.harness import Plan, run_program, stack_config, with_overrides

HOST = "mlflow.example.com"


@pytest.fixture(scope="module")
def plan() -> Plan:
    config, secret_keys = stack_config("dev")
    overrides = {
        "tracking": {"externalHost": HOST},
        "kubeflow": {"enabled": False},
        "serving": {"enabled": False},
        "monitoring": {"enabled": False},
    }
    return run_program("dev", config=with_overrides(config, overrides), secret_keys=secret_keys)


@pytest.fixture(scope="module")
def migrated(plane: DataPlane, plan: Plan) -> set[str]:
    """PostgreSQL and S3 as declared, and the tables the declared migration Job leaves, before any server starts."""
    deployment = plane.tracking_deployment(plan)
    env = resolve_env(plan, deployment.k8s_namespace, deployment.pod_spec()["containers"][0], "mlflow")
    plane.start_postgres(plan, env["MLFLOW_BACKEND_STORE_URI"])
    plane.start_s3(plan, env["MLFLOW_S3_ENDPOINT_URL"])
    plane.bootstrap_buckets(plan)
    plane.run_migration(plan)
    return plane.tables()


@pytest.fixture(scope="module")
def server(plane: DataPlane, plan: Plan, migrated: set[str]) -> Iterator[tuple[Server, str]]:
    """The declared server; its config file is the declared Secret's, mounted where and with the mode the pod has it."""
    deployment = plane.tracking_deployment(plan)
    started = plane.start_deployment(plan, deployment)
    yield started, started.base + urlsplit(plan.outputs["trackingUri"]).path


def _call(base: str, path: str, credentials: tuple[str, str] | None, body: dict | None = None) -> int:
    request = urllib.request.Request(f"{base}/api/2.0/mlflow/{path}", data=json.dumps(body or {}).encode(), method="POST")
    request.add_header("Content-Type", "application/json")
    if credentials:
        request.add_header("Authorization", "Basic " + base64.b64encode(":".join(credentials).encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_the_prod_shape_runs_basic_auth_behind_its_ingress(plan: Plan):
    deployment = plan.k8s("Deployment", "mlflow", "mlflow")
    assert "basic-auth" in deployment.pod_spec()["containers"][0]["args"]
    assert deployment.pod_spec()["containers"][0]["image"] == MLFLOW_IMAGE
    backend = plan.k8s("Ingress", "mlflow", "mlflow").inputs["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"]
    assert (
        plan.k8s("Service", backend, "mlflow").inputs["spec"]["selector"].items()
        <= deployment.inputs["spec"]["template"]["metadata"]["labels"].items()
    )


def test_the_migration_job_migrates_basic_auths_tables_too_so_no_server_pod_migrates(migrated: set[str]):
    """Otherwise basic-auth's app migrates them at every server start: two replicas at once race on an empty schema."""
    assert {"alembic_version", "alembic_version_auth", "users", "experiment_permissions"} <= migrated


def test_an_unauthenticated_request_is_refused(server):
    _, base = server
    assert _call(base, "experiments/search", None, {"max_results": 1}) == 401
    assert _call(base, "experiments/create", None, {"name": "anonymous"}) == 401


def test_a_wrong_password_is_refused_and_the_generated_admin_password_works(server, plan: Plan):
    _, base = server
    password = plan.outputs["trackingAdminPassword"]
    assert plan.outputs["trackingAdminPassword"] and "trackingAdminPassword" in plan.secret_outputs
    assert _call(base, "experiments/search", ("admin", password + "x"), {"max_results": 1}) == 401
    assert _call(base, "experiments/search", ("admin", password), {"max_results": 1}) == 200


def test_a_client_with_the_admin_credentials_tracks_a_run(server, plan: Plan, plane: DataPlane):
    _, base = server
    script = (
        "import mlflow\n"
        "mlflow.set_experiment('prod-auth')\n"
        "with mlflow.start_run() as run:\n"
        "    mlflow.log_metric('m', 1.0)\n"
        "print(mlflow.get_run(run.info.run_id).data.metrics['m'])\n"
    )
    env = {
        **base_env(plane.home),
        "MLFLOW_TRACKING_URI": base,
        "MLFLOW_TRACKING_USERNAME": "admin",
        "MLFLOW_TRACKING_PASSWORD": plan.outputs["trackingAdminPassword"],
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    }
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "1.0"
    env["MLFLOW_TRACKING_PASSWORD"] = "wrong"
    refused = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert refused.returncode != 0 and "401" in refused.stderr


def test_in_a_browser_the_basic_auth_login_opens_the_ui_only_with_the_generated_password(server, plan: Plan):
    """A person at the prod route logs in with the generated admin password (Debian's Chromium); a wrong one shows nothing."""
    from tests.e2e.chromium import Chromium
    from tools.testing.harness import ROOT

    _, base = server
    password = plan.outputs["trackingAdminPassword"]
    assert _call(base, "experiments/create", ("admin", password), {"name": "browser-login"}) == 200
    with Chromium(ROOT / "build" / "browser") as browser:
        browser.open_with_credentials(f"{base}/#/experiments", "admin", password + "x")
        text = browser.settled_text()
        assert "Experiments" not in text and "browser-login" not in text
        browser.screenshot("basic-auth-refused")
    with Chromium(ROOT / "build" / "browser") as browser:
        browser.open_with_credentials(f"{base}/#/experiments", "admin", password)
        assert "browser-login" in browser.wait_for_text("browser-login")
        browser.screenshot("basic-auth-experiments")
        assert browser.failed_requests("/mlflow/") == []
