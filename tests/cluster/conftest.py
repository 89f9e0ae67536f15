"""The real engine on a real API server: one embedded cluster for the session, stopped whatever happens.

Each test asks for the state it needs (``deployment.ensure_up()``, or a workspace of its
own with empty state), so any test can run alone and in any order.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlops_platform.kubeflow.integration import PROFILE_SERVICE_ACCOUNT
from tests.cluster.tenancy import kubeconfig, service_account_token
from tools.dev.local_up import load_existing
from tools.local import cluster as local_cluster
from tools.local.engine import EngineRun, LocalEngine
from tools.testing import server_venv
from tools.testing.harness import Plan, run_program, stack_config, with_overrides

ROOT = Path(__file__).resolve().parents[2]
DIRECTORY = ROOT / "build" / "cluster-tests"
# A profile namespace that exists in the cluster (Kubeflow made it) but not yet in the stack's config.
ADDED_PROFILE = "team-b"
# Two teams, for the tenancy tests: the dev stack's profile and the added one.
PROFILE_A = "kubeflow-user-example-com"
PROFILE_B = ADDED_PROFILE
MODEL = {PROFILE_A: "churn-a", PROFILE_B: "churn-b"}
EXPERIMENT = {PROFILE_A: "team-a-experiment", PROFILE_B: "team-b-experiment"}
ALIAS = "production"


@pytest.fixture(scope="session")
def cluster() -> Iterator[local_cluster.Cluster]:
    try:
        local_cluster.toolchain_dirs()
    except local_cluster.ToolchainMissing as exc:
        pytest.fail(f"the real-engine lane needs the toolchain: {exc}", pytrace=False)
    local_cluster.stop(DIRECTORY)
    shutil.rmtree(DIRECTORY, ignore_errors=True)
    started = local_cluster.start(DIRECTORY)
    try:
        load_existing(started, "dev", extra_profiles=(ADDED_PROFILE,))
        yield started
    finally:
        local_cluster.stop(DIRECTORY)


def settle(cluster: local_cluster.Cluster, timeout: float = 180) -> None:
    """Wait until no namespace is terminating (a destroy's namespace finishes going after the engine returns).

    Applying a Namespace that is still terminating succeeds, but nothing can be created in it, and once it is
    gone the state holds a namespace the cluster does not: every later `up` fails on it.
    """
    from kubernetes import client

    core = client.CoreV1Api(cluster.api())
    deadline = time.monotonic() + timeout
    while True:
        terminating = [ns.metadata.name for ns in core.list_namespace().items if ns.metadata.deletion_timestamp]
        if not terminating:
            return
        if time.monotonic() > deadline:
            raise local_cluster.ClusterError(f"namespaces {terminating} still terminating after {timeout:.0f} s")
        time.sleep(0.5)


class Deployment:
    """The dev stack in the session cluster; tests that change it put it back."""

    def __init__(self, engine: LocalEngine, cluster: local_cluster.Cluster) -> None:
        self.engine = engine
        self.cluster = cluster
        self.last_up: EngineRun | None = None

    def ensure_up(self) -> EngineRun:
        """The stack as configured in the repository, deployed (`up` runs only when it may not be)."""
        if self.last_up is None:
            self.engine.write_stack_file({})
            settle(self.cluster)
            self.last_up = self.engine.up()
        return self.last_up

    def changed(self) -> None:
        """A test changed or destroyed the stack: the next ensure_up converges it again."""
        self.last_up = None


@pytest.fixture(scope="session")
def deployment(cluster: local_cluster.Cluster) -> Deployment:
    return Deployment(LocalEngine("dev", cluster.directory), cluster)


@pytest.fixture
def scratch_engine(cluster: local_cluster.Cluster, tmp_path: Path) -> Iterator[Any]:
    """A stack with empty state of its own against the session cluster, removed afterwards."""
    made: list[LocalEngine] = []

    def make(stack: str = "dev", **kwargs: Any) -> LocalEngine:
        settle(cluster)
        engine = LocalEngine(stack, cluster.directory, workspace=tmp_path / f"engine-{len(made)}", **kwargs)
        made.append(engine)
        return engine

    yield make
    for engine in made:
        engine.remove()


# -- two teams ------------------------------------------------------------------------------


def team_overrides() -> dict[str, Any]:
    config, _ = stack_config("dev")
    kubeflow = json.loads(config["mlops-platform:kubeflow"])
    return {"kubeflow": {**kubeflow, "profiles": [PROFILE_A, PROFILE_B]}}


def sa_token(cluster: local_cluster.Cluster, namespace: str, account: str = PROFILE_SERVICE_ACCOUNT) -> str:
    return service_account_token(cluster, namespace, account)


@pytest.fixture(scope="module")
def plan(cluster, deployment) -> Iterator[Plan]:
    """The dev stack with two profiles, deployed by the real `pulumi up`; put back afterwards."""
    overrides = team_overrides()
    deployment.engine.write_stack_file(overrides)
    deployment.changed()
    try:
        deployment.engine.up()
        config, secret_keys = stack_config("dev")
        yield run_program("dev", config=with_overrides(config, overrides), secret_keys=secret_keys)
    finally:
        deployment.engine.write_stack_file({})
        deployment.changed()


@pytest.fixture(scope="module")
def server_image(cluster, tmp_path_factory) -> tuple[Any, dict[str, str]]:
    """What a pod of the server image running as the server's ServiceAccount has: the image's venv (its plugins) and,
    outside a pod, the in-cluster credentials the kubelet would mount, as a kubeconfig with a token of that account."""
    entrypoints = server_venv.ensure()
    config = kubeconfig(
        cluster, service_account_token(cluster, "mlflow", "mlflow"), "mlflow", tmp_path_factory.mktemp("server") / "kubeconfig"
    )
    return entrypoints, {"KUBECONFIG": str(config)}


@pytest.fixture(scope="module")
def notebooks(cluster, plan: Plan, plane, tmp_path_factory) -> dict[str, dict[str, Any]]:
    """In each profile a notebook (the PodDefault's env, its ServiceAccount's token) tracks, logs, registers and sets the alias.

    ``plane`` is the module's own data plane fixture: ``(DataPlane, tracking base URL)``.
    """
    data_plane, _ = plane
    results = {}
    for profile in (PROFILE_A, PROFILE_B):
        config = kubeconfig(cluster, sa_token(cluster, profile), profile, tmp_path_factory.mktemp(profile) / "kubeconfig")
        results[profile] = data_plane.notebook(plan, profile, MODEL[profile], ALIAS, EXPERIMENT[profile], kubeconfig=config)
    return results
