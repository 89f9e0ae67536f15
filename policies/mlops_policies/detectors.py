"""What a leaked credential looks like, and what merely resembles one.

Every detector returns a *kind* (a fixed phrase such as ``"AWS access key ID"``),
never the matched text: kinds end up in PR comments and audit output.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Iterator, Optional

AWS_ACCESS_KEY_ID = "AWS access key ID"
AWS_SECRET_ACCESS_KEY = "AWS secret access key"
URI_PASSWORD = "password embedded in a URI"
PRIVATE_KEY = "PEM private key"
JWT = "JSON Web Token"
API_TOKEN = "API token"
DEFAULT_CREDENTIAL = "well-known default credential"
NAMED_CREDENTIAL = "literal value of a credential-named key"
NOT_A_SECRET = "credential not stored as a Pulumi secret"

REDACTED = "[secret]"
"""What recorders (``make plan``, the export reader) put in place of a Pulumi secret."""

# Credentials published by the tutorials and manifests this platform replaces.
WELL_KNOWN_DEFAULTS = (
    "minio123",  # Kubeflow Pipelines' MinIO and most MLflow+MinIO tutorials
    "minioadmin",  # MinIO's built-in root user and password
    "12341234",  # Kubeflow manifests' default user@example.com password
    "$2y$12$4K/VkmDd1q1Orb3xAt82zu8gk7Ad6ReFR4LCP9UeYE90NLiN9Df72",  # its bcrypt hash in Dex's config
    "pUBnBOY80SnXgjibTYM9ZWNzY2xreNGQok",  # Kubeflow's default Dex/oauth2-proxy client secret
    "mlflow_password",  # MLflow-on-Kubernetes tutorials' PostgreSQL
    "password1234",  # PostgreSQL in docker-compose MLflow tutorials
    "changeme",  # the placeholder many charts ship as a working default
)

_DEFAULTS = re.compile(
    r"(?<![A-Za-z0-9_])(?:" + "|".join(re.escape(d) for d in WELL_KNOWN_DEFAULTS) + r")(?![A-Za-z0-9_])"
)
# Only AKIA (long-lived) and ASIA (STS) are secret-bearing: AIDA/AROA user and role ids are not.
_AWS_KEY_ID = re.compile(r"(?<![A-Z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Z0-9])")
_FORTY = re.compile(r"(?<![A-Za-z0-9/+.$_-])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=._-])")
_AWS_CONTEXT = re.compile(r"(?i)aws|secret.?access.?key|AKIA|ASIA")
_HEX = re.compile(r"[0-9a-fA-F]+")
_URI_USERINFO = re.compile(r"(?i)\b[a-z][a-z0-9+.-]*://[^\s:/?#@\[\]'\"]*:(?P<password>[^\s/?#@'\"]+)@")
_PEM = re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----")
_PEM_BASE64 = re.compile(r"LS0tLS1CRUdJTi[A-Za-z0-9+/=]+")  # base64 of "-----BEGIN"
_JWT = re.compile(r"(?<![\w-])eyJ[\w-]{5,}\.eyJ[\w-]{5,}\.[\w-]*")
_API_TOKEN = re.compile(
    r"(?<![\w-])(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_\w{40,}|hf_[A-Za-z0-9]{30,}|xox[abposr]-[A-Za-z0-9-]{10,})"
)

# A value made of references is not a literal: Kubernetes $(VAR), shell ${VAR} / $VAR / $(cmd),
# templates {{ .x }}, format fields {x} and %(x)s, <placeholders>, masks.
_REFERENCE = re.compile(r"\$\([^)]*\)|\$\{[^}]*\}|\$[A-Z_][A-Z0-9_]*\b|\{\{.*?\}\}|\{\w*\}|%\(\w+\)s|%s|<[^<>\s]+>")
_MASK = re.compile(r"\*+|x{3,}|X{3,}|\[secret\]")
_NOT_A_CREDENTIAL = [
    re.compile(p)
    for p in (
        r"(?i)true|false|yes|no|on|off|null|none|enabled|disabled",
        r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",  # UUID
        r"(?:sha256:)?[0-9a-f]{40}|(?:sha256:)?[0-9a-f]{64}",  # git SHA, content digest
        r"\S+@sha256:[0-9a-f]{64}",  # image by digest
        r"arn:aws[a-z-]*:\S+",
        r"(?i)[a-z][a-z0-9+.-]*://\S*",  # URLs; the ones with a password are URI_PASSWORD
        r"/\S*|~/\S*",  # file paths
    )
]

_CREDENTIAL_WORDS = ("password", "passwd", "passphrase", "secret", "token", "apikey", "credential", "credentials")
_EXACT_CREDENTIAL_WORDS = frozenset({"pwd", "secretkey", "accesskey", "privatekey"})
_TRAILING_NOISE = frozenset({"value", "string", "text", "plain", "plaintext"})
# camelCase keys end in "Key" for many non-secret things (hashKey, kmsKeyId); only these qualifiers make it a secret.
_SECRET_KEY_QUALIFIERS = frozenset(
    {"api", "access", "secret", "private", "signing", "encryption", "master", "client", "auth", "session",
     "account", "service", "webhook", "license", "ssh", "root"}
)
_PUBLIC_KEY_QUALIFIERS = frozenset(
    {"public", "kms", "hash", "sort", "partition", "range", "primary", "foreign", "cache", "routing", "object",
     "label", "selector", "topology", "config", "idempotency", "host"}
)
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")

_VALUE = r"""(?:"(?P<dq>[^"\n]*)"|'(?P<sq>[^'\n]*)'|(?P<bare>[^\s"'`;&|<>(){}\[\],]+))"""
_EMBEDDED_PAIRS = [
    # NAME=value in shell, env and properties files, query strings; key = value in TOML/INI
    re.compile(r"(?:^|(?<=[\s;&|?(\"']))(?:export\s+)?(?P<key>[A-Za-z_][\w.-]*)[ \t]*=[ \t]*" + _VALUE),
    # --flag value / --flag=value in command lines and scripts
    re.compile(r"(?:^|(?<=[\s\"']))--(?P<key>[A-Za-z][\w.-]*)(?:=|[ \t]+(?!-))" + _VALUE),
    # key: value lines in config text that is not a YAML document
    re.compile(r"(?m)^[ \t-]*[\"']?(?P<key>[A-Za-z_][\w.-]*)[\"']?[ \t]*:[ \t]+" + _VALUE),
]


def _key_words(key: str) -> list[str]:
    """``AWS_SECRET_ACCESS_KEY`` -> aws secret access key; ``secretKeyRef`` -> secret key ref."""
    return [w.lower() for w in _WORD.findall(key)]


def is_credential_key(key: str) -> bool:
    """True for names whose value is a credential (``MINIO_ROOT_PASSWORD``, ``apiKey``, ``*_KEY``).

    The credential word must come last: ``PASSWORD_MIN_LENGTH``, ``secretName``,
    ``secretKeyRef`` and ``tokenPath`` name settings or references, not credentials.
    Domain-qualified annotation keys (``nginx.ingress.kubernetes.io/auth-secret``)
    and Helm's ``existingSecret*`` keys name Secrets rather than hold them.
    """
    if "/" in key:
        return False
    words = _key_words(key)
    while len(words) > 1 and words[-1] in _TRAILING_NOISE:
        words.pop()
    if not words or words[0] == "existing":
        return False
    last = words[-1]
    if last == "key" and len(words) > 1:
        qualifier = words[-2]
        if qualifier in _PUBLIC_KEY_QUALIFIERS:
            return False
        separated = "_" in key or "-" in key
        return separated or qualifier in _SECRET_KEY_QUALIFIERS
    return last in _EXACT_CREDENTIAL_WORDS or last.endswith(_CREDENTIAL_WORDS)


def is_literal(value: str) -> bool:
    """Could this value be a credential typed into the program, rather than a reference or an identifier?"""
    text = value.strip()
    if not text or _REFERENCE.search(text) or _MASK.fullmatch(text):
        return False
    return not any(p.fullmatch(text) for p in _NOT_A_CREDENTIAL)


def _decoded_pems(text: str) -> Iterator[str]:
    for match in _PEM_BASE64.finditer(text):
        chunk = match.group(0)
        try:
            yield base64.b64decode(chunk + "=" * (-len(chunk) % 4)).decode("utf-8", "replace")
        except (binascii.Error, ValueError):
            continue


def _is_aws_secret_shape(candidate: str) -> bool:
    """40 base64 characters of mixed case and digits; hex (git SHAs) and paths are not keys."""
    return (
        any(c.islower() for c in candidate)
        and any(c.isupper() for c in candidate)
        and any(c.isdigit() for c in candidate)
        and not _HEX.fullmatch(candidate)
        and candidate.count("/") <= 3
    )


def pattern_kinds(text: str, key: Optional[str] = None) -> set[str]:
    """Credentials recognisable by their shape, wherever they appear in ``text``."""
    kinds: set[str] = set()
    if _AWS_KEY_ID.search(text):
        kinds.add(AWS_ACCESS_KEY_ID)
    if _AWS_CONTEXT.search(text if key is None else f"{key} {text}") and any(
        _is_aws_secret_shape(m.group(0)) for m in _FORTY.finditer(text)
    ):
        kinds.add(AWS_SECRET_ACCESS_KEY)
    for match in _URI_USERINFO.finditer(text):
        password = match.group("password")
        if not (_REFERENCE.fullmatch(password) or _MASK.fullmatch(password)):
            kinds.add(URI_PASSWORD)
    if _PEM.search(text) or any(_PEM.search(pem) for pem in _decoded_pems(text)):
        kinds.add(PRIVATE_KEY)
    if _JWT.search(text):
        kinds.add(JWT)
    if _API_TOKEN.search(text):
        kinds.add(API_TOKEN)
    if _DEFAULTS.search(text):
        kinds.add(DEFAULT_CREDENTIAL)
    return kinds


def embedded_pairs(text: str) -> Iterator[tuple[str, str]]:
    """``NAME=value``, ``--flag value`` and ``key: value`` settings inside scripts and config text."""
    for pattern in _EMBEDDED_PAIRS:
        for match in pattern.finditer(text):
            bare = match.group("bare")
            if bare is not None and (bare.startswith("-") or text[match.end():match.end() + 1] in ("(", "[", "{")):
                continue
            value = next(v for v in (match.group("dq"), match.group("sq"), bare) if v is not None)
            yield match.group("key"), value


def _bound_kinds(key: Optional[str], value: str) -> set[str]:
    """Shapes first; the credential-named rule only for values no shape explains."""
    kinds = pattern_kinds(value, key)
    if not kinds and key is not None and is_credential_key(key) and is_literal(value):
        kinds.add(NAMED_CREDENTIAL)
    return kinds


def detect(key: Optional[str], value: str) -> set[str]:
    """Every kind of credential in ``value``, which is bound to ``key`` (a map key, env name or flag)."""
    kinds = _bound_kinds(key, value)
    for embedded_key, embedded_value in embedded_pairs(value):
        kinds |= _bound_kinds(embedded_key, embedded_value)
    return kinds


def is_well_known_default(value: str) -> bool:
    return bool(_DEFAULTS.search(value))
