"""Credential rotation end to end on 127.0.0.1: the database login and basic-auth's admin, with two server pods serving.

The stack is dev in prod's shape (``tracking.externalHost``, basic-auth, no Kubeflow) with ``tracking.replicas: 2``.
Each rotation runs what one `pulumi up` of the new generation runs, in the engine's order (database/rotation.py):
the rotation Job (its "login in use" read from the Secret as it was before the up, as the kubelet reads it at pod
start), the migration Job when its declaration changed, the admin Job, then a rolling update of the server (a new
pod ready, then an old one out of the Service and stopped: maxSurge 1, maxUnavailable 0), then the retirement Job.
A client keeps calling the Service all along.

What is asserted: at every step both the old and the new login open new connections (an old pod can always
reconnect), no client call fails, the old login and the old admin password are refused afterwards and the new
ones work, and the runs and registered models are the same. MinIO is not run here (no binary is obtainable):
its key rotation is asserted on the renders (tests/tracking/test_rotation.py) and on the real engine
(tests/cluster/test_rotation.py), not against MinIO itself.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.e2e import history
from tests.e2e.declared import mounted_file, mutated, resolve_env
from tests.e2e.errors import DataPlaneError
from tests.e2e.launch import Server
from tests.e2e.plane import DataPlane
from tools.testing import server_venv
from tools.testing.harness import Plan, run_program, stack_config, with_overrides
from tools.testing.processes import HOST

EXTERNAL_HOST = "mlflow.example.com"
SERVICE = "mlflow.mlflow.svc.cluster.local:5000"
LOADER = ("loader", "a-loader-password-that-never-rotates")


def rotated(database: int = 0, admin: int = 0) -> Plan:
    config, secret_keys = stack_config("dev")
    overrides: dict[str, Any] = {
        "tracking": {"externalHost": EXTERNAL_HOST, "replicas": 2},
        "kubeflow": {"enabled": False},
        "serving": {"enabled": False},
        "monitoring": {"enabled": False},
    }
    generations = {k: v for k, v in (("database", database), ("trackingAdmin", admin)) if v}
    if generations:
        overrides["rotation"] = generations
    return run_program("dev", config=with_overrides(config, overrides), secret_keys=secret_keys)


def job(plan: Plan, name: str) -> Any:
    (found,) = [r for r in plan.kinds("Job") if r.name == name]
    return found


def as_the_cluster_holds_it(new: Plan, before: Plan, secret: str) -> Plan:
    """``new`` with Secret ``secret`` as it was before the up (or absent): what a pod starting before its update reads."""
    kept = [r for r in new.resources if not (r.kind == "Secret" and r.k8s_name == secret)]
    kept += [r for r in before.resources if r.kind == "Secret" and r.k8s_name == secret]
    return Plan(stack=new.stack, resources=kept, outputs=dict(new.outputs), secret_outputs=set(new.secret_outputs))


@dataclass(frozen=True)
class DbLogin:
    user: str
    password: str


def server_login(plan: Plan) -> DbLogin:
    """The login the server's pods of ``plan`` connect with (from the URI its env resolves to)."""
    deployment = DataPlane.tracking_deployment(plan)
    uri = urlsplit(resolve_env(plan, "mlflow", deployment.pod_spec()["containers"][0], "mlflow")["MLFLOW_BACKEND_STORE_URI"])
    assert uri.username and uri.password
    return DbLogin(uri.username, uri.password)


def logs_in(plane: DataPlane, login: DbLogin) -> bool:
    import psycopg2

    port, creds = plane.postgres
    try:
        psycopg2.connect(host=HOST, port=port, user=login.user, password=login.password, dbname=creds.database, connect_timeout=5).close()
    except psycopg2.OperationalError as error:
        assert "authentication failed" in str(error), error
        return False
    return True


def call(base: str, method: str, path: str, credentials: tuple[str, str], body: dict | None = None, api: str = "2.0") -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"{base}/mlflow/api/{api}/mlflow/{path}", data=data, method=method)
    request.add_header("Content-Type", "application/json")
    request.add_header("Authorization", "Basic " + base64.b64encode(":".join(credentials).encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, {}


@dataclass
class Service:
    """The tracking Service as kube-proxy keeps it: round robin over the pods in its endpoints now.

    ``drain`` takes a pod out of the endpoints, then waits for the calls already sent to it: a pod leaving a
    rollout finishes its in-flight requests (uvicorn's graceful shutdown) before it stops.
    """

    pods: list[Server] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    turn: int = 0
    in_flight: dict[str, int] = field(default_factory=dict)

    def pick(self) -> str:
        with self.lock:
            self.turn += 1
            base = self.pods[self.turn % len(self.pods)].base
            self.in_flight[base] = self.in_flight.get(base, 0) + 1
            return base

    def done(self, base: str) -> None:
        with self.lock:
            self.in_flight[base] -= 1

    def replace(self, old: Server, new: Server, timeout: float = 60) -> None:
        """``new`` joins the endpoints (it is ready), ``old`` leaves them; returns once no call is in flight to ``old``."""
        with self.lock:
            self.pods = [p for p in self.pods if p is not old] + [new]
        deadline = time.monotonic() + timeout
        while self.in_flight.get(old.base, 0) and time.monotonic() < deadline:
            time.sleep(0.05)


@dataclass
class Load:
    """Clients logging metrics and searching runs through the Service, counting every answer."""

    service: Service
    run_id: str
    experiment_id: str
    calls: int = 0
    failures: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)

    def start(self, clients: int = 2) -> None:
        for _ in range(clients):
            thread = threading.Thread(target=self._loop, daemon=True)
            thread.start()
            self.threads.append(thread)

    def _loop(self) -> None:
        step = 0
        while not self.stop.is_set():
            base = self.service.pick()
            step += 1
            for method, path, body in (
                ("POST", "runs/log-metric", {"run_id": self.run_id, "key": "load", "value": step, "timestamp": 0, "step": step}),
                ("POST", "runs/search", {"experiment_ids": [self.experiment_id], "max_results": 5}),
            ):
                try:
                    status, _ = call(base, method, path, LOADER, body)
                except OSError as error:
                    status, _ = -1, str(error)
                self.calls += 1
                if status != 200:
                    self.failures.append(f"{path} on {base}: {status}")
            self.service.done(base)
            # A steady trickle: the two shared cores must still start the new pods.
            time.sleep(0.1)

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)


@dataclass
class Tracking:
    """The server's pods and everything a rotation checks against."""

    plane: DataPlane
    plan: Plan
    service: Service
    admin: tuple[str, str]
    history: dict = field(default_factory=dict)
    load: Load | None = None
    generation: int = 0
    started: int = 0

    def start_pod(self, plan: Plan) -> Server:
        """One pod of ``plan``'s Deployment on a port of its own, with the config file its Secret mounts."""
        single = mutated(plan, "Deployment", "mlflow", "mlflow", lambda inputs: inputs["spec"].__setitem__("replicas", 1))
        deployment = DataPlane.tracking_deployment(single)
        container = deployment.pod_spec()["containers"][0]
        path = resolve_env(single, "mlflow", container, "mlflow")["MLFLOW_AUTH_CONFIG_PATH"]
        self.started += 1
        local = self.plane.workdir / f"auth-{self.started}" / Path(path).name
        local.parent.mkdir()
        local.write_text(self.plane.hosts.rewrite(mounted_file(single, deployment, container, path, "mlflow")))
        local.chmod(0o600)
        return self.plane.start_deployment(
            single,
            deployment,
            component=f"mlflow-pod-{self.started}",
            hosts=self.plane.hosts.without(SERVICE),
            entrypoints=server_venv.ensure(),
            outside_env={"MLFLOW_AUTH_CONFIG_PATH": str(local)},
        )

    def snapshot(self, base: str, monkeypatch) -> dict:
        from mlflow import MlflowClient

        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", self.admin[0])
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", self.admin[1])
        uri = f"{base}/mlflow"
        found = history.snapshot(MlflowClient(tracking_uri=uri, registry_uri=uri))
        # The load's own run grows while it runs; the history is everything else.
        return {**found, "runs": {k: v for k, v in found["runs"].items() if self.load is None or k != self.load.run_id}}


@pytest.fixture(scope="module")
def tracking(plane: DataPlane) -> Iterator[Tracking]:
    """Generation 0 serving on two pods, a history written as admin, a non-admin client loading it."""
    from mlflow import MlflowClient

    plan = rotated()
    entrypoints = server_venv.ensure()
    deployment = plane.tracking_deployment(plan)
    env = resolve_env(plan, "mlflow", deployment.pod_spec()["containers"][0], "mlflow")
    plane.start_postgres(plan, env["MLFLOW_BACKEND_STORE_URI"])
    plane.start_s3(plan, env["MLFLOW_S3_ENDPOINT_URL"])
    plane.bootstrap_buckets(plan)
    plane.run_migration(plan, entrypoints=entrypoints)
    holder = Tracking(plane, plan, Service(), ("admin", plan.outputs["trackingAdminPassword"]))
    holder.service.pods = [holder.start_pod(plan), holder.start_pod(plan)]
    base = holder.service.pods[0].base
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_USERNAME", holder.admin[0])
        patch.setenv("MLFLOW_TRACKING_PASSWORD", holder.admin[1])
        client = MlflowClient(tracking_uri=f"{base}/mlflow", registry_uri=f"{base}/mlflow")
        history.fill(client)
        experiment_id = client.create_experiment("load")
        assert call(base, "POST", "users/create", holder.admin, {"username": LOADER[0], "password": LOADER[1]})[0] == 200
        status, _ = call(
            base,
            "POST",
            "users/permissions/grant",
            holder.admin,
            {"username": LOADER[0], "resource_type": "experiment", "resource_id": experiment_id, "permission": "EDIT"},
            api="3.0",
        )
        assert status == 200
        status, created = call(base, "POST", "runs/create", LOADER, {"experiment_id": experiment_id})
        assert status == 200
        holder.load = Load(holder.service, created["run"]["info"]["run_id"], experiment_id)
        holder.history = holder.snapshot(base, patch)
    holder.load.start()
    try:
        yield holder
    finally:
        holder.load.finish()


def rotate_to(tracking: Tracking, new: Plan) -> tuple[DbLogin, DbLogin]:
    """One `pulumi up` of a new generation, step by step, checking after each that every pod, old or new, can connect.

    Returns the old and the new login.
    """
    plane, before = tracking.plane, tracking.plan
    old, fresh = server_login(before), server_login(new)
    assert old.user != fresh.user, "the new generation logs in as the other role"
    plane.run_job(as_the_cluster_holds_it(new, before, "mlflow-db-login"), job(new, "mlflow-db-rotate"))
    assert logs_in(plane, old), "after the rotation Job, the login in use still opens connections (old pods reconnect)"
    assert logs_in(plane, fresh), "after the rotation Job, the new login opens connections"
    entrypoints = server_venv.ensure()
    if job(new, "mlflow-migrate").inputs != job(before, "mlflow-migrate").inputs:
        # The engine replaces a Job whose declaration changed (the first rotation changes where it logs in): it runs again.
        plane.run_job(new, job(new, "mlflow-migrate"), entrypoints=entrypoints)
    if any(r.name == "mlflow-admin-password" for r in new.kinds("Job")):
        plane.run_job(new, job(new, "mlflow-admin-password"), entrypoints=entrypoints)
    for number, old_pod in enumerate(list(tracking.service.pods), 1):
        tracking.service.replace(old_pod, tracking.start_pod(new))
        plane.stop_server(old_pod)
        assert logs_in(plane, old) and logs_in(plane, fresh), f"after {number} of 2 pods rolled, both logins still open connections"
    plane.run_job(new, job(new, "mlflow-db-retire"))
    assert not logs_in(plane, old), "once every pod rolled, the old login is refused"
    assert logs_in(plane, fresh), "once every pod rolled, the new login works"
    tracking.plan = new
    tracking.generation += 1
    return old, fresh


def rotate_next(tracking: Tracking) -> tuple[tuple[DbLogin, DbLogin], tuple[str, str]]:
    """The next generation of both the database login and the admin password; returns the old and new logins, and the old admin."""
    admin_before = tracking.admin
    new = rotated(database=tracking.generation + 1, admin=tracking.generation + 1)
    tracking.admin = ("admin", new.outputs["trackingAdminPassword"])
    assert tracking.admin != admin_before
    return rotate_to(tracking, new), admin_before


def assert_served_as_before(tracking: Tracking, admin_before: tuple[str, str], monkeypatch) -> None:
    base = tracking.service.pick()
    tracking.service.done(base)
    assert tracking.snapshot(base, monkeypatch) == tracking.history, "runs and registered models are unchanged"
    assert call(base, "POST", "experiments/search", admin_before, {"max_results": 1})[0] == 401, "the old admin password is refused"
    assert call(base, "POST", "experiments/search", tracking.admin, {"max_results": 1})[0] == 200, "the new admin password works"
    assert tracking.load is not None and tracking.load.calls > 0
    assert tracking.load.failures == [], f"client calls failed during the rotation: {tracking.load.failures[:5]}"


def test_rotating_the_database_login_and_the_admin_password_cuts_no_client(tracking: Tracking, monkeypatch):
    """Generation 1: the second login takes over from the owner's initdb password, which is then refused."""
    if tracking.generation != 0:
        pytest.skip("the module's server has rotated already")
    calls_before = tracking.load.calls if tracking.load else 0
    (old, new), admin_before = rotate_next(tracking)
    assert (old.user, new.user) == ("mlflow", "mlflow_b")
    assert_served_as_before(tracking, admin_before, monkeypatch)
    assert tracking.load is not None and tracking.load.calls > calls_before


def test_the_next_generation_gives_the_owner_a_new_password_and_retires_the_second_login(tracking: Tracking, monkeypatch):
    while tracking.generation < 1:
        rotate_next(tracking)
    (old, new), admin_before = rotate_next(tracking)
    assert (old.user, new.user) == ("mlflow_b", "mlflow")
    assert_served_as_before(tracking, admin_before, monkeypatch)


def test_a_jump_of_two_generations_is_refused_before_anything_changes(tracking: Tracking):
    """Generation g + 2 would give the login in use a new password under the running pods: the Job refuses, nothing changes."""
    current, generation = tracking.plan, tracking.generation
    jump = rotated(database=generation + 2)
    in_use = server_login(current)
    with pytest.raises(DataPlaneError) as refused:
        tracking.plane.run_job(as_the_cluster_holds_it(jump, current, "mlflow-db-login"), job(jump, "mlflow-db-rotate"))
    assert "would change the password of" in str(refused.value)
    assert f"allowed: generation {generation + 1}" in str(refused.value)
    assert logs_in(tracking.plane, in_use)
    assert tracking.load.failures == []
