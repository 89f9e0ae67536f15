"""Write the configuration reference from the settings models: docs/configuration.md and Pulumi.yaml's ``config:``.

The models (``mlops_platform/config.py`` and each component's ``settings.py``) are the one source: every key,
its type, default, what it allows, whether it is secret and its description come from them, so the reference
cannot drift from what the program parses. tests/test_config_reference.py keeps both files equal to this output.

    python -m tools.dev.config_reference          # rewrite both files
    python -m tools.dev.config_reference --check  # exit 1 when either differs
"""

from __future__ import annotations

import argparse
import json
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types
import yaml
from pydantic import AfterValidator, BaseModel, SecretStr
from pydantic.fields import FieldInfo

from mlops_platform.config import PlatformConfig, model_of
from mlops_platform.settings_base import PROJECT, Allowed, Pattern

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "docs" / "configuration.md"
PROJECT_FILE = ROOT / "Pulumi.yaml"
REGENERATE = "make config-reference"
# Fields of the root that are not stack config keys.
NOT_KEYS = frozenset({"stack"})


@dataclass(frozen=True)
class Row:
    """One key of the reference."""

    key: str
    type: str
    default: str
    allowed: str
    secret: bool
    description: str


def _alias(name: str, field: FieldInfo) -> str:
    return field.alias or name


def _strip_optional(annotation: Any) -> tuple[Any, bool]:
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return annotation, False


def _bounds(constraints: list[Any], unit: str = "") -> str:
    """``[Ge(1), Le(10)]`` -> ``1 to 10``; lengths in ``unit`` (items, characters)."""
    low: Any = None
    high: Any = None
    low_open = high_open = False
    for c in constraints:
        if isinstance(c, annotated_types.Ge):
            low = c.ge
        elif isinstance(c, annotated_types.Gt):
            low, low_open = c.gt, True
        elif isinstance(c, annotated_types.Le):
            high = c.le
        elif isinstance(c, annotated_types.Lt):
            high, high_open = c.lt, True
        elif isinstance(c, annotated_types.MinLen):
            low = c.min_length
        elif isinstance(c, annotated_types.MaxLen):
            high = c.max_length
    if low == 1 and high is None and unit:
        return "not empty"
    suffix = f" {unit}" if unit else ""
    if low is not None and high is not None and not low_open and not high_open:
        return f"{low} to {high}{suffix}"
    parts = []
    if low is not None:
        parts.append(f"more than {low}" if low_open else f"at least {low}")
    if high is not None:
        parts.append(f"less than {high}" if high_open else f"at most {high}")
    return ", ".join(parts) + suffix if parts else ""


def _rules(metadata: list[Any]) -> list[str]:
    """What the validators and markers in ``metadata`` allow, in words."""
    words = []
    for item in metadata:
        if isinstance(item, Allowed):
            words.append(item.words)
        elif isinstance(item, AfterValidator) and isinstance(item.func, Pattern):
            words.append(item.func.allowed)
        elif isinstance(item, FieldInfo):
            words.extend(_rules(item.metadata))
    return words


def describe(annotation: Any, metadata: list[Any]) -> tuple[str, list[str], bool]:
    """(type in words, what is allowed in words, secret) of a field's annotation and its constraints."""
    annotation, _ = _strip_optional(annotation)
    metadata = list(metadata)
    while get_origin(annotation) is Annotated:
        annotation, *extra = get_args(annotation)
        metadata += extra
        annotation, _ = _strip_optional(annotation)
    allowed = _rules(metadata)
    constraints = [m for m in metadata if not isinstance(m, (Allowed, AfterValidator, FieldInfo))]
    constraints += [c for m in metadata if isinstance(m, FieldInfo) for c in m.metadata]
    origin = get_origin(annotation)
    if origin is Literal:
        return "string", ["one of " + ", ".join(f"`{v}`" for v in get_args(annotation)), *allowed], False
    if origin is list:
        (item,) = get_args(annotation)
        item_allowed: list[str] = []
        if model_of(item) is not None:
            item_type = "object"
        else:
            item_type, item_allowed, _ = describe(item, [])
        bound = _bounds(constraints, "items")
        return f"list of {item_type}", [*([bound] if bound else []), *(f"each {w}" for w in item_allowed), *allowed], False
    if origin is dict:
        return "map of string to string", allowed, False
    if annotation is SecretStr:
        return "string", allowed, True
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "object", allowed, False
    names = {bool: "boolean", int: "integer", float: "number", str: "string"}
    bound = _bounds(constraints, "characters" if annotation is str else "")
    return names[annotation], [*([bound] if bound else []), *allowed], False


def _default_text(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, BaseModel):
        return "its keys' defaults"
    if isinstance(value, (list, dict)):
        return f"`{json.dumps(value)}`"
    return f"`{value}`"


def rows(model: type[BaseModel], prefix: str = "", instance: BaseModel | None = None) -> list[Row]:
    """Every key of ``model`` and of the models below it; defaults from ``instance``, the parent's default, when given."""
    found: list[Row] = []
    for name, field in model.model_fields.items():
        if model is PlatformConfig and name in NOT_KEYS:
            continue
        key = prefix + _alias(name, field)
        if not field.description:
            raise ValueError(f"{model.__name__}.{name} ({key}) has no description: give it Field(description=...)")
        type_words, allowed, secret = describe(field.annotation, field.metadata)
        if field.is_required():
            default = "required"
            value = None
        else:
            value = getattr(instance, name) if instance is not None else field.get_default(call_default_factory=True)
            default = _default_text(value)
        found.append(Row(key, type_words, default, "; ".join(allowed), secret, field.description))
        nested = model_of(field.annotation)
        if nested is not None:
            inner, _ = _strip_optional(field.annotation)
            is_list = get_origin(inner) is list
            found += rows(nested, key + ("[]." if is_list else "."), None if is_list or not isinstance(value, BaseModel) else value)
    return found


def _cell(text: str, code: bool = False) -> str:
    """A table cell: ``|`` escaped, and outside code ``<`` and ``>`` too, which Markdown would read as HTML."""
    text = text.replace("|", "\\|")
    return text if code else text.replace("<", "&lt;").replace(">", "&gt;")


def _table(block: list[Row]) -> list[str]:
    lines = ["| Key | Type | Default | Allowed | Secret | Description |", "|---|---|---|---|---|---|"]
    for r in block:
        cells = [
            _cell(f"`{r.key}`", code=True),
            r.type,
            _cell(r.default, code=r.default.startswith("`")),
            _cell(r.allowed or "-"),
            "yes" if r.secret else "-",
            _cell(r.description),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


INTRO = f"""\
Every key of a stack file (`Pulumi.<stack>.yaml`) under the `{PROJECT}:` namespace. Objects are structured
config: set a nested key with `pulumi config set --path tracking.replicas 2`, or write the object in the stack file.

- Unknown keys are errors, and so are settings that cannot take effect: while `kubeflow.enabled`, `serving.enabled`,
  `monitoring.enabled` or `tracking.autoscaling.enabled` is false, every other key of that block must be left out
  or at its default; the same holds for what the target or database mode never reads (e.g. `artifacts.minio.*` on
  `eks`, `database.rds` unless `database.mode` is `rds`). Each is refused in one line naming the key.
- A key marked secret is accepted only as a Pulumi secret (`pulumi config set --secret --path ...`); Pulumi then
  holds its whole top-level key (`database`, `serving`) as a secret.
- The program also reads the kubernetes provider's own `kubernetes:enableSecretMutable` (required `"true"` with
  any `rotation.*`), `kubernetes:kubeconfig` and `kubernetes:context`.
"""


def reference() -> str:
    """docs/configuration.md."""
    everything = rows(PlatformConfig)
    top = [r for r in everything if "." not in r.key]
    lines = [
        "# Configuration reference",
        "",
        f"<!-- Generated from the settings models by `{REGENERATE}`; edit the models' descriptions, not this file. -->",
        "",
        INTRO,
        "## Top-level keys",
        "",
        *_table(top),
    ]
    for block in top:
        nested = [r for r in everything if r.key.startswith(block.key + ".") or r.key.startswith(block.key + "[].")]
        if nested:
            lines += ["", f"## `{block.key}`", "", block.description, "", *_table(nested)]
    return "\n".join(lines) + "\n"


_PULUMI_TYPES = {"boolean": "boolean", "integer": "integer", "string": "string", "object": "object"}


def project_config() -> dict[str, dict[str, Any]]:
    """Pulumi.yaml's ``config:`` declarations: type and description of each top-level key, and its default.

    The engine demands every declared key of the project's namespace that has no default, so a key is declared
    with the program's own default (``{}`` for an object, which parses to the same object as the key left out);
    a key whose absence means something (a default of none) is left undeclared. No top-level key is always
    secret (``database`` and ``serving`` are only with the keys marked secret), so none is declared secret.
    """
    declared: dict[str, dict[str, Any]] = {}
    for name, field in PlatformConfig.model_fields.items():
        if name in NOT_KEYS:
            continue
        key = f"{PROJECT}:{_alias(name, field)}"
        type_words, _, _ = describe(field.annotation, field.metadata)
        entry: dict[str, Any] = {}
        if type_words.startswith("list of "):
            entry["type"] = "array"
            entry["items"] = {"type": _PULUMI_TYPES[type_words.removeprefix("list of ")]}
        else:
            entry["type"] = _PULUMI_TYPES[type_words]
        entry["description"] = field.description
        if field.is_required():
            declared[key] = entry
            continue
        default = field.get_default(call_default_factory=True)
        if default is None:
            continue
        entry["default"] = {} if isinstance(default, BaseModel) else default
        declared[key] = entry
    return declared


def project_file(current: str) -> str:
    """Pulumi.yaml with its ``config:`` block (the file's last top-level key) generated, the rest kept as it is."""
    head, marker, _ = current.partition("\nconfig:\n")
    if not marker:
        head = current.rstrip("\n")
    block: str = yaml.safe_dump({"config": project_config()}, sort_keys=False, width=100, allow_unicode=True)
    comment = (
        f"  # Generated from the settings models by `{REGENERATE}` (every nested key: docs/configuration.md).\n"
        "  # A declared key without a default would be required by the engine, so each has the program's own default;\n"
        "  # keys whose default is none (aws, dataProtection) are left undeclared. No key is always secret: database\n"
        "  # and serving are when they hold a key marked secret there.\n"
    )
    first, _, rest = block.partition("\n")
    return head + "\n" + first + "\n" + comment + rest


def _write_or_check(path: Path, content: str, check: bool) -> bool:
    if path.exists() and path.read_text() == content:
        return True
    if check:
        print(f"{path.relative_to(ROOT)} is not what the models give; run `{REGENERATE}`", file=sys.stderr)
        return False
    path.write_text(content)
    print(f"wrote {path.relative_to(ROOT)}")
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when a file differs instead of rewriting it")
    args = parser.parse_args(argv)
    ok = _write_or_check(REFERENCE, reference(), args.check)
    ok = _write_or_check(PROJECT_FILE, project_file(PROJECT_FILE.read_text()), args.check) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
