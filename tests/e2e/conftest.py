"""Fixtures for the loopback data plane: one bring-up per module, in the order a user meets it.

plan -> plane (PostgreSQL binaries, or the run fails naming the package) -> tracking_up (PostgreSQL, S3, bucket, migration,
MLflow) -> trained (notebook) -> serving_plan -> isvc -> model_dir -> predictor.
Each fixture is built on first use, so a single test can be run alone (``-k``), and
``plane`` stops every process it started whatever happens. No test leaves another
without what it needs, so any order works: ``tracking`` is whichever MLflow server runs
now (a test may restart it), and the test that stops everything gets a plane of its own.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.config import E2E_ALIAS, E2E_CHALLENGER, E2E_REGISTERED_MODEL, e2e_config, served_model
from tests.e2e.launch import NO_TELEMETRY, Server
from tests.e2e.meter import declared_limits
from tests.e2e.plane import DataPlane
from tests.e2e.postgres import postgres_bindir
from tests.e2e.prerequisites import require
from tools.testing.harness import ROOT, Plan, run_program

LOGS = ROOT / "build" / "e2e"
KEEP_RUNS = 5


@pytest.fixture(scope="module", autouse=True)
def no_telemetry() -> Iterator[None]:
    """The MLflow client in this process (registry resolution, assertions) sends no telemetry either."""
    saved = {k: os.environ.get(k) for k in NO_TELEMETRY}
    os.environ.update(NO_TELEMETRY)
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="module")
def plan() -> Plan:
    """Step 1: the dev stack as the program declares it (with the e2e overlay, see ``e2e_config``)."""
    config, secret_keys = e2e_config("dev")
    return run_program("dev", config=config, secret_keys=secret_keys)


@pytest.fixture(scope="module")
def plane() -> Iterator[DataPlane]:
    require("postgresql", postgres_bindir() is not None)
    # Logs of the last few runs are kept for reading after a failure (build/ is not committed).
    for old in sorted(LOGS.glob("run-*"))[:-KEEP_RUNS]:
        shutil.rmtree(old, ignore_errors=True)
    logs = LOGS / f"run-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    plane = DataPlane(logs)
    try:
        yield plane
    finally:
        plane.close()


@pytest.fixture(scope="module")
def tracking_up(plane: DataPlane, plan: Plan) -> Server:
    """Steps 2-3: PostgreSQL, S3 and its bucket, the declared migration, then the MLflow server."""
    return plane.bring_up_tracking(plan)


@pytest.fixture
def tracking(plane: DataPlane, plan: Plan, tracking_up: Server) -> Server:
    """The MLflow server running now: the one brought up, the one a restart put in its place, or a new start if a test stopped it."""
    for server in plane.servers:
        if server.workload is tracking_up.workload and server.port == tracking_up.port:
            return server
    return plane.start_deployment(plan, tracking_up.workload)


@pytest.fixture(scope="module")
def profile(plan: Plan) -> str:
    profiles = plan.outputs.get("kubeflowProfiles") or []
    assert profiles, "the dev stack declares no Kubeflow profile for a notebook to run in"
    return profiles[0]


@pytest.fixture(scope="module")
def trained(plane: DataPlane, plan: Plan, tracking_up: Server, profile: str) -> dict:
    """Step 4: a notebook in the profile trains, logs, registers and sets the alias."""
    return plane.notebook(plan, profile, E2E_REGISTERED_MODEL, E2E_ALIAS, experiment="e2e-diabetes")


@pytest.fixture(scope="module")
def registry_uri(plane: DataPlane, plan: Plan, tracking_up: Server) -> str:
    """The tracking URI as the deployer reaches it: the declared one, through the host mapping."""
    return plane.hosts.rewrite(plan.outputs["trackingUri"])


@pytest.fixture(scope="module")
def serving_plan(trained: dict, registry_uri: str) -> Plan:
    """Step 5: the program again, now resolving the alias against the running registry."""
    config, secret_keys = e2e_config("dev", registry_uri=registry_uri)
    return run_program("dev", config=config, secret_keys=secret_keys)


@pytest.fixture(scope="module")
def isvc(serving_plan: Plan):
    return served_model(serving_plan)


@pytest.fixture(scope="module")
def model_dir(plane: DataPlane, serving_plan: Plan, isvc) -> Path:
    return plane.download_model(serving_plan, isvc)


@pytest.fixture(scope="module")
def predictor(plane: DataPlane, isvc, model_dir: Path) -> Server:
    """Step 6: the predictor as KServe's selected runtime would run it."""
    return plane.start_predictor(isvc, model_dir)


@pytest.fixture(scope="module")
def challenger(plane: DataPlane, plan: Plan, trained: dict, profile: str) -> dict:
    """A second version of the same model, trained differently, that the notebook points ``challenger`` at."""
    return plane.notebook(plan, profile, E2E_REGISTERED_MODEL, E2E_CHALLENGER, experiment="e2e-challenger", alpha=0.01)


@pytest.fixture(scope="module")
def canary_plan(serving_plan: Plan, challenger: dict, registry_uri: str) -> Plan:
    """The program once more, with the challenger as a canary beside production (after ``serving_plan`` rolled production out)."""
    config, secret_keys = e2e_config("dev", registry_uri=registry_uri, canary=True)
    return run_program("dev", config=config, secret_keys=secret_keys)


@dataclass(frozen=True)
class LargeFile:
    path: Path
    size: int
    sha256: str


@pytest.fixture(scope="module")
def large_file(plane: DataPlane, tracking_up: Server) -> LargeFile:
    """Random bytes (incompressible), 64 MiB more than the server's declared scratch space; removed with the plane's directory."""
    size = declared_limits(tracking_up).scratch_bytes + 64 * 2**20
    path = plane.workdir / "weights.bin"
    digest = hashlib.sha256()
    with path.open("wb") as out:
        for _ in range(size // 2**20):
            block = os.urandom(2**20)
            digest.update(block)
            out.write(block)
    return LargeFile(path, size, digest.hexdigest())


@pytest.fixture
def own_plane(plane: DataPlane, plan: Plan, isvc, model_dir: Path) -> Iterator[DataPlane]:
    """A second data plane running a process of every kind (PostgreSQL, S3, MLflow and its workers, MLServer), for a test that stops it.

    Stopping the shared ``plane`` would leave every test after it without servers.
    """
    own = DataPlane(plane.logs / "own-plane")
    try:
        own.bring_up_tracking(plan)
        own.start_predictor(isvc, model_dir)
        yield own
    finally:
        own.close()
