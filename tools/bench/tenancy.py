"""The cost of authorization, and of opening the dashboard's MLflow tab.

Not a test (timings are noisy on shared machines): `make bench` runs it as
``python -m tools.bench.tenancy``. It starts its own control plane, deploys the dev stack
with two profiles through the real engine (RBAC as declared), then measures p50/p99 of `runs/search`
and `log-batch`, sequential from one client, on the same PostgreSQL and S3:

- token mode: the tracking server as declared with workspaces (a ServiceAccount token; the plugin asks
  the API server by SelfSubjectAccessReview and caches each decision for ``MLFLOW_K8S_AUTH_CACHE_TTL_SECONDS``);
- header mode: the browser server as declared (an ID token from the Kubeflow front door's stand-in, verified
  by the pod's oauth2-proxy; the plugin asks by SubjectAccessReview for the token's user), proxy included;
- none: the tracking server with ``kubeflow.workspaces: false`` (no authorization app).

Then, in Chromium, the time from opening the tab's link to the experiment list rendered: cold (a new browser,
the first visit after the servers started) and warm (the same browser again).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tests.cluster.tenancy import Caller, kubeconfig, service_account_token
from tests.e2e.launch import NO_TELEMETRY
from tests.e2e.plane import DataPlane
from tools.dev.local_up import load_existing
from tools.local import cluster as local_cluster
from tools.local.engine import LocalEngine
from tools.testing import server_venv
from tools.testing.cluster_fixtures import profile_owner
from tools.testing.harness import run_program, stack_config, with_overrides

ROOT = Path(__file__).resolve().parents[2]
DIRECTORY = ROOT / "build" / "bench-tenancy"
PROFILE = "kubeflow-user-example-com"
OTHER = "team-b"
REQUESTS = 300
WARMUP = 20


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))]


def _measure(callers: dict[str, tuple[Caller, str | None]]) -> dict[str, dict[str, tuple[float, float]]]:
    """Each request kind against every server in turn, request by request: a load spike hits all of them alike."""
    runs = {}
    for label, (caller, workspace) in callers.items():
        status, body = caller.call("POST", "experiments/create", workspace, {"name": f"bench-{time.time_ns()}"})
        assert status == 200, (label, body)
        experiment = body["experiment_id"]
        status, body = caller.call("POST", "runs/create", workspace, {"experiment_id": experiment, "start_time": int(time.time() * 1000)})
        assert status == 200, (label, body)
        runs[label] = (experiment, body["run"]["info"]["run_id"])
    calls = {
        "runs/search": lambda i, e, r: ("POST", "runs/search", {"experiment_ids": [e], "max_results": 10}),
        "log-batch": lambda i, e, r: (
            "POST",
            "runs/log-batch",
            {"run_id": r, "metrics": [{"key": f"m{k}", "value": float(i), "timestamp": 0, "step": i} for k in range(5)]},
        ),
    }
    samples: dict[str, dict[str, list[float]]] = {label: {name: [] for name in calls} for label in callers}
    for name, request in calls.items():
        for i in range(WARMUP + REQUESTS):
            for label, (caller, workspace) in callers.items():
                method, path, payload = request(i, *runs[label])
                began = time.perf_counter()
                status, body = caller.call(method, path, workspace, payload)
                elapsed = (time.perf_counter() - began) * 1000
                assert status == 200, (label, name, status, body)
                if i >= WARMUP:
                    samples[label][name].append(elapsed)
    return {label: {name: _percentiles(values) for name, values in by_name.items()} for label, by_name in samples.items()}


def _serve(cluster: local_cluster.Cluster, plan: Any, logs: Path, entrypoints: Path, browser: bool) -> tuple[DataPlane, str]:
    plane = DataPlane(logs)
    config = kubeconfig(cluster, service_account_token(cluster, "mlflow", "mlflow"), "mlflow", plane.workdir / "kubeconfig")
    outside = {"KUBECONFIG": str(config)}
    server = plane.bring_up_tracking(plan, entrypoints=entrypoints, outside_env=outside)
    if browser:
        plane.expose_browser_server(plan)
        plane.start_kubeflow_gateway(plan, namespaces=[PROFILE, OTHER])
        plane.start_browser_server(plan, entrypoints=entrypoints, outside_env=outside)
    return plane, server.base + urlsplit(plan.outputs["trackingUri"]).path


def _id_token(plane: DataPlane, email: str) -> str:
    """An ID token from the front door's stand-in, as the gateway forwards it after the login."""
    from tests.cluster.tenancy import GatewayUser

    user = GatewayUser(plane.gateway.base, email).login()
    status, body, _ = user.get("/mlflow/health")
    assert status == 200, body
    sys.path.insert(0, str(ROOT / "tests" / "e2e"))
    import kubeflow_gateway

    gateway = kubeflow_gateway.Gateway(json.loads((plane.workdir / "kubeflow-gateway.json").read_text()))
    return gateway.id_token(email)


def _tab_seconds(plane: DataPlane, chromium: Any, experiment: str) -> float:
    """From opening the tab's link (already logged in) to the experiment list showing ``experiment``."""
    chromium.open(f"{plane.gateway.base}/?ns={PROFILE}")
    began = time.perf_counter()
    chromium.click_link("MLflow")
    chromium.enter_iframe()
    chromium.wait_for_text(experiment)
    return time.perf_counter() - began


def main() -> int:
    os.environ.update(NO_TELEMETRY)
    entrypoints = server_venv.ensure()
    local_cluster.stop(DIRECTORY)
    shutil.rmtree(DIRECTORY, ignore_errors=True)
    cluster = local_cluster.start(DIRECTORY)
    results: dict[str, dict[str, tuple[float, float]]] = {}
    try:
        load_existing(cluster, "dev", extra_profiles=(OTHER,))
        config, secret_keys = stack_config("dev")
        kubeflow = json.loads(config["mlops-platform:kubeflow"])
        overrides = {"kubeflow": {**kubeflow, "profiles": [PROFILE, OTHER]}}
        engine = LocalEngine("dev", DIRECTORY, overrides=overrides)
        engine.up()
        tab: dict[str, float] = {}
        planes = {}
        try:
            for label, workspaces in (("token mode", True), ("none", False)):
                plan = run_program(
                    "dev",
                    config=with_overrides(config, {"kubeflow": {**overrides["kubeflow"], "workspaces": workspaces}}),
                    secret_keys=secret_keys,
                )
                planes[label] = _serve(cluster, plan, DIRECTORY / "logs" / label.replace(" ", "-"), entrypoints, browser=workspaces)
            workspaces_plane, token_base = planes["token mode"]
            id_token = _id_token(workspaces_plane, profile_owner(PROFILE))
            callers = {
                "none": (Caller(planes["none"][1], None), None),
                "token mode": (Caller(token_base, service_account_token(cluster, PROFILE, "default-editor")), PROFILE),
                "header mode": (Caller(f"{workspaces_plane.browser_server.base}/mlflow", id_token), PROFILE),
            }
            results = _measure(callers)
            tab.update(_tabs(workspaces_plane))
        finally:
            for plane, _ in planes.values():
                plane.close()
    finally:
        local_cluster.stop(DIRECTORY)
    print(f"{REQUESTS} sequential requests each after {WARMUP} warm-up, one client, ms (load average {os.getloadavg()[0]:.1f})")
    print(f"{'':14} {'runs/search p50 / p99':>24} {'log-batch p50 / p99':>24}")
    for label in ("none", "token mode", "header mode"):
        figures = results[label]
        cells = [f"{figures[n][0]:.1f} / {figures[n][1]:.1f}" for n in ("runs/search", "log-batch")]
        print(f"{label:14} {cells[0]:>24} {cells[1]:>24}")
    for mode in ("token mode", "header mode"):
        for name in ("runs/search", "log-batch"):
            print(f"p50 overhead of {mode}, {name}: {results[mode][name][0] - results['none'][name][0]:+.1f} ms (goal <= 5 ms)")
    print(f"dashboard tab to experiment list rendered: cold {tab['cold']:.2f} s, warm {tab['warm']:.2f} s")
    return 0


def _tabs(plane: DataPlane) -> dict[str, float]:
    from tests.cluster.tenancy import GatewayUser
    from tests.e2e.chromium import Chromium

    owner = GatewayUser(plane.gateway.base, profile_owner(PROFILE)).login()
    status, body = owner.call("POST", "experiments/create", PROFILE, {"name": "tab-benchmark"})
    assert status == 200, body
    with Chromium(DIRECTORY / "shots") as chromium:
        chromium.login(plane.gateway.base, profile_owner(PROFILE))
        cold = _tab_seconds(plane, chromium, "tab-benchmark")
        warm = _tab_seconds(plane, chromium, "tab-benchmark")
    return {"cold": cold, "warm": warm}


if __name__ == "__main__":
    sys.exit(main())
