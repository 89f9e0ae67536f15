"""Detection: the maintained rule set (rules.py) and this platform's checks (platform.py) over decoded leaves.

One credential is often matched by several rules (a URL's password by BasicAuthDetector
on the URL and by KeywordDetector on its userinfo view; a GitHub token by its own rule
and by the entropy rule). Within one property path a credential is reported once, by
the most specific rule (the order of :data:`PRECEDENCE`), and each kind once. Every detection names its
rule and the decodings that reached it; none holds the value.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from difflib import SequenceMatcher
from urllib.parse import unquote

from . import allowances, platform, rules
from .walk import PULUMI_PLAINTEXT, Leaf

PRECEDENCE: tuple[str, ...] = (
    platform.RULE_PULUMI_PLAINTEXT,
    platform.RULE_TUTORIAL_DEFAULT,
    *(rules.rule_id(p) for p in rules.PLUGINS if not isinstance(p, (rules.KeywordDetector, rules.HighEntropyStringsPlugin))),
    allowances.KEYWORD,
    platform.RULE_CREDENTIAL_SETTING,
    allowances.BASE64_ENTROPY,
    allowances.HEX_ENTROPY,
)
_RANK = {rule: i for i, rule in enumerate(PRECEDENCE)}


@dataclass(frozen=True)
class Detection:
    kind: str
    rule: str
    via: tuple[str, ...] = ()


@dataclass(frozen=True)
class Allowed:
    """A match an allowance accepted: what ``--explain`` prints, so a silent rule can be traced too."""

    kind: str
    rule: str
    allowance: str
    via: tuple[str, ...] = ()

    def trace(self) -> str:
        return f"{self.rule} via {', '.join(self.via)}" if self.via else self.rule


@functools.lru_cache(maxsize=65536)
def _matches(key: str | None, value: str, user: str | None, plaintext: bool) -> tuple[rules.Match, ...]:
    leaf = Leaf((), key, value, user=user, via=(PULUMI_PLAINTEXT,) if plaintext else ())
    found = list(platform.scan(leaf))
    if not plaintext:
        found += rules.scan(key, value)
    return tuple(found)


def matches(leaf: Leaf) -> tuple[rules.Match, ...]:
    """Every rule's match in one leaf, before allowances."""
    return _matches(leaf.key, leaf.value, leaf.user, bool(leaf.via) and leaf.via[-1] == PULUMI_PLAINTEXT)


def _same(a: str, b: str) -> bool:
    """Two rules read the same credential when their secrets overlap: one holds the other, or they share
    8 characters in a row (``AccountKey=K…`` and ``K…;EndpointSuffix=…``), percent-encoding aside."""
    a, b = unquote(a.strip()), unquote(b.strip())
    if not a or not b:
        return False
    if a in b or b in a:
        return True
    common = SequenceMatcher(None, a, b, autojunk=False).find_longest_match(0, len(a), 0, len(b)).size
    return common >= 8


def _runs_past(secret: str, accepted: str) -> bool:
    """``password && exec app`` runs past the accepted ``password``; ``password123`` is another value."""
    rest = secret.strip()
    if not accepted or not rest.startswith(accepted):
        return False
    after = rest[len(accepted) : len(accepted) + 1]
    return not (after.isalnum() or after == "_")


def detect(resource_type: str, found: Iterable[Leaf], allowed: list[Allowed] | None = None) -> list[Detection]:
    """What the rules report over the leaves of one property path, each credential once (see the module's doc)."""
    candidates: list[tuple[int, rules.Match, Leaf]] = []
    accepted_secrets: list[tuple[str, str]] = []
    for leaf in found:
        for match in matches(leaf):
            accepted = allowances.allowance(resource_type, leaf, match)
            if accepted is not None:
                accepted_secrets.append((match.rule, match.secret.strip()))
                if allowed is not None:
                    allowed.append(Allowed(match.kind, match.rule, accepted.name, leaf.via))
                continue
            candidates.append((_RANK[match.rule], match, leaf))
    # KeywordDetector reads a line's secret up to a quote or the line's end (``KEY=password && exec app``): when the
    # setting alone was accepted, the same rule's longer reading of that line is too. The setting's neighbours have
    # views of their own; another rule's match of the same value is judged on its own.
    candidates = [c for c in candidates if not any(rule == c[1].rule and _runs_past(c[1].secret, s) for rule, s in accepted_secrets)]
    kept: list[tuple[rules.Match, Leaf]] = []
    for _, match, leaf in sorted(candidates, key=lambda c: (c[0], len(c[2].via))):
        if not any(_same(match.secret, other.secret) for other, _ in kept):
            kept.append((match, leaf))
    # One finding per kind at a path: two tutorial defaults in one script are one line of the report.
    seen: set[str] = set()
    out = []
    for match, leaf in kept:
        if match.kind not in seen:
            seen.add(match.kind)
            out.append(Detection(match.kind, match.rule, leaf.via))
    return out


def by_path(found: Iterable[Leaf]) -> Iterator[list[Leaf]]:
    """Consecutive leaves of the same path (a value, then the views decoded from it)."""
    group: list[Leaf] = []
    for leaf in found:
        if group and leaf.path != group[0].path:
            yield group
            group = []
        group.append(leaf)
    if group:
        yield group
