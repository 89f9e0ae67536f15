"""The way people reach MLflow: Kubeflow's front door (kubeflow_gateway.py) and the browser server's pod.

The browser server's pod has two containers (tracking/browser.py): oauth2-proxy on the Service's port and MLflow
on a Unix socket in a volume they share. Here each container is a process started with its declared ``command +
args`` and env in its sandbox (tests/e2e/sandbox.py: its declared user, a read-only root, the pod's volumes at their
mount paths), so both see the socket's volume as in the pod. In the mounted proxy configuration, in-cluster
addresses are mapped to this machine and ``0.0.0.0:<containerPort>`` becomes ``127.0.0.1:<the Service's loopback
port>`` (the host mapping's rule 2).
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from tests.e2e.declared import declared_name, declared_namespace, port_number, resolve_env, workload_pod
from tests.e2e.errors import DataPlaneError
from tests.e2e.launch import VENV_BIN, Server, await_ready, base_env, http_ready, spawn
from tests.e2e.part import Part
from tools.testing.harness import DeclaredResource, Plan
from tools.testing.processes import HOST, free_port

GATEWAY = Path(__file__).with_name("kubeflow_gateway.py")
BROWSER_SERVER = "mlflow-ui"
PROXY_CONFIG_FLAG = "--alpha-config="
READY_TIMEOUT = 120


def proxy_settings(plan: Plan, deployment: DeclaredResource) -> dict[str, Any]:
    """The proxy's declared alpha configuration (the ConfigMap item its ``--alpha-config`` names)."""
    proxy = _proxy_container(deployment)
    (flag,) = [a for a in proxy["args"] if a.startswith(PROXY_CONFIG_FLAG)]
    text = _mounted_text(plan, deployment, proxy, flag.removeprefix(PROXY_CONFIG_FLAG))
    return yaml.safe_load(text)


def _proxy_container(deployment: DeclaredResource) -> dict[str, Any]:
    found = [c for c in workload_pod(deployment)["containers"] if any(a.startswith(PROXY_CONFIG_FLAG) for a in c.get("args") or [])]
    if len(found) != 1:
        raise DataPlaneError(declared_name(deployment), "has no oauth2-proxy container (one with --alpha-config)")
    return found[0]


def _mounted_text(plan: Plan, deployment: DeclaredResource, container: Mapping[str, Any], path: str) -> str:
    from tests.e2e.declared import mounted_file

    return mounted_file(plan, deployment, container, path, container["name"])


class Browser(Part):
    """The browser part of a :class:`~tests.e2e.plane.DataPlane`: Kubeflow's gateway and the browser server."""

    def browser_deployment(self, plan: Plan) -> DeclaredResource:
        return plan.k8s("Deployment", BROWSER_SERVER, plan.outputs["namespace"])

    def start_kubeflow_gateway(self, plan: Plan, *, namespaces: list[str] | None = None) -> Server:
        """Dex, oauth2-proxy and the ingress gateway in one process, routing as the declared VirtualServices say.

        The issuer is the one the browser server's proxy is declared to trust, mapped to this process; every
        route's destination must be a Service the host mapping already exposes (start the servers' Services first).
        """
        provider = proxy_settings(plan, self.browser_deployment(plan))["providers"][0]
        issuer = provider["oidcConfig"]["issuerURL"]
        authority = re.match(r"^https?://([^/]+)", issuer)
        if authority is None:
            raise DataPlaneError("gateway", f"issuer {issuer!r} has no host")
        listen = free_port()
        address = authority.group(1) if ":" in authority.group(1) else f"{authority.group(1)}:80"
        self.hosts.routes[address] = listen
        key = self.workdir / "dex-signing-key.pem"
        _write_key(key)
        routes = []
        for vs in plan.kinds("VirtualService"):
            spec = vs.inputs["spec"]
            rules = []
            for rule in spec.get("http") or []:
                entry: dict[str, Any] = {"match": rule.get("match") or []}
                if "redirect" in rule:
                    entry["redirect"] = rule["redirect"]
                else:
                    destination = rule["route"][0]["destination"]
                    target = f"{destination['host']}:{destination['port']['number']}"
                    if target not in self.hosts.routes:
                        raise DataPlaneError("gateway", f"VirtualService {vs.k8s_name} routes to {target}, which is not running here")
                    entry["port"] = self.hosts.routes[target]
                    entry["timeout"] = rule.get("timeout")
                rules.append(entry)
            routes.append({"hosts": spec.get("hosts") or [], "http": rules})
        links = [r.inputs for r in plan.of_type("pulumi-python:dynamic/kubeflow:DashboardLink")]
        config = {
            "listen": listen,
            "issuer": self.hosts.rewrite(issuer),
            "audience": provider["clientID"],
            "key": str(key),
            "routes": routes,
            "menu": [{"text": link["text"], "link": link["link"], "icon": link["icon"]} for link in links],
            "namespaces": namespaces or [],
        }
        path = self.workdir / "kubeflow-gateway.json"
        path.write_text(json.dumps(config))
        service = spawn("gateway", [str(VENV_BIN / "python"), str(GATEWAY), str(path)], base_env(self.home), self.log("gateway"))
        server = Server("gateway", service, listen)
        self.servers.append(server)
        server.seconds_to_ready = await_ready(service, http_ready(f"{server.base}/dex/keys"), 30, "its Dex keys answered 200")
        self.gateway = server
        return server

    def expose_browser_server(self, plan: Plan) -> int:
        """The browser server Service's loopback port, so the gateway can route to it before it starts."""
        deployment = self.browser_deployment(plan)
        proxy = _proxy_container(deployment)
        return self.hosts.expose(plan, deployment)[proxy["ports"][0]["containerPort"]]

    def start_browser_server(self, plan: Plan, *, entrypoints: Path, outside_env: Mapping[str, str]) -> Server:
        """The browser server's pod: MLflow on its socket, then the proxy in front of it; ready when both probes pass.

        Each container runs in its sandbox (tests/e2e/sandbox.py): its declared user, a read-only root, the pod's
        volumes at their mount paths and modes, so the two share the socket's volume as in the pod. ``entrypoints``:
        the server image's bin directory (its plugins); ``outside_env``: what the pod gets from outside its spec (the
        kubeconfig standing in for the projected ServiceAccount token).
        """
        from tools.local.cluster import binary

        deployment = self.browser_deployment(plan)
        pod, namespace = workload_pod(deployment), declared_namespace(deployment)
        proxy = _proxy_container(deployment)
        container_port = proxy["ports"][0]["containerPort"]
        local_port = self.expose_browser_server(plan)

        def listen_here(text: str) -> str:
            # The host mapping's rule 2 for a listen address inside a mounted configuration.
            return self.hosts.rewrite(text).replace(f"0.0.0.0:{container_port}", f"{HOST}:{local_port}")

        volumes = self.pod_volumes(plan, namespace, pod, BROWSER_SERVER, rewrite=listen_here)
        started: list[Server] = []
        for container in sorted(pod["containers"], key=lambda c: c is proxy):
            component = f"{BROWSER_SERVER}-{container['name']}"
            declared = self.hosts.rewrite_env(resolve_env(plan, namespace, container, component), component)
            if container is proxy:
                # The image's entrypoint is the release the toolchain builds.
                command = [str(binary("oauth2-proxy"))]
                handed: dict[str, str] = {}
                files: dict[str, Path] = {}
                env = {**self.container_env(), "PATH": f"{binary('oauth2-proxy').parent}:/usr/bin:/bin", **declared}
            else:
                command = container["command"]
                handed, files = volumes.hand_in(outside_env)
                env = {**self.container_env(entrypoints), **declared, **handed}
            argv = [*command, *(container.get("args") or [])]
            box = self.container_sandbox(pod, container, volumes, component, env, files)
            service = spawn(component, argv, env, self.log(component), sandbox=box)
            server = Server(component, service, local_port if container is proxy else 0, workload=deployment)
            self.servers.append(server)
            started.append(server)
            probe = container.get("readinessProbe") or {}
            if "exec" in probe:
                exec_argv = list(probe["exec"]["command"])
                if exec_argv[0] == "python":
                    exec_argv[0] = str(entrypoints / "python")
                ready = _exec_ready(box.argv(exec_argv), env)
                server.seconds_to_ready = await_ready(service, ready, READY_TIMEOUT, "its exec readiness probe passed")
            elif "httpGet" in probe:
                get = probe["httpGet"]
                if port_number(container, get["port"]) != container_port:
                    raise DataPlaneError(component, f"probes port {get['port']}, which its Service does not expose")
                url = f"http://{HOST}:{local_port}{get.get('path', '/')}"
                server.seconds_to_ready = await_ready(service, http_ready(url), READY_TIMEOUT, "its readiness probe passed")
            else:
                raise DataPlaneError(component, "declares no readiness probe")
        self.browser_server = started[-1]
        return self.browser_server


def _exec_ready(argv: list[str], env: Mapping[str, str]):
    def check() -> str | None:
        try:
            done = subprocess.run(argv, env=dict(env), capture_output=True, timeout=10)
        except subprocess.TimeoutExpired:
            return "probe timed out"
        return None if done.returncode == 0 else f"probe exited {done.returncode}: {done.stderr.decode(errors='replace')[-200:]}"

    return check


def _write_key(path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    path.chmod(0o600)


def wait_until(check, timeout: float, what: str) -> None:
    """Poll ``check`` (truthy when done) every 0.2 s for at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise DataPlaneError("browser", f"{what} did not happen within {timeout:.0f} s")
