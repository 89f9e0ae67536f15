"""Real-engine figures: toolchain build, `pulumi preview`/`up`/no-op `up` for dev, the same with 50 profiles, local-up.

Not a test. Each figure comes from a fresh embedded cluster (tools/local/cluster.py) and an
empty file backend, so runs do not reuse each other's state. Prints a table and writes
build/bench/engine.json. Goals: preview <= 10 s, up to all-ready <= 60 s,
no-op up <= 10 s.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tools.dev.local_up import load_existing
from tools.local import cluster as local_cluster
from tools.local.engine import LocalEngine
from tools.testing.harness import stack_config

ROOT = Path(__file__).resolve().parents[2]

RUNS = 2
WORK = ROOT / "build" / "bench" / "engine"


def toolchain_builds() -> dict[str, Any]:
    """Cold build seconds of each piece, as `make toolchain` recorded them when it built it."""
    figures = {}
    for directory in local_cluster.toolchain_dirs():
        stamp = directory.parent / ".built"
        figures[directory.parent.name] = {
            "cold_build_s": int(stamp.read_text()) if stamp.exists() else None,
            "size_mib": round(sum(f.stat().st_size for f in directory.iterdir()) / 2**20),
        }
    start = time.perf_counter()
    subprocess.run(["bash", str(ROOT / "toolchain" / "build.sh")], check=True, capture_output=True)
    return {"pieces": figures, "warm_s": round(time.perf_counter() - start, 2)}


def profiles(count: int) -> dict[str, Any]:
    config, _ = stack_config("dev")
    kubeflow = json.loads(config["mlops-platform:kubeflow"])
    return {**kubeflow, "profiles": [f"team-{i:02d}" for i in range(count)]}


def engine_run(overrides: dict[str, Any]) -> dict[str, float]:
    directory = WORK / "cluster"
    local_cluster.stop(directory)
    cluster = local_cluster.start(directory)
    try:
        load_existing(cluster, "dev", overrides)
        engine = LocalEngine("dev", directory, workspace=WORK / "state", overrides=overrides)
        engine.reset()
        figures = {}
        for name, action in (("preview_s", engine.preview), ("up_s", engine.up), ("noop_up_s", engine.up)):
            start = time.perf_counter()
            action()
            figures[name] = round(time.perf_counter() - start, 2)
        return figures
    finally:
        local_cluster.stop(directory)


def local_up() -> float:
    start = time.perf_counter()
    env = {**os.environ}
    try:
        subprocess.run(
            [sys.executable, "-m", "tools.dev.local_up", "up", "--dir", str(WORK / "local-up")],
            check=True,
            capture_output=True,
            env=env,
            timeout=900,
        )
        return round(time.perf_counter() - start, 2)
    finally:
        subprocess.run(
            [sys.executable, "-m", "tools.dev.local_up", "down", "--dir", str(WORK / "local-up")], check=True, capture_output=True, env=env
        )


def main() -> int:
    results: dict[str, Any] = {"toolchain": toolchain_builds()}
    for label, overrides in (("dev", {}), ("dev, 50 profiles", {"kubeflow": profiles(50)})):
        runs = [engine_run(overrides) for _ in range(RUNS)]
        results[label] = {key: round(statistics.median(run[key] for run in runs), 1) for key in runs[0]} | {"runs": runs}
    results["local_up_s"] = round(statistics.median(local_up() for _ in range(RUNS)), 1)
    WORK.mkdir(parents=True, exist_ok=True)
    (WORK.parent / "engine.json").write_text(json.dumps(results, indent=2) + "\n")
    for piece, figure in results["toolchain"]["pieces"].items():
        print(f"toolchain {piece}: cold build {figure['cold_build_s']} s, {figure['size_mib']} MiB")
    print(f"toolchain warm (everything cached): {results['toolchain']['warm_s']} s")
    for label in ("dev", "dev, 50 profiles"):
        r = results[label]
        print(f"{label}: preview {r['preview_s']} s, up {r['up_s']} s, no-op up {r['noop_up_s']} s (median of {RUNS})")
    print(f"make local-up end to end: {results['local_up_s']} s (median of {RUNS})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
