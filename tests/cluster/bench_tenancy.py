"""The cost of authorization: p50/p99 of `runs/search` and `log-batch` with and without the Kubernetes authorization app.

Not a test (timings are noisy on shared machines): `make bench` runs it as
``python -m tests.cluster.bench_tenancy``. It starts its own control plane, deploys the dev stack
with two profiles through the real engine (RBAC as declared), then runs the MLflow server twice
from the image's virtualenv on the same PostgreSQL and S3: as declared with workspaces (every
request carries a ServiceAccount token; the plugin asks the API server by SelfSubjectAccessReview
and caches each decision for ``MLFLOW_K8S_AUTH_CACHE_TTL_SECONDS``), and with
``kubeflow.workspaces: false`` (no authorization app). Requests are sequential from one client.
"""

from __future__ import annotations

import json
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
from tools import local_cluster, server_venv
from tools.engine import LocalEngine
from tools.harness import run_program, stack_config, with_overrides
from tools.local_up import load_existing

ROOT = Path(__file__).resolve().parents[2]
DIRECTORY = ROOT / "build" / "bench-tenancy"
PROFILE = "kubeflow-user-example-com"
OTHER = "team-b"
REQUESTS = 300
WARMUP = 20


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))]


def _measure(caller: Caller, workspace: str | None) -> dict[str, tuple[float, float]]:
    status, body = caller.call("POST", "experiments/create", workspace, {"name": f"bench-{time.time_ns()}"})
    assert status == 200, body
    experiment = body["experiment_id"]
    status, body = caller.call("POST", "runs/create", workspace, {"experiment_id": experiment, "start_time": int(time.time() * 1000)})
    assert status == 200, body
    run_id = body["run"]["info"]["run_id"]
    calls = {
        "runs/search": lambda i: ("POST", "runs/search", {"experiment_ids": [experiment], "max_results": 10}),
        "log-batch": lambda i: (
            "POST",
            "runs/log-batch",
            {"run_id": run_id, "metrics": [{"key": f"m{k}", "value": float(i), "timestamp": 0, "step": i} for k in range(5)]},
        ),
    }
    out = {}
    for name, request in calls.items():
        samples = []
        for i in range(WARMUP + REQUESTS):
            method, path, payload = request(i)
            began = time.perf_counter()
            status, body = caller.call(method, path, workspace, payload)
            elapsed = (time.perf_counter() - began) * 1000
            assert status == 200, (name, status, body)
            if i >= WARMUP:
                samples.append(elapsed)
        out[name] = _percentiles(samples)
    return out


def _serve(cluster: local_cluster.Cluster, plan: Any, logs: Path, entrypoints: Path) -> tuple[DataPlane, str]:
    plane = DataPlane(logs)
    config = kubeconfig(cluster, service_account_token(cluster, "mlflow", "mlflow"), "mlflow", plane.workdir / "kubeconfig")
    server = plane.bring_up_tracking(plan, entrypoints=entrypoints, outside_env={"KUBECONFIG": str(config)})
    return plane, server.base + urlsplit(plan.outputs["trackingUri"]).path


def main() -> int:
    import os

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
        for label, workspaces in (("with the authorization app", True), ("without", False)):
            plan = run_program(
                "dev",
                config=with_overrides(config, {"kubeflow": {**overrides["kubeflow"], "workspaces": workspaces}}),
                secret_keys=secret_keys,
            )
            plane, base = _serve(cluster, plan, DIRECTORY / "logs" / label.replace(" ", "-"), entrypoints)
            try:
                token = service_account_token(cluster, PROFILE, "default-editor") if workspaces else None
                results[label] = _measure(Caller(base, token), PROFILE if workspaces else None)
            finally:
                plane.close()
    finally:
        local_cluster.stop(DIRECTORY)
    print(f"{REQUESTS} sequential requests each after {WARMUP} warm-up, one client, ms")
    print(f"{'':28} {'runs/search p50 / p99':>24} {'log-batch p50 / p99':>24}")
    for label, figures in results.items():
        cells = [f"{figures[n][0]:.1f} / {figures[n][1]:.1f}" for n in ("runs/search", "log-batch")]
        print(f"{label:28} {cells[0]:>24} {cells[1]:>24}")
    with_auth, without = results["with the authorization app"], results["without"]
    for name in ("runs/search", "log-batch"):
        print(f"p50 overhead {name}: {with_auth[name][0] - without[name][0]:+.1f} ms (goal <= 5 ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
