"""Walk resource properties down to the scalar leaves where a credential can hide, decoding on the way.

Besides maps and lists the walk enters what a string holds (decode.py): base64 text,
JSON, YAML and INI documents (``last-applied-configuration``, a ConfigMap's
``config.yaml``), and views of a credential's place inside a string (a URL's
userinfo and query, a header in a proxy snippet, a tool's positional argument).
Each value is bound to the name it is set under: its map key, the ``name`` of a
``{name, value}`` pair (container env), or the ``--flag`` before it in an argument
list. A string in a list of strings also keeps the whole list and its position in
it, so a tool's positional arguments can be recognised; a container's ``args``
follow its ``command``.

Decoding is bounded: at most :data:`MAX_DEPTH` decodings nested in one value, none of
a string longer than :data:`MAX_DECODED` characters (it is still scanned as it is).
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pulumi_policy.proxy import UnknownValueError

from . import decode
from .paths import Key, Path

MAX_DEPTH = 4
MAX_DECODED = 256 * 1024

SIG_KEY = "4dabf18193072939515e22adb298388d"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
PULUMI_PLAINTEXT = "pulumi-secret-plaintext"
"""The ``via`` of a Pulumi secret found in plaintext form inside a value (a ``--show-secrets`` export)."""

_SPACE = re.compile(r"\s")

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
    # The decodings that led here (base64, yaml, url-userinfo, ...), outermost first.
    via: tuple[str, ...] = ()
    # The account a password belongs to, where the place says (URL userinfo, Basic auth, curl -u).
    user: str | None = None


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


def leaves(props: Mapping[str, Any], *, documents: bool = True, encoded: frozenset[Path] = frozenset()) -> Iterator[Leaf]:
    """Every string or number under ``props``.

    ``documents=False`` decodes nothing (embedded JSON/YAML stays text). ``encoded``
    are the paths of maps whose values are base64 by definition (a ConfigMap's
    ``binaryData``, a Secret's ``data``): they are decoded, and skipped when binary.
    """
    walker = _Walker(documents, encoded)
    yield from walker.walk(props, (), None, 0, ())


@dataclass(frozen=True)
class _Walker:
    documents: bool
    encoded: frozenset[Path]

    def walk(
        self,
        node: Any,
        path: Path,
        key: str | None,
        depth: int,
        via: tuple[str, ...],
        argv: tuple[str, ...] = (),
        position: int = 0,
        argv_prefix: tuple[str, ...] = (),
        user: str | None = None,
    ) -> Iterator[Leaf]:
        if isinstance(node, str):
            if path[:-1] in self.encoded and not via:
                text = decode.base64_text(node, encoded=True)
                if text is not None:
                    yield from self.text(text, path, key, depth, (*via, "base64"), argv, position, user)
                return
            yield from self.text(node, path, key, depth, via, argv, position, user)
        elif isinstance(node, bool) or node is None:
            return
        elif isinstance(node, (int, float)):
            yield Leaf(path, key, str(int(node)) if float(node).is_integer() else str(node), via=via)
        elif isinstance(node, Mapping):
            yield from self.mapping(node, path, key, depth, via)
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
                yield from self.walk(child, path + (index,), binding, depth, via, line, len(argv_prefix) + index)
                previous = child

    def mapping(self, node: Mapping[Any, Any], path: Path, key: str | None, depth: int, via: tuple[str, ...]) -> Iterator[Leaf]:
        keys = list(node)
        if get(node, SIG_KEY) == SECRET_SIG:
            # A Pulumi secret marker inside a value: encrypted (ciphertext) is safe, plaintext is a secret in the open.
            plaintext = get(node, "plaintext")
            if isinstance(plaintext, str) and plaintext.strip() not in ("", '""'):
                yield Leaf(path, key, plaintext, via=(*via, PULUMI_PLAINTEXT))
            return
        bound = _bound_name(node, keys)
        command = _strings(get(node, "command")) if "args" in keys and "command" in keys else ()
        for child_key in keys:
            child = get(node, child_key)
            if child is UNKNOWN:
                continue
            name = str(child_key)
            binding = bound if name == "value" and bound is not None else name
            yield from self.walk(child, path + (name,), binding, depth, via, argv_prefix=command if name == "args" else ())

    def text(
        self,
        text: str,
        path: Path,
        key: str | None,
        depth: int,
        via: tuple[str, ...],
        argv: tuple[str, ...],
        position: int,
        user: str | None,
    ) -> Iterator[Leaf]:
        decodable = self.documents and depth < MAX_DEPTH and len(text) <= MAX_DECODED
        if decodable:
            decoded = decode.base64_text(text)
            if decoded is not None:
                yield from self.text(decoded, path, key, depth + 1, (*via, "base64"), (), 0, None)
                return
            found = decode.document(text)
            if found is not None:
                form, document = found
                yield from self.walk(document, path, key, depth + 1, (*via, form))
                return
        yield Leaf(path, key, text, argv, position, via, user)
        if decodable:
            for view in self.views(text, key, argv, position):
                yield from self.walk(view.value, path, view.key, depth + 1, (*via, view.via), user=view.user)

    @staticmethod
    def views(text: str, key: str | None, argv: tuple[str, ...], position: int) -> Iterator[decode.View]:
        yield from _text_views(text, key or "")
        if argv:
            yield from decode.argv_views(argv, position)


@functools.lru_cache(maxsize=16384)
def _text_views(text: str, key: str) -> tuple[decode.View, ...]:
    """The views of a string bound to ``key``; most strings (names, numbers, paths) have none, and are told quickly."""
    spaced = _SPACE.search(text) is not None
    sources: list[Iterator[decode.View]] = []
    if spaced:
        sources += [decode.setting_views(text), decode.script_views(text)]
    if "://" in text:
        sources.append(decode.url_views(text))
    if spaced and ("header" in text or "trailer" in text):
        sources.append(decode.header_views(text))
    if key.lower() in decode.AUTHORIZATION_HEADERS:
        sources.append(decode.authorization_views(key, text))
    if key == "auth":
        sources.append(decode.registry_auth_views(key, text))
    return tuple(itertools.islice(itertools.chain.from_iterable(sources), decode.MAX_VIEWS))


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
