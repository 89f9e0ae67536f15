"""The data plane of one run: its directories, logs and processes, and the Deployment bring-up every service shares."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from tests.e2e.declared import http_probe, port_number, resolve_env
from tests.e2e.errors import DataPlaneError
from tests.e2e.hosts import HostMap
from tests.e2e.jobs import Jobs
from tests.e2e.kubeflow import Kubeflow
from tests.e2e.launch import START_TIMEOUT, Server, await_ready, base_env, http_ready, spawn
from tests.e2e.mysql import MySQL
from tests.e2e.postgres import PostgreSQL
from tests.e2e.s3 import S3
from tests.e2e.serving import KServe
from tests.e2e.tracking import Tracking
from tests.e2e.training import Training
from tools.harness import DeclaredResource, Plan
from tools.processes import listening, process_group


class DataPlane(PostgreSQL, MySQL, S3, Jobs, Tracking, Kubeflow, KServe, Training):
    """The processes and directories of one run. ``stop()`` ends every process it started.

    A fresh temporary directory holds the data directories (removed by ``close()``);
    ``logs`` keeps one log per component, quoted in every failure.
    """

    def __init__(self, logs: Path):
        # World-traversable, so PostgreSQL running as the `postgres` user can reach its data directory.
        self.workdir = Path(tempfile.mkdtemp(prefix="mlops-e2e-"))
        self.workdir.chmod(0o755)
        self.logs = logs
        self.logs.mkdir(parents=True, exist_ok=True)
        self.hosts = HostMap()
        self.servers: list[Server] = []
        self.home = self.workdir / "home"
        self.home.mkdir(parents=True, exist_ok=True)
        self.timings: dict[str, float] = {}

    def log(self, name: str) -> Path:
        """A fresh log file per process start (a restart or a second instance gets ``name-2.log`` ...)."""
        path = self.logs / f"{name}.log"
        n = 1
        while path.exists():
            n += 1
            path = self.logs / f"{name}-{n}.log"
        return path

    def start_deployment(
        self, plan: Plan, deployment: DeclaredResource, *, component: str | None = None, hosts: HostMap | None = None
    ) -> Server:
        """Start the pod's single container with its declared ``command + args`` and env; wait for its readiness probe."""
        hosts = hosts or self.hosts
        containers = deployment.pod_spec()["containers"]
        if len(containers) != 1:
            raise DataPlaneError(deployment.k8s_name, f"has {len(containers)} containers; one is supported")
        if deployment.pod_spec().get("initContainers"):
            raise DataPlaneError(deployment.k8s_name, "has init containers, which a server stand-in does not run")
        container = containers[0]
        component = component or container["name"]
        if not container.get("command"):
            raise DataPlaneError(component, "has no command: the image's entrypoint cannot be reproduced here")
        path, probe_port = http_probe(container)
        container_port = port_number(container, probe_port)
        local = hosts.expose(plan, deployment)[container_port]
        scratch = self.scratch_dirs(deployment.pod_spec(), container, Path(tempfile.mkdtemp(prefix=f"{component}-", dir=self.workdir)))
        args = [scratch.get(arg, arg) for arg in container.get("args") or []]
        argv = [*container["command"], *hosts.listen_args(component, args, container_port, local)]
        env = {**base_env(self.home), **hosts.rewrite_env(resolve_env(plan, deployment.k8s_namespace, container, component), component)}
        service = spawn(component, argv, env, self.log(component))
        server = Server(component, service, local, workload=deployment)
        self.servers.append(server)
        server.seconds_to_ready = await_ready(
            service,
            http_ready(f"{server.base}{path}"),
            START_TIMEOUT.get(container["name"], 120),
            f"its readiness probe GET {path} answered 200",
        )
        return server

    @staticmethod
    def scratch_dirs(pod: dict, container: dict, root: Path) -> dict[str, str]:
        """Each emptyDir the container mounts -> a fresh directory under ``root`` (host mapping, rule 3).

        Only values that name a mount path exactly (a flag's argument, an env value) are replaced.
        """
        empty = {v["name"] for v in pod.get("volumes") or [] if "emptyDir" in v}
        dirs = {}
        for mount in container.get("volumeMounts") or []:
            if mount["name"] in empty:
                local = root / f"scratch-{mount['name']}"
                local.mkdir(parents=True, exist_ok=True)
                dirs[mount["mountPath"]] = str(local)
        return dirs

    def stop_server(self, server: Server, timeout: float = 15) -> None:
        if server.component == "postgresql" and server.service.process.poll() is None:
            # SIGINT is PostgreSQL's fast shutdown (SIGTERM would wait for clients to disconnect).
            try:
                os.killpg(server.service.process.pid, signal.SIGINT)
                server.service.process.wait(timeout=timeout)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        server.service.stop(timeout=timeout)
        if server in self.servers:
            self.servers.remove(server)

    def stop(self) -> list[str]:
        """Stop every process (newest first); returns what is still alive or listening (should be nothing)."""
        stopped = list(reversed(self.servers))
        for server in stopped:
            self.stop_server(server)
        leftovers = []
        for server in stopped:
            # Each server was started as the leader of its own process group: every worker it forked is in it.
            group = process_group(server.service.process.pid)
            leftovers += [f"{server.component}: pid {pid} still running ({group[pid][:80]})" for pid in sorted(group)]
            leftovers += [f"{server.component}: port {port} still listening" for port in server.ports if listening(port)]
        return leftovers

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)
