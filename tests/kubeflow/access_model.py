"""Who may reach which MLflow port, decided from the declared objects by the rules Kubernetes and Istio apply.

Neither a CNI nor Envoy runs here, so the declared NetworkPolicies and AuthorizationPolicies are evaluated by a
model of their documented semantics, beside the policies Kubeflow itself installs:

- NetworkPolicy (kubernetes.io/docs/concepts/services-networking/network-policies, networking.k8s.io/v1): a pod
  is isolated for ingress once any policy of its namespace selects it with policyType Ingress; then a connection
  is admitted only if some such policy has an ingress rule whose ``from`` peers match the client (podSelector in
  the policy's namespace, namespaceSelector, or both: those pods in those namespaces; no ``from``: anyone) and
  whose ``ports`` match (none: every port).
- Istio AuthorizationPolicy (istio.io/latest/docs/concepts/security/#authorization-policies): policies apply to
  a workload from the root namespace (istio-system) and its own namespace, by selector (none: all its pods).
  CUSTOM aside, a matching DENY denies; if no ALLOW applies the request is allowed; otherwise it is allowed only
  when an ALLOW rule matches. A rule matches when every field of one ``from`` source, one ``to`` operation and
  every ``when`` condition match; a policy without rules matches nothing. Principals come from mTLS: a client
  without a sidecar has none.
- Kubeflow's own (kubeflow/manifests v1.11.0): ``global-deny-all``, an ALLOW policy with an empty spec in
  istio-system (common/istio/istio-install/base/deny_all_authorizationpolicy.yaml).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tools.testing.harness import DeclaredResource, Plan

ROOT_NAMESPACE = "istio-system"
KUBEFLOW_POLICIES: list[dict[str, Any]] = [
    {"metadata": {"name": "global-deny-all", "namespace": ROOT_NAMESPACE}, "spec": {}},
]


@dataclass(frozen=True)
class Pod:
    """A client or server pod: where it runs, its labels, and the mTLS identity its sidecar presents (if any)."""

    namespace: str
    labels: Mapping[str, str]
    principal: str | None = None
    namespace_labels: Mapping[str, str] = field(default_factory=dict)

    def all_namespace_labels(self) -> dict[str, str]:
        return {"kubernetes.io/metadata.name": self.namespace, **self.namespace_labels}


def _selects(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """A LabelSelector (matchLabels only; this project declares no expressions): empty or missing selects all."""
    if selector is None:
        return True
    if selector.get("matchExpressions"):
        raise NotImplementedError("matchExpressions")
    return (selector.get("matchLabels") or {}).items() <= labels.items()


def network_admits(plan: Plan, client: Pod, server: Pod, port: int) -> bool:
    policies = [p.inputs for p in plan.kinds("NetworkPolicy") if p.k8s_namespace == server.namespace]
    selecting = [
        p for p in policies if "Ingress" in p["spec"].get("policyTypes", ["Ingress"]) and _selects(p["spec"]["podSelector"], server.labels)
    ]
    if not selecting:
        return True
    for policy in selecting:
        for rule in policy["spec"].get("ingress") or []:
            if not _ports_match(rule.get("ports"), port):
                continue
            peers = rule.get("from")
            if peers is None or any(_peer_matches(peer, client, server.namespace) for peer in peers):
                return True
    return False


def _ports_match(ports: list[dict[str, Any]] | None, port: int) -> bool:
    return not ports or any(p.get("port") in (None, port) and p.get("protocol", "TCP") == "TCP" for p in ports)


def _peer_matches(peer: Mapping[str, Any], client: Pod, policy_namespace: str) -> bool:
    if "ipBlock" in peer:
        return False
    namespaces = peer.get("namespaceSelector")
    pods = peer.get("podSelector")
    in_namespace = _selects(namespaces, client.all_namespace_labels()) if namespaces is not None else client.namespace == policy_namespace
    return in_namespace and _selects(pods, client.labels)


def istio_allows(plan: Plan, client: Pod, server: Pod, *, method: str = "GET", path: str = "/", headers: Mapping[str, str] = {}) -> bool:
    declared = [p.inputs for p in plan.kinds("AuthorizationPolicy")]
    applying = [
        p
        for p in [*KUBEFLOW_POLICIES, *declared]
        if p["metadata"].get("namespace") in (ROOT_NAMESPACE, server.namespace)
        and _selects((p.get("spec") or {}).get("selector"), server.labels)
    ]
    request = {"principal": client.principal, "method": method, "path": path, "headers": {k.lower(): v for k, v in headers.items()}}
    actions = [((p.get("spec") or {}).get("action", "ALLOW"), p) for p in applying]
    if any(action == "DENY" and _policy_matches(p, request) for action, p in actions):
        return False
    allows = [p for action, p in actions if action == "ALLOW"]
    return not allows or any(_policy_matches(p, request) for p in allows)


def _policy_matches(policy: Mapping[str, Any], request: Mapping[str, Any]) -> bool:
    return any(_rule_matches(rule, request) for rule in (policy.get("spec") or {}).get("rules") or [])


def _rule_matches(rule: Mapping[str, Any], request: Mapping[str, Any]) -> bool:
    sources = rule.get("from")
    if sources is not None and not any(_source_matches(s["source"], request) for s in sources):
        return False
    operations = rule.get("to")
    if operations is not None and not any(_operation_matches(o["operation"], request) for o in operations):
        return False
    return all(_condition_matches(c, request) for c in rule.get("when") or [])


def _string_matches(patterns: list[str], value: str | None) -> bool:
    """Istio's string match: exact, prefix ``abc*``, suffix ``*abc``, or ``*`` for any non-empty value."""
    if value is None:
        return False
    for pattern in patterns:
        if pattern == "*" or pattern == value:
            return True
        if pattern.endswith("*") and value.startswith(pattern[:-1]):
            return True
        if pattern.startswith("*") and value.endswith(pattern[1:]):
            return True
    return False


def _source_matches(source: Mapping[str, Any], request: Mapping[str, Any]) -> bool:
    principal = request["principal"]
    if "principals" in source and not _string_matches(source["principals"], principal):
        return False
    if "notPrincipals" in source and _string_matches(source["notPrincipals"], principal):
        return False
    unknown = set(source) - {"principals", "notPrincipals"}
    if unknown:
        raise NotImplementedError(f"source fields {sorted(unknown)}")
    return True


def _operation_matches(operation: Mapping[str, Any], request: Mapping[str, Any]) -> bool:
    if "methods" in operation and request["method"] not in operation["methods"]:
        return False
    if "paths" in operation and not _string_matches(operation["paths"], request["path"]):
        return False
    unknown = set(operation) - {"methods", "paths"}
    if unknown:
        raise NotImplementedError(f"operation fields {sorted(unknown)}")
    return True


def _condition_matches(condition: Mapping[str, Any], request: Mapping[str, Any]) -> bool:
    key = condition["key"]
    if not (key.startswith("request.headers[") and key.endswith("]")):
        raise NotImplementedError(f"condition key {key}")
    value = request["headers"].get(key[len("request.headers[") : -1].lower())
    if "values" in condition and not _string_matches(condition["values"], value):
        return False
    if "notValues" in condition and _string_matches(condition["notValues"], value):
        return False
    return True


def workload_pod(resource: DeclaredResource, principal: str | None = None) -> Pod:
    """A declared Deployment's pod as the model sees it."""
    labels = resource.inputs["spec"]["template"]["metadata"]["labels"]
    return Pod(resource.k8s_namespace, labels, principal)
