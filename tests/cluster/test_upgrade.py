"""Upgrading this program: a deployment of the oldest supported commit (docs/upgrade.toml) goes to this checkout with
`pulumi up` alone, keeping its data and every credential.

dev, on the real engine: the old commit's own program (tests/cluster/upgrade.py) deploys the stack into the session
cluster; its data plane (PostgreSQL, S3, its declared MLflow server with Kubernetes authorization, a profile's notebook)
writes runs, a registered model and an alias; this checkout's preview on the same state then holds no replacement
and no deletion of anything holding data or a credential, `up` converges, the Secrets hold the same passwords, and
the server as this checkout declares it serves the old history to the tokens issued before the upgrade.

prod cannot be deployed here (EKS, S3, RDS): both commits' programs are rendered under mocks, with in-cluster
PostgreSQL and with RDS, and every data and credential resource must keep its URN (or be aliased to it) and every
input whose change replaces it.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from kubernetes import client

from tests.cluster.conftest import DIRECTORY, settle
from tests.cluster.tenancy import Caller, kubeconfig, service_account_token
from tests.cluster.upgrade import OldProgram, UpgradeSourceMissing, checkout, guarded, oldest, remove
from tests.e2e.plane import DataPlane
from tests.e2e.postgres import postgres_bindir
from tools.local.engine import EngineRun, LocalEngine
from tools.testing import server_venv
from tools.testing.harness import DeclaredResource, Plan, run_program, stack_config, with_overrides

PROFILE = "kubeflow-user-example-com"
MODEL, ALIAS, EXPERIMENT = "upgraded-model", "production", "written-before-the-upgrade"
RDS = {"mode": "rds", "rds": {"subnetGroupName": "mlflow-db", "securityGroupIds": ["sg-0123456789abcdef0"]}}
# What a step may do to a resource holding data or a credential.
KEEPS = {"same", "update", "read", "refresh"}
# Inputs whose change makes pulumi-kubernetes 4.25 replace the object (pkg/provider/diff.go, forceNew), metadata aside.
FORCE_NEW = {
    "StatefulSet": [
        "spec.podManagementPolicy",
        "spec.revisionHistoryLimit",
        "spec.selector",
        "spec.serviceName",
        "spec.volumeClaimTemplates",
    ],
    "PersistentVolumeClaim": ["spec.accessModes", "spec.selector", "spec.storageClassName", "spec.volumeName"],
    "Deployment": ["spec.selector"],
    "Secret": ["type"],
}


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Iterator[OldProgram]:
    where = tmp_path_factory.mktemp("upgrade") / "source"
    try:
        checkout(oldest(), where)
    except UpgradeSourceMissing as missing:
        pytest.fail(str(missing), pytrace=False)
    try:
        yield OldProgram(where)
    finally:
        remove(where)


# -- prod, under mocks --------------------------------------------------------------------------------------------


def _at(inputs: dict[str, Any], path: str) -> Any:
    for part in path.split("."):
        inputs = (inputs or {}).get(part) if isinstance(inputs, dict) else None
    return inputs


def kept(old: DeclaredResource, new: DeclaredResource) -> list[str]:
    """What in ``new`` would replace ``old``'s object or change its credential; empty when it is kept."""
    problems = []
    if old.type != new.type:
        problems.append(f"type {old.type} -> {new.type}")
    if old.is_kubernetes:
        for path in ["metadata.name", "metadata.namespace", *FORCE_NEW.get(old.kind or "", [])]:
            if _at(old.inputs, path) != _at(new.inputs, path):
                problems.append(f"{path} changed")
        if old.kind == "Secret":
            before, after = old.inputs.get("stringData") or {}, new.inputs.get("stringData") or {}
            problems += [f"stringData.{key} changed" for key in before if after.get(key) != before[key]]
    elif old.inputs != new.inputs:
        # Passwords replace on any input (keepers aside, none here); the bucket and RDS are held to the same standard.
        changed = sorted(k for k in set(old.inputs) | set(new.inputs) if old.inputs.get(k) != new.inputs.get(k))
        problems.append("inputs changed: " + ", ".join(changed))
    return problems


def compare(old: Plan, new: Plan) -> list[str]:
    """Every data and credential resource of ``old`` must be in ``new`` under its URN or an alias of it, and kept."""
    by_urn = {r.urn: r for r in new.resources}
    by_alias = {alias: r for r in new.resources for alias in r.alias_urns}
    problems = []
    for resource in old.resources:
        why = guarded(resource)
        if why is None:
            continue
        successor = by_urn.get(resource.urn) or by_alias.get(resource.urn)
        if successor is None:
            problems.append(f"{why} {resource.urn} is gone: its URN changed without an alias, or it is deleted")
            continue
        problems += [f"{why} {resource.urn}: {p}" for p in kept(resource, successor)]
    return problems


@pytest.mark.parametrize("database", [None, RDS], ids=["in-cluster PostgreSQL", "RDS"])
def test_prod_keeps_every_data_and_credential_resource_under_its_urn(source: OldProgram, database):
    overrides = {"database": database} if database else {}
    old = source.plan("prod", overrides)
    config, secret_keys = stack_config("prod")
    new = run_program("prod", config=with_overrides(config, overrides), secret_keys=secret_keys)
    watched = [r for r in old.resources if guarded(r)]
    expected_types = {"aws:s3/bucket:Bucket", "random:index/randomPassword:RandomPassword", "kubernetes:core/v1:Namespace"}
    expected_types |= {"aws:rds/instance:Instance"} if database else {"kubernetes:apps/v1:StatefulSet"}
    assert expected_types <= {r.type for r in watched}, "the comparison covers the bucket, RDS or the StatefulSet, and the passwords"
    assert compare(old, new) == []


# -- dev, on the real engine --------------------------------------------------------------------------------------


def live_secrets(api: Any, plan: Plan) -> dict[tuple[str, str], dict[str, str]]:
    core = client.CoreV1Api(api)
    found = {}
    for secret in plan.kinds("Secret"):
        live = core.read_namespaced_secret(secret.k8s_name, secret.k8s_namespace)
        found[(secret.k8s_namespace, secret.k8s_name)] = dict(live.data or {})
    return found


def with_live_secrets(plan: Plan, live: dict[tuple[str, str], dict[str, str]]) -> Plan:
    """``plan`` with each Secret's data as the cluster holds it (the generated passwords, not the harness's)."""
    import base64

    for secret in plan.kinds("Secret"):
        data = live[(secret.k8s_namespace, secret.k8s_name)]
        secret.inputs = {**secret.inputs, "stringData": {k: base64.b64decode(v).decode() for k, v in data.items()}}
        secret.inputs.pop("data", None)
    return plan


def uids(api: Any, plan: Plan) -> dict[str, str]:
    """The uid of every object that holds data or a credential, as the API server has it."""
    from kubernetes import dynamic

    resources = dynamic.DynamicClient(api).resources
    found = {}
    for resource in plan.resources:
        if resource.is_kubernetes and guarded(resource):
            kind = resources.get(api_version=resource.inputs["apiVersion"], kind=resource.kind)
            live = kind.get(name=resource.k8s_name, namespace=resource.k8s_namespace)
            found[f"{resource.kind} {resource.k8s_namespace}/{resource.k8s_name}"] = live.metadata.uid
    for claim in client.CoreV1Api(api).list_persistent_volume_claim_for_all_namespaces().items:
        found[f"claim {claim.metadata.namespace}/{claim.metadata.name}"] = claim.metadata.uid
    return found


def guarded_steps(preview: EngineRun, old: Plan) -> dict[str, set[str]]:
    """For each data or credential resource of the old deployment, what the preview plans for it (by its old URN)."""
    watched = {r.urn: guarded(r) for r in old.resources if guarded(r)}
    planned: dict[str, set[str]] = {urn: set() for urn in watched}
    for step in preview.steps():
        for urn in {step["urn"], step["old_urn"]} & set(watched):
            planned[urn].add(step["op"])
    return planned


def _history(base: str, token: str) -> dict[str, Any]:
    caller = Caller(base, token)
    status, alias = caller.call("GET", "registered-models/alias", PROFILE, {"name": MODEL, "alias": ALIAS})
    assert status == 200, alias
    status, experiment = caller.call("GET", "experiments/get-by-name", PROFILE, {"experiment_name": EXPERIMENT})
    assert status == 200, experiment
    status, runs = caller.call("POST", "runs/search", PROFILE, {"experiment_ids": [experiment["experiment"]["experiment_id"]]})
    assert status == 200, runs
    return {
        "alias": {k: alias["model_version"][k] for k in ("name", "version", "run_id", "source")},
        "runs": sorted((r["info"]["run_id"], json.dumps(r["data"].get("metrics"), sort_keys=True)) for r in runs["runs"]),
    }


@pytest.fixture
def upgraded_engine(cluster, deployment, tmp_path) -> Iterator[LocalEngine]:
    """A workspace of the upgrade's own, in a cluster without the session's stack; destroyed afterwards."""
    deployment.engine.destroy()
    deployment.changed()
    settle(cluster)
    engine = LocalEngine("dev", cluster.directory, workspace=tmp_path / "engine")
    try:
        yield engine
    finally:
        engine.destroy()
        engine.remove()


def test_the_oldest_supported_commit_upgrades_in_place_and_every_client_still_authenticates(cluster, source, upgraded_engine, tmp_path):
    if postgres_bindir() is None:
        pytest.fail("PostgreSQL server binaries not found: install Debian's `postgresql`, as .ci/run does", pytrace=False)
    api = cluster.api()
    deployed = source.up(cluster.directory, upgraded_engine.workspace)
    assert deployed["changes"].get("create", 0) > 40, deployed["changes"]
    old = source.plan("dev")
    live = live_secrets(api, old)
    old = with_live_secrets(old, live)
    before_uids = uids(api, old)

    # The old data plane, exactly as the old program declares it, with the passwords the cluster holds.
    entrypoints = server_venv.ensure()
    server_config = kubeconfig(cluster, service_account_token(cluster, "mlflow", "mlflow"), "mlflow", tmp_path / "server-kubeconfig")
    notebook_token = service_account_token(cluster, PROFILE, "default-editor")
    plane = DataPlane(DIRECTORY / "upgrade-logs")
    try:
        server = plane.bring_up_tracking(old, entrypoints=entrypoints, outside_env={"KUBECONFIG": str(server_config)})
        plane.notebook(old, PROFILE, MODEL, ALIAS, EXPERIMENT, kubeconfig=kubeconfig(cluster, notebook_token, PROFILE, tmp_path / "nb"))
        base = server.base + urlsplit(old.outputs["trackingUri"]).path
        history = _history(base, notebook_token)
        plane.stop_server(server)

        # This checkout's program on the same state.
        upgraded_engine.write_stack_file({})
        preview = upgraded_engine.preview()
        planned = guarded_steps(preview, old)
        print("\nupgrade preview:", dict(Counter(step["op"] for step in preview.steps())), end=" ")
        print(sorted({f"{s['op']} {s['urn'].split('::', 2)[-1]}" for s in preview.steps() if s["op"] != "same"}))
        assert {urn: ops for urn, ops in planned.items() if ops - KEEPS or not ops} == {}, (
            "the upgrade would replace or delete data or a credential (or lost track of it: add aliases=[...] where a URN changes)"
        )
        upgraded = upgraded_engine.up()
        assert set(upgraded_engine.up(expect_no_changes=True).summary.resource_changes) == {"same"}

        new = run_program("dev")
        now = live_secrets(api, new)
        assert set(live) <= set(now), "no Secret of the old deployment is gone"
        assert {k: now[k] for k in live} == live, "every Secret holds the same values: every client's password still works"
        assert uids(api, old) == before_uids, "the same objects hold the data and the credentials"

        # This checkout's server, as it declares it, on the old database, for the clients of before the upgrade.
        new = with_live_secrets(new, live_secrets(api, new))
        ran = {"create", "replace", "create-replacement"}
        if any("Job::mlflow-migrate" in s["urn"] and s["op"] in ran for s in upgraded.steps()):
            plane.run_migration(new)
        outside = {"KUBECONFIG": str(server_config)}
        server = plane.start_deployment(new, plane.tracking_deployment(new), entrypoints=entrypoints, outside_env=outside)
        assert _history(server.base + urlsplit(new.outputs["trackingUri"]).path, notebook_token) == history
    finally:
        plane.close()
