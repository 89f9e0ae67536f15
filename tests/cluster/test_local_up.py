"""`make local-up` / `make local-down` as a user runs them: the main job, then nothing left behind."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

from tests.e2e.chromium import Chromium
from tools.dev import local_platform
from tools.local import cluster as local_cluster
from tools.testing.cluster_fixtures import DEFAULT_PROFILE, DEFAULT_USER
from tools.testing.processes import listening

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tools.dev.local_up", *args], capture_output=True, text=True, timeout=900, cwd=ROOT)


def _the_env_file_reaches_the_cluster_and_the_stack_from_a_fresh_shell(env_file: Path) -> None:
    """A login-free shell with nothing of ours in its environment, and no kubectl or pulumi on its PATH."""
    assert oct(env_file.stat().st_mode & 0o777) == "0o600"
    fresh = {"PATH": "/nonexistent", "HOME": str(env_file.parent / "home")}
    script = f"source {env_file} && kubectl get namespaces -o name && pulumi stack output --json"
    done = subprocess.run(
        ["/bin/bash", "--noprofile", "--norc", "-c", script], env=fresh, capture_output=True, text=True, timeout=120, cwd="/"
    )
    assert done.returncode == 0, done.stderr[-2000:]
    namespaces, _, outputs = done.stdout.partition("{")
    assert "namespace/mlflow" in namespaces.split()
    shown = json.loads("{" + outputs)
    assert shown["trackingUri"] == "http://mlflow.mlflow.svc.cluster.local:5000/mlflow"
    assert shown["databasePassword"] == "[secret]"
    # kubectl is the toolchain's, of the control plane's version (a machine may have none, or another one).
    version = subprocess.run(
        ["/bin/bash", "--noprofile", "--norc", "-c", f"source {env_file} && command -v kubectl && kubectl version --client"],
        env=fresh,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "/.cache/mlops-platform/kubectl-v" in version.stdout and "Client Version: v1.34" in version.stdout


def test_local_up_deploys_dev_leaves_a_platform_a_person_opens_and_local_down_leaves_nothing(tmp_path):
    """The printed link opens MLflow as Kubeflow's default user in its default profile, and shows what the printed
    notebook command logged there."""
    directory = tmp_path / "local"
    platform_ports: list[int] = []
    try:
        up = _run("up", "--dir", str(directory))
        assert up.returncode == 0, (up.stdout + up.stderr)[-3000:]
        assert "Resources:" in up.stdout and "created" in up.stdout
        assert "output trackingUri: http://mlflow.mlflow.svc.cluster.local:5000/mlflow" in up.stdout
        assert "output databasePassword: [secret]" in up.stdout
        assert f"source {directory / 'env'}" in up.stdout and "<see tools/local/engine.py>" not in up.stdout
        _the_env_file_reaches_the_cluster_and_the_stack_from_a_fresh_shell(directory / "env")
        pids = local_cluster.running_pids(directory)
        assert sorted(pids) == sorted(local_cluster.ORDER)
        ports = json.loads((directory / "cluster.json").read_text())["ports"]
        assert all(listening(port) for port in ports.values())
        recorded = json.loads((directory / local_platform.RECORD).read_text())["processes"]
        assert {p["component"] for p in recorded} >= {
            "postgresql",
            "minio",
            "mlflow",
            "mlflow-ui-mlflow",
            "mlflow-ui-auth-proxy",
            "gateway",
        }
        platform_ports = [port for p in recorded for port in p["ports"]]
        assert all(listening(port) for port in platform_ports)

        (notebook,) = [line.strip() for line in up.stdout.splitlines() if "tests/e2e/notebook.py" in line]
        ran = subprocess.run(["bash", "-c", notebook.strip("()")], capture_output=True, text=True, timeout=300, cwd=ROOT)
        assert ran.returncode == 0, (ran.stdout + ran.stderr)[-2000:]
        (link,) = re.findall(r"http://127\.0\.0\.1:\d+/dex/login\S+", up.stdout)
        assert f"email={shlex.quote(DEFAULT_USER).replace('@', '%40')}" in link
        with Chromium(ROOT / "build" / "browser") as browser:
            browser.open(link)
            assert browser.enter_iframe().endswith(f"#/experiments?workspace={DEFAULT_PROFILE}")
            text = browser.wait_for_text("diabetes")
            assert "Experiments" in text
            browser.screenshot("local-up-mlflow-tab")
    finally:
        down = _run("down", "--dir", str(directory))
    assert down.returncode == 0, down.stderr
    assert local_cluster.running_pids(directory) == {}
    assert not any(listening(port) for port in [*ports.values(), *platform_ports])
    again = _run("down", "--dir", str(directory))
    assert again.returncode == 0 and "nothing" in again.stdout
