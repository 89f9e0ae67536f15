"""The real engine on a real API server: one embedded cluster for the session, stopped whatever happens.

Each test asks for the state it needs (``deployment.ensure_up()``, or a workspace of its
own with empty state), so any test can run alone and in any order.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tools import local_cluster
from tools.engine import EngineRun, LocalEngine
from tools.local_up import load_existing

ROOT = Path(__file__).resolve().parents[2]
DIRECTORY = ROOT / "build" / "cluster-tests"
# A profile namespace that exists in the cluster (Kubeflow made it) but not yet in the stack's config.
ADDED_PROFILE = "team-b"


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
