"""Property paths: how findings name a place in a resource, and how allowlists and secret paths match it.

Paths render as Pulumi property paths: ``spec.template.spec.containers[0].env[1].value``,
with keys that are not plain identifiers quoted, ``metadata.annotations["app.kubernetes.io/name"]``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

Key = str | int
Path = tuple[Key, ...]

_PLAIN_KEY = re.compile(r"[A-Za-z_$][A-Za-z0-9_$-]*\Z")
_TOKEN = re.compile(r'\.?(?:\[(\d+)\]|\[("(?:[^"\\]|\\.)*")\]|([^.\[]+))')


def render(path: Path) -> str:
    out = ""
    for key in path:
        if isinstance(key, int):
            out += f"[{key}]"
        elif _PLAIN_KEY.match(key):
            out += f".{key}" if out else key
        else:
            out += f"[{json.dumps(key)}]"
    return out


def _naive(path: Path) -> str:
    """The dotted form without quoting (``data.config.yaml``), as simpler recorders write it."""
    out = ""
    for key in path:
        out += f"[{key}]" if isinstance(key, int) else (f".{key}" if out else key)
    return out


def parse(text: str) -> Path:
    """Inverse of :func:`render`; a plain dotted path parses too."""
    keys: list[Key] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise ValueError(f"not a property path: {text!r}")
        index, quoted, plain = match.groups()
        keys.append(int(index) if index is not None else json.loads(quoted) if quoted is not None else plain)
        pos = match.end()
    return tuple(keys)


class PathSet:
    """Paths that cover everything beneath them (a secret object protects all its fields)."""

    def __init__(self, paths: Iterable[str]) -> None:
        self._texts = tuple(paths)

    def covers(self, path: Path) -> bool:
        if not self._texts:
            return False
        forms = {render(path), _naive(path)}
        return any(
            not text or form == text or form.startswith(text + ".") or form.startswith(text + "[") for text in self._texts for form in forms
        )

    def __bool__(self) -> bool:
        return bool(self._texts)


def glob(pattern: str) -> re.Pattern[str]:
    """``*`` is the only wildcard: ``[`` and ``.`` in paths stay literal, unlike fnmatch."""
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")) + r"\Z")
