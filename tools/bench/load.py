"""Load on the declared tracking server, beside MLflow's own defaults and two replicas (no assertions).

Brings up the dev stack's declared objects on 127.0.0.1 (tests/e2e/plane.py: PostgreSQL, S3,
the migration, the server exactly as declared), seeds 10,000 runs and a registered model with an
alias once, then measures each variant in turn against the same database:

- ``declared``: the Deployment as the program declares it;
- ``pool-3+2``: the same with a smaller SQLAlchemy pool (3 + 2 per engine);
- ``mlflow-defaults``: the same, without what the program chooses (``--workers``, so MLflow's 4,
  and the SQLAlchemy pool env, so SQLAlchemy's 5 + 10 per engine); the job runner stays off in both;
- ``declared-x2``: ``tracking.replicas`` 2: two server processes behind a round-robin balancer on
  the Service's port, as kube-proxy spreads connections.

For each: ``log-batch`` (10 metrics per request, one run per client) at 1, 4 and 16 concurrent
clients; ``runs/search`` over the 10,000 runs (metric filter and order, 100 per page) at 1 and 4
clients; ``registered-models/alias`` at 4 clients. Every level is bounded in requests and seconds.
Also the peak of PostgreSQL connections and the server's memory. The load client runs in this
process on the same cores, and the load average is recorded with every level.

Prints a table and writes build/bench/load.json.

Usage: .venv/bin/python -m tools.bench.load [--requests 400] [--seconds 30]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from tests.e2e.config import e2e_config
from tests.e2e.declared import declared_name, mutated, workload_pod
from tests.e2e.launch import NO_TELEMETRY, Server
from tests.e2e.plane import DataPlane
from tests.e2e.postgres import postgres_bindir
from tools.testing.harness import ROOT, Plan, run_program, with_overrides
from tools.testing.processes import HOST, memory_mb

OUT = ROOT / "build" / "bench" / "load.json"
SEARCH_RUNS = 10_000
MODEL, ALIAS = "bench-model", "champion"
# A smaller pool than declared, to show what it costs.
SMALL_POOL = {"MLFLOW_SQLALCHEMYSTORE_POOL_SIZE": "3", "MLFLOW_SQLALCHEMYSTORE_MAX_OVERFLOW": "2"}


def variant_plans() -> dict[str, Plan]:
    config, secret_keys = e2e_config("dev")
    declared = run_program("dev", config=config, secret_keys=secret_keys)
    tracking = json.loads(config["mlops-platform:tracking"])
    doubled = run_program("dev", config=with_overrides(config, {"tracking": {**tracking, "replicas": 2}}), secret_keys=secret_keys)
    deployment = DataPlane.tracking_deployment(declared)

    def mlflow_defaults(obj: dict) -> None:
        container = obj["spec"]["template"]["spec"]["containers"][0]
        args = container["args"]
        i = args.index("--workers")
        del args[i : i + 2]
        container["env"] = [e for e in container["env"] if not e["name"].startswith("MLFLOW_SQLALCHEMYSTORE_")]

    def small_pool(obj: dict) -> None:
        for e in obj["spec"]["template"]["spec"]["containers"][0]["env"]:
            if e["name"] in SMALL_POOL:
                e["value"] = SMALL_POOL[e["name"]]

    name = declared_name(deployment)
    defaults = mutated(declared, "Deployment", name, deployment.k8s_namespace, mlflow_defaults)
    small = mutated(declared, "Deployment", name, deployment.k8s_namespace, small_pool)
    return {"declared": declared, "pool-3+2": small, "mlflow-defaults": defaults, "declared-x2": doubled}


class Client:
    """One keep-alive HTTP connection to the server, as one MLflow client process holds one."""

    def __init__(self, port: int, prefix: str):
        self.conn = http.client.HTTPConnection(HOST, port, timeout=60)
        self.prefix = prefix

    def call(self, method: str, path: str, body: dict | None = None) -> dict:
        payload = json.dumps(body).encode() if body is not None else None
        try:
            self.conn.request(method, self.prefix + path, body=payload, headers={"Content-Type": "application/json"})
            response = self.conn.getresponse()
        except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
            # uvicorn closes a connection idle for 5 s; a client reconnects, as requests' pool does.
            self.conn.close()
            self.conn.request(method, self.prefix + path, body=payload, headers={"Content-Type": "application/json"})
            response = self.conn.getresponse()
        data = response.read()
        if response.status != 200:
            raise RuntimeError(f"{method} {path}: HTTP {response.status}: {data[:200]!r}")
        return json.loads(data or b"{}")


def load(
    port: int,
    prefix: str,
    clients: int,
    requests: int,
    seconds: float,
    setup: Callable[[Client, int], Any],
    call: Callable[[Client, Any, int], None],
) -> dict:
    """``requests`` calls spread over ``clients`` threads, stopped after ``seconds``; throughput and latency percentiles."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    per_client = max(1, requests // clients)
    deadline = time.monotonic() + seconds
    contexts = []
    for n in range(clients):
        c = Client(port, prefix)
        contexts.append((c, setup(c, n)))
    barrier = threading.Barrier(clients + 1)

    def worker(client: Client, ctx: Any) -> None:
        mine = []
        barrier.wait()
        for i in range(per_client):
            if time.monotonic() > deadline:
                break
            t = time.perf_counter()
            try:
                call(client, ctx, i)
            except Exception as exc:  # recorded, not raised: the figure says how many failed
                with lock:
                    errors.append(str(exc)[:200])
                client.conn.close()
                continue
            mine.append((time.perf_counter() - t) * 1000)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker, args=ctx, daemon=True) for ctx in contexts]
    for t in threads:
        t.start()
    barrier.wait()
    started = time.perf_counter()
    for t in threads:
        t.join(timeout=seconds + 60)
    wall = time.perf_counter() - started
    for c, _ in contexts:
        c.conn.close()
    cuts = statistics.quantiles(latencies, n=100, method="inclusive") if len(latencies) > 1 else [0.0] * 99
    return {
        "clients": clients,
        "requests": len(latencies),
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
        "per_second": len(latencies) / wall if wall else 0.0,
        "p50_ms": statistics.median(latencies) if latencies else None,
        "p99_ms": cuts[98],
        "loadavg_1m": os.getloadavg()[0],
    }


def seed(plane: DataPlane, port: int, prefix: str) -> dict:
    """10,000 runs with a metric and a param each (written through MLflow's own SQLAlchemy models), a model version and its alias."""
    from mlflow.store.tracking.dbmodels.models import SqlLatestMetric, SqlMetric, SqlParam, SqlRun
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    c = Client(port, prefix)
    experiment_id = c.call("POST", "/api/2.0/mlflow/experiments/create", {"name": f"bench-search-{uuid.uuid4().hex[:6]}"})["experiment_id"]
    pg_port, creds = plane.postgres
    store = SqlAlchemyStore(f"postgresql+psycopg2://{creds.user}:{creds.password}@{HOST}:{pg_port}/{creds.database}", "s3://unused/bench")
    started = time.monotonic()
    now = int(time.time() * 1000)
    with store.ManagedSessionMaker() as session:
        for n in range(SEARCH_RUNS):
            run_id = uuid.uuid4().hex
            loss = (n * 7919 % SEARCH_RUNS) / SEARCH_RUNS
            session.add(
                SqlRun(
                    run_uuid=run_id,
                    name=f"run-{n}",
                    source_type="LOCAL",
                    source_name="bench",
                    entry_point_name="",
                    user_id="bench",
                    status="FINISHED",
                    start_time=now - n,
                    end_time=now - n + 1,
                    source_version="",
                    lifecycle_stage="active",
                    artifact_uri=f"mlflow-artifacts:/{experiment_id}/{run_id}/artifacts",
                    experiment_id=int(experiment_id),
                )
            )
            session.add(SqlMetric(run_uuid=run_id, key="loss", value=loss, timestamp=now, step=0, is_nan=False))
            session.add(SqlLatestMetric(run_uuid=run_id, key="loss", value=loss, timestamp=now, step=0, is_nan=False))
            session.add(SqlParam(run_uuid=run_id, key="alpha", value=str(n % 10)))
    seeded = time.monotonic() - started
    run = c.call("POST", "/api/2.0/mlflow/runs/create", {"experiment_id": experiment_id})["run"]["info"]
    c.call("POST", "/api/2.0/mlflow/registered-models/create", {"name": MODEL})
    source = {"name": MODEL, "source": f"{run['artifact_uri']}/model", "run_id": run["run_id"]}
    version = c.call("POST", "/api/2.0/mlflow/model-versions/create", source)["model_version"]["version"]
    c.call("POST", "/api/2.0/mlflow/registered-models/alias", {"name": MODEL, "alias": ALIAS, "version": version})
    c.conn.close()
    return {"experiment_id": experiment_id, "runs": SEARCH_RUNS, "seed_seconds": seeded}


def pg_connections(plane: DataPlane) -> int:
    port, creds = plane.postgres
    conn = plane._pg_connect(port, creds, "postgres")
    try:
        cur = conn.cursor()
        cur.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (creds.database,))
        return int(cur.fetchone()[0]) - 0
    finally:
        conn.close()


def measure_variant(plane: DataPlane, plan: Plan, seeded: dict, requests: int, seconds: float) -> dict:
    deployment = DataPlane.tracking_deployment(plan)
    server = plane.start_deployment(plan, deployment)
    prefix = urlsplit(plan.outputs["trackingUri"]).path.rstrip("/")
    container = workload_pod(deployment)["containers"][0]
    figures: dict = {
        "pods": len(server.processes),
        "args_workers": container["args"][container["args"].index("--workers") + 1]
        if "--workers" in container["args"]
        else "MLflow default",
        "pool_env": {e["name"]: e.get("value") for e in container.get("env") or [] if e["name"].startswith("MLFLOW_SQLALCHEMYSTORE_")},
        "seconds_to_ready": server.seconds_to_ready,
    }
    peak = {"connections": 0}
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(0.5):
            peak["connections"] = max(peak["connections"], pg_connections(plane))

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:

        def new_run(c: Client, n: int) -> str:
            return c.call("POST", "/api/2.0/mlflow/runs/create", {"experiment_id": seeded["experiment_id"]})["run"]["info"]["run_id"]

        def log_batch(c: Client, run_id: str, i: int) -> None:
            ts = int(time.time() * 1000)
            metrics = [{"key": f"m{k}", "value": i * 0.1 + k, "timestamp": ts, "step": i} for k in range(10)]
            c.call("POST", "/api/2.0/mlflow/runs/log-batch", {"run_id": run_id, "metrics": metrics})

        def search(c: Client, _: Any, i: int) -> None:
            body = {
                "experiment_ids": [seeded["experiment_id"]],
                "filter": f"metrics.loss < {0.2 + (i % 5) * 0.1:.1f} and params.alpha = '{i % 10}'",
                "order_by": ["metrics.loss ASC"],
                "max_results": 100,
            }
            c.call("POST", "/api/2.0/mlflow/runs/search", body)

        def by_alias(c: Client, _: Any, i: int) -> None:
            c.call("GET", f"/api/2.0/mlflow/registered-models/alias?name={MODEL}&alias={ALIAS}")

        load(server.port, prefix, 4, 40, seconds, new_run, log_batch)  # warm-up: workers import lazily
        figures["log_batch"] = [load(server.port, prefix, n, requests, seconds, new_run, log_batch) for n in (1, 4, 16)]
        figures["search"] = [load(server.port, prefix, n, max(20, requests // 10), seconds, lambda c, n: None, search) for n in (1, 4)]
        figures["get_by_alias"] = [load(server.port, prefix, 4, requests, seconds, lambda c, n: None, by_alias)]
        figures["memory_after"] = {
            "rss_mb": sum(memory_mb(p.service.process.pid)["rss_mb"] for p in server.processes),
            "pss_mb": sum(memory_mb(p.service.process.pid)["pss_mb"] for p in server.processes),
        }
    finally:
        stop.set()
        watcher.join(timeout=5)
        figures["peak_pg_connections"] = peak["connections"]
        plane.stop_server(server)
    return figures


def measure(requests: int, seconds: float) -> dict:
    if postgres_bindir() is None:
        raise SystemExit("PostgreSQL server binaries not found: install Debian's `postgresql`")
    os.environ.update(NO_TELEMETRY)
    figures: dict = {"machine": {"cpus": os.cpu_count(), "loadavg_start": os.getloadavg()}, "requests_per_level": requests}
    logs = ROOT / "build" / "bench" / "load-logs"
    shutil.rmtree(logs, ignore_errors=True)
    plane = DataPlane(logs)
    try:
        plans = variant_plans()
        first: Server = plane.bring_up_tracking(plans["declared"])
        prefix = urlsplit(plans["declared"].outputs["trackingUri"]).path.rstrip("/")
        seeded = seed(plane, first.port, prefix)
        figures["seed"] = seeded
        plane.stop_server(first)
        figures["variants"] = {name: measure_variant(plane, plan, seeded, requests, seconds) for name, plan in plans.items()}
    finally:
        figures["leftovers_after_stop"] = plane.stop()
        plane.close()
    figures["machine"]["loadavg_end"] = os.getloadavg()
    return figures


def table(figures: dict) -> list[str]:
    variants = figures["variants"]
    names = list(variants)
    rows = [("", *names)]
    rows.append(("pods x workers", *(f"{v['pods']} x {v['args_workers']}" for v in variants.values())))

    def cell(f: dict) -> str:
        err = f" ({f['errors']} errors)" if f["errors"] else ""
        return f"{f['per_second']:.0f}/s, p50 {f['p50_ms']:.0f} / p99 {f['p99_ms']:.0f} ms{err}"

    for i, n in enumerate((1, 4, 16)):
        rows.append((f"log-batch, {n} clients", *(cell(v["log_batch"][i]) for v in variants.values())))
    for i, n in enumerate((1, 4)):
        rows.append((f"runs/search over {figures['seed']['runs']:,} runs, {n} clients", *(cell(v["search"][i]) for v in variants.values())))
    rows.append(("get-by-alias, 4 clients", *(cell(v["get_by_alias"][0]) for v in variants.values())))
    rows.append(("peak PostgreSQL connections", *(str(v["peak_pg_connections"]) for v in variants.values())))
    rows.append(("server RSS after (MiB)", *(f"{v['memory_after']['rss_mb']:.0f}" for v in variants.values())))
    rows.append(("load average (1 min) at 16 clients", *(f"{v['log_batch'][2]['loadavg_1m']:.1f}" for v in variants.values())))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return (
        ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in rows[:1]]
        + ["|" + "|".join("-" * (w + 2) for w in widths) + "|"]
        + ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in rows[1:]]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400, help="requests per level (split over its clients)")
    parser.add_argument("--seconds", type=float, default=30, help="longest a level may run")
    args = parser.parse_args(argv)
    figures = measure(args.requests, args.seconds)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(figures, indent=2) + "\n")
    print("\n".join(table(figures)))
    m = figures["machine"]
    print(f"load average {m['loadavg_start'][0]:.1f} -> {m['loadavg_end'][0]:.1f} on {m['cpus']} CPUs; {OUT.relative_to(ROOT)}")
    return 1 if figures["leftovers_after_stop"] else 0


if __name__ == "__main__":
    sys.exit(main())
