"""A declared training Job run as a local process: its command, its declared env and what the profile's PodDefaults inject."""

from __future__ import annotations

from typing import Any

from tests.e2e.declared import declared_namespace, resolve_env
from tests.e2e.errors import DataPlaneError
from tests.e2e.kubeflow import PODDEFAULT_KIND, poddefault_env
from tests.e2e.launch import RUN_TIMEOUT, run_once
from tests.e2e.part import Part
from tools.testing.harness import DeclaredResource, Plan
from tools.testing.processes import HOST


def job_template(job: DeclaredResource) -> dict[str, Any]:
    """The pod template of a Job or a CronJob's job template."""
    spec = job.inputs["spec"]
    if "jobTemplate" in spec:
        spec = spec["jobTemplate"]["spec"]
    return spec["template"]


class Training(Part):
    """The training part of a :class:`~tests.e2e.plane.DataPlane`."""

    def run_training(self, plan: Plan, job: DeclaredResource) -> None:
        """Run the Job's single container to completion as the kubelet would, after Kubeflow's webhook mutated the pod.

        The env is the container's declared env plus what every PodDefault of the namespace
        whose selector matches the pod's labels injects; a name set by both fails, as the webhook
        refuses such a pod. It runs held to its security context, its volumes at their declared paths.
        """
        component = f"training-{job.k8s_name}"
        namespace = declared_namespace(job)
        template = job_template(job)
        containers = template["spec"]["containers"]
        if len(containers) != 1:
            raise DataPlaneError(component, f"has {len(containers)} containers; one is supported")
        container = containers[0]
        if not container.get("command"):
            raise DataPlaneError(component, "has no command: the image's entrypoint cannot be reproduced here")
        labels = (template.get("metadata") or {}).get("labels") or {}
        selected = [
            d
            for d in plan.kinds(PODDEFAULT_KIND)
            if d.k8s_namespace == namespace and (d.inputs["spec"]["selector"].get("matchLabels") or {}).items() <= labels.items()
        ]
        injected = poddefault_env(plan, namespace, labels, component) if selected else {}
        declared = resolve_env(plan, namespace, container, component)
        both = sorted(set(injected) & set(declared))
        if both:
            raise DataPlaneError(component, f"declares {both}, which its PodDefaults inject too (the webhook refuses the pod)")
        env = self.hosts.rewrite_env({**injected, **declared}, component)
        for name in ("AWS_ENDPOINT_URL", "MLFLOW_S3_ENDPOINT_URL"):
            if name in env and not env[name].startswith(f"http://{HOST}:"):
                raise DataPlaneError(component, f"{name} is {env[name]}: S3 calls would not go to the declared MinIO")
        env = {**self.container_env(), **env}
        volumes = self.pod_volumes(plan, namespace, template["spec"], component)
        box = self.container_sandbox(template["spec"], container, volumes, component, env)
        argv = [*container["command"], *(container.get("args") or [])]
        run_once(component, argv, env, self.log(component), RUN_TIMEOUT["training"], sandbox=box)
