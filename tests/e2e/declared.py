"""Reading the declared objects every stand-in is configured from, failing on anything the e2e cannot reproduce."""

from __future__ import annotations

import base64
import copy
import re
from collections.abc import Callable, Mapping
from typing import Any

from tests.e2e.errors import DataPlaneError
from tools.testing.harness import DeclaredResource, Plan

CLUSTER_DOMAIN = "svc.cluster.local"


def declared_name(resource: DeclaredResource) -> str:
    """An object's ``metadata.name``; one declared without it fails, naming its Pulumi resource."""
    name = resource.k8s_name
    if name is None:
        raise DataPlaneError(resource.name, f"declares a {resource.kind} without metadata.name")
    return name


def declared_namespace(resource: DeclaredResource) -> str:
    """The namespace a namespaced object is declared in: every Secret, ConfigMap and Service it names is looked up there."""
    namespace = resource.k8s_namespace
    if namespace is None:
        raise DataPlaneError(declared_name(resource), f"is a {resource.kind} declared without metadata.namespace")
    return namespace


def workload_pod(resource: DeclaredResource) -> dict[str, Any]:
    """The pod spec of a declared workload (Deployment, StatefulSet, Job, CronJob); any other object runs no pod and fails."""
    pod = resource.pod_spec()
    if pod is None:
        raise DataPlaneError(declared_name(resource), f"is a {resource.kind} without a pod template: it runs no pod")
    return pod


def pod_labels(resource: DeclaredResource) -> dict[str, str]:
    spec = resource.inputs["spec"]
    return (spec["template"].get("metadata") or {}).get("labels") or {}


def secret_data(plan: Plan, namespace: str, name: str, component: str) -> dict[str, str]:
    """A declared Secret's values (``stringData`` as declared, ``data`` base64-decoded)."""
    try:
        secret = plan.k8s("Secret", name, namespace).inputs
    except LookupError:
        raise DataPlaneError(component, f"references Secret {namespace}/{name}, which the program does not declare") from None
    values = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
    values.update(secret.get("stringData") or {})
    return values


def config_map_data(plan: Plan, namespace: str, name: str, component: str) -> dict[str, str]:
    try:
        return dict(plan.k8s("ConfigMap", name, namespace).inputs.get("data") or {})
    except LookupError:
        raise DataPlaneError(component, f"references ConfigMap {namespace}/{name}, which the program does not declare") from None


def resolve_env(plan: Plan, namespace: str, container: Mapping[str, Any], component: str) -> dict[str, str]:
    """The env a container gets: literals, and ``secretKeyRef``/``configMapKeyRef``/``envFrom`` resolved.

    Any other source (fieldRef, a missing key, an undeclared Secret) fails: a value
    the e2e cannot reproduce must not be silently dropped.
    """
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        if "secretRef" in source:
            env.update({prefix + k: v for k, v in secret_data(plan, namespace, source["secretRef"]["name"], component).items()})
        elif "configMapRef" in source:
            env.update({prefix + k: v for k, v in config_map_data(plan, namespace, source["configMapRef"]["name"], component).items()})
        else:
            raise DataPlaneError(component, f"envFrom source {sorted(source)} is not reproducible here")
    for var in container.get("env") or []:
        name = var["name"]
        if "value" in var:
            env[name] = str(var["value"])
            continue
        ref = var.get("valueFrom") or {}
        if "secretKeyRef" in ref:
            sel = ref["secretKeyRef"]
            if sel.get("optional") and not any(s.k8s_name == sel["name"] for s in plan.kinds("Secret") if s.k8s_namespace == namespace):
                # An optional reference to a Secret that does not exist (yet): the kubelet starts the pod without it.
                continue
            values = secret_data(plan, namespace, sel["name"], component)
        elif "configMapKeyRef" in ref:
            sel, values = ref["configMapKeyRef"], config_map_data(plan, namespace, ref["configMapKeyRef"]["name"], component)
        else:
            raise DataPlaneError(
                component, f"env {name} is neither a literal value nor a secretKeyRef/configMapKeyRef: {sorted(ref) or 'empty'}"
            )
        if sel["key"] not in values:
            if sel.get("optional"):
                continue
            raise DataPlaneError(
                component, f"env {name} references key {sel['key']!r} of {sel['name']}, which declares only {sorted(values)}"
            )
        env[name] = values[sel["key"]]
    return env


def mounted_file(plan: Plan, resource: DeclaredResource, container: Mapping[str, Any], path: str, component: str) -> str:
    """The content a container reads at ``path`` from a Secret or ConfigMap volume."""
    namespace = declared_namespace(resource)
    volumes = {v["name"]: v for v in workload_pod(resource).get("volumes") or []}
    for mount in container.get("volumeMounts") or []:
        root = mount["mountPath"].rstrip("/") + "/"
        if not path.startswith(root):
            continue
        volume = volumes.get(mount["name"])
        if volume is None:
            raise DataPlaneError(component, f"mounts volume {mount['name']!r}, which its pod does not declare")
        relative = path[len(root) :]
        if "secret" in volume:
            values = secret_data(plan, namespace, volume["secret"]["secretName"], component)
            items = volume["secret"].get("items")
        elif "configMap" in volume:
            values = config_map_data(plan, namespace, volume["configMap"]["name"], component)
            items = volume["configMap"].get("items")
        else:
            continue
        files = {i["path"]: i["key"] for i in items} if items else {k: k for k in values}
        if relative not in files or files[relative] not in values:
            raise DataPlaneError(component, f"reads {path}, but volume {mount['name']!r} has only {sorted(files)}")
        return values[files[relative]]
    raise DataPlaneError(component, f"reads {path}, which no Secret or ConfigMap volume of its pod provides")


def mutated(plan: Plan, kind: str, name: str, namespace: str | None, change: Callable[[dict[str, Any]], None]) -> Plan:
    """A copy of ``plan`` in which one declared object's inputs were changed by ``change`` (for negative tests)."""
    target = plan.k8s(kind, name, namespace)
    resources = []
    for r in plan.resources:
        if r is target:
            r = copy.copy(r)
            r.inputs = copy.deepcopy(r.inputs)
            change(r.inputs)
        resources.append(r)
    return Plan(stack=plan.stack, resources=resources, outputs=dict(plan.outputs), secret_outputs=set(plan.secret_outputs))


def workload_behind(plan: Plan, url: str, component: str) -> DeclaredResource:
    """The Deployment or StatefulSet that a declared in-cluster URL (or ``host:port``) reaches through its Service."""
    match = re.search(rf"(?:^|//|@)([a-z0-9-]+)\.([a-z0-9-]+)\.{re.escape(CLUSTER_DOMAIN)}(?::\d+)?", url)
    if not match:
        raise DataPlaneError(component, f"{_redact(url)} is not an in-cluster Service address (<svc>.<ns>.{CLUSTER_DOMAIN})")
    name, namespace = match.groups()
    try:
        selector = plan.k8s("Service", name, namespace).inputs["spec"].get("selector") or {}
    except LookupError:
        raise DataPlaneError(component, f"{_redact(url)} names Service {namespace}/{name}, which the program does not declare") from None
    found = [
        r
        for kind in ("Deployment", "StatefulSet")
        for r in plan.kinds(kind)
        if r.k8s_namespace == namespace and selector and selector.items() <= pod_labels(r).items()
    ]
    if len(found) != 1:
        raise DataPlaneError(component, f"Service {namespace}/{name} selects {len(found)} declared workloads, expected 1")
    return found[0]


def _redact(text: str) -> str:
    """A URL with its password hidden, for error messages."""
    return re.sub(r"//([^:/@]+):[^@/]+@", r"//\1:***@", text)


def http_probe(container: Mapping[str, Any]) -> tuple[str, Any]:
    """Path and port of the container's HTTP readiness (or startup) probe: what "ready" means for its stand-in."""
    probe = container.get("readinessProbe") or container.get("startupProbe") or {}
    get = probe.get("httpGet")
    if not get:
        raise DataPlaneError(container["name"], "declares no HTTP readiness probe")
    return get.get("path", "/"), get["port"]


def port_number(container: Mapping[str, Any], port: Any) -> int:
    """A probe's port, given as a number or as the name of one of the container's ports."""
    if isinstance(port, int) or str(port).isdigit():
        return int(port)
    for p in container.get("ports") or []:
        if p.get("name") == port:
            return p["containerPort"]
    raise DataPlaneError(container["name"], f"probe port {port!r} is not a declared container port")
