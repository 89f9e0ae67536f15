"""Policy configuration: the ``--policy-pack-config`` file, read the same way by CrossGuard and the audit.

The file maps a policy name (or ``all``) to an enforcement level, or to an object
with ``enforcementLevel`` and the policy's settings below. CrossGuard applies
enforcement levels itself; :func:`enforcement` does it for the audit.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .paths import glob

LEVELS = ("advisory", "mandatory", "remediate", "disabled")

SCHEMA: dict[str, dict[str, Any]] = {
    "allowedPaths": {
        "type": "array",
        "description": "Findings to accept: resource is a glob over the resource's name, type or URN; "
        "path a glob over the property path. '*' is the only wildcard.",
        "items": {
            "type": "object",
            "properties": {"resource": {"type": "string"}, "path": {"type": "string"}},
            "required": ["path"],
        },
        "default": [],
    },
    "allowedValues": {
        "type": "array",
        "description": "Values that are not credentials although they look like one, "
        "as the value itself or as 'sha256:<hex digest of the value>' to keep it out of the file.",
        "items": {"type": "string"},
        "default": [],
    },
    "prod": {
        "type": "boolean",
        "description": "Treat this stack as production. When unset, prodStacks decides.",
    },
    "prodStacks": {
        "type": "array",
        "description": "Stack names that are production.",
        "items": {"type": "string"},
        "default": ["prod", "production"],
    },
    "apps": {
        "type": "array",
        "description": "Apps that must stay inside the cluster, matched in a Service's name, labels and selector.",
        "items": {"type": "string"},
        "default": ["mlflow", "minio"],
    },
}


class ConfigError(ValueError):
    """A policy configuration that does not match the schema; the message names the key."""


@dataclass(frozen=True)
class AllowedPath:
    resource: re.Pattern[str]
    path: re.Pattern[str]


@dataclass(frozen=True)
class Settings:
    """One policy's settings, defaults applied (the engine's defaults do not reach in-process calls)."""

    allowed_paths: tuple[AllowedPath, ...] = ()
    allowed_values: frozenset[str] = frozenset()
    prod: bool | None = None
    prod_stacks: tuple[str, ...] = tuple(SCHEMA["prodStacks"]["default"])
    apps: tuple[str, ...] = tuple(SCHEMA["apps"]["default"])

    @classmethod
    def parse(cls, policy: str, raw: Mapping[str, Any] | None, keys: Sequence[str]) -> Settings:
        raw = dict(raw or {})
        raw.pop("enforcementLevel", None)
        unknown = sorted(set(raw) - set(keys))
        if unknown:
            raise ConfigError(f"{policy}.{unknown[0]}: not a setting of this policy; allowed: {', '.join(keys)}")
        prod = raw.get("prod")
        if prod is not None and not isinstance(prod, bool):
            raise ConfigError(f"{policy}.prod: expected true or false")
        return cls(
            allowed_paths=tuple(_allowed_path(policy, i, entry) for i, entry in enumerate(_list(policy, raw, "allowedPaths", Mapping))),
            allowed_values=frozenset(_list(policy, raw, "allowedValues", str)),
            prod=prod,
            prod_stacks=tuple(_list(policy, raw, "prodStacks", str, cls.prod_stacks)),
            apps=tuple(a.lower() for a in _list(policy, raw, "apps", str, cls.apps)),
        )

    def allows_path(self, names: Sequence[str], path: str) -> bool:
        """``names`` are the resource's name, type and URN."""
        return any(rule.path.match(path) and any(rule.resource.match(n) for n in names) for rule in self.allowed_paths)

    def allows_value(self, value: str) -> bool:
        if not self.allowed_values:
            return False
        return value in self.allowed_values or f"sha256:{hashlib.sha256(value.encode()).hexdigest()}" in self.allowed_values

    def is_prod(self, stack: str | None) -> bool:
        return self.prod if self.prod is not None else stack in self.prod_stacks


def _list(policy: str, raw: Mapping[str, Any], key: str, item: type, default: Sequence[Any] = ()) -> Sequence[Any]:
    value = raw.get(key, default)
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, item) for v in value):
        expected = "objects" if item is Mapping else "strings"
        raise ConfigError(f"{policy}.{key}: expected a list of {expected}")
    return value


def _allowed_path(policy: str, index: int, entry: Mapping[str, Any]) -> AllowedPath:
    resource, path = entry.get("resource", "*"), entry.get("path")
    if not isinstance(resource, str) or not isinstance(path, str) or set(entry) - {"resource", "path"}:
        raise ConfigError(f'{policy}.allowedPaths[{index}]: expected {{"resource": glob, "path": glob}}')
    return AllowedPath(glob(resource), glob(path))


def enforcement(config: Mapping[str, Any] | None, policy: str, default: str) -> tuple[str, Mapping[str, Any] | None]:
    """The level and raw settings of ``policy`` in a pack config, as the Pulumi engine resolves them."""
    level = default
    settings: Mapping[str, Any] | None = None
    for name in ("all", policy):
        entry = (config or {}).get(name)
        if isinstance(entry, str):
            level = entry
        elif isinstance(entry, Mapping):
            level = entry.get("enforcementLevel", level)
            if name == policy:
                settings = entry
        elif entry is not None:
            raise ConfigError(f"{name}: expected an enforcement level or an object")
        if level not in LEVELS:
            raise ConfigError(f"{name}.enforcementLevel: {level!r} is not one of {', '.join(LEVELS)}")
    return level, settings
