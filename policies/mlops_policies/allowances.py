"""Named allowances: benign shapes a maintained rule fires on in Kubernetes and Pulumi resources.

An allowance never turns a rule off. It accepts one match of named rules where the
value has a shape that is not a credential (a content digest, an MLflow run id, a
Secret's name), and it is reported by name when a finding is explained
(``tools/operator/audit.py --explain``). Each has a test that it accepts its shape and still
lets the rule report a credential of the same rule next to it.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from dataclasses import dataclass

from . import platform, rules
from .walk import Leaf

KEYWORD = "detect-secrets:KeywordDetector"
BASE64_ENTROPY = "detect-secrets:Base64HighEntropyString"
HEX_ENTROPY = "detect-secrets:HexHighEntropyString"


@dataclass(frozen=True)
class Allowance:
    name: str
    reason: str
    applies_to: frozenset[str]
    accepts: Callable[[str, Leaf, rules.Match], bool]


def _words(leaf: Leaf) -> list[str]:
    return platform.words(leaf.key or "")


# -- the value names a Kubernetes object ---------------------------------------------------

_OBJECT_NAME = re.compile(r"(?:[a-z0-9](?:[-a-z0-9.]{0,251}[a-z0-9])?/)?[a-z0-9](?:[-a-z0-9.]{0,251}[a-z0-9])?")
_REFERENCE_ENDINGS = frozenset({"name", "names", "ref"})


def _names_an_object(resource_type: str, leaf: Leaf, match: rules.Match) -> bool:
    """``secretName: mlflow-db``, ``existingSecret: pg``, ``nginx.ingress.kubernetes.io/auth-secret: basic-auth``."""
    found = _words(leaf)
    qualified = "/" in (leaf.key or "")
    refers = bool(found) and (found[-1] in _REFERENCE_ENDINGS or found[0] == "existing" or qualified)
    return refers and bool(_OBJECT_NAME.fullmatch(leaf.value.strip()))


_REFERENCE_FIELDS = frozenset(
    {
        ("secretKeyRef", "key"),
        ("secretKeyRef", "name"),
        ("configMapKeyRef", "key"),
        ("configMapKeyRef", "name"),
        ("secretRef", "name"),
        ("configMapRef", "name"),
        ("secret", "secretName"),
    }
)
_KEY_NAME = re.compile(r"[-._a-zA-Z0-9]{1,253}")


def _is_reference_field(resource_type: str, leaf: Leaf, match: rules.Match) -> bool:
    """A field the Kubernetes API defines as the name of a Secret or ConfigMap, or of a key in one
    (``valueFrom.secretKeyRef.key``): whatever its spelling, it refers to a value and holds none."""
    if leaf.via or len(leaf.path) < 2 or tuple(leaf.path[-2:]) not in _REFERENCE_FIELDS:
        return False
    return bool(_KEY_NAME.fullmatch(leaf.value))


# -- the value names a key inside a Secret -----------------------------------------------

_DATA_KEY = re.compile(r"[A-Za-z]+(?:[-_.][A-Za-z0-9]+)*")
# Connection fields kept next to a password in a Secret ("user" is left out: USER_SECRET_KEY is a user's secret key).
_CONNECTION_FIELDS = frozenset({"username", "uri", "url", "dsn", "database"})
_CREDENTIAL_WORDS = ("password", "passwd", "pwd", "secret", "token", "credentials")


def _names_a_secret_key(resource_type: str, leaf: Leaf, match: rules.Match) -> bool:
    """``DB_PASSWORD_SECRET_KEY: password``, ``TOKEN_SECRET_KEY: registry-token``: which key of a Secret holds it.

    ``MINIO_SECRET_KEY`` or ``CLIENT_SECRET_KEY`` is a credential itself: what precedes ``[SECRET_]KEY``
    names no credential or connection field.
    """
    found = _words(leaf)
    if found[-2:] == ["secret", "key"]:
        held = found[:-2]
    elif found[-1:] == ["key"]:
        held = found[:-1]
    else:
        return False
    names_what_is_held = bool(held) and (
        held[-1] in _CONNECTION_FIELDS or held[-1].endswith(_CREDENTIAL_WORDS) or platform.is_credential_setting("_".join(held))
    )
    return names_what_is_held and bool(_DATA_KEY.fullmatch(leaf.value.strip()))


# -- content digests -----------------------------------------------------------------------

_DIGEST = re.compile(r"(?:\S+@)?(?:sha1:[0-9a-f]{40}|sha256:[0-9a-f]{64}|sha384:[0-9a-f]{96}|sha512:[0-9a-f]{128})")
_HEX_DIGEST = re.compile(r"[0-9a-fA-F]{40}|[0-9a-fA-F]{64}")
_DIGEST_WORDS = frozenset({"digest", "checksum", "hash", "sha", "sha1", "sha256", "commit", "revision", "version", "etag"})


def _is_digest(resource_type: str, leaf: Leaf, match: rules.Match) -> bool:
    """``sha256:<hex>``, ``image@sha256:<hex>``, or a 40/64-digit hex value under a name saying it is a digest
    (``checksum/config``, ``GIT_SHA``, ``app.kubernetes.io/version``)."""
    value = leaf.value.strip()
    if _DIGEST.fullmatch(value):
        return True
    return bool(_HEX_DIGEST.fullmatch(value)) and bool(_DIGEST_WORDS & set(_words(leaf)))


# -- MLflow identifiers ----------------------------------------------------------------------

_RUN_ID = re.compile(r"[0-9a-f]{32}")


def _is_run_id(resource_type: str, leaf: Leaf, match: rules.Match) -> bool:
    """An MLflow run id (``uuid4().hex``) under a name saying so: ``runId``, ``mlops-platform/run-id``, ``MLFLOW_RUN_ID``."""
    return _words(leaf)[-2:] == ["run", "id"] and bool(_RUN_ID.fullmatch(leaf.value.strip()))


# -- ARNs and prose --------------------------------------------------------------------------

_ARN = re.compile(r"arn:aws[a-z-]*:[a-z0-9-]+:[a-z0-9-]*:\d{0,12}:\S+")


def _is_arn(resource_type: str, leaf: Leaf, match: rules.Match) -> bool:
    """``SECRET_ARN: arn:aws:secretsmanager:…``: an ARN names where a secret is kept, not the secret."""
    return bool(_ARN.fullmatch(leaf.value.strip()))


_WORDS = re.compile(r"[a-z]+(?: [a-z]+)+")


def _is_comment_prose(resource_type: str, leaf: Leaf, match: rules.Match) -> bool:
    """``# no password: curl prompts``: words after a keyword in a script's comment."""
    if not _WORDS.fullmatch(match.secret.strip()):
        return False
    for line in leaf.value.splitlines():
        at = line.find(match.secret)
        if at >= 0 and "#" in line[:at]:
            return True
    return False


# -- Pulumi's own properties -------------------------------------------------------------------


def _is_dynamic_provider(resource_type: str, leaf: Leaf, match: rules.Match) -> bool:
    """A dynamic resource's ``__provider``: Pulumi's pickle of the provider class (by reference), base64."""
    if not resource_type.startswith("pulumi-python:dynamic") or leaf.path != ("__provider",):
        return False
    try:
        return base64.b64decode(leaf.value, validate=True)[:1] == b"\x80"
    except (binascii.Error, ValueError):
        return False


ALLOWANCES: tuple[Allowance, ...] = (
    Allowance(
        "kubernetes-reference-field",
        "a field the Kubernetes API defines as a reference to a Secret or ConfigMap or to a key in one",
        frozenset({rules.rule_id(p) for p in rules.PLUGINS} | {platform.RULE_CREDENTIAL_SETTING}),
        _is_reference_field,
    ),
    Allowance(
        "kubernetes-object-name",
        "the value names a Kubernetes object (a Secret, a TLS Secret), as secretName, existingSecret and domain-qualified annotations do",
        frozenset({KEYWORD, platform.RULE_CREDENTIAL_SETTING}),
        _names_an_object,
    ),
    Allowance(
        "secret-data-key-name",
        "the value names the key of a Secret that holds a credential or a connection field",
        frozenset({KEYWORD, platform.RULE_CREDENTIAL_SETTING}),
        _names_a_secret_key,
    ),
    Allowance(
        "content-digest",
        "a sha1/sha256/sha512 content digest, an image digest, or a hex digest under a name saying so",
        frozenset({HEX_ENTROPY, BASE64_ENTROPY}),
        _is_digest,
    ),
    Allowance(
        "aws-arn",
        "an AWS ARN: where a secret is kept, not the secret",
        frozenset({KEYWORD, platform.RULE_CREDENTIAL_SETTING}),
        _is_arn,
    ),
    Allowance(
        "comment-prose",
        "words after a credential keyword in a comment of a script",
        frozenset({KEYWORD, platform.RULE_CREDENTIAL_SETTING}),
        _is_comment_prose,
    ),
    Allowance("mlflow-run-id", "an MLflow run id under a run-id name", frozenset({HEX_ENTROPY}), _is_run_id),
    Allowance(
        "pulumi-dynamic-provider",
        "a Pulumi dynamic resource's pickled provider reference",
        frozenset({BASE64_ENTROPY}),
        _is_dynamic_provider,
    ),
)


def allowance(resource_type: str, leaf: Leaf, match: rules.Match) -> Allowance | None:
    """The first allowance that accepts ``match`` of ``leaf``, else None."""
    for candidate in ALLOWANCES:
        if match.rule in candidate.applies_to and candidate.accepts(resource_type, leaf, match):
            return candidate
    return None
