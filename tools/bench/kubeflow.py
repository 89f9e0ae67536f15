"""Plan time and resource count of the Kubeflow integration for 1, 10 and 50 profiles.

Not a test: each run is a fresh interpreter running the real program under the
mock engine (as `make plan` does) with `kubeflow.profiles` replaced. Prints the
figures docs/kubeflow.md quotes and writes build/bench/kubeflow.json.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUNS = 5
SIZES = (1, 10, 50)
STACKS = {"dev": "microk8s", "prod": "eks"}

# Times only run_program; the outer wall clock adds interpreter start and imports.
_PROBE = """
import json, sys, time
from tools.testing.harness import run_program, stack_config
size, stack = int(sys.argv[1]), sys.argv[2]
kubeflow = {"enabled": True, "kfpAccess": True, "profiles": [f"team-{i:02d}" for i in range(size)]}
config, secret_keys = stack_config(stack)
config["mlops-platform:kubeflow"] = json.dumps(kubeflow)
start = time.perf_counter()
plan = run_program(stack, config=config, secret_keys=secret_keys)
print(json.dumps({"resources": len(plan.resources), "program_s": time.perf_counter() - start}))
"""


def measure(stack: str, size: int) -> dict:
    walls, programs, resources = [], [], None
    for _ in range(RUNS):
        start = time.perf_counter()
        result = subprocess.run([sys.executable, "-c", _PROBE, str(size), stack], cwd=ROOT, capture_output=True, text=True, timeout=600)
        walls.append(time.perf_counter() - start)
        if result.returncode != 0:
            raise SystemExit(f"{stack} with {size} profiles failed: {result.stderr.strip()[-2000:]}")
        figures = json.loads(result.stdout.strip().splitlines()[-1])
        resources = figures["resources"]
        programs.append(figures["program_s"])
    return {
        "stack": stack,
        "target": STACKS[stack],
        "profiles": size,
        "resources": resources,
        "program_median_s": round(statistics.median(programs), 2),
        "wall_median_s": round(statistics.median(walls), 2),
        "wall_max_s": round(max(walls), 2),
        "runs": RUNS,
    }


def main() -> None:
    figures = [measure(stack, size) for stack in STACKS for size in SIZES]
    out = ROOT / "build" / "bench"
    out.mkdir(parents=True, exist_ok=True)
    (out / "kubeflow.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(f"{'stack':6} {'profiles':>8} {'resources':>9} {'program s':>9} {'wall s':>7}")
    for f in figures:
        print(f"{f['stack']:6} {f['profiles']:>8} {f['resources']:>9} {f['program_median_s']:>9} {f['wall_median_s']:>7}")
    for stack in STACKS:
        rows = {f["profiles"]: f for f in figures if f["stack"] == stack}
        per_profile = (rows[SIZES[-1]]["resources"] - rows[SIZES[0]]["resources"]) / (SIZES[-1] - SIZES[0])
        print(f"{stack}: {per_profile:g} resources per profile")


if __name__ == "__main__":
    main()
