"""Declared Jobs and CronJobs run as the kubelet runs their pod: init containers in order, then the container.

Each container runs its declared ``command + args`` with its declared env, through the host
mapping. The pod's emptyDir mount paths (``/backup``, ``/tmp``) become per-run directories
shared by the pod's containers (the host mapping's rule 3), rewritten wherever an argument
or env value names them. The postgres image's tools are Debian's binaries of the same major;
every other image's entrypoints are the venv's, as for the servers.
"""

from __future__ import annotations

import re
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from tests.e2e.declared import CLUSTER_DOMAIN, resolve_env
from tests.e2e.errors import DataPlaneError
from tests.e2e.launch import base_env, run_once
from tests.e2e.postgres import postgres_bindir
from tests.e2e.s3 import provisions_minio
from tools.harness import DeclaredResource, Plan

JOB_TIMEOUT = 300


class Jobs:
    """The Job part of a :class:`~tests.e2e.plane.DataPlane`."""

    def migration_jobs(self, plan: Plan, deployment: DeclaredResource) -> list[DeclaredResource]:
        """The Jobs the Deployment is declared to wait for (``depends_on``), MinIO's provisioning aside (replayed with the buckets)."""
        waits_for = [plan.by_urn(urn) for urn in deployment.dependencies]
        return [r for r in waits_for if r.kind == "Job" and not provisions_minio(r)]

    def run_job(
        self, plan: Plan, workload: DeclaredResource, *, entrypoints: Path | None = None, outside_env: Mapping[str, str] | None = None
    ) -> dict[str, float]:
        """Run the pod of a Job (or of a CronJob's job template) once; returns seconds per container.

        The first container that exits non-zero fails the run, naming it, and nothing after
        it runs (an init container that fails stops the pod, as in the cluster). ``entrypoints``
        and ``outside_env`` as for ``start_deployment`` (a job of the server image with its plugins,
        the in-cluster credentials the kubelet would mount).
        """
        pod = workload.pod_spec() or {}
        root = Path(tempfile.mkdtemp(prefix=f"{workload.k8s_name}-", dir=self.workdir))
        scratch = {v["name"]: root / v["name"] for v in pod.get("volumes") or [] if "emptyDir" in v}
        for directory in scratch.values():
            directory.mkdir()
        timings: dict[str, float] = {}
        for container in (pod.get("initContainers") or []) + pod["containers"]:
            component = container["name"]
            if not container.get("command"):
                raise DataPlaneError(component, "has no command: the image's entrypoint cannot be reproduced here")
            paths = {m["mountPath"]: scratch[m["name"]] for m in container.get("volumeMounts") or [] if m["name"] in scratch}

            def local(value: str, paths: dict[str, Path] = paths) -> str:
                if not paths:
                    return value
                mounts = "|".join(re.escape(m) for m in sorted(paths, key=len, reverse=True))
                return re.sub(rf"(?<![\w/])({mounts})(?=/|$)", lambda m: str(paths[m.group(1)]), value)

            declared = resolve_env(plan, workload.k8s_namespace, container, component)
            rewritten = {k: local(v) for k, v in self.hosts.rewrite_env(declared, component).items()}
            env = {**base_env(self.home, entrypoints), **rewritten, **(outside_env or {})}
            env["PATH"] = self._image_path(plan, container, env["PATH"])
            argv = [local(self.hosts.rewrite(a)) for a in [*container["command"], *(container.get("args") or [])]]
            left = [a for a in argv if re.search(rf"[\w.-]+\.{re.escape(CLUSTER_DOMAIN)}", a)]
            if left:
                raise DataPlaneError(component, f"its command names {left[0][:120]}, which no declared Service provides")
            started = time.monotonic()
            run_once(component, argv, env, self.log(f"{workload.k8s_name}-{component}"), JOB_TIMEOUT)
            timings[component] = time.monotonic() - started
        return timings

    def _image_path(self, plan: Plan, container: dict, path: str) -> str:
        """What the image's PATH offers: Debian's PostgreSQL binaries of the same major for the postgres image; for the mc
        image only the stand-in ``mc`` (the image has no grep or the like, so nothing else may be called); else ``path``.
        """
        mc_images = {c["image"] for j in plan.kinds("Job") if provisions_minio(j) for c in j.pod_spec()["containers"]}
        if container["image"] in mc_images:
            return str(self.mc_bin())
        postgres_images = {c["image"] for s in plan.kinds("StatefulSet") for c in s.pod_spec()["containers"] if c["name"] == "postgresql"}
        if container["image"] not in postgres_images:
            return path
        bindir = postgres_bindir()
        if bindir is None:
            raise DataPlaneError(container["name"], "no PostgreSQL binaries to stand in for the postgres image")
        major = container["image"].rsplit(":", 1)[-1].split(".")[0]
        if bindir.parent.name != major:
            raise DataPlaneError(container["name"], f"image {container['image']} has PostgreSQL {major}, here is {bindir.parent.name}")
        return f"{bindir}:{path}"
