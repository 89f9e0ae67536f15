"""What holding a container to its security context costs per start: `true` and `python -c pass` run directly and in
the sandbox of the dev stack's server container (its volumes made once), 30 times each, in turn. Not a test.

    .venv/bin/python -m tools.bench.sandbox
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.e2e import sandbox
from tests.e2e.declared import config_map_data, secret_data, workload_pod
from tools.testing.harness import ROOT, run_program

ROUNDS = 30


def main() -> int:
    reason = sandbox.unavailable()
    if reason:
        print(f"error: {reason}", file=sys.stderr)
        return 1
    plan = run_program("dev")
    deployment = plan.k8s("Deployment", "mlflow", "mlflow")
    pod = workload_pod(deployment)
    container = pod["containers"][0]

    def source(kind: str, name: str):
        read = secret_data if kind == "secret" else config_map_data
        try:
            return read(plan, "mlflow", name, "bench")
        except Exception:  # noqa: BLE001 - undeclared: absent, as in the e2e
            return None

    root = Path(tempfile.mkdtemp(prefix="bench-sandbox-"))
    volumes = sandbox.PodVolumes(pod, root, "mlflow", "mlflow", source)
    python = str(Path(sys.prefix) / "bin" / "python")
    box = sandbox.for_container(pod, container, volumes, "mlflow", readable=sandbox.interpreter_paths(Path(sys.prefix) / "bin"))
    results: dict[str, list[float]] = {}
    try:
        for _ in range(ROUNDS):
            for name, argv in (("true", ["/bin/true"]), ("python -c pass", [python, "-c", "pass"])):
                for held in (False, True):
                    command = box.argv(argv) if held else argv
                    began = time.perf_counter()
                    subprocess.run(command, check=True, env={"PATH": "/usr/bin:/bin", "HOME": "/"})
                    results.setdefault(f"{name} {'sandboxed' if held else 'direct'}", []).append(time.perf_counter() - began)
    finally:
        volumes.release()
    figures: dict[str, object] = {
        k: {"median_ms": round(statistics.median(v) * 1000, 1), "p90_ms": round(sorted(v)[int(0.9 * len(v))] * 1000, 1)}
        for k, v in results.items()
    }
    figures["load_average"] = os.getloadavg()[0]
    figures["bwrap_arguments"] = len(box.argv(["/bin/true"]))
    out = ROOT / "build" / "bench" / "sandbox.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
