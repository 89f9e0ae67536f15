"""Settings of training jobs (``training``): commands run as Jobs or CronJobs that log to MLflow."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field

from mlops_platform.settings_base import Allowed, CronSchedule, DnsLabel, Image, Model, Resources, check

# Set by the platform from the tracking server and the profile's storage grant; a job may not override them.
PLATFORM_ENV = re.compile(r"^(MLFLOW_TRACKING_URI|MLFLOW_S3_ENDPOINT_URL|PROFILE_S3_URI|AWS_.*)$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _job_env(value: dict[str, str]) -> dict[str, str]:
    for name in value:
        if not _ENV_NAME.match(name):
            raise ValueError(f"{name!r} is not an environment variable name; allowed: letters, digits and '_'")
        if PLATFORM_ENV.match(name):
            raise ValueError(f"{name} is set by the platform; allowed: other names (credentials come from the profile's grant)")
    return value


class TrainingJob(Model):
    """A training command run as a Job (once) or a CronJob (``schedule``), logging to MLflow."""

    # CronJob names are limited to 52 characters (the controller appends a suffix per run).
    name: Annotated[str, check(re.compile(r"^[a-z0-9]([-a-z0-9]{0,50}[a-z0-9])?$"), "a DNS label of at most 52 characters")] = Field(
        description="The Job's or CronJob's name."
    )
    # A Kubeflow profile, or the tracking namespace when left out.
    namespace: DnsLabel | None = Field(
        default=None, description="A Kubeflow profile. Default: the tracking namespace (without Kubeflow only)."
    )
    image: Image = Field(description="The training image, pinned.")
    command: list[Annotated[str, Field(min_length=1)]] = Field(min_length=1, description="The container's command.")
    args: list[str] = Field(default=[], description="The command's arguments.")
    env: Annotated[
        dict[str, str],
        AfterValidator(_job_env),
        Allowed("environment variable names but MLFLOW_TRACKING_URI, MLFLOW_S3_ENDPOINT_URL, PROFILE_S3_URI, AWS_*"),
    ] = Field(default={}, description="Plain environment variables; MLflow and storage variables are the platform's.")
    schedule: CronSchedule | None = Field(
        default=None,
        description=(
            "A cron schedule, in the kube-controller-manager's time zone: a CronJob (no overlapping runs). Default: a Job that runs once."
        ),
    )
    experiment: str | None = Field(default=None, min_length=1, max_length=200, description="MLFLOW_EXPERIMENT_NAME of the runs.")
    resources: Resources = Field(
        default=Resources(cpu_request="500m", cpu_limit="2", memory_request="1Gi", memory_limit="4Gi"),
        description="The training container's requests and limits.",
    )
    # Retries of a failed run; 0 keeps the first failure's pod as it was.
    backoff_limit: int = Field(default=0, ge=0, le=6, description="Retries of a failed run; 0 keeps the failed pod as it was.")
    active_deadline_seconds: int | None = Field(default=None, ge=60, le=7 * 24 * 3600, description="Longest a run may take.")
    # How long a finished run (failed or not) and its pod are kept for inspection.
    keep_finished_hours: int = Field(default=24, ge=1, le=24 * 14, description="How long a finished run and its pod are kept.")
