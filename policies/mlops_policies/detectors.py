"""What a leaked credential looks like, and what merely resembles one.

Every detector returns a *kind* (a fixed phrase such as ``"AWS access key ID"``),
never the matched text: kinds end up in PR comments and audit output.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
import shlex
from collections.abc import Callable, Iterator, Sequence

AWS_ACCESS_KEY_ID = "AWS access key ID"
AWS_SECRET_ACCESS_KEY = "AWS secret access key"
URI_PASSWORD = "password embedded in a URI"
PRIVATE_KEY = "PEM private key"
JWT = "JSON Web Token"
API_TOKEN = "API token"
DEFAULT_CREDENTIAL = "well-known default credential"
NAMED_CREDENTIAL = "literal value of a credential-named key"
COMMAND_LINE = "credential passed to a command-line tool"
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

_DEFAULTS = re.compile(r"(?<![A-Za-z0-9_])(?:" + "|".join(re.escape(d) for d in WELL_KNOWN_DEFAULTS) + r")(?![A-Za-z0-9_])")
# Only AKIA (long-lived) and ASIA (STS) are secret-bearing: AIDA/AROA user and role ids are not.
_AWS_KEY_ID = re.compile(r"(?<![A-Z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Z0-9])")
_FORTY = re.compile(r"(?<![A-Za-z0-9/+.$_-])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=._-])")
_AWS_CONTEXT = re.compile(r"(?i)aws|secret.?access.?key|AKIA|ASIA")
_HEX = re.compile(r"[0-9a-fA-F]+")
_URI_USERINFO = re.compile(r"(?i)\b[a-z][a-z0-9+.-]*://[^\s:/?#@\[\]'\"]*:(?P<password>[^\s/?#@'\"]+)@")
_PEM = re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----")
_PEM_BASE64 = re.compile(r"LS0tLS1CRUdJTi[A-Za-z0-9+/=]+")  # base64 of "-----BEGIN"
_JWT = re.compile(r"(?<![\w-])eyJ[\w-]{5,}\.eyJ[\w-]{5,}\.[\w-]*")
_API_TOKEN = re.compile(r"(?<![\w-])(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_\w{40,}|hf_[A-Za-z0-9]{30,}|xox[abposr]-[A-Za-z0-9-]{10,})")

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
    {
        "api",
        "access",
        "secret",
        "private",
        "signing",
        "encryption",
        "master",
        "client",
        "auth",
        "session",
        "account",
        "service",
        "webhook",
        "license",
        "ssh",
        "root",
    }
)
_PUBLIC_KEY_QUALIFIERS = frozenset(
    {
        "public",
        "kms",
        "hash",
        "sort",
        "partition",
        "range",
        "primary",
        "foreign",
        "cache",
        "routing",
        "object",
        "label",
        "selector",
        "topology",
        "config",
        "idempotency",
        "host",
    }
)
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
# What a key of a Secret's data looks like when someone names it: password, db-password, AWS_SECRET_ACCESS_KEY, tls.key.
_SECRET_DATA_KEY_NAME = re.compile(r"[A-Za-z]+(?:[-_.][A-Za-z0-9]+)*")
# Connection fields kept next to a password in a Secret ("user" is left out: USER_SECRET_KEY is a user's secret key).
_CONNECTION_FIELDS = frozenset({"username", "uri", "url", "dsn", "database"})

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


def names_a_secret_key(key: str, value: str) -> bool:
    """True when ``key`` says which key of a Secret holds something and ``value`` is such a key's name.

    ``DB_PASSWORD_SECRET_KEY: password``, ``DB_URI_SECRET_KEY: uri`` and ``PASSWORD_KEY: db-password``
    point into a Secret. ``MINIO_SECRET_KEY``, ``CLIENT_SECRET_KEY`` and ``AWS_SECRET_ACCESS_KEY`` are
    credentials themselves: what precedes ``[SECRET_]KEY`` names no credential or connection field.
    """
    words = _key_words(key)
    if words[-2:] == ["secret", "key"]:
        held = words[:-2]
    elif words[-1:] == ["key"]:
        held = words[:-1]
    else:
        return False
    names_what_is_held = bool(held) and (held[-1] in _CONNECTION_FIELDS or is_credential_key("_".join(held)))
    return names_what_is_held and bool(_SECRET_DATA_KEY_NAME.fullmatch(value.strip()))


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


def pattern_kinds(text: str, key: str | None = None) -> set[str]:
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
            if bare is not None and (bare.startswith("-") or text[match.end() : match.end() + 1] in ("(", "[", "{")):
                continue
            value = next(v for v in (match.group("dq"), match.group("sq"), bare) if v is not None)
            yield match.group("key"), value


def _bound_kinds(key: str | None, value: str) -> set[str]:
    """Shapes first; the credential-named rule only for values no shape explains."""
    kinds = pattern_kinds(value, key)
    if not kinds and key is not None and is_credential_key(key) and is_literal(value) and not names_a_secret_key(key, value):
        kinds.add(NAMED_CREDENTIAL)
    return kinds


def detect(key: str | None, value: str) -> set[str]:
    """Every kind of credential in ``value``, which is bound to ``key`` (a map key, env name or flag)."""
    kinds = _bound_kinds(key, value)
    for embedded_key, embedded_value in embedded_pairs(value):
        kinds |= _bound_kinds(embedded_key, embedded_value)
    if _TOOL_WORD.search(value):
        for command in _commands(value):
            for index, secret in _credential_arguments(tuple(command)):
                kinds |= _positional_kinds(command[index], secret)
    return kinds


def command_line_kinds(argv: Sequence[str], index: int) -> set[str]:
    """The credential ``argv[index]`` is by its position in a command line (``mc alias set NAME URL USER SECRET``)."""
    secret = dict(_credential_arguments(tuple(argv))).get(index)
    return set() if secret is None else _positional_kinds(argv[index], secret)


def _positional_kinds(argument: str, secret: str) -> set[str]:
    """What the argument alone shows (a URI password, a default), else, for a literal, a credential by position."""
    if not is_literal(secret):
        return set()
    return detect(None, argument) or {COMMAND_LINE}


def is_well_known_default(value: str) -> bool:
    return bool(_DEFAULTS.search(value))


# -- command lines: credentials a tool takes by position or in a short option ------------------

Found = Iterator[tuple[int, str]]
"""(index of the argument after the program, the secret inside it)"""

_PUNCTUATION = ";&|()<>\n"
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")
_WRAPPERS = frozenset({"exec", "env", "sudo", "command", "nohup", "time"})
# Command substitutions become a reference, so ``-u admin:$(cat /run/pw)`` stays one word and is no literal.
_SUBSTITUTION = re.compile(r"\$\(\([^()]*\)\)|\$\([^()]*\)|`[^`]*`")


def _commands(script: str) -> Iterator[list[str]]:
    """The simple commands of a shell script, as words without quotes."""
    text = script.replace("\\\n", " ")
    while (flat := _SUBSTITUTION.sub("${CMD}", text)) != text:
        text = flat
    try:
        words = _split(text)
    except ValueError:  # an unbalanced quote: take the script line by line
        words = []
        for line in text.splitlines():
            try:
                words += _split(line) + ["\n"]
            except ValueError:
                words += line.split() + ["\n"]
    command: list[str] = []
    comment = False
    for word in words + ["\n"]:
        if word and all(c in _PUNCTUATION for c in word) and not (comment and "\n" not in word):
            if command:
                yield command
            command, comment = [], False
        elif comment:
            continue
        elif word.startswith("#"):
            # A trailing comment ends the command; a commented-out command is still text in the cluster.
            if command:
                comment = True
            elif word[1:]:
                command.append(word[1:])
        else:
            command.append(word)


def _split(text: str) -> list[str]:
    lexer = shlex.shlex(text, posix=True, punctuation_chars=_PUNCTUATION)
    lexer.whitespace = " \t\r"
    lexer.commenters = ""
    lexer.whitespace_split = True
    return list(lexer)


@functools.lru_cache(maxsize=1024)
def _credential_arguments(argv: tuple[str, ...]) -> tuple[tuple[int, str], ...]:
    """(index in ``argv``, secret) for each argument that carries a credential because of the tool and its position."""
    start = next((i for i, word in enumerate(argv) if not (_ASSIGNMENT.match(word) or word in _WRAPPERS or word.startswith("-"))), None)
    if start is None:
        return ()
    rule = _TOOLS.get(argv[start].rsplit("/", 1)[-1])
    if rule is None:
        return ()
    return tuple((start + 1 + offset, secret) for offset, secret in rule(list(argv[start + 1 :])) if secret)


def _option_values(args: list[str], shorts: str, longs: tuple[str, ...], value_shorts: str) -> Found:
    """Values of an option in every spelling: ``-u V``, ``-uV``, ``-su V`` (a cluster), ``--user V``, ``--user=V``.

    ``value_shorts`` are the tool's short options that take a value: in a cluster, the first one takes the rest.
    """
    for i, arg in enumerate(args):
        if arg.startswith("--"):
            name, eq, value = arg.partition("=")
            if name in longs:
                if eq:
                    yield i, value
                elif i + 1 < len(args):
                    yield i + 1, args[i + 1]
        elif arg.startswith("-") and len(arg) > 1:
            for j, letter in enumerate(arg[1:], start=1):
                if letter in value_shorts:
                    if letter in shorts:
                        if j + 1 < len(arg):
                            yield i, arg[j + 1 :]
                        elif i + 1 < len(args):
                            yield i + 1, args[i + 1]
                    break


def _positionals(args: list[str], value_options: frozenset[str]) -> list[tuple[int, str]]:
    """Arguments that are not options or option values."""
    found: list[tuple[int, str]] = []
    skip = False
    for i, arg in enumerate(args):
        if skip:
            skip = False
        elif arg.startswith("-") and len(arg) > 1:
            skip = arg in value_options
        else:
            found.append((i, arg))
    return found


def _after(separator: str, found: Found) -> Found:
    """``user:SECRET`` -> SECRET; nothing when there is no separator (the tool then prompts)."""
    for i, value in found:
        _, sep, secret = value.partition(separator)
        if sep:
            yield i, secret


_MC_VALUE_OPTIONS = frozenset(
    {"--config-dir", "-C", "--api", "--path", "--limit-upload", "--limit-download", "--custom-header", "-H", "--resolve"}
)
_MC_SECRET_POSITIONS = {
    ("alias", "set"): 5,
    ("alias", "s"): 5,
    ("alias", "add"): 5,
    ("config", "host", "add"): 6,
    ("admin", "user", "add"): 5,
}


def _mc(args: list[str]) -> Found:
    """``mc alias set ALIAS URL ACCESSKEY SECRETKEY``, ``mc config host add …``, ``mc admin user add ALIAS ACCESSKEY SECRETKEY``."""
    words = _positionals(args, _MC_VALUE_OPTIONS)
    names = tuple(word for _, word in words)
    for prefix, position in _MC_SECRET_POSITIONS.items():
        if names[: len(prefix)] == prefix and len(words) > position:
            yield words[position]


_CURL_VALUE_SHORTS = "AbcCdDeEFhHKmoPQrtTuUwxXyYz"
_AUTHORIZATION = re.compile(r"(?i)\s*(?:proxy-)?authorization\s*:\s*(?:[a-z][\w-]*\s+)?(?P<secret>\S+)\s*$")
_HEADER = re.compile(r"\s*(?P<name>[A-Za-z][\w-]*)\s*:\s*(?P<value>\S.*?)\s*$")


def _headers(found: Found) -> Found:
    """``Authorization: Bearer SECRET``, ``X-Api-Key: SECRET``."""
    for i, header in found:
        authorization = _AUTHORIZATION.match(header)
        named = _HEADER.match(header)
        if authorization:
            yield i, authorization["secret"]
        elif named and is_credential_key(named["name"]):
            yield i, named["value"]


def _curl(args: list[str]) -> Found:
    """``curl -u USER:SECRET``, ``--proxy-user``, and credential headers."""
    yield from _after(":", _option_values(args, "uU", ("--user", "--proxy-user"), _CURL_VALUE_SHORTS))
    yield from _headers(_option_values(args, "H", ("--header", "--proxy-header"), _CURL_VALUE_SHORTS))


def _wget(args: list[str]) -> Found:
    yield from _headers(_option_values(args, "", ("--header",), "eoaOiBTtwQPUY"))


def _mysql(args: list[str]) -> Found:
    """``mysql -pSECRET`` (with a space, ``-p`` prompts and the next word is the database)."""
    for i, arg in enumerate(args):
        if arg.startswith("-p") and len(arg) > 2 and not arg.startswith("--"):
            yield i, arg[2:]


def _redis_cli(args: list[str]) -> Found:
    yield from _option_values(args, "a", ("--pass",), "hpsaunrid")


def _sshpass(args: list[str]) -> Found:
    yield from _option_values(args, "p", (), "pfd")


_LOGIN_VALUE_OPTIONS = frozenset({"-u", "--username", "-p", "--password"})


def _login(args: list[str]) -> Found:
    """``docker login -p SECRET`` and the same in podman, nerdctl, ``helm registry login``, oras…"""
    if "login" in [word for _, word in _positionals(args, _LOGIN_VALUE_OPTIONS)][:2]:
        yield from _option_values(args, "p", (), "up")


_LIBPQ_URI = re.compile(r"(?i)^postgres(?:ql)?://[^:/@]*:(?P<password>[^/@]*)@")


def _libpq(args: list[str]) -> Found:
    """A connection URI with a password, as an argument or ``--dbname=``: libpq reads the password up to the first ``@``."""
    for i, arg in enumerate(args):
        uri = _LIBPQ_URI.match(arg.partition("=")[2] if arg.startswith("--") else arg)
        if uri:
            yield i, uri["password"]


def _htpasswd(args: list[str]) -> Found:
    """``htpasswd -b FILE USER SECRET`` / ``htpasswd -nb USER SECRET``: with ``b`` the password is the last argument."""
    options = "".join(arg[1:] for arg in args if arg.startswith("-") and not arg.startswith("--"))
    words = _positionals(args, frozenset({"-r", "-C"}))
    if "b" in options and len(words) >= 2:
        yield words[-1]


def _kubectl(args: list[str]) -> Found:
    """``kubectl create secret generic NAME --from-literal=password=SECRET``."""
    for i, literal in _option_values(args, "", ("--from-literal",), ""):
        key, sep, value = literal.partition("=")
        if sep and is_credential_key(key):
            yield i, value


_TOOLS: dict[str, Callable[[list[str]], Found]] = {
    "mc": _mc,
    "mcli": _mc,
    "curl": _curl,
    "wget": _wget,
    **{tool: _mysql for tool in ("mysql", "mysqldump", "mysqladmin", "mariadb", "mariadb-dump", "mariadb-admin")},
    "redis-cli": _redis_cli,
    "sshpass": _sshpass,
    **{tool: _login for tool in ("docker", "podman", "nerdctl", "buildah", "skopeo", "helm", "oras", "crane", "regctl")},
    "htpasswd": _htpasswd,
    **{
        tool: _libpq
        for tool in (
            "psql",
            "pg_dump",
            "pg_dumpall",
            "pg_restore",
            "pg_isready",
            "pg_basebackup",
            "pgbench",
            "createdb",
            "dropdb",
            "createuser",
            "dropuser",
            "vacuumdb",
            "reindexdb",
            "clusterdb",
        )
    },
    "kubectl": _kubectl,
}
_TOOL_WORD = re.compile(r"(?<![\w.-])(?:" + "|".join(re.escape(tool) for tool in _TOOLS) + r")(?=\s)")
