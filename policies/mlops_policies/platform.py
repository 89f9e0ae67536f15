"""This platform's own checks: what no general-purpose scanner knows about MLflow, MinIO, KServe and Pulumi.

- Tutorial defaults: credentials published by the tutorials and manifests this
  platform replaces. They are short and low in entropy, so no generic rule sees them.
- Credential settings: names the platform's components read a credential from that
  detect-secrets' KeywordDetector leaves out (it has no ``token``, no ``access key``,
  no ``credentials``; its authors found them too noisy in source code).
- Pulumi secrets in plaintext: a secret marker carrying ``plaintext`` inside a value.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from detect_secrets.filters import heuristic

from .rules import Match, keyword_line
from .walk import PULUMI_PLAINTEXT, Leaf

TUTORIAL_DEFAULT = "well-known default credential"
CREDENTIAL_SETTING = "credential in a platform setting"
PULUMI_SECRET_PLAINTEXT = "Pulumi secret in plaintext"
NOT_A_SECRET = "credential not stored as a Pulumi secret"

RULE_TUTORIAL_DEFAULT = "mlops:tutorial-default"
RULE_CREDENTIAL_SETTING = "mlops:credential-setting"
RULE_PULUMI_PLAINTEXT = "mlops:pulumi-plaintext"
RULE_PULUMI_SECRET_REQUIRED = "mlops:pulumi-secret-required"

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
    "password1234",  # MLflow 2.x basic-auth's shipped admin password (basic_auth.ini), PostgreSQL in compose tutorials
    "changeme",  # the placeholder many charts ship as a working default
)
# user:password pairs of the same tutorials, judged where a place names both (URL userinfo, Basic auth, curl -u).
WELL_KNOWN_ACCOUNTS = frozenset(
    {
        ("mlflow", "mlflow"),  # docker-compose MLflow tutorials: POSTGRES_USER/POSTGRES_PASSWORD mlflow
        ("minio", "minio123"),
        ("admin", "password"),  # the admin account of MLflow basic-auth walkthroughs
        ("postgres", "postgres"),
    }
)
_DEFAULTS = re.compile(r"(?<![A-Za-z0-9_])(?:" + "|".join(re.escape(d) for d in WELL_KNOWN_DEFAULTS) + r")(?![A-Za-z0-9_])")

# Last words of a setting's name that hold a credential in this platform's components, beyond detect-secrets' keywords:
# MLFLOW_TRACKING_TOKEN (MLflow's client), HF_TOKEN (KServe's Hugging Face runtime), registryToken (the serving stack's
# registry reader), AWS_SESSION_TOKEN (KServe's S3 storage), MINIO_ACCESS_KEY / accessKey (MinIO's and mc's name for a
# user's key). A name ending in "id" (AWS_ACCESS_KEY_ID) is an identifier, as detect-secrets' own filter judges it; an AWS
# key id is AWSKeyDetector's. An Authorization header's credential is decoded as a token (decode.py).
_SETTING_ENDINGS = (("token",), ("credentials",), ("access", "key"), ("accesskey",))
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
_STARTS_LIKE_A_SECRET = re.compile(r"\w")


def words(key: str) -> list[str]:
    """``AWS_SECRET_ACCESS_KEY`` -> aws secret access key; ``registryToken`` -> registry token."""
    return [w.lower() for w in _WORD.findall(key)]


def is_credential_setting(key: str) -> bool:
    """A name whose last words say it holds a credential; a domain-qualified annotation key names a setting, not one."""
    if "/" in key:
        return False
    found = words(key)
    return any(found[-len(ending) :] == list(ending) for ending in _SETTING_ENDINGS if len(found) >= len(ending))


def is_literal(key: str, value: str) -> bool:
    """A value typed in, judged as detect-secrets judges a keyword's secret: starting with a word character,
    and passing its heuristic filters (references like ``$(VAR)``, templates, masks, UUIDs, sequences)."""
    text = value.strip()
    if not _STARTS_LIKE_A_SECRET.match(text) or text == REDACTED:
        return False
    line = keyword_line(key, text)
    return not (
        heuristic.is_indirect_reference(line)
        or heuristic.is_sequential_string(text)
        or heuristic.is_potential_uuid(text)
        or heuristic.is_likely_id_string(text, line)
        or heuristic.is_templated_secret(text)
        or heuristic.is_not_alphanumeric_string(text)
    )


def is_well_known_default(value: str) -> bool:
    return bool(_DEFAULTS.search(value))


def scan(leaf: Leaf) -> Iterator[Match]:
    if leaf.via and leaf.via[-1] == PULUMI_PLAINTEXT:
        yield Match(PULUMI_SECRET_PLAINTEXT, RULE_PULUMI_PLAINTEXT, leaf.value)
        return
    default = _DEFAULTS.search(leaf.value)
    if default:
        yield Match(TUTORIAL_DEFAULT, RULE_TUTORIAL_DEFAULT, default.group(0))
    elif leaf.user is not None and (leaf.user, leaf.value) in WELL_KNOWN_ACCOUNTS:
        yield Match(TUTORIAL_DEFAULT, RULE_TUTORIAL_DEFAULT, leaf.value)
    if leaf.key is not None and is_credential_setting(leaf.key) and is_literal(leaf.key, leaf.value):
        yield Match(CREDENTIAL_SETTING, RULE_CREDENTIAL_SETTING, leaf.value.strip())
