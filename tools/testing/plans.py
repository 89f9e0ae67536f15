"""What the tests ask of a plan: runs with overrides, refusals, parsed config, and the queries many test files share.

One set for the whole suite (tests/conftest.py holds only the fixtures and the lanes).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from mlops_platform.config import PlatformConfig, parse_config
from mlops_platform.settings_base import ConfigError
from tools.testing.harness import DeclaredResource, Plan, run_program, stack_config, with_overrides

# The tracking server's namespace in both stack files.
NS = "mlflow"


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


def config(stack: str, **overrides: object) -> PlatformConfig:
    """A stack file's config, parsed as the program parses it (its secret keys too), with some keys replaced."""
    raw, secret_keys = stack_config(stack)
    return parse_config(stack, with_overrides(raw, overrides), frozenset(k.partition(":")[2] for k in secret_keys))


def parse(**values: object) -> PlatformConfig:
    """Config from these keys alone (no stack file), as the program parses it."""
    return parse_config("test", with_overrides({}, values))


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


def container(resource: DeclaredResource, name: str) -> dict:
    """A container (or init container) of a workload's pod template, by name."""
    pod = resource.pod_spec() or {}
    for c in pod.get("containers", []) + pod.get("initContainers", []):
        if c["name"] == name:
            return c
    raise LookupError(f"no container {name} in {resource.name}")


def env_of(c: dict) -> dict[str, dict]:
    return {e["name"]: e for e in c.get("env", [])}


def mlflow(plan: Plan) -> DeclaredResource:
    """The tracking server's Deployment."""
    return plan.k8s("Deployment", "mlflow", NS)


def migration(plan: Plan) -> DeclaredResource:
    """The schema migration Job (named after the image)."""
    (job,) = [j for j in plan.kinds("Job") if (j.k8s_name or "").startswith("mlflow-migrate-")]
    return job


def network_policy(plan: Plan, name: str) -> dict:
    """The spec of a NetworkPolicy in the tracking namespace."""
    return plan.k8s("NetworkPolicy", name, NS).inputs["spec"]


def arg(args: list[str], flag: str) -> str:
    """The value after ``flag`` on a command line."""
    return args[args.index(flag) + 1]


# What a rotation test renders: a generation per credential, on dev or prod, or on dev with basic-auth alone.
PASSWORD = "random:index/randomPassword:RandomPassword"
BASIC = {
    "tracking": json.dumps({"externalHost": "mlflow.example.com"}),
    "kubeflow": json.dumps({"enabled": False}),
    "serving": json.dumps({"enabled": False}),
    "monitoring": json.dumps({"enabled": False}),
}


def rotated(stack: str = "dev", basic: bool = False, **generations: int) -> Plan:
    """A stack at these rotation generations (``basic``: dev with basic-auth and no Kubeflow, serving or monitoring)."""
    return run_with(stack, **(BASIC if basic else {}), rotation=json.dumps(generations))


def passwords(plan: Plan) -> dict[str, dict]:
    """Each generated password's inputs (its keepers), by resource name."""
    return {r.name: r.inputs for r in plan.of_type(PASSWORD)}


def job(plan: Plan, name: str) -> DeclaredResource:
    """The one Job declared under this Pulumi name."""
    (found,) = [r for r in plan.kinds("Job") if r.name == name]
    return found


def secret_ref(c: dict, name: str) -> dict:
    """The Secret key an env var of a container reads."""
    return env_of(c)[name]["valueFrom"]["secretKeyRef"]
