"""What `make local-up` leaves running beside the embedded cluster: a platform a person can open in a browser.

The embedded cluster has no kubelet, so nothing the stack declares runs there. This starts it as local processes
on 127.0.0.1, exactly as the end-to-end tests do (tests/e2e: PostgreSQL from Debian's binaries, moto's S3 for
MinIO, the declared migration, the tracking server and the browser server from the server image's pins, with
their declared args and env), authorized by the embedded API server's real RBAC, and Kubeflow's front door as a
stand-in (Dex, oauth2-proxy, the ingress gateway and the dashboard's iframe, tests/e2e/kubeflow_gateway.py).

Every process is recorded (pid, ports, mounts) in ``<dir>/platform.json``; :func:`stop` ends them by those pids,
releases the mounts and checks that nothing of theirs still listens.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from tools.testing.processes import listening, process_group

RECORD = "platform.json"


@dataclass(frozen=True)
class Platform:
    gateway: str
    tracking: str
    profile: str
    user: str
    notebook_env: Path

    @property
    def mlflow_tab(self) -> str:
        """The dashboard's MLflow tab for ``profile``, logged in as ``user`` (the link the dashboard builds)."""
        tab = f"/_/mlflow/kubeflow/{self.profile}/?ns={self.profile}"
        return f"{self.gateway}/dex/login?email={quote(self.user)}&rd={quote(tab, safe='')}"


def start(cluster: Any, stack: str, directory: Path, *, user: str, profile: str | None = None) -> Platform:
    """Start the stack's data plane and Kubeflow's front door; record every process; return where to go."""
    from tests.cluster.tenancy import kubeconfig, service_account_token
    from tests.e2e.plane import DataPlane
    from tools.testing import server_venv
    from tools.testing.harness import run_program, stack_config

    config, secret_keys = stack_config(stack)
    plan = run_program(stack, config=config, secret_keys=secret_keys)
    profiles = list(plan.outputs.get("kubeflowProfiles") or [])
    if not profiles:
        raise RuntimeError(f"stack {stack} declares no Kubeflow profile: there is no MLflow tab to open")
    profile = profile or profiles[0]
    root = directory / "platform"
    root.mkdir(parents=True, exist_ok=True)
    entrypoints = server_venv.ensure()
    namespace = plan.outputs["namespace"]
    server_config = kubeconfig(cluster, service_account_token(cluster, namespace, "mlflow"), namespace, root / "mlflow-kubeconfig")
    outside = {"KUBECONFIG": str(server_config)}
    plane = DataPlane(root / "logs")
    try:
        tracking = plane.bring_up_tracking(plan, entrypoints=entrypoints, outside_env=outside)
        plane.expose_browser_server(plan)
        gateway = plane.start_kubeflow_gateway(plan, namespaces=profiles)
        plane.start_browser_server(plan, entrypoints=entrypoints, outside_env=outside)
    except BaseException:
        _record(directory, plane)
        stop(directory)
        raise
    _record(directory, plane)
    notebook = root / f"notebook-{profile}.env"
    _write_notebook_env(
        plane,
        plan,
        profile,
        kubeconfig(cluster, service_account_token(cluster, profile, "default-editor"), profile, root / f"{profile}-kubeconfig"),
        notebook,
    )
    return Platform(gateway.base, tracking.base, profile, user, notebook)


def _write_notebook_env(plane: Any, plan: Any, profile: str, config: Path, path: Path) -> None:
    """What the profile's PodDefault injects into a notebook, after the host mapping; the kubelet's token as a kubeconfig."""
    env = {**plane.notebook_env(plan, profile), "KUBECONFIG": str(config), "MLFLOW_DISABLE_TELEMETRY": "true"}
    path.write_text("".join(f"export {k}={json.dumps(v)}\n" for k, v in sorted(env.items())))
    path.chmod(0o600)


def _record(directory: Path, plane: Any) -> None:
    processes = [{"component": s.component, "pid": s.service.process.pid, "ports": [p for p in s.ports if p]} for s in plane.servers]
    mounts = [str(m.path) for m in plane.scratch_mounts if m.enforced]
    # The pods' memory volumes and claims, which the sandbox mounts as tmpfs of their declared size.
    mounts += [str(v.path) for volumes in plane.pod_volume_sets for v in volumes.made.values() if v.mounted]
    state = {"processes": processes, "mounts": mounts, "workdir": str(plane.workdir)}
    (directory / RECORD).write_text(json.dumps(state, indent=2))


def running(directory: Path) -> bool:
    record = directory / RECORD
    if not record.exists():
        return False
    return any(_alive(p["pid"]) for p in json.loads(record.read_text())["processes"])


def stop(directory: Path, timeout: float = 20) -> list[str]:
    """Stop every recorded process (newest first) by its pid, release the mounts; fail if a port still listens."""
    record = directory / RECORD
    if not record.exists():
        return []
    state = json.loads(record.read_text())
    stopped = []
    for process in reversed(state["processes"]):
        pid = process["pid"]
        # Each was started as the leader of its own process group; the sandbox's programs run beneath it.
        if not _alive(pid) and not process_group(pid):
            continue
        # SIGINT is PostgreSQL's fast shutdown; everything else takes SIGTERM.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGINT if process["component"] == "postgresql" else signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and (_alive(pid) or process_group(pid)):
            time.sleep(0.1)
        if _alive(pid) or process_group(pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and process_group(pid):
                time.sleep(0.1)
        stopped.append(process["component"])
    for mount in state["mounts"]:
        subprocess.run(["umount", "-l", mount], check=False, capture_output=True)
    shutil.rmtree(state["workdir"], ignore_errors=True)
    still = [f"{p['component']} ({port})" for p in state["processes"] for port in p["ports"] if listening(port)]
    if still:
        raise RuntimeError(f"still listening after stop: {', '.join(still)}")
    record.unlink()
    return stopped


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        status = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return status != "Z"


def hints(platform: Platform, directory: Path) -> list[str]:
    """What `make local-up` prints: where to open MLflow, and how to be a notebook of the profile."""
    return [
        f"Open MLflow as {platform.user} in profile {platform.profile} (the dashboard's MLflow tab, through Kubeflow's front door):",
        f"  {platform.mlflow_tab}",
        f"  (another user: change email=; the dashboard stand-in is {platform.gateway}/?ns={platform.profile})",
        f"Run the notebook flow as profile {platform.profile}'s notebook (its PodDefault's env, its default-editor token):",
        f"  (source {platform.notebook_env} && .venv/bin/python tests/e2e/notebook.py {directory}/notebook-result.json "
        "diabetes production diabetes)",
        f"Processes and logs: {directory / RECORD}, {directory / 'platform' / 'logs'}",
    ]
