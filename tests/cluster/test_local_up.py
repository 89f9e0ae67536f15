"""`make local-up` / `make local-down` as a user runs them: the main job, then nothing left behind."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

from tools import local_cluster

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tools.local_up", *args], capture_output=True, text=True, timeout=900, cwd=ROOT)


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_local_up_deploys_dev_through_the_engine_and_local_down_leaves_nothing(tmp_path):
    directory = tmp_path / "local"
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
    finally:
        down = _run("down", "--dir", str(directory))
    assert down.returncode == 0, down.stderr
    assert local_cluster.running_pids(directory) == {}
    assert not any(_listening(port) for port in ports.values())
    again = _run("down", "--dir", str(directory))
    assert again.returncode == 0 and "nothing" in again.stdout
