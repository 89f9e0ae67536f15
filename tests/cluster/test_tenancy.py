"""Teams see only their own: MLflow workspaces per Kubeflow profile, authorized by the real API server's RBAC.

The dev stack goes up through the real engine with two profiles; its RBAC is then what the
local kube-apiserver (RBAC authorizer, ServiceAccount token signing) enforces. The MLflow
server runs as its Deployment declares it, from a Python 3.12 virtualenv with exactly the
image's pins (images/mlflow/requirements.txt), on PostgreSQL and S3 on 127.0.0.1; outside a pod,
the in-cluster credentials the kubelet would mount come from a kubeconfig with a token of the
server's own ServiceAccount. Every caller's token comes from the TokenRequest API.

Which layer is tested: the Kubernetes authorization app in MLflow plus the API server's
authentication and RBAC. Istio (mTLS, the AuthorizationPolicies, the gateway) does not run here:
the DENY policy for identity headers from non-gateway principals is only rendered
(tests/kubeflow/test_tenancy.py checks it).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from mlops_platform.config import parse_config
from mlops_platform.serving.stack import REGISTRY_READER
from mlops_platform.settings_base import ConfigError
from tests.cluster.conftest import ALIAS, DIRECTORY, EXPERIMENT, MODEL, PROFILE_A, PROFILE_B, sa_token, team_overrides
from tests.cluster.tenancy import COLLECTIONS, Caller, attempts, error_code
from tests.e2e.plane import DataPlane
from tests.e2e.postgres import postgres_bindir
from tests.serving.recorded import record_requests
from tools.testing.cluster_fixtures import profile_owner
from tools.testing.harness import Plan, run_program, stack_config, with_overrides


@pytest.fixture(scope="module")
def plane(cluster, plan: Plan, server_image) -> Iterator[tuple[DataPlane, str]]:
    """PostgreSQL, S3, the migration and MLflow with the Kubernetes authorization app; the server's base URL."""
    if postgres_bindir() is None:
        pytest.fail("PostgreSQL server binaries not found: install Debian's `postgresql`, as .ci/run does", pytrace=False)
    entrypoints, outside = server_image
    logs = DIRECTORY / "tenancy-logs"
    plane = DataPlane(logs)
    try:
        server = plane.bring_up_tracking(plan, entrypoints=entrypoints, outside_env=outside)
        yield plane, server.base + urlsplit(plan.outputs["trackingUri"]).path
    finally:
        plane.close()


def test_a_profile_notebook_tracks_logs_registers_and_moves_the_alias_in_its_own_workspace(cluster, plane, notebooks):
    _, base = plane
    caller = Caller(base, sa_token(cluster, PROFILE_A))
    status, body = caller.call("GET", "registered-models/alias", PROFILE_A, {"name": MODEL[PROFILE_A], "alias": ALIAS})
    assert status == 200, body
    assert body["model_version"]["version"] == notebooks[PROFILE_A]["version"]
    assert body["model_version"]["run_id"] == notebooks[PROFILE_A]["run_id"]
    status, body = caller.call("POST", "runs/search", PROFILE_A, {"experiment_ids": [notebooks[PROFILE_A]["experiment_id"]]})
    assert status == 200 and [r["info"]["run_id"] for r in body["runs"]] == [notebooks[PROFILE_A]["run_id"]]
    # Each workspace holds only its own team's objects, though both teams use the same server and database.
    status, body = caller.call("POST", "experiments/search", PROFILE_A, {"max_results": 50})
    assert status == 200
    assert EXPERIMENT[PROFILE_A] in {e["name"] for e in body["experiments"]}
    assert EXPERIMENT[PROFILE_B] not in {e["name"] for e in body["experiments"]}


def test_every_cross_tenant_attempt_is_refused(cluster, plane, notebooks):
    """Reads, writes and alias moves on the other team's workspace: 403, or (collections) an empty answer though it holds objects."""
    _, base = plane
    outcomes: dict[str, list[str]] = {"denied": [], "filtered to nothing": [], "NOT REFUSED": []}
    for own, other in ((PROFILE_A, PROFILE_B), (PROFILE_B, PROFILE_A)):
        caller = Caller(base, sa_token(cluster, own))
        for name, method, path, body in attempts(EXPERIMENT[other], MODEL[other]):
            status, answer = caller.call(method, path, other, body)
            if status == 403 and error_code(answer) == "PERMISSION_DENIED":
                outcome = "denied"
            elif status == 200 and name.startswith("search") and not any(answer.get(k) for k in COLLECTIONS):
                outcome = "filtered to nothing"
            else:
                outcome = "NOT REFUSED"
            outcomes[outcome].append(f"{own} -> {other}: {name} ({status})")
    tried = sum(len(v) for v in outcomes.values())
    print(f"\ncross-tenant attempts: {tried}; refused: {tried - len(outcomes['NOT REFUSED'])}", end=" ")
    print(f"({len(outcomes['denied'])} denied with 403, {len(outcomes['filtered to nothing'])} searches answered empty)")
    assert tried == 22 and outcomes["NOT REFUSED"] == [], outcomes["NOT REFUSED"]
    assert len(outcomes["denied"]) == 18
    # The searches were not empty for want of objects: each owner sees its own.
    for profile in (PROFILE_A, PROFILE_B):
        owner = Caller(base, sa_token(cluster, profile))
        assert owner.call("POST", "experiments/search", profile, {"max_results": 10})[1]["experiments"]
        assert owner.call("GET", "registered-models/search", profile, {"max_results": 10})[1]["registered_models"]
    # Nothing moved: the other team's alias still names its own version.
    status, body = Caller(base, sa_token(cluster, PROFILE_B)).call(
        "GET", "registered-models/alias", PROFILE_B, {"name": MODEL[PROFILE_B], "alias": ALIAS}
    )
    assert status == 200 and body["model_version"]["version"] == notebooks[PROFILE_B]["version"]


def test_a_serving_reader_reads_registered_models_and_changes_nothing(cluster, plane, notebooks):
    _, base = plane
    reader = Caller(base, sa_token(cluster, PROFILE_A, REGISTRY_READER))
    model = MODEL[PROFILE_A]
    assert reader.call("GET", "registered-models/get", PROFILE_A, {"name": model})[0] == 200
    assert reader.call("GET", "registered-models/alias", PROFILE_A, {"name": model, "alias": ALIAS})[0] == 200
    writes = [
        ("POST", "registered-models/alias", {"name": model, "alias": ALIAS, "version": "1"}),
        ("DELETE", "registered-models/alias", {"name": model, "alias": ALIAS}),
        ("POST", "registered-models/create", {"name": "reader-model"}),
        ("POST", "experiments/create", {"name": "reader-experiment"}),
    ]
    for method, path, body in writes:
        assert reader.call(method, path, PROFILE_A, body)[0] == 403, path
    assert reader.call("GET", "registered-models/get", PROFILE_B, {"name": MODEL[PROFILE_B]})[0] == 403


def test_the_serving_resolver_pins_the_alias_inside_the_model_namespace_workspace_with_the_readertoken(
    cluster, plane, notebooks, monkeypatch
):
    """The ServingStack's own resolution (before any resource), as CI runs it with a reader's short-lived token.

    The reader may run the searches that answer for every entry at once (catalog.py), so only the MLmodel
    is read per version. Another team's token (full rights in its own profile) cannot resolve it.
    """
    from mlops_platform.serving.registry import resolve_models

    sent = record_requests(monkeypatch)

    _, base = plane
    config, _ = stack_config("dev")
    serving = json.loads(config["mlops-platform:serving"])
    raw = with_overrides(
        config,
        {
            **team_overrides(),
            "serving": {
                **serving,
                "mlflowTrackingUri": base,
                # The notebook logs with MLflow 3 (format 3), which MLServer 1.7.1 serves (tests/e2e); KServe 0.16 declares 1 and 2.
                "mlflowFormatVersions": ["1", "2", "3"],
                "models": [{"name": "churn", "namespace": PROFILE_A, "registeredModel": MODEL[PROFILE_A], "alias": ALIAS}],
            },
        },
    )
    platform = parse_config("dev", raw)
    for token, allowed in ((sa_token(cluster, PROFILE_A, REGISTRY_READER), True), (sa_token(cluster, PROFILE_B), False)):
        saved = os.environ.get("MLFLOW_TRACKING_TOKEN")
        os.environ["MLFLOW_TRACKING_TOKEN"] = token
        try:
            if allowed:
                (resolved,) = resolve_models(platform)
                assert resolved.version == notebooks[PROFILE_A]["version"]
                assert resolved.storage_uri.startswith(platform.artifacts.root + "/")
                assert sorted(sent) == [
                    "artifacts",
                    "experiments/search",
                    "logged-models/search",
                    "model-versions/search",
                    "registered-models/search",
                ]
            else:
                with pytest.raises(ConfigError, match="refused access"):
                    resolve_models(platform)
        finally:
            if saved is None:
                os.environ.pop("MLFLOW_TRACKING_TOKEN", None)
            else:
                os.environ["MLFLOW_TRACKING_TOKEN"] = saved


def test_forged_identity_headers_from_a_non_gateway_caller_are_refused(cluster, plane, notebooks):
    """Headers naming profile A's owner (who may do anything there) grant a non-gateway caller nothing."""
    _, base = plane
    forged = {"kubeflow-userid": profile_owner(PROFILE_A), "kubeflow-groups": "system:masters", "x-remote-user": profile_owner(PROFILE_A)}
    for token in (None, sa_token(cluster, PROFILE_B)):
        caller = Caller(base, token, forged)
        for name, method, path, body in attempts(EXPERIMENT[PROFILE_A], MODEL[PROFILE_A]):
            status, answer = caller.call(method, path, PROFILE_A, body)
            who = f"{name} with forged headers and {'no' if token is None else 'a team-b'} token"
            if token is None:
                assert status == 401 and error_code(answer) == "UNAUTHENTICATED", f"{who}: {status}"
            else:
                empty_search = status == 200 and name.startswith("search") and not any(answer.get(k) for k in COLLECTIONS)
                assert empty_search or (status == 403 and error_code(answer) == "PERMISSION_DENIED"), f"{who}: {status} {answer}"


def test_the_server_needs_a_token_for_every_api_call(plane):
    _, base = plane
    status, body = Caller(base, None).call("POST", "experiments/search", PROFILE_A, {"max_results": 1})
    assert status == 401, body
    status, body = Caller(base, "not-a-token").call("POST", "experiments/search", PROFILE_A, {"max_results": 1})
    assert status in (401, 403), body


def test_gc_as_declared_collects_a_deleted_run_in_every_profile_workspace_and_keeps_live_ones(
    cluster, plan, plane, server_image, notebooks, monkeypatch
):
    """The gc CronJob (``--older-than 1s`` here) as the server's ServiceAccount, from the server image: it lists the
    profiles' workspaces through the API server. Without workspace mode MLflow would refuse to open this database."""
    from mlflow import MlflowClient

    from tests.e2e.test_maintenance import cron_job

    data_plane, base = plane
    deleted = {}
    for profile in (PROFILE_A, PROFILE_B):
        monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", sa_token(cluster, profile))
        monkeypatch.setenv("MLFLOW_WORKSPACE", profile)
        client = MlflowClient(base)
        run_id = client.create_run(client.get_experiment_by_name(EXPERIMENT[profile]).experiment_id).info.run_id
        client.delete_run(run_id)
        deleted[profile] = run_id
    time.sleep(1.5)
    config, secret_keys = stack_config("dev")
    soon = run_program(
        "dev", config=with_overrides(config, {**team_overrides(), "maintenance": {"gcOlderThan": "1s"}}), secret_keys=secret_keys
    )
    entrypoints, outside = server_image
    data_plane.run_job(soon, cron_job(soon, "gc"), entrypoints=entrypoints, outside_env=outside)
    for profile in (PROFILE_A, PROFILE_B):
        caller = Caller(base, sa_token(cluster, profile))
        status, answer = caller.call("GET", "runs/get", profile, {"run_id": deleted[profile]})
        assert (status, error_code(answer)) == (404, "RESOURCE_DOES_NOT_EXIST"), (profile, answer)
        status, answer = caller.call("GET", "runs/get", profile, {"run_id": notebooks[profile]["run_id"]})
        assert status == 200 and answer["run"]["info"]["lifecycle_stage"] == "active", (profile, answer)
