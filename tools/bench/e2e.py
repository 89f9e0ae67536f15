"""Figures of the loopback data plane, from the same bring-up code as the e2e tests (no assertions).

Runs the dev stack's declared objects on 127.0.0.1 (see tests/e2e/plane.py) and
measures:

- MLflow: time to healthy (process start to the declared readiness probe answering),
  the migration, and the server's memory as configured (RSS and PSS of the whole
  process tree: the server and its workers), idle and after the notebook's traffic;
- time from "alias set" (the notebook's last call) to the first prediction: program
  run resolving the alias, KServe download, MLServer start, first v2 request;
- MLServer latency over N sequential v2 requests (p50, p99);
- MLflow restart to healthy.

Prints a table and writes build/bench/e2e.json (component logs in build/bench/e2e-logs/).
Timings on shared CPUs are noisy: the JSON records the load average at start and end.

Usage: .venv/bin/python -m tools.bench.e2e [--requests 200]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import time

from tests.e2e.config import E2E_ALIAS, E2E_REGISTERED_MODEL, e2e_config, served_model
from tests.e2e.declared import declared_name
from tests.e2e.launch import NO_TELEMETRY
from tests.e2e.plane import DataPlane
from tests.e2e.postgres import postgres_bindir
from tools.testing.harness import ROOT, run_program
from tools.testing.processes import memory_mb

OUT = ROOT / "build" / "bench" / "e2e.json"


def measure(requests: int) -> dict:
    if postgres_bindir() is None:
        raise SystemExit("PostgreSQL server binaries not found: install Debian's `postgresql`")
    figures: dict = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "loadavg_start": os.getloadavg()},
    }
    os.environ.update(NO_TELEMETRY)  # the MLflow client in this process, too
    logs = ROOT / "build" / "bench" / "e2e-logs"
    shutil.rmtree(logs, ignore_errors=True)
    plane = DataPlane(logs)
    try:
        config, secret_keys = e2e_config("dev")
        plan = run_program("dev", config=config, secret_keys=secret_keys)
        started = time.monotonic()
        tracking = plane.bring_up_tracking(plan)
        figures["tracking_bring_up_seconds"] = time.monotonic() - started
        figures["mlflow_migration_seconds"] = plane.timings["migrate"]
        figures["mlflow_pre_migration_dump_seconds"] = plane.timings["dump"] + plane.timings["upload"]
        figures["mlflow_seconds_to_healthy"] = tracking.seconds_to_ready
        figures["mlflow_memory_idle"] = memory_mb(tracking.service.process.pid)

        profile = plan.outputs["kubeflowProfiles"][0]
        started = time.monotonic()
        trained = plane.notebook(plan, profile, E2E_REGISTERED_MODEL, E2E_ALIAS, experiment="bench-diabetes")
        alias_set = time.monotonic()
        figures["notebook_seconds"] = alias_set - started
        figures["mlflow_memory_after_notebook"] = memory_mb(tracking.service.process.pid)

        steps: dict[str, float] = {}
        mark = time.monotonic()
        config, secret_keys = e2e_config("dev", registry_uri=plane.hosts.rewrite(plan.outputs["trackingUri"]))
        serving_plan = run_program("dev", config=config, secret_keys=secret_keys)
        isvc = served_model(serving_plan)
        model = declared_name(isvc)
        steps["program_resolves_alias_and_renders"] = time.monotonic() - mark
        mark = time.monotonic()
        model_dir = plane.download_model(serving_plan, isvc)
        steps["kserve_download"] = time.monotonic() - mark
        mark = time.monotonic()
        predictor = plane.start_predictor(isvc, model_dir)
        steps["mlserver_start_to_model_ready"] = time.monotonic() - mark
        mark = time.monotonic()
        plane.infer(predictor, model, trained["inputs"])
        first_prediction = time.monotonic()
        steps["first_request"] = first_prediction - mark
        figures["alias_set_to_first_prediction_seconds"] = first_prediction - alias_set
        figures["alias_set_to_first_prediction_steps"] = steps

        latencies = []
        for _ in range(requests):
            t = time.perf_counter()
            plane.infer(predictor, model, trained["inputs"])
            latencies.append((time.perf_counter() - t) * 1000)
        cuts = statistics.quantiles(latencies, n=100, method="inclusive")
        figures["mlserver_latency_ms"] = {
            "requests": requests,
            "rows_per_request": len(trained["predictions"]),
            "p50": statistics.median(latencies),
            "p99": cuts[98],
            "max": max(latencies),
        }
        figures["mlserver_seconds_to_ready"] = predictor.seconds_to_ready
        figures["mlserver_memory"] = memory_mb(predictor.service.process.pid)

        plane.stop_server(tracking)
        restarted = plane.start_deployment(plan, DataPlane.tracking_deployment(plan))
        figures["mlflow_restart_seconds_to_healthy"] = restarted.seconds_to_ready
    finally:
        figures["leftovers_after_stop"] = plane.stop()
        plane.close()
    figures["machine"]["loadavg_end"] = os.getloadavg()
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args(argv)
    figures = measure(args.requests)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(figures, indent=2) + "\n")
    lat = figures["mlserver_latency_ms"]
    rows = [
        ("MLflow time to healthy (start -> readiness probe 200)", f"{figures['mlflow_seconds_to_healthy']:.1f} s"),
        ("MLflow schema migration (migration Job)", f"{figures['mlflow_migration_seconds']:.1f} s"),
        ("pre-migration dump and upload (empty database)", f"{figures['mlflow_pre_migration_dump_seconds']:.1f} s"),
        (
            "MLflow RSS / PSS idle (server + workers)",
            "{rss_mb:.0f} / {pss_mb:.0f} MiB in {processes} processes".format(**figures["mlflow_memory_idle"]),
        ),
        ("MLflow RSS / PSS after the notebook", "{rss_mb:.0f} / {pss_mb:.0f} MiB".format(**figures["mlflow_memory_after_notebook"])),
        ("alias set -> first prediction", f"{figures['alias_set_to_first_prediction_seconds']:.1f} s"),
        *((f"  {k.replace('_', ' ')}", f"{v:.1f} s") for k, v in figures["alias_set_to_first_prediction_steps"].items()),
        (
            f"MLServer p50 / p99 over {lat['requests']} sequential requests ({lat['rows_per_request']} rows)",
            f"{lat['p50']:.1f} / {lat['p99']:.1f} ms",
        ),
        ("MLflow restart to healthy", f"{figures['mlflow_restart_seconds_to_healthy']:.1f} s"),
        ("processes or ports left after stop", str(len(figures["leftovers_after_stop"]))),
    ]
    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        print(f"{name.ljust(width)}  {value}")
    print(
        f"load average {figures['machine']['loadavg_start'][0]:.1f} -> {figures['machine']['loadavg_end'][0]:.1f} on "
        f"{figures['machine']['cpus']} CPUs; {OUT.relative_to(ROOT)}"
    )
    return 1 if figures["leftovers_after_stop"] else 0


if __name__ == "__main__":
    sys.exit(main())
