"""The CrossGuard front end: each PolicySpec as a pulumi_policy policy.

CrossGuard hands validate functions the resource inputs with secrets unwrapped
and unmarked (pulumi/pulumi-policy#241), so secretness is unknown here; the
audit front end sees it.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Mapping
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Severity,
    StackValidationArgs,
    StackValidationPolicy,
)

from .checks import POLICIES
from .config import SCHEMA, Settings
from .model import Context, Hit, PolicySpec, PropsView, Resource

PACK_NAME = "mlops-platform"


def message(spec: PolicySpec, hit: Hit) -> str:
    """Names the resource, the path, the kind of problem and the rule that found it; never the value."""
    r, finding = hit.resource, hit.finding
    rule = f" (rule {finding.trace()})" if finding.rule else ""
    return f"{finding.kind} at {finding.path} in {r.type} '{r.name}'{rule}. {spec.remediation}"


def _context(spec: PolicySpec, config: Mapping[str, Any]) -> Context:
    """The engine sets PULUMI_STACK for policy packs; prod-only policies read it."""
    return Context(
        stack=os.environ.get("PULUMI_STACK"), settings=_settings(spec.name, json.dumps(config, sort_keys=True), spec.config_keys)
    )


@functools.lru_cache(maxsize=64)
def _settings(policy: str, config: str, keys: tuple[str, ...]) -> Settings:
    """The engine hands every validate call the same configuration: parse it once per policy."""
    return Settings.parse(policy, json.loads(config), keys)


def _from_args(args: ResourceValidationArgs) -> Resource:
    return Resource(
        urn=args.urn,
        type=args.resource_type,
        name=args.name,
        views=(PropsView(args.props),),
        protect=bool(args.opts.protect),
    )


def _from_policy_resource(r: PolicyResource) -> Resource:
    return Resource(
        urn=r.urn,
        type=r.resource_type,
        name=r.name,
        views=(PropsView(r.props),),
        protect=bool(r.opts.protect),
        dependencies=frozenset(d.urn for d in r.dependencies),
        property_dependencies={k: frozenset(d.urn for d in v) for k, v in r.property_dependencies.items()},
    )


def _resource_policy(spec: PolicySpec, **common: object) -> ResourceValidationPolicy:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        for hit in spec.run([_from_args(args)], _context(spec, args.get_config())):
            report_violation(message(spec, hit), None)

    return ResourceValidationPolicy(validate=validate, **common)  # type: ignore[arg-type]


def _stack_policy(spec: PolicySpec, **common: object) -> StackValidationPolicy:
    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        resources = [_from_policy_resource(r) for r in args.resources]
        for hit in spec.run(resources, _context(spec, args.get_config())):
            report_violation(message(spec, hit), hit.resource.urn)

    return StackValidationPolicy(validate=validate, **common)  # type: ignore[arg-type]


def crossguard_policy(spec: PolicySpec) -> ResourceValidationPolicy | StackValidationPolicy:
    common = dict(
        name=spec.name,
        description=spec.description,
        enforcement_level=EnforcementLevel(spec.level),
        severity=Severity(spec.severity),
        remediation_steps=spec.remediation,
        config_schema=PolicyConfigSchema(properties={k: SCHEMA[k] for k in spec.config_keys}),
    )
    return _stack_policy(spec, **common) if spec.stack_check else _resource_policy(spec, **common)


def crossguard_policies() -> list[ResourceValidationPolicy | StackValidationPolicy]:
    return [crossguard_policy(spec) for spec in POLICIES]
