"""The engine's view of a resource and of a policy, shared by the CrossGuard and audit front ends."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .config import Settings
from .paths import Key, PathSet
from .walk import dig

RESOURCE = "(resource)"
"""The path of a finding about the resource as a whole (its type, a missing companion)."""


@dataclass(frozen=True)
class PropsView:
    """One set of a resource's properties: its inputs, or its outputs in a state file.

    ``secrets_known`` is False in CrossGuard, which receives secrets unwrapped and
    unmarked; then ``secret_paths`` is empty and secretness cannot be judged.
    """

    props: Mapping[str, Any]
    secret_paths: PathSet = field(default_factory=lambda: PathSet(()))
    secrets_known: bool = False


@dataclass(frozen=True)
class Resource:
    urn: str
    type: str
    name: str
    views: tuple[PropsView, ...]
    protect: bool = False
    dependencies: frozenset[str] = frozenset()
    property_dependencies: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def lookup(self, *keys: Key) -> Any:
        """The first known value at ``keys`` across the views (inputs before outputs)."""
        for view in self.views:
            value = dig(view.props, *keys)
            if value is not None:
                return value
        return None

    @property
    def names(self) -> tuple[str, str, str]:
        return (self.name, self.type, self.urn)


@dataclass(frozen=True)
class Finding:
    """A problem at ``path``; for a credential, the rule that found it and the decodings that reached it."""

    path: str
    kind: str
    rule: str = ""
    via: tuple[str, ...] = ()

    def trace(self) -> str:
        """``detect-secrets:KeywordDetector via base64, yaml``: how to find the rule behind a finding."""
        return f"{self.rule} via {', '.join(self.via)}" if self.via else self.rule


@dataclass(frozen=True)
class Hit:
    resource: Resource
    finding: Finding


@dataclass(frozen=True)
class Context:
    stack: str | None
    settings: Settings

    @property
    def is_prod(self) -> bool:
        return self.settings.is_prod(self.stack)


ResourceCheck = Callable[[Resource, Context], Iterable[Finding]]
StackCheck = Callable[[Sequence[Resource], Context], Iterable[Hit]]


@dataclass(frozen=True)
class PolicySpec:
    """A policy, independent of how it is run. Exactly one of the checks is set:
    a stack check needs to see other resources (a bucket's companion settings)."""

    name: str
    description: str
    level: str
    severity: str
    remediation: str
    config_keys: tuple[str, ...] = ("allowedPaths",)
    resource_check: ResourceCheck | None = None
    stack_check: StackCheck | None = None

    def run(self, resources: Sequence[Resource], ctx: Context) -> Iterator[Hit]:
        """Every hit not accepted by the allowlist, once."""
        if self.stack_check is not None:
            hits: Iterable[Hit] = self.stack_check(resources, ctx)
        else:
            assert self.resource_check is not None
            hits = (Hit(r, f) for r in resources for f in self.resource_check(r, ctx))
        seen: set[tuple[str, Finding]] = set()
        for hit in hits:
            key = (hit.resource.urn, hit.finding)
            if key not in seen and not ctx.settings.allows_path(hit.resource.names, hit.finding.path):
                seen.add(key)
                yield hit
