"""Plan time with 1, 10 and 100 served models, against a real MLflow registry on 127.0.0.1.

Not a test: prints the figures docs/serving.md quotes and writes build/bench/serving.json.
For each size it measures, against the same stack with pinned ``storageUri`` models:

- ``make plan`` wall time in a fresh interpreter (what a user or CI waits for);
- resolution alone, in-process: seconds, REST requests and MlflowClient instances.

The registry is a throwaway ``mlflow server`` (SQLite) holding ``SIZES[-1]``
registered models, each with one version aliased ``production``.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from mlops_platform.config import parse_config
from tools.harness import stack_config
from tools.processes import HOST, free_port, running

ROOT = Path(__file__).resolve().parent.parent

SIZES = (1, 10, 100)
RUNS = 3
ROOT_URI = "s3://mlflow-artifacts/dev"


def models(count: int, pinned: bool) -> list[dict]:
    def source(i: int) -> dict:
        if pinned:
            return {"storageUri": f"{ROOT_URI}/1/models/m-{i:03d}/artifacts"}
        return {"registeredModel": f"bench-{i:03d}", "alias": "production"}

    return [{"name": f"model-{i:03d}", "namespace": f"team-{i % 5}", **source(i)} for i in range(count)]


def serving(uri: str, count: int, pinned: bool) -> dict:
    return {"enabled": True, "mlflowTrackingUri": uri, "models": models(count, pinned)}


def register(uri: str, count: int) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(uri, registry_uri=uri)
    for i in range(count):
        name = f"bench-{i:03d}"
        client.create_registered_model(name)
        version = client.create_model_version(name, f"{ROOT_URI}/1/models/m-{i:03d}/artifacts")
        client.set_registered_model_alias(name, "production", version.version)


def plan_seconds(work: Path, stack: str, config: dict) -> float:
    """Median wall time of `tools/plan.py` for a stack file holding ``config`` as its serving key."""
    document = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())
    document["config"]["mlops-platform:serving"] = config
    (work / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump(document))
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-m", "tools.plan", "--stack", stack, "--stack-dir", str(work), "--out", str(work / "build")],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=600,
        )
        times.append(time.perf_counter() - start)
        if result.returncode != 0:
            raise SystemExit(f"plan for {stack} failed: {result.stderr.strip()}")
    return statistics.median(times)


def resolution(uri: str, count: int) -> dict:
    """Resolution alone, in-process and warm: seconds, REST requests, MlflowClient instances."""
    import mlflow
    from mlflow.utils import rest_utils

    from mlops_platform.serving.registry import resolve_models

    raw, _ = stack_config("dev")
    raw["mlops-platform:serving"] = json.dumps(serving(uri, count, pinned=False))
    config = parse_config("dev", raw)
    counts = {"requests": 0, "clients": 0}
    http_request, client_class = rest_utils.http_request, mlflow.MlflowClient

    def counted_request(*args, **kwargs):
        counts["requests"] += 1
        return http_request(*args, **kwargs)

    class CountedClient(client_class):
        def __init__(self, *args, **kwargs):
            counts["clients"] += 1
            super().__init__(*args, **kwargs)

    rest_utils.http_request, mlflow.MlflowClient = counted_request, CountedClient
    try:
        start = time.perf_counter()
        resolved = resolve_models(config)
        seconds = time.perf_counter() - start
    finally:
        rest_utils.http_request, mlflow.MlflowClient = http_request, client_class
    assert len(resolved) == count and all(m.version == "1" for m in resolved)
    return {"resolve_s": round(seconds, 3), "requests": counts["requests"], "clients": counts["clients"]}


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    shutil.copy(ROOT / "Pulumi.yaml", work / "Pulumi.yaml")
    port = free_port()
    uri = f"http://{HOST}:{port}"
    argv = [
        str(Path(sys.executable).parent / "mlflow"),
        "server",
        "--host",
        HOST,
        "--port",
        str(port),
        "--workers",
        "1",
        "--backend-store-uri",
        f"sqlite:///{work / 'mlflow.db'}",
        "--serve-artifacts",
        "--artifacts-destination",
        ROOT_URI,
    ]
    figures = []
    try:
        with running(
            "mlflow",
            argv,
            health_url=f"{uri}/health",
            log_dir=work,
            timeout=120,
            cwd=work,
            env={"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
        ):
            register(uri, SIZES[-1])
            for count in SIZES:
                figures.append(
                    {
                        "models": count,
                        "plan_pinned_s": round(plan_seconds(work, f"pinned-{count}", serving(uri, count, pinned=True)), 2),
                        "plan_alias_s": round(plan_seconds(work, f"alias-{count}", serving(uri, count, pinned=False)), 2),
                        **resolution(uri, count),
                    }
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out = ROOT / "build" / "bench"
    out.mkdir(parents=True, exist_ok=True)
    (out / "serving.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(f"{'models':>6}  {'plan, pinned':>12}  {'plan, alias':>11}  {'resolution':>10}  {'requests':>8}  {'clients':>7}")
    for f in figures:
        print(
            f"{f['models']:>6}  {f['plan_pinned_s']:>10.2f} s  {f['plan_alias_s']:>9.2f} s  {f['resolve_s']:>8.3f} s  "
            f"{f['requests']:>8}  {f['clients']:>7}"
        )
    print(
        f"(median of {RUNS} fresh `python -m tools.plan` runs each; resolution in-process, warm; {sys.platform}, Python "
        f"{sys.version.split()[0]})"
    )


if __name__ == "__main__":
    main()
