"""Where credentials hide inside a value, and how to bring them out before detection.

Each decoder turns a string into what it holds: the text a base64 value encodes, the
document a JSON, YAML or INI value is, or *views*: the password of a URL's userinfo,
its query parameters, an HTTP header's value in a proxy snippet, a credential a
command-line tool takes by position. A view carries the name the credential has
where it hides (``password``, ``token``, the header or parameter name), so the rules
judge it as they would a setting of that name. Every decoding is named (``via``), so
a finding says how it was reached. The walk (walk.py) bounds how deep decoders nest.
"""

from __future__ import annotations

import base64
import binascii
import configparser
import functools
import json
import re
import shlex
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote

import yaml

MIN_BASE64 = 16
"""Shorter base64-looking strings are words and identifiers more often than encodings."""

MAX_VIEWS = 64
"""Views taken from one string at most (URLs, parameters, headers, arguments)."""


@dataclass(frozen=True)
class View:
    """A credential-bearing part of a value: its name there, the value, the account it belongs to if known."""

    via: str
    key: str
    value: str
    user: str | None = None


# -- base64 -------------------------------------------------------------------------------

_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}|[A-Za-z0-9_-]+={0,2}")


def base64_text(value: str, *, encoded: bool = False) -> str | None:
    """The UTF-8 text ``value`` encodes in base64, or None (not base64, or not text).

    ``encoded``: the field is base64 by definition (a Secret's ``data``, a ConfigMap's
    ``binaryData``), so short values are decoded too.
    """
    text = value.strip()
    if (len(text) < MIN_BASE64 and not encoded) or len(text) % 4 or not _BASE64.fullmatch(text):
        return None
    try:
        raw = base64.b64decode(text, altchars=b"-_" if ("-" in text or "_" in text) else None, validate=True)
        decoded = raw.decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    return decoded if decoded and _printable(decoded) else None


def _printable(text: str) -> bool:
    return all(c.isprintable() or c in "\n\r\t" for c in text)


# -- documents ----------------------------------------------------------------------------


def _no_aliases(text: str) -> bool:
    """True when the YAML has no alias, so a crafted value cannot expand into a billion nodes."""
    return not any(isinstance(event, yaml.AliasEvent) for event in yaml.parse(text, Loader=_LOADER))


_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_INI_SECTION = re.compile(r"\s*\[[^\]\n,]+\]\s*")
_INI_OPTION = re.compile(r"\s*[^\s=:#;\[][^=:\n]*\s*[=:]")


def document(text: str) -> tuple[str, Any] | None:
    """(format, a non-empty map or list) parsed from ``text``, or None when it is plain text."""
    stripped = text.strip()
    if stripped[:1] in ("{", "["):
        try:
            parsed = json.loads(stripped)
            return ("json", parsed) if _container(parsed) else None
        except ValueError:
            pass
    if "[" in stripped and "\n" in stripped:
        lines = [line for line in stripped.splitlines() if line.strip() and not line.lstrip().startswith(("#", ";"))]
        if lines and _INI_SECTION.fullmatch(lines[0]) and any(_INI_OPTION.match(line) for line in lines[1:]):
            return _ini(stripped)
    # PEM headers ("Proc-Type: ...") parse as YAML and would hide the BEGIN line from the rules.
    if "\n" in stripped and ":" in stripped and "-----BEGIN" not in stripped:
        try:
            if _no_aliases(stripped):
                parsed = yaml.load(stripped, Loader=_LOADER)  # noqa: S506 - a safe loader
                return ("yaml", parsed) if _container(parsed) else None
        except yaml.YAMLError:
            pass
    return None


def _container(value: Any) -> bool:
    return isinstance(value, (dict, list)) and bool(value)


def _ini(text: str) -> tuple[str, Any] | None:
    parser = configparser.ConfigParser(interpolation=None, strict=False, default_section="\0")
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keep names as written
    try:
        parser.read_string(text)
    except configparser.Error:
        return None
    parsed = {section: dict(parser.items(section)) for section in parser.sections()}
    return ("ini", parsed) if any(parsed.values()) else None


# -- settings inside text ---------------------------------------------------------------------

_SETTING_VALUE = r"""(?:"(?P<dq>[^"\n]*)"|'(?P<sq>[^'\n]*)'|(?P<bare>[^\s"'`;&|<>(){}\[\],]+))"""
_ASSIGNMENTS = (
    # NAME=value in shell, env and properties files; key = value in TOML/INI
    re.compile(r"(?:^|(?<=[\s;&|(\"']))(?:export\s+)?(?P<name>[A-Za-z_][\w.-]*)[ \t]*=[ \t]*" + _SETTING_VALUE),
    # --flag value / --flag=value in command lines and scripts
    re.compile(r"(?:^|(?<=[\s\"']))--(?P<name>[A-Za-z][\w.-]*)(?:=|[ \t]+(?!-))" + _SETTING_VALUE),
    # key: value lines in config text that is not a YAML document
    re.compile(r"(?m)^[ \t-]*[\"']?(?P<name>[A-Za-z_][\w.-]*)[\"']?[ \t]*:[ \t]+" + _SETTING_VALUE),
)


def setting_views(text: str) -> Iterator[View]:
    """``NAME=value``, ``--flag value`` and ``key: value`` settings inside scripts and config text, each under its name."""
    if not any(c.isspace() for c in text.strip()):
        return
    for pattern in _ASSIGNMENTS:
        for match in pattern.finditer(text):
            bare = match.group("bare")
            if bare is not None and (bare.startswith("-") or text[match.end() : match.end() + 1] in ("(", "[", "{")):
                continue
            value = next(v for v in (match.group("dq"), match.group("sq"), bare) if v is not None)
            yield View("setting", match.group("name"), value)


# -- URLs ---------------------------------------------------------------------------------

_URL = re.compile(r"(?i)\b[a-z][a-z0-9+.-]*://[^\s'\"<>`]+")
# libpq and most clients read the userinfo up to the last '@' before the host, so a password may hold '?' or '#'.
_USERINFO = re.compile(r"://(?P<userinfo>[^/\s@]*)@[^@\s]")


def url_views(text: str) -> Iterator[View]:
    """The password of each URL's userinfo, and each query and fragment parameter, percent-decoded."""
    for match in _URL.finditer(text):
        url = match.group(0)
        info = _USERINFO.search(url)
        rest = url
        if info:
            user, colon, password = info.group("userinfo").partition(":")
            if colon and password:
                yield View("url-userinfo", "password", unquote(password), unquote(user))
            rest = url[info.end() - 1 :]
        for separator in ("?", "#"):
            _, found, tail = rest.partition(separator)
            if found:
                query = tail.split("#", 1)[0] if separator == "?" else tail
                for name, value in parse_qsl(query, keep_blank_values=False)[:MAX_VIEWS]:
                    yield View(f"url-{'query' if separator == '?' else 'fragment'}", name, value)


# -- HTTP headers ---------------------------------------------------------------------------

AUTHORIZATION_HEADERS = frozenset({"authorization", "proxy-authorization"})
_VALUE = r"""(?:"(?P<dq>(?:[^"\\\n]|\\.)*)"|'(?P<sq>[^'\n]*)'|(?P<bare>[^\s;'"]+(?:[ \t]+[^\s;'"]+)*?))"""
_HEADER_DIRECTIVES = (
    # nginx: proxy_set_header, grpc_set_header, add_header, add_trailer NAME VALUE;
    re.compile(
        r"(?<![\w-])(?:proxy_set_header|grpc_set_header|add_header|add_trailer)\s+(?P<name>[\w-]+)\s+" + _VALUE + r"\s*(?:always\s*)?;"
    ),
    # HAProxy: http-request set-header NAME VALUE
    re.compile(r"(?<![\w-])http-(?:request|response)\s+(?:set|add)-header\s+(?P<name>[\w-]+)\s+" + _VALUE),
)
# nginx headers-more: more_set_headers / more_set_input_headers [-s ...] "NAME: VALUE"
_MORE_SET_HEADERS = re.compile(r"(?<![\w-])more_set_(?:input_)?headers\b(?P<args>[^;]*);")
_HEADER_TEXT = re.compile(r"\s*(?P<name>[A-Za-z][\w-]*)\s*:\s*(?P<value>.*?)\s*$", re.S)


def _value(match: re.Match[str]) -> str:
    return next(v for v in (match.group("dq"), match.group("sq"), match.group("bare")) if v is not None)


def header_views(text: str) -> Iterator[View]:
    """Headers a proxy configuration sets (nginx snippets, HAProxy): name and value."""
    for pattern in _HEADER_DIRECTIVES:
        for match in pattern.finditer(text):
            yield View("http-header", match.group("name"), _value(match))
    for match in _MORE_SET_HEADERS.finditer(text):
        for word in _words(match.group("args")):
            header = _HEADER_TEXT.fullmatch(word)
            if header and not word.startswith("-"):
                yield View("http-header", header["name"], header["value"])


def header_line(text: str) -> View | None:
    """``Name: value`` as a client sends it (``curl -H``)."""
    header = _HEADER_TEXT.fullmatch(text)
    return View("http-header", header["name"], header["value"]) if header else None


def authorization_views(key: str, value: str) -> Iterator[View]:
    """The credential in an ``Authorization`` header: Basic's user and password, another scheme's token."""
    if key.lower() not in AUTHORIZATION_HEADERS:
        return
    scheme, _, credential = value.strip().partition(" ")
    credential = credential.strip()
    if not credential:
        return
    if scheme.lower() == "basic":
        decoded = base64_text(credential, encoded=True)
        if decoded is not None and ":" in decoded:
            user, _, password = decoded.partition(":")
            yield View("http-basic", "password", password, user)
    else:
        yield View("http-authorization", "token", credential)


def registry_auth_views(key: str, value: str) -> Iterator[View]:
    """A container registry's ``auth`` (a Docker ``config.json``'s ``auths.<registry>.auth``, base64 of ``user:password``,
    decoded by the walk before it gets here)."""
    user, colon, password = value.partition(":")
    if key == "auth" and colon and password and user and " " not in user:
        yield View("registry-auth", "password", password, user)


def _words(text: str) -> list[str]:
    try:
        return shlex.split(text)
    except ValueError:
        return text.split()


# -- command lines: credentials a tool takes by position or in a short option ------------------

Found = Iterator[tuple[int, View]]
"""(index of the argument after the program, the credential in it)"""

_PUNCTUATION = ";&|()<>\n"
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")
_WRAPPERS = frozenset({"exec", "env", "sudo", "command", "nohup", "time"})
# Command substitutions become a reference, so ``-u admin:$(cat /run/pw)`` stays one word and is no literal.
_SUBSTITUTION = re.compile(r"\$\(\([^()]*\)\)|\$\([^()]*\)|`[^`]*`")


def commands(script: str) -> Iterator[list[str]]:
    """The simple commands of a shell script, as words without quotes; a commented-out command is one too."""
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


@functools.lru_cache(maxsize=4096)
def command_views(argv: tuple[str, ...]) -> tuple[tuple[int, View], ...]:
    """(index in ``argv``, credential) for each argument that carries one because of the tool and its position."""
    start = next((i for i, word in enumerate(argv) if not (_ASSIGNMENT.match(word) or word in _WRAPPERS or word.startswith("-"))), None)
    if start is None:
        return ()
    tool = argv[start].rsplit("/", 1)[-1]
    rule = TOOLS.get(tool)
    if rule is None:
        return ()
    found = []
    for offset, view in rule(list(argv[start + 1 :])):
        if view.value:
            found.append((start + 1 + offset, View(f"command-line:{tool}", view.key, view.value, view.user)))
    return tuple(found[:MAX_VIEWS])


def script_views(text: str) -> Iterator[View]:
    """Credentials in the command lines of a script (``sh -c``, a ConfigMap's ``setup.sh``)."""
    if not TOOL_WORD.search(text):
        return
    for command in commands(text):
        for _, view in command_views(tuple(command)):
            yield view


def _option_values(args: list[str], shorts: str, longs: tuple[str, ...], value_shorts: str) -> Iterator[tuple[int, str]]:
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


def _named(key: str, found: Iterator[tuple[int, str]]) -> Found:
    for i, value in found:
        yield i, View("", key, value)


_MC_VALUE_OPTIONS = frozenset(
    {"--config-dir", "-C", "--api", "--path", "--limit-upload", "--limit-download", "--custom-header", "-H", "--resolve"}
)
# Position of SECRETKEY among the positionals (mc's own names: ACCESSKEY, SECRETKEY).
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
            index, secret = words[position]
            yield index, View("", "secret_key", secret, words[position - 1][1])


_CURL_VALUE_SHORTS = "AbcCdDeEFhHKmoPQrtTuUwxXyYz"


def _headers(found: Iterator[tuple[int, str]]) -> Found:
    for i, text in found:
        header = header_line(text)
        if header is not None:
            yield i, header


def _user_password(found: Iterator[tuple[int, str]]) -> Found:
    """``USER:SECRET``; nothing without a colon (the tool then prompts)."""
    for i, value in found:
        user, sep, secret = value.partition(":")
        if sep:
            yield i, View("", "password", secret, user)


def _curl(args: list[str]) -> Found:
    """``curl -u USER:SECRET``, ``--proxy-user``, and headers (``-H 'Authorization: Bearer …'``)."""
    yield from _user_password(_option_values(args, "uU", ("--user", "--proxy-user"), _CURL_VALUE_SHORTS))
    yield from _headers(_option_values(args, "H", ("--header", "--proxy-header"), _CURL_VALUE_SHORTS))


def _wget(args: list[str]) -> Found:
    yield from _headers(_option_values(args, "", ("--header",), "eoaOiBTtwQPUY"))


def _mysql(args: list[str]) -> Found:
    """``mysql -pSECRET`` (with a space, ``-p`` prompts and the next word is the database)."""
    for i, arg in enumerate(args):
        if arg.startswith("-p") and len(arg) > 2 and not arg.startswith("--"):
            yield i, View("", "password", arg[2:])


def _redis_cli(args: list[str]) -> Found:
    yield from _named("password", _option_values(args, "a", ("--pass",), "hpsaunrid"))


def _sshpass(args: list[str]) -> Found:
    yield from _named("password", _option_values(args, "p", (), "pfd"))


_LOGIN_VALUE_OPTIONS = frozenset({"-u", "--username", "-p", "--password"})


def _login(args: list[str]) -> Found:
    """``docker login -p SECRET`` and the same in podman, nerdctl, ``helm registry login``, oras…"""
    if "login" in [word for _, word in _positionals(args, _LOGIN_VALUE_OPTIONS)][:2]:
        yield from _named("password", _option_values(args, "p", (), "up"))


def _htpasswd(args: list[str]) -> Found:
    """``htpasswd -b FILE USER SECRET`` / ``htpasswd -nb USER SECRET``: with ``b`` the password is the last argument."""
    options = "".join(arg[1:] for arg in args if arg.startswith("-") and not arg.startswith("--"))
    words = _positionals(args, frozenset({"-r", "-C"}))
    if "b" in options and len(words) >= 2:
        index, secret = words[-1]
        yield index, View("", "password", secret, words[-2][1])


def _kubectl(args: list[str]) -> Found:
    """``kubectl create secret generic NAME --from-literal=KEY=VALUE``: each literal under its key."""
    for i, literal in _option_values(args, "", ("--from-literal",), ""):
        key, sep, value = literal.partition("=")
        if sep:
            yield i, View("", key, value)


TOOLS: dict[str, Callable[[list[str]], Found]] = {
    "mc": _mc,
    "mcli": _mc,
    "curl": _curl,
    "wget": _wget,
    **{tool: _mysql for tool in ("mysql", "mysqldump", "mysqladmin", "mariadb", "mariadb-dump", "mariadb-admin")},
    "redis-cli": _redis_cli,
    "sshpass": _sshpass,
    **{tool: _login for tool in ("docker", "podman", "nerdctl", "buildah", "skopeo", "helm", "oras", "crane", "regctl")},
    "htpasswd": _htpasswd,
    "kubectl": _kubectl,
}
TOOL_WORD = re.compile(r"(?<![\w.-])(?:" + "|".join(re.escape(tool) for tool in TOOLS) + r")(?=\s)")


def argv_views(argv: Sequence[str], index: int) -> Iterator[View]:
    """The credentials ``argv[index]`` holds as an argument of its command line."""
    for position, view in command_views(tuple(argv)):
        if position == index:
            yield view
