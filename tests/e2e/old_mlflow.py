"""An older MLflow in a throwaway venv, to write a database at an older schema revision the way that release did.

The venv is cached per version under ~/.cache/mlops-platform/old-mlflow/<version> (about
80 s to create with a cold pip cache, instant afterwards). mlflow-skinny plus the SQL
packages is all the tracking and registry stores of that release need.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

VERSION = "2.9.2"  # model aliases exist since 2.3; the schema has had many revisions since
PACKAGES = [f"mlflow-skinny=={VERSION}", "sqlalchemy==2.0.58", "alembic==1.20.1", "psycopg2-binary==2.9.13"]
CACHE = Path.home() / ".cache" / "mlops-platform" / "old-mlflow"


def old_mlflow_python(version: str = VERSION, packages: list[str] = PACKAGES) -> Path:
    """The python of a venv with ``packages`` installed (created once, reused while the package list is the same)."""
    venv = CACHE / version
    marker = venv / ".installed"
    wanted = "\n".join(packages) + "\n"
    if marker.exists() and marker.read_text() == wanted:
        return venv / "bin" / "python"
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True, timeout=120)
    result = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *packages],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if result.returncode != 0:
        raise RuntimeError(f"installing {packages} failed:\n{result.stderr[-3000:]}")
    marker.write_text(wanted)
    return venv / "bin" / "python"
