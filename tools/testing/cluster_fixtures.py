"""What the program expects an existing cluster to have, derived from what it declares.

``make local-up`` and the real-engine tests load these objects into the local API server
before `pulumi up`, as a MicroK8s cluster with Kubeflow and KServe would have them:

- namespaces the program writes into but does not create (Kubeflow's, Istio's, the profiles');
- each profile's ``default-editor`` ServiceAccount (Kubeflow's profile controller makes it);
- ClusterRoles that the program's RoleBindings name and does not create (Kubeflow Pipelines');
- Kubeflow's aggregated roles (kubeflow-admin, -edit, -view) and the profile controller's
  RoleBindings of each profile (its owner as admin, ``default-editor`` as edit, ``default-viewer`` as view);
- ``centraldashboard-config`` with other tools' menu links, which must survive us;
- the storage classes the claims name, with enough PersistentVolumes for every claim;
- CustomResourceDefinitions for every custom kind declared, plus InferenceService.

CRD schemas are derived, not downloaded: Istio's and PodDefault's from the structural
schemas of the conformance gate (tools/testing/conformance.py: the fields this project writes,
anything else pruned or refused), InferenceService's from the kserve SDK's typed models.
"""

from __future__ import annotations

import json
import re
from typing import Any

from tools.testing import conformance
from tools.testing.harness import Plan

DASHBOARD_CONFIG_MAP = "centraldashboard-config"
# Other tools' entries in Kubeflow's menu: every one must still be there after up and destroy.
OTHER_LINKS = [
    {"type": "item", "link": "/jupyter/", "text": "Notebooks", "icon": "book"},
    {"type": "item", "link": "/pipeline/#/pipelines", "text": "Pipelines", "icon": "kubeflow:pipeline-centered"},
    {"type": "item", "link": "/katib/", "text": "Experiments (AutoML)", "icon": "kubeflow:katib"},
]
# kubeflow/manifests common/kubeflow-roles: each role aggregates the ClusterRoles carrying its label;
# view is part of edit, edit of admin. Profile owners are users named by email (Profile spec.owner).
_AGGREGATE = "rbac.authorization.kubeflow.org/aggregate-to-kubeflow-"
# role: (the label it selects, the label it carries)
KUBEFLOW_ROLES = {
    "kubeflow-admin": (f"{_AGGREGATE}admin", None),
    "kubeflow-edit": (f"{_AGGREGATE}edit", f"{_AGGREGATE}admin"),
    "kubeflow-view": (f"{_AGGREGATE}view", f"{_AGGREGATE}edit"),
}
PROFILE_ACCOUNTS = {"default-editor": "kubeflow-edit", "default-viewer": "kubeflow-view"}


# kubeflow/manifests v1.11.0 common/user-namespace/base/params.env: the default profile and its owner.
DEFAULT_PROFILE = "kubeflow-user-example-com"
DEFAULT_USER = "user@example.com"


def profile_owner(namespace: str) -> str:
    """The owner Kubeflow binds as the profile's admin: Kubeflow's default user for its default profile."""
    return DEFAULT_USER if namespace == DEFAULT_PROFILE else f"owner@{namespace}.example.com"


# Static volumes with reclaimPolicy Retain are never rebound once released: enough for many up/destroy cycles.
SPARE_VOLUMES = 16
VOLUME_SIZE = "200Gi"


def dashboard_links() -> str:
    return json.dumps({"menuLinks": OTHER_LINKS, "externalLinks": [], "documentationItems": [], "quickLinks": []})


def _meta(name: str, namespace: str | None = None, **extra: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    meta.update(extra)
    return meta


def existing_objects(plan: Plan, profiles: list[str], dashboard_namespace: str = "kubeflow") -> list[dict[str, Any]]:
    """The objects a cluster must hold before the program runs, in creation order."""
    manifests = [m for _, m in plan.manifests()]
    # A patch (NamespacePatch, ServiceAccountPatch, ...) changes an object that must already exist.
    created = {
        (m["kind"], (m.get("metadata") or {}).get("namespace"), m["metadata"].get("name"))
        for r, m in plan.manifests()
        if not r.type.endswith("Patch")
    }
    objects: list[dict[str, Any]] = []

    namespaces = {dashboard_namespace, "istio-system", *profiles}
    namespaces |= {m["metadata"]["namespace"] for m in manifests if (m.get("metadata") or {}).get("namespace")}
    for ns in sorted(n for n in namespaces if ("Namespace", None, n) not in created):
        labels = {"app.kubernetes.io/part-of": "kubeflow-profile", "istio-injection": "enabled"} if ns in profiles else {}
        objects.append({"apiVersion": "v1", "kind": "Namespace", "metadata": _meta(ns, labels=labels)})

    editors = {(ns, account) for ns in profiles for account in PROFILE_ACCOUNTS}
    for m in manifests:
        for subject in m.get("subjects") or []:
            if subject.get("kind") == "ServiceAccount":
                editors.add((subject.get("namespace") or m["metadata"]["namespace"], subject["name"]))
    for ns, name in sorted(editors):
        if ("ServiceAccount", ns, name) not in created:
            objects.append({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(name, ns)})

    for m in manifests:
        ref = m.get("roleRef") or {}
        if ref.get("kind") == "ClusterRole" and ("ClusterRole", None, ref["name"]) not in created:
            objects.append(
                {
                    "apiVersion": "rbac.authorization.k8s.io/v1",
                    "kind": "ClusterRole",
                    "metadata": _meta(ref["name"]),
                    "rules": [
                        {
                            "apiGroups": ["pipelines.kubeflow.org"],
                            "resources": ["pipelines", "runs", "experiments"],
                            "verbs": ["get", "list", "create", "delete"],
                        }
                    ],
                }
            )

    objects += kubeflow_roles(profiles)
    objects.append(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": _meta(DASHBOARD_CONFIG_MAP, dashboard_namespace),
            "data": {"links": dashboard_links(), "settings": json.dumps({"DASHBOARD_FORCE_IFRAME": True})},
        }
    )

    claims: dict[str, int] = {}
    for m in manifests:
        specs = (
            [m["spec"]]
            if m["kind"] == "PersistentVolumeClaim"
            else [t["spec"] for t in (m.get("spec") or {}).get("volumeClaimTemplates") or []]
        )
        for spec in specs:
            klass = spec.get("storageClassName", "")
            claims[klass] = claims.get(klass, 0) + 1
    for klass, count in sorted(claims.items()):
        if klass:
            objects.append(
                {
                    "apiVersion": "storage.k8s.io/v1",
                    "kind": "StorageClass",
                    "metadata": _meta(klass),
                    "provisioner": "local.invalid/static",
                    "volumeBindingMode": "Immediate",
                    "reclaimPolicy": "Retain",
                }
            )
        for index in range(count + SPARE_VOLUMES):
            objects.append(
                {
                    "apiVersion": "v1",
                    "kind": "PersistentVolume",
                    "metadata": _meta(f"local-{klass or 'default'}-{index}"),
                    "spec": {
                        "capacity": {"storage": VOLUME_SIZE},
                        "accessModes": ["ReadWriteOnce"],
                        "storageClassName": klass,
                        "persistentVolumeReclaimPolicy": "Retain",
                        "hostPath": {"path": f"/var/lib/local-volumes/{klass}/{index}"},
                    },
                }
            )

    kinds = {(m["apiVersion"], m["kind"]) for m in manifests if _is_custom(m["apiVersion"])}
    kinds.add(("serving.kserve.io/v1beta1", "InferenceService"))
    for api_version, kind in sorted(kinds):
        objects.append(crd(api_version, kind))
    return objects


def kubeflow_roles(profiles: list[str]) -> list[dict[str, Any]]:
    """Kubeflow's aggregated ClusterRoles, and per profile the RoleBindings its profile controller makes."""
    objects: list[dict[str, Any]] = []
    for name, (selects, label) in KUBEFLOW_ROLES.items():
        objects.append(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRole",
                "metadata": _meta(name, labels={label: "true"} if label else {}),
                "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {selects: "true"}}]},
                "rules": [],
            }
        )
    rbac = "rbac.authorization.k8s.io"
    for ns in profiles:
        bindings = [("namespaceAdmin", "kubeflow-admin", {"kind": "User", "apiGroup": rbac, "name": profile_owner(ns)})]
        bindings += [
            (account, role, {"kind": "ServiceAccount", "name": account, "namespace": ns}) for account, role in PROFILE_ACCOUNTS.items()
        ]
        for binding, role, subject in bindings:
            objects.append(
                {
                    "apiVersion": f"{rbac}/v1",
                    "kind": "RoleBinding",
                    "metadata": _meta(binding, ns),
                    "roleRef": {"apiGroup": rbac, "kind": "ClusterRole", "name": role},
                    "subjects": [subject],
                }
            )
    return objects


def contributor_binding(namespace: str, email: str, role: str) -> dict[str, Any]:
    """The RoleBinding Kubeflow's access management (KFAM) makes when a profile owner adds a contributor.

    kubeflow/kubeflow v1.10.0 components/access-management/kfam/bindings.go: named from the user kind, the
    email (non-alphanumerics as '-'), the role ref kind and the frontend role name, lower-cased; annotated with
    the user and role; the User subject bound to kubeflow-<role> in the profile's namespace.
    """
    rbac = "rbac.authorization.k8s.io"
    name = re.sub(r"[^a-zA-Z0-9]+", "-", "-".join(["User", re.sub(r"[^a-zA-Z0-9]+", "-", email), "ClusterRole", role]).lower())
    return {
        "apiVersion": f"{rbac}/v1",
        "kind": "RoleBinding",
        "metadata": _meta(name, namespace, annotations={"user": email, "role": role}),
        "roleRef": {"apiGroup": rbac, "kind": "ClusterRole", "name": f"kubeflow-{role}"},
        "subjects": [{"kind": "User", "apiGroup": rbac, "name": email}],
    }


# -- CRDs ------------------------------------------------------------------------


def _is_custom(api_version: str) -> bool:
    group = api_version.split("/")[0] if "/" in api_version else ""
    return "." in group and not group.endswith(".k8s.io")


def _plural(kind: str) -> str:
    lower = kind.lower()
    if lower.endswith("y"):
        return lower[:-1] + "ies"
    return lower + ("es" if lower.endswith(("s", "x")) else "s")


def crd(api_version: str, kind: str) -> dict[str, Any]:
    group, version = api_version.split("/")
    schema = inference_service_schema() if kind == "InferenceService" else structural(conformance.STRUCTURAL[(api_version, kind)])
    versions = [version]
    # Istio serves v1 and v1beta1 of the same schema; only one is stored.
    if group.endswith("istio.io") and version == "v1":
        versions.append("v1beta1")
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": _meta(f"{_plural(kind)}.{group}"),
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"kind": kind, "plural": _plural(kind), "singular": kind.lower(), "listKind": f"{kind}List"},
            "versions": [
                {"name": v, "served": True, "storage": v == version, "schema": {"openAPIV3Schema": schema}, "subresources": {"status": {}}}
                for v in versions
            ],
        },
    }


def structural(schema: dict[str, Any]) -> dict[str, Any]:
    """A conformance JSON Schema of a whole object -> a CRD's structural openAPIV3Schema."""
    return _object_schema(_convert(schema["properties"]["spec"]))


def _object_schema(spec: dict[str, Any]) -> dict[str, Any]:
    """A custom resource's schema around its spec; status is whatever a controller writes."""
    return {
        "type": "object",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec,
            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
        },
    }


_COPIED = ("required", "enum", "pattern", "minItems", "maxItems", "minProperties", "maxProperties", "minLength", "maxLength")


def _convert(schema: dict[str, Any]) -> dict[str, Any]:
    if "const" in schema:
        return {"type": "string", "enum": [schema["const"]]}
    kind = schema.get("type")
    if isinstance(kind, list):
        if set(kind) == {"string", "integer"}:
            return {"x-kubernetes-int-or-string": True}
        raise ValueError(f"no structural form for type {kind}")
    out: dict[str, Any] = {k: schema[k] for k in _COPIED if k in schema}
    if kind:
        out["type"] = kind
    if "properties" in schema:
        out["properties"] = {k: _convert(v) for k, v in schema["properties"].items()}
    if isinstance(schema.get("additionalProperties"), dict):
        out["additionalProperties"] = _convert(schema["additionalProperties"])
    if kind == "array":
        out["items"] = _convert(schema["items"]) if "items" in schema else {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    if kind == "object" and "properties" not in out and "additionalProperties" not in out:
        out["x-kubernetes-preserve-unknown-fields"] = True
    if "enum" in out and "type" not in out:
        out["type"] = "string"
    return out


_PRIMITIVES = {
    "str": {"type": "string"},
    "int": {"type": "integer"},
    "bool": {"type": "boolean"},
    "float": {"type": "number"},
    "datetime": {"type": "string"},
    "date": {"type": "string"},
}
# Below this depth the derived schema keeps unknown fields: KServe's pod specs nest without end.
MAX_DEPTH = 6


def inference_service_schema() -> dict[str, Any]:
    """The v1beta1 InferenceService schema, derived from the kserve SDK models the program builds with."""
    import kserve

    return _object_schema(_from_model(kserve.V1beta1InferenceServiceSpec, 0))


def _model_class(name: str) -> Any:
    """The SDK class of that name, or None where the kserve SDK names a type it does not ship."""
    from kserve import models
    from kubernetes import client

    for module in (models, client):
        if hasattr(module, name):
            return getattr(module, name)
    return None


def _from_type(type_name: str, depth: int) -> dict[str, Any]:
    if type_name in _PRIMITIVES:
        return dict(_PRIMITIVES[type_name])
    if type_name == "object":
        return {"x-kubernetes-preserve-unknown-fields": True}
    if match := re.fullmatch(r"[lL]ist\[(.+)\]", type_name):
        return {"type": "array", "items": _from_type(match.group(1), depth)}
    if match := re.fullmatch(r"(?:dict\(str, (.+)\)|Dict\[str, (.+)\])", type_name):
        return {"type": "object", "additionalProperties": _from_type(match.group(1) or match.group(2), depth)}
    cls = _model_class(type_name)
    if depth >= MAX_DEPTH or cls is None:
        return {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    return _from_model(cls, depth + 1)


def _from_model(cls: Any, depth: int) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {cls.attribute_map[attr]: _from_type(type_name, depth) for attr, type_name in cls.openapi_types.items()},
    }
