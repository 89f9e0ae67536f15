"""State hygiene of a deployed stack: its `pulumi stack export` holds no credential in plain text.

Checked two ways: the policy pack's own offline audit (``python -m tools.operator.audit``, what ``make audit STATE=...``
runs) over the export, and a direct comparison with the same export taken with ``--show-secrets``: no value
that is a secret there (every generated password, every Secret's data) appears anywhere in the plain export,
and every stack output that carries one is itself a secret.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tools.local.engine import EngineRun, LocalEngine

ROOT = Path(__file__).resolve().parents[2]
SIG_KEY = "4dabf18193072939515e22adb298388d"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
# Shorter values (a Secret's "username: mlflow", a generation "1") are not credentials and appear as plain config too.
MIN_CREDENTIAL = 16


def export(engine: LocalEngine, path: Path, *, show_secrets: bool = False) -> dict[str, Any]:
    args = ["stack", "export", "--file", str(path), *(["--show-secrets"] if show_secrets else [])]
    engine.cli(*args)
    return json.loads(path.read_text())


def secret_values(value: Any) -> Iterator[str]:
    """Every string inside a secret envelope of a ``--show-secrets`` export."""
    if isinstance(value, dict):
        if value.get(SIG_KEY) == SECRET_SIG:
            yield from strings(value.get("plaintext"))
            return
        for v in value.values():
            yield from secret_values(v)
    elif isinstance(value, list):
        for v in value:
            yield from secret_values(v)


def strings(value: Any) -> Iterator[str]:
    """Every string inside ``value``; a secret's plaintext is JSON text, so strings are decoded once more."""
    if isinstance(value, str):
        try:
            decoded = json.loads(value)
        except ValueError:
            yield value
            return
        if isinstance(decoded, str):
            yield decoded
        elif isinstance(decoded, (dict, list)):
            yield from strings(decoded)
        else:
            yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings(v)


def located(document: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """Each plain (non-secret) string of an export, with the resource and property path it is found at."""
    for resource in document["deployment"]["resources"]:
        urn = resource["urn"].split("::", 2)[-1]
        for section in ("inputs", "outputs"):
            yield from _plain(resource.get(section), f"{urn} {section}")


def _plain(value: Any, path: str) -> Iterator[tuple[str, str]]:
    if is_secret(value):
        return
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, v in value.items():
            yield from _plain(v, f"{path}.{key}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _plain(v, f"{path}[{i}]")


def stack_outputs(document: dict[str, Any]) -> dict[str, Any]:
    (stack,) = [r for r in document["deployment"]["resources"] if r["type"] == "pulumi:pulumi:Stack"]
    return stack.get("outputs") or {}


def is_secret(value: Any) -> bool:
    return isinstance(value, dict) and value.get(SIG_KEY) == SECRET_SIG


def audit(path: Path) -> subprocess.CompletedProcess[str]:
    """The policy pack's offline audit, through its public entry point (`make audit STATE=<path>`)."""
    return subprocess.run(
        [sys.executable, "-m", "tools.operator.audit", str(path)], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )


def assert_no_plaintext_credential(engine: LocalEngine, workdir: Path, run: EngineRun) -> dict[str, int]:
    """The checks of this module on ``engine``'s deployed stack; returns counts for the caller's own assertions."""
    plain_path, shown_path = workdir / "export.json", workdir / "export-shown.json"
    plain, shown = export(engine, plain_path), export(engine, shown_path, show_secrets=True)

    checked = audit(plain_path)
    assert checked.returncode == 0 and checked.stdout == "", checked.stdout + checked.stderr
    assert " 0 violations" in checked.stderr, checked.stderr

    credentials = {v for v in secret_values(shown) if len(v) >= MIN_CREDENTIAL}
    passwords = [r for r in shown["deployment"]["resources"] if r["type"] == "random:index/randomPassword:RandomPassword"]
    assert passwords and all(is_secret(r["outputs"]["result"]) for r in passwords), "every generated password is a secret"
    # A Secret's data is base64: a leak there would not show as the plain value.
    forms = {f for c in credentials for f in (c, base64.b64encode(c.encode()).decode())}
    leaked = sorted(where for where, text in located(plain) if any(f in text for f in forms))
    if not leaked and any(f in plain_path.read_text() for f in forms):
        leaked = ["outside every resource's inputs and outputs"]
    assert leaked == [], f"credentials in plain text in the stack export at: {leaked[:10]}"

    outputs, shown_outputs = stack_outputs(plain), stack_outputs(shown)
    carrying = {
        key
        for key, value in shown_outputs.items()
        if any(c in s for s in strings(value.get("plaintext") if is_secret(value) else value) for c in credentials)
    }
    assert carrying, "the dev stack exports a credential (databasePassword): the check would prove nothing without one"
    assert {key for key in carrying if not is_secret(outputs[key])} == set(), "every output carrying a credential is a secret"
    assert carrying <= run.secret_outputs
    return {"credentials": len(credentials), "passwords": len(passwords), "outputs": len(carrying)}
