"""The data plane of one run: its directories, logs and processes, and the Deployment bring-up every service shares."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from tests.e2e import sandbox, scratch
from tests.e2e.browser import Browser
from tests.e2e.declared import (
    config_map_data,
    declared_name,
    declared_namespace,
    http_probe,
    port_number,
    resolve_env,
    secret_data,
    workload_pod,
)
from tests.e2e.errors import DataPlaneError
from tests.e2e.hosts import HostMap
from tests.e2e.jobs import Jobs
from tests.e2e.kubeflow import Kubeflow
from tests.e2e.launch import START_TIMEOUT, VENV_BIN, Server, await_ready, base_env, http_ready, spawn
from tests.e2e.mysql import MySQL
from tests.e2e.postgres import PostgreSQL
from tests.e2e.prerequisites import require
from tests.e2e.s3 import S3
from tests.e2e.serving import KServe
from tests.e2e.tracking import Tracking
from tests.e2e.training import Training
from tools.testing.harness import DeclaredResource, Plan
from tools.testing.processes import free_port, listening, process_group

BALANCER = Path(__file__).with_name("balancer.py")


def pod_count(plan: Plan, deployment: DeclaredResource) -> int:
    """How many pods run: the Deployment's replicas, or, while an autoscaler owns them, its minReplicas."""
    replicas = deployment.inputs["spec"].get("replicas")
    if replicas is not None:
        return int(replicas)
    for hpa in plan.kinds("HorizontalPodAutoscaler"):
        target = hpa.inputs["spec"]["scaleTargetRef"]
        if hpa.k8s_namespace == deployment.k8s_namespace and target["kind"] == "Deployment" and target["name"] == deployment.k8s_name:
            return int(hpa.inputs["spec"].get("minReplicas", 1))
    return 1


@dataclass(frozen=True)
class _Outside:
    """What a pod gets from outside its spec: the image's bin directory (when not the project venv's), extra env."""

    entrypoints: Path | None
    env: Mapping[str, str]


class DataPlane(PostgreSQL, MySQL, S3, Jobs, Tracking, Kubeflow, Browser, KServe, Training):
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
        self.scratch_mounts: list[scratch.ScratchMount] = []
        self.pod_volume_sets: list[sandbox.PodVolumes] = []

    def log(self, name: str) -> Path:
        """A fresh log file per process start (a restart or a second instance gets ``name-2.log`` ...)."""
        path = self.logs / f"{name}.log"
        n = 1
        while path.exists():
            n += 1
            path = self.logs / f"{name}-{n}.log"
        return path

    def start_deployment(
        self,
        plan: Plan,
        deployment: DeclaredResource,
        *,
        component: str | None = None,
        hosts: HostMap | None = None,
        entrypoints: Path | None = None,
        outside_env: Mapping[str, str] | None = None,
    ) -> Server:
        """Start the pod's single container with its declared ``command + args`` and env; wait for its readiness probe.

        With ``replicas`` above 1 (or an autoscaler's minReplicas), each pod is a process of its own on a port
        of its own, with its own scratch volumes, behind a round-robin balancer on the Service's port (what
        kube-proxy does); the returned server is the balancer, its ``pods`` the replicas.
        ``entrypoints``: the image's bin directory when it is not the project venv's. ``outside_env``:
        what the pod would get from outside its spec (a kubeconfig for the in-cluster API credentials,
        a mounted file's local path), named by the caller.
        """
        hosts = hosts or self.hosts
        pod = workload_pod(deployment)
        containers = pod["containers"]
        if len(containers) != 1:
            raise DataPlaneError(declared_name(deployment), f"has {len(containers)} containers; one is supported")
        if pod.get("initContainers"):
            raise DataPlaneError(declared_name(deployment), "has init containers, which a server stand-in does not run")
        container = containers[0]
        component = component or container["name"]
        if not container.get("command"):
            raise DataPlaneError(component, "has no command: the image's entrypoint cannot be reproduced here")
        path, probe_port = http_probe(container)
        container_port = port_number(container, probe_port)
        local = hosts.expose(plan, deployment)[container_port]
        outside = _Outside(entrypoints, outside_env or {})
        count = pod_count(plan, deployment)
        if count == 1:
            return self._start_pod(plan, deployment, container, component, hosts, container_port, local, path, outside)
        pods = [
            self._start_pod(plan, deployment, container, f"{component}-{i}", hosts, container_port, free_port(), path, outside)
            for i in range(count)
        ]
        balancer = spawn(
            f"{component}-service",
            [str(VENV_BIN / "python"), str(BALANCER), str(local), *(str(p.port) for p in pods)],
            base_env(self.home),
            self.log(f"{component}-service"),
        )
        server = Server(component, balancer, local, workload=deployment, pods=pods)
        self.servers.append(server)
        server.seconds_to_ready = max(p.seconds_to_ready for p in pods) + await_ready(
            balancer, http_ready(f"{server.base}{path}"), 30, f"GET {path} through the balancer answered 200"
        )
        return server

    def _start_pod(
        self,
        plan: Plan,
        deployment: DeclaredResource,
        container: dict,
        component: str,
        hosts: HostMap,
        container_port: int,
        local: int,
        path: str,
        outside: _Outside,
    ) -> Server:
        namespace, pod = declared_namespace(deployment), workload_pod(deployment)
        volumes = self.pod_volumes(plan, namespace, pod, component)
        argv = [*container["command"], *hosts.listen_args(component, container.get("args") or [], container_port, local)]
        declared_env = hosts.rewrite_env(resolve_env(plan, namespace, container, component), component)
        handed, files = volumes.hand_in(outside.env)
        env = {**self.container_env(outside.entrypoints), **declared_env, **handed}
        box = self.container_sandbox(pod, container, volumes, component, env, files)
        mounts = volumes.scratch_mounts(container)
        self.scratch_mounts += mounts
        service = spawn(component, argv, env, self.log(component), sandbox=box)
        server = Server(component, service, local, workload=deployment, scratch=mounts)
        self.servers.append(server)
        server.seconds_to_ready = await_ready(
            service,
            http_ready(f"{server.base}{path}"),
            START_TIMEOUT.get(container["name"], 120),
            f"its readiness probe GET {path} answered 200",
        )
        return server

    # -- every declared container: its pod's volumes, its security context ---------------------------------------

    def pod_volumes(
        self,
        plan: Plan,
        namespace: str,
        pod: dict,
        component: str,
        claims: Mapping[str, dict] | None = None,
        token: str | None = None,
        rewrite: Callable[[str], str] | None = None,
    ) -> sandbox.PodVolumes:
        """The volumes of one pod, made here on first use, with the declared Secret and ConfigMap contents (addresses mapped,
        by ``rewrite`` when given, else by the host mapping)."""
        reason = sandbox.unavailable()
        require("bubblewrap", reason != "bwrap is not installed")
        if reason is not None:
            raise DataPlaneError(component, f"cannot be held to its declared security context here: {reason}")

        def source(kind: str, name: str) -> Mapping[str, str] | None:
            read = secret_data if kind == "secret" else config_map_data
            try:
                return read(plan, namespace, name, component)
            except DataPlaneError:
                return None

        root = Path(tempfile.mkdtemp(prefix=f"{component}-volumes-", dir=self.workdir))
        root.chmod(0o755)
        volumes = sandbox.PodVolumes(pod, root, component, namespace, source, rewrite or self.hosts.rewrite, claims or {}, token)
        self.pod_volume_sets.append(volumes)
        return volumes

    def container_env(self, entrypoints: Path | None = None) -> dict[str, str]:
        """What the image gives a container besides its declared env (PATH, locale); HOME is / unless declared, as a runtime
        sets it for a UID the image's passwd does not name."""
        return {**base_env(self.home, entrypoints), "HOME": "/"}

    def container_sandbox(
        self,
        pod: dict,
        container: dict,
        volumes: sandbox.PodVolumes,
        component: str,
        env: Mapping[str, str],
        files: Mapping[str, Path] | None = None,
    ) -> sandbox.Sandbox:
        """The container's sandbox; the programs its PATH names (venvs and their interpreters) stay visible where they are."""
        readable = sandbox.interpreter_paths(VENV_BIN)
        for entry in env.get("PATH", "").split(":"):
            directory = Path(entry)
            if (directory.parent / "pyvenv.cfg").exists():
                readable += sandbox.interpreter_paths(directory)
            elif entry.startswith(sandbox.HIDDEN) and directory.exists():
                readable.append(directory)
        return sandbox.for_container(pod, container, volumes, component, readable=readable, files=files)

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
        for pod in server.pods:
            self.stop_server(pod, timeout)
        for mount in server.scratch:
            mount.release()

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
        for mount in self.scratch_mounts:
            mount.release()
        for volumes in self.pod_volume_sets:
            volumes.release()
        shutil.rmtree(self.workdir, ignore_errors=True)
