"""One set of helpers for the policy pack's tests: fake credentials, and the policies called the way the engine calls them.

Every credential here is fake.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pulumi_policy import (
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    StackValidationArgs,
)
from pulumi_policy.proxy import unknown_checking_proxy

from mlops_policies import POLICIES, crossguard_policies
from mlops_policies.checks import credential_findings
from mlops_policies.config import Settings
from mlops_policies.model import Context, Finding, PropsView, Resource
from mlops_policies.walk import SECRET_SIG, SIG_KEY

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "policies"

# -- fake credentials ---------------------------------------------------------------------

AWS_KEY_ID = "AKIAQWB5PDKHX6PYGPAN"
AWS_SECRET = "su9mI4ROnl89Sm995ytbxAk7jqevt0MLaMRTve/+"
DB_PASSWORD = "RJlNONwktN9ugkZeESG6"
TOKEN = "PAjd6OcZFv1niUK8iO5YAgkB"
HF_TOKEN = "hf_xjd2AsjD7N2kHD9FSUuErsEz5jhy0I9lO7"
GITHUB_TOKEN = "ghp_F3vlfFrGYJ3GxeYYXwSLQcWtxJTQr1FqXSTs"
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJrdWJlZmxvdy1waXBlbGluZXMiLCJpc3MiOiJtbG9wcyJ9"
    ".bWWbjkloG1QX647kdNl9cDo_-GbVMszvR4_EPZGz3zB"
)
PEM_BODY = "575yx8xm5MslfY5ubiheyEd7P4zDL/ak6J0kGODKdinZnLXicaBAg8WY1jzIRlNQ"
PEM = f"-----BEGIN RSA PRIVATE KEY-----\n{PEM_BODY}\n-----END RSA PRIVATE KEY-----\n"
DEX_DEFAULT_HASH = "$2y$12$4K/VkmDd1q1Orb3xAt82zu8gk7Ad6ReFR4LCP9UeYE90NLiN9Df72"
# A password with characters a URI pattern stops at ('?', '#'); libpq reads it up to the '@'.
URI_UNSAFE_PASSWORD = "w8Kq?Tz3#LmPv2Rx"
# An MLflow run id (uuid4().hex) and a logged model id, as MLflow 3 writes them.
RUN_ID = "4f1c2d9e8b7a40d6a3e5c1b2d4f6a8e0"
MODEL_ID = "m-9a1e6c2f4b8d47e0b3c5a7d9e1f2a4b6"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def secret_marker(value: Any, *, show: bool) -> dict[str, str]:
    """A Pulumi secret as `pulumi stack export` writes it: ciphertext, or the plaintext JSON with --show-secrets."""
    if show:
        return {SIG_KEY: SECRET_SIG, "plaintext": json.dumps(value)}
    digest = base64.b64encode(json.dumps(value).encode()[::-1]).decode()
    return {SIG_KEY: SECRET_SIG, "ciphertext": f"v1:{digest[:24]}:v1:{digest[24:]}"}


# -- calling the policies as the engine does ------------------------------------------------

POLICY = {p.name: p for p in crossguard_policies()}
CREDENTIALS = "no-plaintext-credentials"
_MESSAGE = re.compile(r"(?P<kind>.+?) at (?P<path>\S+) in (?P<type>\S+) '(?P<name>[^']+)'(?: \(rule (?P<rule>[^)]+)\))?\. ")


def options(protect: bool = False) -> PolicyResourceOptions:
    return PolicyResourceOptions(protect, [], None, [], PolicyCustomTimeouts(0, 0, 0), [])


def urn(type_: str, name: str, stack: str = "dev") -> str:
    return f"urn:pulumi:{stack}::mlops-platform::{type_}::{name}"


def messages(
    policy: str, type_: str, props: dict[str, Any], *, name: str = "subject", protect: bool = False, config: dict[str, Any] | None = None
) -> list[str]:
    """Run one resource policy on ``props``, wrapped in the engine's unknown-checking proxy."""
    args = ResourceValidationArgs(type_, unknown_checking_proxy(props), urn(type_, name), name, options(protect), None, config=config or {})
    reported: list[str] = []
    POLICY[policy].validate(args, lambda message, _urn=None: reported.append(message))
    return reported


def parse(message: str) -> tuple[str, str, str, str]:
    """(resource name, path, kind, rule trace) from a violation message."""
    match = _MESSAGE.match(message)
    assert match, message
    return match["name"], match["path"], match["kind"], match["rule"] or ""


def findings(policy: str, type_: str, props: dict[str, Any], **kwargs: Any) -> set[tuple[str, str]]:
    """(path, kind) reported by a resource policy."""
    return {parse(m)[1:3] for m in messages(policy, type_, props, **kwargs)}


def traced(type_: str, props: dict[str, Any], **kwargs: Any) -> set[tuple[str, str, str]]:
    """(path, kind, rule trace) that no-plaintext-credentials reports, through CrossGuard's validate."""
    return {parse(m)[1:] for m in messages(CREDENTIALS, type_, props, **kwargs)}


def engine_findings(type_: str, props: dict[str, Any]) -> list[Finding]:
    """The credential check's findings straight from the engine (rule and decodings as fields)."""
    resource = Resource(urn(type_, "subject"), type_, "subject", (PropsView(props),))
    return list(credential_findings(resource, Context("dev", Settings())))


def stack_messages(policy: str, resources: list[PolicyResource]) -> list[str]:
    reported: list[str] = []
    POLICY[policy].validate(StackValidationArgs(resources, {}), lambda message, _urn=None: reported.append(message))
    return reported


def stack_findings(policy: str, resources: list[PolicyResource]) -> set[tuple[str, str, str]]:
    """(resource name, path, kind) reported by a stack policy."""
    return {parse(m)[:3] for m in stack_messages(policy, resources)}


def resource(
    type_: str, name: str, props: dict[str, Any], *, depends_on: tuple[PolicyResource, ...] = (), protect: bool = False
) -> PolicyResource:
    """A resource as CrossGuard's stack analysis sees it; companions depend on their bucket."""
    deps = list(depends_on)
    return PolicyResource(
        type_, unknown_checking_proxy(props), urn(type_, name), name, options(protect), None, None, deps, {"bucket": deps} if deps else {}
    )


POD_SPEC_AT = {
    "kubernetes:apps/v1:Deployment": "spec.template.spec",
    "kubernetes:apps/v1:StatefulSet": "spec.template.spec",
    "kubernetes:apps/v1:DaemonSet": "spec.template.spec",
    "kubernetes:batch/v1:Job": "spec.template.spec",
    "kubernetes:batch/v1:CronJob": "spec.jobTemplate.spec.template.spec",
    "kubernetes:core/v1:Pod": "spec",
}


def workload(type_: str, pod_spec: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = {"template": {"spec": pod_spec}}
    if type_.endswith(":CronJob"):
        spec = {"jobTemplate": {"spec": spec}}
    elif type_.endswith(":Pod"):
        spec = pod_spec
    return {"metadata": {"name": "w"}, "spec": spec}


def container(**fields: Any) -> dict[str, Any]:
    return {"name": "app", "image": "app:1.0", **fields}


def pod(*containers: dict[str, Any]) -> dict[str, Any]:
    return {"spec": {"containers": list(containers)}}


# -- stack exports, as CrossGuard would see them --------------------------------------------------


def unwrapped(value: Any) -> Any:
    """Secrets as validate functions receive them: plain values, no marker."""
    if isinstance(value, dict):
        if value.get(SIG_KEY) == SECRET_SIG:
            return json.loads(value["plaintext"])
        return {k: unwrapped(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrapped(v) for v in value]
    return value


def crossguard_on_export(document: dict[str, Any], credentials: Iterable[str] = ()) -> set[tuple[str, str, str, str]]:
    """(policy, resource name, path, kind) for every policy over a --show-secrets export.

    Resource policies get each custom resource's inputs, stack policies its outputs, as in a
    preview; no message may contain any of ``credentials``.
    """
    state = document["deployment"]["resources"]
    reported: list[tuple[str, str]] = []
    stack: dict[str, PolicyResource] = {}
    for r in state:
        logical = r["urn"].rsplit("::", 1)[1]
        stack[r["urn"]] = PolicyResource(
            r["type"],
            unknown_checking_proxy(unwrapped(r.get("outputs", {}))),
            r["urn"],
            logical,
            options(r.get("protect", False)),
            None,
            None,
            [],
            {},
        )
        if r.get("custom"):
            reported += [
                (spec.name, m)
                for spec in POLICIES
                if spec.resource_check
                for m in messages(spec.name, r["type"], unwrapped(r["inputs"]), name=logical, protect=r.get("protect", False))
            ]
    for r in state:
        stack[r["urn"]].dependencies.extend(stack[d] for d in r.get("dependencies", []))
    reported += [(spec.name, m) for spec in POLICIES if spec.stack_check for m in stack_messages(spec.name, list(stack.values()))]
    leaked = [m for _, m in reported for c in credentials if c in m]
    assert not leaked, leaked
    return {(policy, *parse(m)[:3]) for policy, m in reported}


def fixture_credentials() -> list[str]:
    """Every fake credential in the stack-export fixtures (credentials.json)."""
    groups = json.loads((FIXTURES / "credentials.json").read_text()).values()
    return [c for group in groups if isinstance(group, list) for c in group]
