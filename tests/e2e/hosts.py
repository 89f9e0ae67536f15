"""The host mapping: the only translation between declared in-cluster addresses and loopback ports."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from tests.e2e.declared import CLUSTER_DOMAIN, declared_name, pod_labels, workload_pod
from tests.e2e.errors import DataPlaneError
from tools.testing.harness import DeclaredResource, Plan
from tools.testing.processes import HOST, free_port


@dataclass
class HostMap:
    """The only translation between the declared objects and this machine.

    1. Each declared Service address ``<svc>.<ns>.svc.cluster.local:<port>`` maps to
       ``127.0.0.1:<free port>``, where the process standing in for the workload that
       Service selects listens. :meth:`rewrite` replaces exactly those ``host:port``
       tokens in a URL, env value or annotation; scheme, path, prefix, query and
       everything else stay as declared. An in-cluster address not in the map (a short
       name, a port no Service declares) is left alone, and :meth:`rewrite_env` fails
       naming it, as a lookup would fail in the cluster (no DNS query leaves here).
    2. A container's listen address: ``--host 0.0.0.0`` becomes ``127.0.0.1`` and
       ``--port <containerPort>`` the mapped port (:meth:`listen_args`), so nothing
       listens beyond loopback. A server declared to listen on anything but all
       interfaces fails: its Service could not reach it.
    3. Mount paths a workload writes to (emptyDirs, PVCs, ``/mnt/models``) are
       per-run directories; each place that does it says so.
    """

    routes: dict[str, int] = field(default_factory=dict)

    def expose(self, plan: Plan, workload: DeclaredResource) -> dict[int, int]:
        """Give each containerPort of ``workload`` a loopback port; route every declared Service selecting it there.

        Re-exposing the same workload (a restart) keeps its ports. Fails if no Service
        selects the pods, or a Service targets a port no container declares.
        """
        component = declared_name(workload)
        labels = pod_labels(workload)
        containers = workload_pod(workload)["containers"]
        ports = {p["name"]: p["containerPort"] for c in containers for p in c.get("ports") or [] if "name" in p}
        numbers = {p["containerPort"] for c in containers for p in c.get("ports") or []}
        services = [
            s
            for s in plan.kinds("Service")
            if s.k8s_namespace == workload.k8s_namespace
            and (s.inputs["spec"].get("selector") or {})
            and (s.inputs["spec"]["selector"]).items() <= labels.items()
        ]
        if not services:
            raise DataPlaneError(component, f"no declared Service selects its pods (labels {labels})")
        local: dict[int, int] = {}
        for service in services:
            for sp in service.inputs["spec"]["ports"]:
                target = sp.get("targetPort", sp["port"])
                container_port = ports.get(target) if isinstance(target, str) else int(target)
                if container_port is None or container_port not in numbers:
                    raise DataPlaneError(
                        component, f"Service {service.k8s_name} port {sp['port']} targets {target!r}, which no container declares"
                    )
                address = f"{service.k8s_name}.{service.k8s_namespace}.{CLUSTER_DOMAIN}:{sp['port']}"
                port = local.setdefault(container_port, self.routes.get(address) or free_port())
                self.routes[address] = port
        return local

    def rewrite(self, value: str) -> str:
        if not self.routes:
            return value
        alternatives = "|".join(re.escape(a) for a in sorted(self.routes, key=len, reverse=True))
        pattern = re.compile(rf"(?<![\w.-])({alternatives})(?!\d)")
        return pattern.sub(lambda m: f"{HOST}:{self.routes[m.group(1)]}", value)

    def rewrite_env(self, env: Mapping[str, str], component: str) -> dict[str, str]:
        """``env`` with every routed address rewritten; an in-cluster address left over fails (no DNS lookups here)."""
        out = {k: self.rewrite(v) for k, v in env.items()}
        for name, value in out.items():
            left = re.search(rf"[\w.-]+\.{re.escape(CLUSTER_DOMAIN)}(:\d+)?", value)
            if left:
                raise DataPlaneError(component, f"env {name} names {left.group(0)}, which no declared Service provides")
        return out

    @staticmethod
    def listen_args(component: str, args: Sequence[str], container_port: int, local_port: int) -> list[str]:
        """``--host 0.0.0.0`` -> ``127.0.0.1``; ``--port <containerPort>`` -> ``local_port``; nothing else."""
        out = list(args)
        flags = {arg: i + 1 for i, arg in enumerate(out[:-1]) if arg in ("--host", "--port")}
        if "--host" not in flags or out[flags["--host"]] not in ("0.0.0.0", "::"):
            declared = out[flags["--host"]] if "--host" in flags else "its default (loopback)"
            raise DataPlaneError(component, f"listens on {declared}, not all interfaces: its Service could not reach it")
        out[flags["--host"]] = HOST
        if "--port" not in flags or out[flags["--port"]] != str(container_port):
            declared = out[flags["--port"]] if "--port" in flags else "its default port"
            raise DataPlaneError(component, f"listens on --port {declared}, but its Service targets containerPort {container_port}")
        out[flags["--port"]] = str(local_port)
        return out

    def without(self, *addresses: str) -> HostMap:
        """A copy in which ``addresses`` get fresh ports when exposed (a second instance beside a running one)."""
        return HostMap({a: p for a, p in self.routes.items() if a not in addresses})
