"""The maintained rule set: Yelp's detect-secrets plugins and heuristic filters, run in-process on strings.

detect-secrets scans files line by line; here each property value is handed to its
plugins the way it would read that value in a YAML or INI file: bound to its name
(``DB_PASSWORD: value``), and, for text spanning lines, line by line. Plugins are
called through ``analyze_string`` only: that path never verifies a secret over the
network (``analyze_line`` can, depending on detect-secrets' global settings).

A match keeps the secret in memory so that one credential found by several rules
is reported once and allowances can look at it; it is never put in a message.
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import version

from detect_secrets.filters import heuristic
from detect_secrets.plugins.artifactory import ArtifactoryDetector
from detect_secrets.plugins.aws import AWSKeyDetector
from detect_secrets.plugins.azure_storage_key import AzureStorageKeyDetector
from detect_secrets.plugins.base import BasePlugin, RegexBasedDetector
from detect_secrets.plugins.basic_auth import BasicAuthDetector
from detect_secrets.plugins.cloudant import CloudantDetector
from detect_secrets.plugins.discord import DiscordBotTokenDetector
from detect_secrets.plugins.github_token import GitHubTokenDetector
from detect_secrets.plugins.gitlab_token import GitLabTokenDetector
from detect_secrets.plugins.high_entropy_strings import Base64HighEntropyString, HexHighEntropyString, HighEntropyStringsPlugin
from detect_secrets.plugins.ibm_cloud_iam import IbmCloudIamDetector
from detect_secrets.plugins.ibm_cos_hmac import IbmCosHmacDetector
from detect_secrets.plugins.jwt import JwtTokenDetector
from detect_secrets.plugins.keyword import (
    CONFIG_DENYLIST_REGEX_TO_GROUP,
    DENYLIST,
    QUOTES_REQUIRED_DENYLIST_REGEX_TO_GROUP,
    KeywordDetector,
)
from detect_secrets.plugins.mailchimp import MailchimpDetector
from detect_secrets.plugins.npm import NpmDetector
from detect_secrets.plugins.openai import OpenAIDetector
from detect_secrets.plugins.private_key import PrivateKeyDetector
from detect_secrets.plugins.pypi_token import PypiTokenDetector
from detect_secrets.plugins.sendgrid import SendGridDetector
from detect_secrets.plugins.slack import SlackDetector
from detect_secrets.plugins.softlayer import SoftlayerDetector
from detect_secrets.plugins.square_oauth import SquareOAuthDetector
from detect_secrets.plugins.stripe import StripeDetector
from detect_secrets.plugins.telegram_token import TelegramBotTokenDetector
from detect_secrets.plugins.twilio import TwilioKeyDetector

RULESET = "detect-secrets"
VERSION = version("detect-secrets")
"""The installed version; requirements pin it, and a test holds the two equal."""

# Every plugin detect-secrets 1.5.0 ships but IPPublicDetector, which reports public IPv4 addresses:
# an address is not a credential, and a Service or a LoadBalancer legitimately names one.
EXCLUDED = frozenset({"IPPublicDetector"})

# Vendor and shape plugins: a credential recognisable by its own form, wherever it is.
_SHAPES: tuple[RegexBasedDetector, ...] = (
    PrivateKeyDetector(),
    AWSKeyDetector(),
    AzureStorageKeyDetector(),
    GitHubTokenDetector(),
    GitLabTokenDetector(),
    SlackDetector(),
    StripeDetector(),
    SendGridDetector(),
    OpenAIDetector(),
    PypiTokenDetector(),
    NpmDetector(),
    DiscordBotTokenDetector(),
    TelegramBotTokenDetector(),
    TwilioKeyDetector(),
    MailchimpDetector(),
    SquareOAuthDetector(),
    ArtifactoryDetector(),
    IbmCloudIamDetector(),
    IbmCosHmacDetector(),
    CloudantDetector(),
    SoftlayerDetector(),
    JwtTokenDetector(),
    BasicAuthDetector(),
)
_KEYWORD = KeywordDetector()
_ENTROPY: tuple[HighEntropyStringsPlugin, ...] = (Base64HighEntropyString(), HexHighEntropyString())
PLUGINS: tuple[BasePlugin, ...] = (*_SHAPES, _KEYWORD, *_ENTROPY)

# One search over all shape plugins' patterns first: most values match none, and then no plugin runs.
_ANY_SHAPE = re.compile("|".join(f"(?:{p.pattern})" for plugin in _SHAPES for p in plugin.denylist), re.IGNORECASE)
_ANY_KEYWORD = re.compile("|".join(DENYLIST), re.IGNORECASE)
# A quoted string as the high-entropy plugins look for one, or a whole value that is one token.
_QUOTED = re.compile(r"""(['"])[^'"\n]+\1""")
_TOKEN = re.compile(r"""[^\s'"]+""")


def rule_id(plugin: BasePlugin) -> str:
    return f"{RULESET}:{type(plugin).__name__}"


@dataclass(frozen=True)
class Match:
    kind: str
    rule: str
    secret: str


def keyword_line(key: str, value: str) -> str:
    """``DB_PASSWORD: "value"`` as detect-secrets reads a YAML line (its YAML reader quotes scalars); a ``-`` in
    the name reads as ``_`` (``db-password``, ``X-Api-Key``), as settings spell the same names."""
    quoted = value if ('"' in value or "'" in value) else f'"{value}"'
    return f"{key.replace('-', '_')}: {quoted}"


def _filtered(secret: str, line: str, plugin: BasePlugin) -> bool:
    """detect-secrets' default heuristic filters, as its scanner applies them to a line's secrets."""
    return (
        heuristic.is_indirect_reference(line)
        or heuristic.is_sequential_string(secret)
        or heuristic.is_potential_uuid(secret)
        or heuristic.is_likely_id_string(secret, line, plugin)
        or heuristic.is_templated_secret(secret)
        or heuristic.is_prefixed_with_dollar_sign(secret)
        or heuristic.is_not_alphanumeric_string(secret)
    )


def _lines(key: str | None, value: str) -> list[str]:
    """What detect-secrets would read: the value bound to its name when it is one line, else its lines."""
    if "\n" in value:
        return [line for line in value.splitlines() if line.strip()]
    return [keyword_line(key, value), value] if key else [value]


def _shapes(lines: list[str]) -> Iterator[Match]:
    for line in lines:
        if not _ANY_SHAPE.search(line):
            continue
        for plugin in _SHAPES:
            for secret in plugin.analyze_string(line):
                if not _filtered(secret, line, plugin):
                    yield Match(plugin.secret_type, rule_id(plugin), secret)


def is_python_source(value: str) -> bool:
    """A program in a value (``python -c <source>``, a script in a ConfigMap): several lines of Python that import or call.

    Settings text can parse as Python too (``password: s3cr3t`` is an annotated name): a top-level annotation, or a
    module that neither imports nor calls anything, is read as settings, with the stricter reading.
    """
    if "\n" not in value.strip():
        return False
    try:
        tree = ast.parse(value)
    except (SyntaxError, ValueError):
        return False
    if any(isinstance(node, ast.AnnAssign) for node in tree.body):
        return False
    return any(isinstance(node, (ast.Import, ast.ImportFrom, ast.Call)) for node in ast.walk(tree))


# A setting named like a credential whose value is a YAML or JSON literal (`enableSecretMutable: "true"`) is a switch.
_LITERALS = frozenset({"true", "false", "yes", "no", "on", "off", "null", "none", "~"})


def _keywords(lines: list[str], source: bool = False) -> Iterator[Match]:
    # In source code detect-secrets' keyword rule counts quoted values only (it reads .py files so): a name bound to
    # another name (`"password": password`) is code, `password = "..."` a literal credential.
    denylist = QUOTES_REQUIRED_DENYLIST_REGEX_TO_GROUP if source else CONFIG_DENYLIST_REGEX_TO_GROUP
    for line in lines:
        if not _ANY_KEYWORD.search(line):
            continue
        for secret in _KEYWORD.analyze_string(line, denylist):
            if secret and secret.lower() not in _LITERALS and not _filtered(secret, line, _KEYWORD):
                yield Match(_KEYWORD.secret_type, rule_id(_KEYWORD), secret)


def _can_exceed(plugin: HighEntropyStringsPlugin, candidate: str) -> bool:
    """Shannon entropy is at most log2 of the number of distinct characters: skip what cannot pass the limit."""
    return math.log2(max(len(set(candidate)), 1)) > plugin.entropy_limit


def _entropy(value: str) -> Iterator[Match]:
    """The whole value when it is one token (a YAML scalar, quoted by the reader), else quoted strings in its lines."""
    stripped = value.strip()
    if _TOKEN.fullmatch(stripped):
        candidates = [(f'"{stripped}"', f'"{stripped}"')]
    else:
        candidates = [(m.group(0), line) for line in value.splitlines() for m in _QUOTED.finditer(line)]
    for quoted, line in candidates:
        for plugin in _ENTROPY:
            if not _can_exceed(plugin, quoted):
                continue
            for secret in plugin.analyze_string(quoted):
                if plugin.calculate_shannon_entropy(secret) > plugin.entropy_limit and not _filtered(secret, line, plugin):
                    yield Match(plugin.secret_type, rule_id(plugin), secret)


def scan(key: str | None, value: str) -> list[Match]:
    """Every match of the rule set in ``value``, bound to ``key`` (a map key, env name, flag or header)."""
    lines = _lines(key, value)
    return [*_shapes(lines), *_keywords(lines, source=is_python_source(value)), *_entropy(value)]
