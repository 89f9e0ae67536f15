"""The MLflow server as the image runs it: a Python 3.12 virtualenv with exactly images/mlflow/requirements.txt.

mlflow-kubernetes-plugins needs Python >= 3.12 while the project's own venv runs 3.11, so the
tests that start a server with an authorization app start it from here. The venv is built once
per set of pins (its directory is keyed by a hash of the requirements file and the interpreter)
under ~/.cache/mlops-platform, so reruns take no time; `python -m tools.testing.server_venv` builds it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = ROOT / "images" / "mlflow" / "requirements.txt"
CACHE = Path(os.environ.get("MLOPS_PLATFORM_CACHE", Path.home() / ".cache" / "mlops-platform"))
PYTHON_MINOR = "3.12"
INSTALL_TIMEOUT = 900


class ServerVenvError(RuntimeError):
    """No Python 3.12 here, or the pins did not install; the message says which."""


def python312() -> Path:
    """The newest 3.12 of pyenv, else python3.12 on PATH (not a pyenv shim, which refuses versions not selected)."""
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates = sorted(root.glob(f"versions/{PYTHON_MINOR}.*/bin/python{PYTHON_MINOR}"))
    if candidates:
        return candidates[-1]
    found = shutil.which(f"python{PYTHON_MINOR}")
    if found and "/shims/" not in found:
        return Path(found)
    raise ServerVenvError(f"no Python {PYTHON_MINOR} ({root}/versions/{PYTHON_MINOR}.* or python{PYTHON_MINOR} on PATH)")


def directory(python: Path) -> Path:
    key = hashlib.sha256(REQUIREMENTS.read_bytes() + str(python.resolve()).encode()).hexdigest()[:16]
    return CACHE / f"mlflow-server-{key}"


def ensure() -> Path:
    """The venv's bin directory, built first if these pins have none yet."""
    python = python312()
    venv = directory(python)
    stamp = venv / ".installed"
    if stamp.exists():
        return venv / "bin"
    shutil.rmtree(venv, ignore_errors=True)
    venv.parent.mkdir(parents=True, exist_ok=True)
    log = venv.parent / f"{venv.name}.log"
    with log.open("w") as out:
        for argv in (
            [str(python), "-m", "venv", str(venv)],
            [str(venv / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check", "-r", str(REQUIREMENTS)],
            [str(venv / "bin" / "python"), "-m", "pip", "check"],
        ):
            code = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, timeout=INSTALL_TIMEOUT).returncode
            if code != 0:
                raise ServerVenvError(f"{' '.join(argv[-3:])} failed with {code}; log {log}")
    stamp.write_text(REQUIREMENTS.read_text())
    return venv / "bin"


if __name__ == "__main__":
    try:
        print(ensure())
    except ServerVenvError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
