"""Conformance gate: every rendered object valid for its API, and clean under checkov.

Built-in kinds are checked against the strict OpenAPI schema of the stack's
Kubernetes version (kubernetes-validate). InferenceServices are rebuilt through
the kserve SDK's typed models, rejecting any field the models do not know.
Istio, Kubeflow and Prometheus Operator resources have no schema source offline; they are checked
against the minimal structural schemas below (the fields this project writes),
documented in CONTRIBUTING.md (Conformance gate) as partial coverage.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import yaml

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Report:
    checked: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def count(self, how: str) -> None:
        self.checked[how] = self.checked.get(how, 0) + 1


# -- built-in kinds ------------------------------------------------------------------


def _schema_validator(manifest: dict, version: str) -> jsonschema.protocols.Validator | None:
    """kubernetes-validate's strict schema for the object's kind, or None when it has none.

    Built the way ``kubernetes_validate.validate`` builds it, so that every error
    can be reported, not only the first.
    """
    from kubernetes_validate import utils
    from referencing import Registry, Resource

    chosen = [v for v in utils.all_versions() if utils.major_minor(v) <= utils.major_minor(version)][-1]
    api_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", manifest["apiVersion"])
    schema_dir = f"kubernetes-json-schema/v{chosen}-local-strict"
    try:
        schema = utils.schema_contents(f"{schema_dir}/{manifest['kind'].lower()}-{api_version}.json", version)
    except FileNotFoundError:
        return None
    definitions = utils.schema_contents(f"{schema_dir}/_definitions.json", version)
    registry = Resource.from_contents(definitions) @ (Resource.from_contents(schema) @ Registry())
    return jsonschema.validators.Draft202012Validator(schema, registry=registry)


def builtin_errors(manifest: dict, version: str, *, partial: bool = False) -> list[str] | None:
    """Errors against the strict schema, or None when the kind is not built in.

    ``partial`` (server-side-apply patches) ignores missing required fields only.
    """
    validator = _schema_validator(manifest, version)
    if validator is None:
        return None
    errors = sorted(validator.iter_errors(manifest), key=lambda e: [str(p) for p in e.absolute_path])
    return [f"{_path(e.absolute_path)}: {e.message}" for e in errors if not (partial and e.validator == "required")]


def _path(parts) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(root)"


# -- InferenceService through the kserve SDK's models ------------------------------------


def _model_class(name: str):
    import kserve
    import kubernetes.client

    return getattr(kserve.models, name, None) or getattr(kubernetes.client.models, name)


def typed_errors(value: Any, type_name: str, path: str) -> list[str]:
    """Rebuild ``value`` as the generated OpenAPI model; unknown fields, wrong types and missing required fields are errors."""
    return _build(value, type_name, path)[1]


def _build(value: Any, type_name: str, path: str) -> tuple[Any, list[str]]:
    container = re.fullmatch(r"(?:list\[|List\[)(.*)\]", type_name)
    if container:
        if not isinstance(value, list):
            return None, [f"{path}: expected a list"]
        built = [_build(v, container.group(1), f"{path}[{i}]") for i, v in enumerate(value)]
        return [b for b, _ in built], [e for _, errs in built for e in errs]
    container = re.fullmatch(r"(?:dict\(|Dict\[)[^,]*, (.*)[\)\]]", type_name)
    if container:
        if not isinstance(value, dict):
            return None, [f"{path}: expected a map"]
        fields = {k: _build(v, container.group(1), f"{path}.{k}") for k, v in value.items()}
        return {k: b for k, (b, _) in fields.items()}, [e for _, errs in fields.values() for e in errs]
    primitives: dict[str, type | tuple[type, ...]] = {
        "str": str,
        "int": int,
        "bool": bool,
        "float": (int, float),
        "datetime": str,
        "date": str,
    }
    if type_name in primitives:
        ok = isinstance(value, primitives[type_name]) and not (type_name == "int" and isinstance(value, bool))
        return value, [] if ok else [f"{path}: expected {type_name}, got {type(value).__name__}"]
    if type_name == "object":
        return value, []
    klass = _model_class(type_name)
    if not isinstance(value, dict):
        return None, [f"{path}: expected an object ({type_name})"]
    by_json = {json_key: attr for attr, json_key in klass.attribute_map.items()}
    errors: list[str] = []
    kwargs = {}
    for key, item in value.items():
        attr = by_json.get(key)
        if attr is None:
            errors.append(f"{path}.{key}: unknown field for {type_name}")
            continue
        kwargs[attr], item_errors = _build(item, klass.openapi_types[attr], f"{path}.{key}")
        errors += item_errors
    if errors:
        return None, errors
    try:
        return klass(**kwargs), []
    except ValueError as exc:
        return None, [f"{path}: {exc}"]


def inference_service_errors(manifest: dict) -> list[str]:
    return typed_errors(manifest, "V1beta1InferenceService", "InferenceService")


def inference_service_round_trip(manifest: dict) -> dict:
    """``manifest`` rebuilt as the kserve SDK's typed models and serialised back (camelCase, no nulls), as the SDK would write it."""
    import kserve

    built, errors = _build(manifest, "V1beta1InferenceService", "InferenceService")
    if errors:
        raise ValueError("; ".join(errors))
    return kserve.ApiClient().sanitize_for_serialization(built)


# -- Istio and Kubeflow: the fields this project writes ---------------------------------

_META = {"type": "object", "required": ["name", "namespace"], "properties": {"name": {"type": "string"}, "namespace": {"type": "string"}}}
_STR_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
# A selector of labels only (no matchExpressions).
_MATCH_LABELS = {"type": "object", "required": ["matchLabels"], "additionalProperties": False, "properties": {"matchLabels": _STR_MAP}}
_ENV = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["name"],
        "additionalProperties": False,
        "properties": {"name": {"type": "string"}, "value": {"type": "string"}, "valueFrom": {"type": "object"}},
    },
}


def _cr(api_versions: list[str], kind: str, spec: dict) -> dict:
    return {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "additionalProperties": False,
        "properties": {
            "apiVersion": {"enum": api_versions},
            "kind": {"const": kind},
            "metadata": _META,
            "spec": spec,
        },
    }


_STRING_MATCH = {
    "type": "object",
    "additionalProperties": False,
    "minProperties": 1,
    "maxProperties": 1,
    "properties": {"exact": {"type": "string"}, "prefix": {"type": "string"}, "regex": {"type": "string"}},
}

VIRTUAL_SERVICE = _cr(
    ["networking.istio.io/v1", "networking.istio.io/v1beta1"],
    "VirtualService",
    {
        "type": "object",
        "required": ["hosts", "http"],
        "additionalProperties": False,
        "properties": {
            "hosts": {"type": "array", "minItems": 1, "items": {"type": "string"}},
            "gateways": {"type": "array", "items": {"type": "string"}},
            "http": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "name": {"type": "string"},
                        "match": {
                            "type": "array",
                            "items": {"type": "object", "additionalProperties": False, "properties": {"uri": _STRING_MATCH}},
                        },
                        "redirect": {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {"uri": {"type": "string"}, "redirectCode": {"type": "integer"}},
                        },
                        "rewrite": {"type": "object", "additionalProperties": False, "properties": {"uri": {"type": "string"}}},
                        "route": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["destination"],
                                "additionalProperties": False,
                                "properties": {
                                    "weight": {"type": "integer"},
                                    "destination": {
                                        "type": "object",
                                        "required": ["host"],
                                        "additionalProperties": False,
                                        "properties": {
                                            "host": {"type": "string"},
                                            "port": {
                                                "type": "object",
                                                "required": ["number"],
                                                "additionalProperties": False,
                                                "properties": {"number": {"type": "integer"}},
                                            },
                                        },
                                    },
                                },
                            },
                        },
                        "timeout": {"type": "string"},
                        "headers": {"type": "object"},
                    },
                },
            },
        },
    },
)

AUTHORIZATION_POLICY = _cr(
    ["security.istio.io/v1", "security.istio.io/v1beta1"],
    "AuthorizationPolicy",
    {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "selector": _MATCH_LABELS,
            "action": {"enum": ["ALLOW", "DENY", "AUDIT", "CUSTOM"]},
            "rules": {
                "type": "array",
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "from": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "additionalProperties": False,
                                "properties": {
                                    "source": {
                                        "type": "object",
                                        "additionalProperties": False,
                                        "properties": {
                                            k: {"type": "array", "items": {"type": "string"}}
                                            for k in ("principals", "notPrincipals", "namespaces", "ipBlocks", "requestPrincipals")
                                        },
                                    }
                                },
                            },
                        },
                        "to": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "additionalProperties": False,
                                "properties": {
                                    "operation": {
                                        "type": "object",
                                        "additionalProperties": False,
                                        "properties": {
                                            k: {"type": "array", "items": {"type": ["string", "integer"]}}
                                            for k in ("paths", "methods", "ports", "hosts", "notPaths")
                                        },
                                    }
                                },
                            },
                        },
                        "when": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["key"],
                                "additionalProperties": False,
                                "properties": {
                                    "key": {"type": "string"},
                                    "values": {"type": "array", "items": {"type": "string"}},
                                    "notValues": {"type": "array", "items": {"type": "string"}},
                                },
                            },
                        },
                    },
                },
            },
        },
    },
)

POD_DEFAULT = _cr(
    ["kubeflow.org/v1alpha1"],
    "PodDefault",
    {
        "type": "object",
        "required": ["selector", "desc"],
        "additionalProperties": False,
        "properties": {
            "selector": _MATCH_LABELS,
            "desc": {"type": "string"},
            "serviceAccountName": {"type": "string"},
            "automountServiceAccountToken": {"type": "boolean"},
            "env": _ENV,
            "envFrom": {"type": "array"},
            "volumes": {"type": "array"},
            "volumeMounts": {"type": "array"},
            "labels": _STR_MAP,
            "annotations": _STR_MAP,
            "args": {"type": "array", "items": {"type": "string"}},
            "command": {"type": "array", "items": {"type": "string"}},
        },
    },
)

SIDECAR = _cr(
    ["networking.istio.io/v1", "networking.istio.io/v1beta1"],
    "Sidecar",
    {
        "type": "object",
        "required": ["egress"],
        "additionalProperties": False,
        "properties": {
            "workloadSelector": {
                "type": "object",
                "required": ["labels"],
                "additionalProperties": False,
                "properties": {"labels": _STR_MAP},
            },
            "egress": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "required": ["hosts"],
                    "additionalProperties": False,
                    "properties": {
                        "hosts": {
                            "type": "array",
                            "minItems": 1,
                            "items": {"type": "string", "pattern": r"^(\*|\.|~|[a-z0-9]([-a-z0-9]*[a-z0-9])?)/\S+$"},
                        }
                    },
                },
            },
        },
    },
)

_LABEL_SELECTOR = {"type": "object", "additionalProperties": False, "properties": {"matchLabels": _STR_MAP}}

# The Prometheus Operator's monitoring.coreos.com/v1 kinds: the fields this project writes.
SERVICE_MONITOR = _cr(
    ["monitoring.coreos.com/v1"],
    "ServiceMonitor",
    {
        "type": "object",
        "required": ["selector", "endpoints"],
        "additionalProperties": False,
        "properties": {
            "selector": _LABEL_SELECTOR,
            "namespaceSelector": {
                "type": "object",
                "additionalProperties": False,
                "properties": {"matchNames": {"type": "array", "items": {"type": "string"}}},
            },
            "jobLabel": {"type": "string"},
            "endpoints": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "port": {"type": "string"},
                        "path": {"type": "string"},
                        "scheme": {"enum": ["http", "https"]},
                        "interval": {"type": "string", "pattern": r"^(0|([0-9]+(ms|s|m|h))+)$"},
                        "scrapeTimeout": {"type": "string", "pattern": r"^(0|([0-9]+(ms|s|m|h))+)$"},
                        "tlsConfig": {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {
                                "caFile": {"type": "string"},
                                "certFile": {"type": "string"},
                                "keyFile": {"type": "string"},
                                "insecureSkipVerify": {"type": "boolean"},
                                "serverName": {"type": "string"},
                            },
                        },
                    },
                },
            },
        },
    },
)

PROMETHEUS_RULE = _cr(
    ["monitoring.coreos.com/v1"],
    "PrometheusRule",
    {
        "type": "object",
        "required": ["groups"],
        "additionalProperties": False,
        "properties": {
            "groups": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name", "rules"],
                    "additionalProperties": False,
                    "properties": {
                        "name": {"type": "string", "minLength": 1},
                        "interval": {"type": "string"},
                        "rules": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["expr"],
                                "additionalProperties": False,
                                "properties": {
                                    "alert": {"type": "string"},
                                    "record": {"type": "string"},
                                    "expr": {"type": "string", "minLength": 1},
                                    "for": {"type": "string", "pattern": r"^(0|([0-9]+(ms|s|m|h|d|w|y))+)$"},
                                    "labels": _STR_MAP,
                                    "annotations": _STR_MAP,
                                },
                            },
                        },
                    },
                },
            }
        },
    },
)

STRUCTURAL: dict[tuple[str, str], dict] = {}
for _schema in (VIRTUAL_SERVICE, AUTHORIZATION_POLICY, POD_DEFAULT, SIDECAR, SERVICE_MONITOR, PROMETHEUS_RULE):
    for _version in _schema["properties"]["apiVersion"]["enum"]:
        STRUCTURAL[(_version, _schema["properties"]["kind"]["const"])] = _schema


def structural_errors(manifest: dict, schema: dict) -> list[str]:
    validator = jsonschema.Draft7Validator(schema)
    return [f"{_path(e.absolute_path)}: {e.message}" for e in sorted(validator.iter_errors(manifest), key=lambda e: list(e.absolute_path))]


# -- the gate ------------------------------------------------------------------------------


def validate_manifest(manifest: dict, version: str, *, partial: bool = False) -> tuple[str, list[str]]:
    """(how it was checked, errors). Every object is checked one way or another, or is an error."""
    key = (manifest.get("apiVersion"), manifest.get("kind"))
    if key == ("serving.kserve.io/v1beta1", "InferenceService"):
        return "kserve-sdk", inference_service_errors(manifest)
    if key in STRUCTURAL:
        return "structural", structural_errors(manifest, STRUCTURAL[key])
    errors = builtin_errors(manifest, version, partial=partial)
    if errors is None:
        return "none", [f"no schema or validator for {key[0]} {key[1]}"]
    return f"kubernetes-{version}" + ("-patch" if partial else ""), errors


def validate_directory(directory: Path, version: str, *, partial: bool = False, report: Report | None = None) -> Report:
    report = report or Report()
    for path in sorted(directory.glob("*.yaml")):
        for manifest in yaml.safe_load_all(path.read_text()):
            how, errors = validate_manifest(manifest, version, partial=partial)
            report.count(how)
            report.errors += [f"{path.name}: {manifest.get('kind')} {manifest.get('metadata', {}).get('name')}: {e}" for e in errors]
    return report


@dataclass
class CheckovResult:
    passed: int
    failed: list[str]
    skipped: list[str]


def checkov(directory: Path, lint_venv: Path = ROOT / ".venv-lint") -> CheckovResult:
    """checkov over a directory of manifests, offline (no Prisma Cloud download)."""
    result = subprocess.run(
        [str(lint_venv / "bin" / "checkov"), "-d", str(directory), "--framework", "kubernetes", "-o", "json", "--skip-download"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if result.returncode not in (0, 1) or not result.stdout.strip():
        raise RuntimeError(f"checkov failed to run (exit {result.returncode}): {result.stderr.strip()[-500:]}")
    data = json.loads(result.stdout)
    reports = data if isinstance(data, list) else [data]
    passed = sum(r.get("summary", {}).get("passed", 0) for r in reports)
    failed, skipped = [], []
    for r in reports:
        res = r.get("results", {})
        failed += [f"{c['check_id']} {c['resource']} ({c['file_path']}): {c['check_name']}" for c in res.get("failed_checks", [])]
        skipped += [f"{c['check_id']} {c['resource']}" for c in res.get("skipped_checks", [])]
    return CheckovResult(passed, failed, skipped)


def main(argv: list[str]) -> int:
    """`python -m tools.testing.conformance STACK...`: validate build/<stack> (run `make plan` first)."""
    from mlops_platform.config import parse_config
    from tools.testing.harness import stack_config

    status = 0
    for stack in argv or ["dev", "prod"]:
        version = parse_config(stack, stack_config(stack)[0]).kubernetes_version
        build = ROOT / "build" / stack
        report = validate_directory(build / "manifests", version)
        if (build / "patches").exists():
            validate_directory(build / "patches", version, partial=True, report=report)
        scan = checkov(build / "manifests")
        print(
            f"{stack}: {sum(report.checked.values())} objects validated {report.checked}; checkov {scan.passed} passed, "
            f"{len(scan.failed)} failed, {len(scan.skipped)} suppressed"
        )
        for line in report.errors + scan.failed:
            print(f"  {line}")
        status |= bool(report.errors or scan.failed)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
