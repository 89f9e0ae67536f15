"""The offline front end: every policy over recorded resources, from ``make plan`` or a ``pulumi stack export``.

Stricter than CrossGuard on one point: the audit sees which values are Pulumi
secrets. A secret value is protected wherever it is; a value that must be a
secret (a Secret's data, a RandomPassword's result) but is held in plaintext
is a leak, although CrossGuard, which receives secrets unwrapped, cannot tell.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path as FilePath
from typing import Any

from .checks import POLICIES, credential_findings
from .config import ConfigError, Settings, enforcement
from .detectors import Allowed
from .model import Context, PropsView, Resource
from .paths import Path, PathSet, render
from .platform import REDACTED
from .walk import SECRET_SIG, SIG_KEY


class AuditError(ValueError):
    """Input the audit cannot read. The message is one line and never quotes a value from the input."""


@dataclass(frozen=True)
class Violation:
    policy: str
    urn: str
    path: str
    kind: str
    mandatory: bool
    # The rule that found it and the decodings that reached it (Finding.trace), for a credential.
    rule: str = ""

    def line(self) -> str:
        return f"{self.policy} {self.urn} {self.path}: {self.kind}" + (f" [{self.rule}]" if self.rule else "")


def audit_resources(
    resources: Iterable[Mapping[str, Any]],
    *,
    stack: str | None = None,
    config: Mapping[str, Any] | None = None,
) -> list[Violation]:
    """Run every enabled policy over ``resources`` (the ``build/<stack>/resources.json`` shape).

    Each mapping has ``urn``, ``type``, ``inputs`` and ``secretPaths``, optionally ``name``,
    ``protect``, ``dependencies``, ``propertyDependencies``, and ``outputs`` with
    ``outputSecretPaths`` (from a state file). ``config`` is a ``--policy-pack-config``
    document; ``stack`` (default: read from the URNs) decides prod-only policies.
    Raises AuditError or ConfigError on malformed input.
    """
    parsed = [_resource(index, record) for index, record in enumerate(resources)]
    unknown = sorted(set(config or {}) - {spec.name for spec in POLICIES} - {"all"})
    if unknown:
        raise ConfigError(f"{unknown[0]}: no such policy; policies: {', '.join(spec.name for spec in POLICIES)}")
    context_stack = stack if stack is not None else _stack_of(parsed)
    violations: list[Violation] = []
    for spec in POLICIES:
        level, raw = enforcement(config, spec.name, spec.level)
        if level == "disabled":
            continue
        ctx = Context(context_stack, Settings.parse(spec.name, raw, spec.config_keys))
        violations.extend(
            Violation(
                spec.name, hit.resource.urn, hit.finding.path, hit.finding.kind, level in ("mandatory", "remediate"), hit.finding.trace()
            )
            for hit in spec.run(parsed, ctx)
        )
    position = {r.urn: i for i, r in enumerate(parsed)}
    rank = {spec.name: i for i, spec in enumerate(POLICIES)}
    return sorted(violations, key=lambda v: (position[v.urn], rank[v.policy], v.path, v.kind))


def explain(resources: Iterable[Mapping[str, Any]], *, stack: str | None = None) -> list[str]:
    """What the named allowances accepted, one line each (``allowed <urn> <path>: <kind> [<rule>] by <allowance>``),
    so that a rule that stayed silent can be traced like one that spoke. Never a value."""
    parsed = [_resource(index, record) for index, record in enumerate(resources)]
    ctx = Context(stack if stack is not None else _stack_of(parsed), Settings())
    lines = []
    for resource in parsed:
        accepted: list[tuple[str, Allowed]] = []
        for _ in credential_findings(resource, ctx, accepted):
            pass
        lines += sorted({f"allowed {resource.urn} {path}: {a.kind} [{a.trace()}] by {a.allowance}" for path, a in accepted})
    return lines


def _resource(index: int, record: Any) -> Resource:
    if not isinstance(record, Mapping):
        raise AuditError(f"resource {index}: expected an object")
    urn, type_ = record.get("urn"), record.get("type")
    if not isinstance(urn, str) or not isinstance(type_, str):
        raise AuditError(f"resource {index}: 'urn' and 'type' must be strings")
    views = [_view(urn, record, "inputs", "secretPaths")]
    if record.get("outputs") is not None:
        views.append(_view(urn, record, "outputs", "outputSecretPaths"))
    dependencies = _strings(urn, record, "dependencies")
    property_dependencies = record.get("propertyDependencies") or {}
    if not isinstance(property_dependencies, Mapping):
        raise AuditError(f"{urn}: 'propertyDependencies' must be an object")
    return Resource(
        urn=urn,
        type=type_,
        name=record.get("name") or urn.rsplit("::", 1)[-1],
        views=tuple(views),
        protect=bool(record.get("protect")),
        dependencies=frozenset(dependencies),
        property_dependencies={k: frozenset(_strings(urn, property_dependencies, k)) for k in property_dependencies},
    )


def _view(urn: str, record: Mapping[str, Any], props_key: str, secrets_key: str) -> PropsView:
    props = record.get(props_key) or {}
    if not isinstance(props, Mapping):
        raise AuditError(f"{urn}: '{props_key}' must be an object")
    return PropsView(props, PathSet(_strings(urn, record, secrets_key)), secrets_known=True)


def _strings(urn: str, record: Mapping[str, Any], key: str) -> list[str]:
    value = record.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise AuditError(f"{urn}: '{key}' must be a list of strings")
    return value


def _stack_of(resources: list[Resource]) -> str | None:
    """``urn:pulumi:<stack>::<project>::...``"""
    for r in resources:
        head = r.urn.split("::", 1)[0].split(":")
        if len(head) == 3 and head[:2] == ["urn", "pulumi"]:
            return head[2]
    return None


# -- reading state --------------------------------------------------------------------


def records_from_export(document: Any) -> list[dict[str, Any]]:
    """A version 3 ``pulumi stack export`` as audit records; secret values become ``[secret]``.

    Works the same with ``--show-secrets``: a plaintext secret is still a secret.
    """
    if not isinstance(document, dict) or document.get("version") != 3:
        raise AuditError('not a version 3 stack export (expected {"version": 3, "deployment": ...})')
    deployment = document.get("deployment")
    if not isinstance(deployment, dict):
        raise AuditError("'deployment' must be an object")
    resources = deployment.get("resources") or []
    if not isinstance(resources, list):
        raise AuditError("'deployment.resources' must be a list")
    records = []
    for index, state in enumerate(resources):
        if not isinstance(state, dict):
            raise AuditError(f"resource {index}: expected an object")
        record = {k: state.get(k) for k in ("urn", "type", "protect", "dependencies", "propertyDependencies")}
        for props_key, secrets_key in (("inputs", "secretPaths"), ("outputs", "outputSecretPaths")):
            secret_paths: list[str] = []
            record[props_key] = _unseal(state.get(props_key) or {}, (), secret_paths)
            record[secrets_key] = secret_paths
        records.append(record)
    return records


def _unseal(value: Any, path: Path, secret_paths: list[str]) -> Any:
    if isinstance(value, dict):
        signature = value.get(SIG_KEY)
        if signature == SECRET_SIG:
            secret_paths.append(render(path))
            return REDACTED
        if signature is not None:
            return None  # an asset or archive: file contents are not in the state
        return {k: _unseal(v, path + (k,), secret_paths) for k, v in value.items()}
    if isinstance(value, list):
        return [_unseal(v, path + (i,), secret_paths) for i, v in enumerate(value)]
    return value


def read_records(document: Any) -> list[dict[str, Any]]:
    """A stack export, or the ``{"stack", "resources"}`` document ``make plan`` writes."""
    if isinstance(document, dict) and "version" not in document and isinstance(document.get("resources"), list):
        return document["resources"]
    return records_from_export(document)


def _load_json(source: str, error: type[ValueError]) -> Any:
    try:
        text = sys.stdin.read() if source == "-" else FilePath(source).read_text(encoding="utf-8")
    except OSError as exc:
        raise error(f"cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise error("not UTF-8 text") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None


def _load_config(source: str | None) -> dict[str, Any] | None:
    if source is None:
        return None
    config = _load_json(source, ConfigError)
    if not isinstance(config, dict):
        raise ConfigError("expected a JSON object mapping policy names to settings")
    return config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="audit",
        description="Run the policy pack over a `pulumi stack export` (with or without --show-secrets). "
        "Exit 0: no mandatory violation; 1: some; 2: unreadable input.",
    )
    parser.add_argument("state", help="stack export file, '-' for stdin, or build/<stack>/resources.json")
    parser.add_argument("--stack", help="stack name for prod-only policies (default: from the URNs)")
    parser.add_argument("--config", help="a --policy-pack-config JSON file")
    parser.add_argument("--explain", action="store_true", help="also print what each named allowance accepted (docs/policies.md)")
    args = parser.parse_args(argv)
    try:
        records = read_records(_load_json(args.state, AuditError))
        violations = audit_resources(records, stack=args.stack, config=_load_config(args.config))
    except AuditError as exc:
        print(f"audit: {args.state}: {exc}", file=sys.stderr)
        return 2
    except ConfigError as exc:
        print(f"audit: {args.config or 'config'}: {exc}", file=sys.stderr)
        return 2
    for violation in violations:
        print(violation.line())
    if args.explain:
        for line in explain(records, stack=args.stack):
            print(line)
    mandatory = sum(v.mandatory for v in violations)
    print(f"audit: {len(records)} resources, {len(violations)} violations, {mandatory} mandatory", file=sys.stderr)
    return 1 if mandatory else 0
