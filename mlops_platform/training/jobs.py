"""TrainingJobs: a training Job, run once or on a schedule (a CronJob), declared per ``training`` config entry.

A job in a Kubeflow profile is a client like a notebook: its pods carry the profile's
MLflow PodDefault selector, so Kubeflow's webhook injects the very env, labels and
storage credentials a notebook gets (one definition, no copy), the profile's egress
Sidecar applies, and they run as ``default-editor``, the identity the MLflow access policy
admits and that carries the profile's grant (IRSA on eks). A job in the tracking
namespace (only without Kubeflow's mesh) gets the tracking URI; artifacts go through the
server's proxy, so it needs no storage credentials.

A failed run is not retried unless asked (``backoffLimit`` 0, ``restartPolicy: Never``):
its pod stays, with its logs, for ``keepFinishedHours``, then the Job is collected.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from mlops_platform.contracts import ProfileClients
from mlops_platform.k8s import naming
from mlops_platform.k8s.containers import ScratchDir, api_token, container, plain_env, pod_spec, scanner_exceptions, scratch_volumes
from mlops_platform.training.settings import TrainingJob

COMPONENT = "training"
# Lets the mesh sidecar end with the training container, so a Job in a profile can complete.
NATIVE_SIDECAR = {"sidecar.istio.io/nativeSidecar": "true"}


@dataclass(frozen=True)
class TrainingJobsArgs:
    jobs: Sequence[TrainingJob]
    tracking_namespace: str
    # What a client in the tracking namespace needs besides the artifact proxy (tracking URI, telemetry opt-out).
    client_env: Mapping[str, str]
    tracking_ready: Sequence[pulumi.Resource]
    profiles: ProfileClients | None = None


class TrainingJobs(pulumi.ComponentResource):
    """One Job or CronJob per configured training entry."""

    names: list[str]

    def __init__(self, name: str, args: TrainingJobsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlops:index:TrainingJobs", name, None, opts)
        self.names = []
        for job in args.jobs:
            namespace = job.namespace or args.tracking_namespace
            self._declare(name, job, namespace, args)
            self.names.append(f"{namespace}/{job.name}")
        self.register_outputs({"jobs": self.names})

    def _declare(self, name: str, job: TrainingJob, namespace: str, args: TrainingJobsArgs) -> None:
        in_profile = namespace != args.tracking_namespace
        profiles = args.profiles
        if in_profile and (profiles is None or namespace not in profiles.namespaces):
            raise ValueError(f"training {job.name}: {namespace} is not a Kubeflow profile of this stack")
        env = dict(job.env)
        if job.experiment:
            env["MLFLOW_EXPERIMENT_NAME"] = job.experiment
        if not in_profile:
            env.update(args.client_env)
        env.setdefault("HOME", "/tmp")
        scratch = [ScratchDir("tmp", "/tmp", "2Gi")]
        # Under MLflow workspaces the server authorizes the job as its ServiceAccount, as it does a notebook.
        token = [api_token()] if in_profile and args.profiles is not None and args.profiles.api_token else []
        trainer = container(
            "train",
            job.image,
            job.resources,
            command=job.command,
            args=job.args,
            env=plain_env(env),
            scratch=scratch,
            mounts=[mount for _, mount in token],
        )
        labels = naming.labels(COMPONENT, job.name)
        annotations: dict[str, str] | None = None
        service_account = None
        depends: list[pulumi.Resource] = list(args.tracking_ready)
        if in_profile and profiles is not None:
            labels.update(profiles.selector_labels)
            annotations = dict(NATIVE_SIDECAR)
            service_account = profiles.service_account
            depends += list(profiles.ready)
        template = k8s.core.v1.PodTemplateSpecArgs(
            metadata=k8s.meta.v1.ObjectMetaArgs(labels=labels, annotations=annotations),
            spec=pod_spec(
                [trainer],
                volumes=scratch_volumes([scratch]) + [volume for volume, _ in token],
                service_account=service_account,
                restart_policy="Never",
            ),
        )
        job_spec = k8s.batch.v1.JobSpecArgs(
            backoff_limit=job.backoff_limit,
            active_deadline_seconds=job.active_deadline_seconds,
            ttl_seconds_after_finished=job.keep_finished_hours * 3600,
            template=template,
        )
        exceptions = scanner_exceptions(trainer)
        opts = pulumi.ResourceOptions(parent=self, depends_on=depends)
        if job.schedule is None:
            k8s.batch.v1.Job(
                f"{name}-{namespace}-{job.name}",
                # `pulumi up` does not wait for training to finish, nor fail with it: the run's outcome is MLflow's and the pod's.
                metadata=naming.metadata(
                    job.name, namespace, component=COMPONENT, instance=job.name, annotations={**exceptions, "pulumi.com/skipAwait": "true"}
                ),
                spec=job_spec,
                # A Job's template is immutable: a changed definition replaces it (same name, so delete first) and runs again.
                opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(delete_before_replace=True)),
            )
            return
        k8s.batch.v1.CronJob(
            f"{name}-{namespace}-{job.name}",
            metadata=naming.metadata(job.name, namespace, component=COMPONENT, instance=job.name, annotations=exceptions or None),
            spec=k8s.batch.v1.CronJobSpecArgs(
                schedule=job.schedule,
                # A run still going when the next is due is not doubled.
                concurrency_policy="Forbid",
                successful_jobs_history_limit=1,
                failed_jobs_history_limit=1,
                job_template=k8s.batch.v1.JobTemplateSpecArgs(metadata=k8s.meta.v1.ObjectMetaArgs(labels=labels), spec=job_spec),
            ),
            opts=opts,
        )
