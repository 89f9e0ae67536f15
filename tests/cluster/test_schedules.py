"""The config's schedule rule against the real kube-apiserver: the program refuses what the apiserver refuses.

Each schedule of tests/test_settings_base.py goes to the session's kube-apiserver as a CronJob, created with
``dryRun=All`` (validated and admitted, never stored). The apiserver's verdict must be the config's.
"""

from __future__ import annotations

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from mlops_platform.settings_base import cron_problem
from tests.test_settings_base import ACCEPTED, REFUSED

SCHEDULES = [*ACCEPTED, *(s for s, _ in REFUSED)]


def _cron_job(schedule: str) -> client.V1CronJob:
    container = client.V1Container(name="job", image="registry.k8s.io/pause:3.10")
    template = client.V1PodTemplateSpec(spec=client.V1PodSpec(containers=[container], restart_policy="Never"))
    return client.V1CronJob(
        metadata=client.V1ObjectMeta(name="schedule-check"),
        spec=client.V1CronJobSpec(schedule=schedule, job_template=client.V1JobTemplateSpec(spec=client.V1JobSpec(template=template))),
    )


def test_the_apiserver_admits_exactly_the_schedules_the_config_accepts(cluster):
    batch = client.BatchV1Api(cluster.api())
    verdicts = {}
    for schedule in SCHEDULES:
        try:
            batch.create_namespaced_cron_job("default", _cron_job(schedule), dry_run="All")
            verdicts[schedule] = True
        except ApiException as exc:
            if exc.status != 422:
                pytest.fail(f"{schedule!r}: the apiserver answered {exc.status}, not a verdict: {exc.body}")
            verdicts[schedule] = False
    disagreements = {s: ("admitted" if ok else "refused") for s, ok in verdicts.items() if ok != (cron_problem(s) is None)}
    assert disagreements == {}, f"the apiserver disagrees with the config about: {disagreements}"
