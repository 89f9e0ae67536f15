"""The suite's fixtures (the real program, run once per stack) and its lanes; shared helpers are in tools.testing.plans."""

from __future__ import annotations

from pathlib import Path

import pytest

from tools.testing.harness import Plan, run_program

TESTS = Path(__file__).resolve().parent
LANES = {"e2e": "e2e", "cluster": "cluster"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Each test's lane from its directory: tests/e2e is e2e, tests/cluster is cluster, every other test is unit."""
    for item in items:
        top = item.path.resolve().relative_to(TESTS).parts[0]
        item.add_marker(LANES.get(top, "unit"))


@pytest.fixture(scope="session")
def dev() -> Plan:
    return run_program("dev")


@pytest.fixture(scope="session")
def prod() -> Plan:
    return run_program("prod")
