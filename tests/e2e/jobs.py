"""Declared Jobs and CronJobs run as the kubelet runs their pod: init containers in order, then the container.

Each container runs its declared ``command + args`` with its declared env, through the host
mapping, held to its security context (tests/e2e/sandbox.py): the pod's volumes (``/backup``,
``/tmp``, Secrets) are made once and mounted at their declared paths in every container that
mounts them, so paths stay as declared. The postgres image's tools are Debian's binaries of the
same major; the mc image's only command is the stand-in mc; every other image's entrypoints are
the venv's, as for the servers.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from pathlib import Path

from tests.e2e.declared import CLUSTER_DOMAIN, declared_name, declared_namespace, resolve_env, workload_pod
from tests.e2e.errors import DataPlaneError
from tests.e2e.launch import run_once
from tests.e2e.part import Part
from tests.e2e.postgres import postgres_bindir
from tests.e2e.s3 import provisions_minio
from tools.testing.harness import DeclaredResource, Plan

JOB_TIMEOUT = 300
# Where the stand-in mc is mounted in the mc image's containers, and their whole PATH.
MC_IMAGE_BIN = "/opt/mc-image/bin"


class Jobs(Part):
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
        pod, namespace = workload_pod(workload), declared_namespace(workload)
        volumes = self.pod_volumes(plan, namespace, pod, declared_name(workload))
        timings: dict[str, float] = {}
        for container in (pod.get("initContainers") or []) + pod["containers"]:
            component = container["name"]
            if not container.get("command"):
                raise DataPlaneError(component, "has no command: the image's entrypoint cannot be reproduced here")
            declared = self.hosts.rewrite_env(resolve_env(plan, namespace, container, component), component)
            handed, files = volumes.hand_in(outside_env or {})
            env = {**self.container_env(entrypoints), **declared, **handed}
            env["PATH"], image_files = self._image_path(plan, container, env["PATH"])
            files = {**files, **image_files}
            argv = [self.hosts.rewrite(a) for a in [*container["command"], *(container.get("args") or [])]]
            left = [a for a in argv if re.search(rf"[\w.-]+\.{re.escape(CLUSTER_DOMAIN)}", a)]
            if left:
                raise DataPlaneError(component, f"its command names {left[0][:120]}, which no declared Service provides")
            box = self.container_sandbox(pod, container, volumes, component, env, files)
            started = time.monotonic()
            run_once(component, argv, env, self.log(f"{workload.k8s_name}-{component}"), JOB_TIMEOUT, sandbox=box)
            timings[component] = time.monotonic() - started
        return timings

    def _image_path(self, plan: Plan, container: dict, path: str) -> tuple[str, dict[str, Path]]:
        """What the image's PATH offers, and what of it is mounted in: Debian's PostgreSQL binaries of the same major for the
        postgres image; for the mc image only the stand-in ``mc`` (the image has no grep or the like, so nothing else may
        be called), mounted at MC_IMAGE_BIN; else ``path``.
        """
        mc_images = {c["image"] for j in plan.kinds("Job") if provisions_minio(j) for c in workload_pod(j)["containers"]}
        if container["image"] in mc_images:
            return MC_IMAGE_BIN, {MC_IMAGE_BIN: self.mc_bin()}
        postgres_images = {
            c["image"] for s in plan.kinds("StatefulSet") for c in workload_pod(s)["containers"] if c["name"] == "postgresql"
        }
        if container["image"] not in postgres_images:
            return path, {}
        bindir = postgres_bindir()
        if bindir is None:
            raise DataPlaneError(container["name"], "no PostgreSQL binaries to stand in for the postgres image")
        major = container["image"].rsplit(":", 1)[-1].split(".")[0]
        if bindir.parent.name != major:
            raise DataPlaneError(container["name"], f"image {container['image']} has PostgreSQL {major}, here is {bindir.parent.name}")
        return f"{bindir}:{path}", {}
