"""The shared value types of every settings block (mlops_platform/settings_base.py).

A schedule is refused before any resource is declared exactly when the apiserver would refuse the CronJob;
tests/cluster/test_schedules.py asks the real kube-apiserver about the same schedules.
"""

from __future__ import annotations

import pytest

from mlops_platform.settings_base import cron_problem
from tools.testing.plans import config

# What robfig/cron v3.0.1's ParseStandard accepts and the apiserver's validation lets through.
ACCEPTED = [
    "15 2 * * *",
    "*/5 * * * *",
    "0,30 8-18/2 * * 1-5",
    "0 0 1 jan *",
    "0 0 * * MON-FRI",
    "? * * * *",
    "5/15 * * * *",
    "0 0 31 12 6",
    "1,,2 * * * *",
    "  15 2 * * *  ",
    "@daily",
    "@midnight",
    "@annually",
    "@every 1h30m",
]
# (schedule, the reason given)
REFUSED = [
    ("every night", "2 fields, not 5"),
    ("* * * *", "4 fields, not 5"),
    ("0 * * * * *", "6 fields, not 5"),
    ("60 * * * *", "minute: '60' is outside 0-59"),
    ("* 24 * * *", "hour: '24' is outside 0-23"),
    ("0 0 0 * *", "day of month: '0' is outside 1-31"),
    ("0 0 * 13 *", "month: '13' is outside 1-12"),
    ("0 0 * * 7", "day of week: '7' is outside 0-6"),
    ("0 0 * * sunday", "day of week: 'sunday' is not a number"),
    ("5-1 * * * *", "minute: '5-1' begins after it ends"),
    ("*/0 * * * *", "minute: '*/0' has a step of 0"),
    ("1/2/3 * * * *", "minute: too many slashes in '1/2/3'"),
    ("1-2-3 * * * *", "minute: too many hyphens in '1-2-3'"),
    ("CRON_TZ=UTC 0 3 * * *", "a time zone in the schedule"),
    ("TZ=Europe/Berlin 0 3 * * *", "a time zone in the schedule"),
    ("@fortnightly", "an unknown descriptor"),
    ("@every 1x", "an unknown descriptor"),
]


@pytest.mark.parametrize("schedule", ACCEPTED)
def test_a_schedule_the_cronjob_controller_reads_is_accepted(schedule):
    assert cron_problem(schedule) is None


@pytest.mark.parametrize(("schedule", "reason"), REFUSED, ids=[s for s, _ in REFUSED])
def test_a_schedule_the_apiserver_refuses_is_refused_with_the_reason(schedule, reason):
    problem = cron_problem(schedule)
    assert problem is not None and problem.startswith(reason)


def test_every_schedule_key_takes_the_same_grammar():
    """Backups, gc and training read one type: a descriptor is as good for one as for the others."""
    job = {"name": "nightly", "namespace": "kubeflow-user-example-com", "image": "ghcr.io/acme/train:1.0", "command": ["train"]}
    parsed = config("dev", maintenance={"backupSchedule": "@daily", "gcSchedule": "0 4 * * SUN"}, training=[{**job, "schedule": "@weekly"}])
    assert (parsed.maintenance.backup_schedule, parsed.maintenance.gc_schedule, parsed.training[0].schedule) == (
        "@daily",
        "0 4 * * SUN",
        "@weekly",
    )
