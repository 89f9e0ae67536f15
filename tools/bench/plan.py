"""Wall time of `make plan` per stack, as a user sees it (fresh interpreter each run).

Not a test: prints the figures docs/contributing/figures.md quotes and writes build/bench/plan.json.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUNS = 3


def measure(stack: str) -> dict:
    times = []
    resources = None
    for _ in range(RUNS):
        start = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-m", "tools.dev.plan", "--stack", stack], cwd=ROOT, capture_output=True, text=True, timeout=300
        )
        times.append(time.perf_counter() - start)
        if result.returncode != 0:
            raise SystemExit(f"plan for {stack} failed: {result.stderr.strip()}")
        resources = next(int(line.split()[0]) for line in result.stdout.splitlines() if " resources for stack " in line)
    return {
        "stack": stack,
        "resources": resources,
        "median_s": round(statistics.median(times), 2),
        "max_s": round(max(times), 2),
        "runs": RUNS,
    }


def main() -> None:
    figures = [measure(stack) for stack in ("dev", "prod")]
    out = ROOT / "build" / "bench"
    out.mkdir(parents=True, exist_ok=True)
    (out / "plan.json").write_text(json.dumps(figures, indent=2) + "\n")
    for f in figures:
        print(f"make plan STACK={f['stack']}: {f['resources']} resources, median {f['median_s']} s (max {f['max_s']} s, {f['runs']} runs)")


if __name__ == "__main__":
    main()
