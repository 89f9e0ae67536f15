"""`make local-up` / `make local-down` as a user runs them: the main job, then nothing left behind."""

from __future__ import annotations

import json
import re
import shlex
import socket
import subprocess
import sys
from pathlib import Path

from tests.e2e.chromium import Chromium
from tools import local_cluster, local_platform
from tools.cluster_fixtures import DEFAULT_PROFILE, DEFAULT_USER

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tools.local_up", *args], capture_output=True, text=True, timeout=900, cwd=ROOT)


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


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
        assert f"--kubeconfig {directory / 'kubeconfig'}" in up.stdout
        pids = local_cluster.running_pids(directory)
        assert sorted(pids) == sorted(local_cluster.ORDER)
        ports = json.loads((directory / "cluster.json").read_text())["ports"]
        assert all(_listening(port) for port in ports.values())
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
        assert all(_listening(port) for port in platform_ports)

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
    assert not any(_listening(port) for port in [*ports.values(), *platform_ports])
    again = _run("down", "--dir", str(directory))
    assert again.returncode == 0 and "nothing" in again.stdout
