"""Wall time of `make test-fast` on a fresh clone of HEAD, as a contributor's first run sees it. Not a test.

The clone's venv is made first (pip's own cache makes that a couple of minutes) and not timed; then `make test-fast`
runs cold (no mypy cache, no bytecode of the checkout) and once more warm. Writes build/bench/test-fast.json.

    .venv/bin/python -m tools.bench.test_fast
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def timed_make(clone: Path, target: str) -> dict[str, float]:
    load = os.getloadavg()[0]
    began = time.perf_counter()
    result = subprocess.run(["make", target], cwd=clone, capture_output=True, text=True, timeout=1800)
    seconds = time.perf_counter() - began
    if result.returncode != 0:
        raise SystemExit(f"make {target} failed in {clone}:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
    return {"seconds": round(seconds, 1), "load_average_start": load, "load_average_end": os.getloadavg()[0]}


def main() -> int:
    clone = Path(tempfile.mkdtemp(prefix="bench-test-fast-")) / "clone"
    try:
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True, timeout=300)
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=clone, capture_output=True, text=True, check=True)
        venv = timed_make(clone, "venv")
        figures = {
            "commit": commit.stdout.strip(),
            "cpus": os.cpu_count(),
            "venv_untimed_in_the_figures": venv,
            "cold": timed_make(clone, "test-fast"),
            "warm": timed_make(clone, "test-fast"),
        }
    finally:
        shutil.rmtree(clone.parent, ignore_errors=True)
    out = ROOT / "build" / "bench" / "test-fast.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
