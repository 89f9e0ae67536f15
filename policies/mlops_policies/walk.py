"""Walk resource properties down to the scalar leaves where a credential can hide.

Besides maps and lists the walk enters JSON and YAML documents held in strings
(``last-applied-configuration``, a ConfigMap's ``config.yaml``) and base64
``binaryData``, and binds each value to the name it is set under: its map key,
the ``name`` of a ``{name, value}`` pair (container env), or the ``--flag``
before it in an argument list. A string in a list of strings also keeps the
whole list and its position in it, so a tool's positional arguments can be
recognised; a container's ``args`` follow its ``command``.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml
from pulumi_policy.proxy import UnknownValueError

from .paths import Key, Path

_MAX_NESTED_DOCUMENTS = 3
UNKNOWN: Any = object()
"""Stands for a value that is unknown during preview: never a literal, never a violation."""


@dataclass(frozen=True)
class Leaf:
    path: Path
    key: str | None
    value: str
    # The command line this value is an argument of, and its index there.
    argv: tuple[str, ...] = ()
    position: int = 0


class _NoAliasLoader(yaml.SafeLoader):
    """Refuses YAML aliases, so a crafted value cannot expand into a billion nodes."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise yaml.YAMLError("aliases are not expanded")
        return super().compose_node(parent, index)


def get(node: Any, key: Key) -> Any:
    """``node[key]``, or a marker when the value is unknown during preview (never a literal)."""
    try:
        return node[key]
    except UnknownValueError:
        return UNKNOWN
    except (KeyError, IndexError, TypeError):
        return None


def dig(node: Any, *keys: Key) -> Any:
    """The value at ``keys`` below ``node``: None if absent, UNKNOWN if unknown during preview."""
    for key in keys:
        if node is UNKNOWN:
            return UNKNOWN
        if not isinstance(node, (Mapping, Sequence)) or isinstance(node, str):
            return None
        node = get(node, key)
    return node


def leaves(props: Mapping[str, Any], *, documents: bool = True) -> Iterator[Leaf]:
    """Every string or number under ``props``; ``documents=False`` leaves embedded JSON/YAML as text."""
    yield from _walk(props, (), None, documents, 0, False)


def _walk(
    node: Any,
    path: Path,
    key: str | None,
    documents: bool,
    depth: int,
    base64_text: bool,
    argv: tuple[str, ...] = (),
    position: int = 0,
    argv_prefix: tuple[str, ...] = (),
) -> Iterator[Leaf]:
    if isinstance(node, str):
        text = decode_base64(node) if base64_text else node
        if text is None:
            return
        document = _document(text) if documents and depth < _MAX_NESTED_DOCUMENTS else None
        if document is None:
            yield Leaf(path, key, text, argv, position)
        else:
            yield from _walk(document, path, key, documents, depth + 1, False)
    elif isinstance(node, bool) or node is None:
        return
    elif isinstance(node, (int, float)):
        yield Leaf(path, key, str(int(node)) if float(node).is_integer() else str(node))
    elif isinstance(node, Mapping):
        keys = list(node)
        bound = _bound_name(node, keys)
        command = _strings(get(node, "command")) if "args" in keys and "command" in keys else ()
        for child_key in keys:
            child = get(node, child_key)
            if child is UNKNOWN:
                continue
            name = str(child_key)
            binding = bound if name == "value" and bound is not None else name
            yield from _walk(
                child,
                path + (name,),
                binding,
                documents,
                depth,
                name == "binaryData" or base64_text,
                argv_prefix=command if name == "args" else (),
            )
    elif isinstance(node, Sequence):
        words = _strings(node)
        line = argv_prefix + words if words else ()
        previous: Any = None
        for index in range(len(node)):
            child = get(node, index)
            if child is UNKNOWN:
                previous = None
                continue
            binding = key
            if isinstance(previous, str) and previous.startswith("--") and "=" not in previous:
                if not (isinstance(child, str) and child.startswith("-")):
                    binding = previous.lstrip("-")
            yield from _walk(child, path + (index,), binding, documents, depth, base64_text, line, len(argv_prefix) + index)
            previous = child


def _strings(node: Any) -> tuple[str, ...]:
    """A list of strings as a command line (a value unknown during preview as ""), else ()."""
    if not isinstance(node, Sequence) or isinstance(node, str):
        return ()
    words = [get(node, index) for index in range(len(node))]
    if not all(isinstance(w, str) or w is UNKNOWN for w in words):
        return ()
    return tuple("" if w is UNKNOWN else w for w in words)


def _bound_name(node: Mapping[Any, Any], keys: list[Any]) -> str | None:
    """The name a ``value`` is set under in ``{name: X, value: Y}`` / ``{key: X, value: Y}`` pairs."""
    if "value" not in keys:
        return None
    for sibling in ("name", "key"):
        if sibling in keys:
            bound = get(node, sibling)
            if isinstance(bound, str):
                return bound
    return None


def decode_base64(value: str) -> str | None:
    try:
        return base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None


def _document(text: str) -> Any:
    """A non-empty map or list parsed from ``text``, or None when it is plain text."""
    stripped = text.strip()
    document: Any = None
    if stripped[:1] in ("{", "["):
        try:
            document = json.loads(stripped)
        except ValueError:
            document = None
    # PEM headers ("Proc-Type: ...") parse as YAML and would hide the BEGIN line from the detectors.
    if document is None and "\n" in stripped and ":" in stripped and "-----BEGIN" not in stripped:
        try:
            document = yaml.load(stripped, Loader=_NoAliasLoader)  # noqa: S506 - SafeLoader subclass
        except yaml.YAMLError:
            document = None
    return document if isinstance(document, (dict, list)) and document else None
