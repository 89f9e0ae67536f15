"""One mock harness for the whole suite: the real program, run once per stack."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlops_platform.config import ConfigError
from tools.testing.harness import DeclaredResource, Plan, run_program, stack_config, with_overrides

ROOT = Path(__file__).resolve().parent.parent
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


def _overridden(stack: str, overrides: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    config, secret_keys = stack_config(stack)
    return with_overrides(config, overrides), secret_keys


def run_with(stack: str, **overrides: str) -> Plan:
    """Run a stack with some config keys replaced (values as the CLI passes them: JSON text for objects)."""
    config, secret_keys = _overridden(stack, overrides)
    return run_program(stack, config=config, secret_keys=secret_keys)


def refused(stack: str, **overrides: str) -> tuple[str, list[DeclaredResource]]:
    """Run a stack whose config must be refused: the one-line error, and every resource registered before it."""
    config, secret_keys = _overridden(stack, overrides)
    declared: list[DeclaredResource] = []
    with pytest.raises(ConfigError) as caught:
        run_program(stack, config=config, secret_keys=secret_keys, declared=declared)
    return str(caught.value), declared


def strings(value: Any, keys: bool = True) -> Iterator[str]:
    """Every string inside a nested value (map keys too, unless ``keys`` is False)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            if keys:
                yield k
            yield from strings(v, keys)
    elif isinstance(value, list):
        for v in value:
            yield from strings(v, keys)


def generated_secrets(plan: Plan) -> set[str]:
    """Every credential pulumi-random generated in this plan."""
    return {r.outputs["result"] for r in plan.of_type("random:index/randomPassword:RandomPassword")}


def container(resource, name: str) -> dict:
    """A container (or init container) of a workload's pod template, by name."""
    pod = resource.pod_spec()
    for c in pod.get("containers", []) + pod.get("initContainers", []):
        if c["name"] == name:
            return c
    raise LookupError(f"no container {name} in {resource.name}")


def env_of(c: dict) -> dict[str, dict]:
    return {e["name"]: e for e in c.get("env", [])}
