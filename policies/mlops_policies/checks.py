"""The policies: what each one checks, at which enforcement level, and why."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from . import detectors, platform
from .model import RESOURCE, Context, Finding, Hit, PolicySpec, PropsView, Resource
from .paths import Path, render
from .walk import UNKNOWN, Leaf, dig, get, leaves

# -- no-plaintext-credentials -------------------------------------------------------


@dataclass(frozen=True)
class Holder:
    """A field whose job is to hold a credential (a Secret's data, a generated password).

    CrossGuard cannot tell a generated value from a typed one there, so it only
    rejects well-known defaults; the audit also requires the value to be a Pulumi
    secret when ``must_be_secret``.
    """

    prefix: Path
    must_be_secret: bool = True
    when: Callable[[Mapping[str, Any]], bool] | None = None

    def holds(self, path: Path, props: Mapping[str, Any]) -> bool:
        """``path`` in the field, or in its copy under ``__inputs`` (pulumi-kubernetes' outputs repeat the inputs)."""
        if path[:1] == (INPUTS_COPY,):
            path = path[1:]
        return path[: len(self.prefix)] == self.prefix and (self.when is None or self.when(props))


def _fields(*names: str, **options: Any) -> tuple[Holder, ...]:
    return tuple(Holder((name,), **options) for name in names)


INPUTS_COPY = "__inputs"
_SECRET = _fields("stringData", "data")
CREDENTIAL_HOLDERS: dict[str, tuple[Holder, ...]] = {
    "kubernetes:core/v1:Secret": _SECRET,
    "kubernetes:core/v1:SecretPatch": _SECRET,
    "random:index/randomPassword:RandomPassword": _fields("result", "bcryptHash"),
    "aws:secretsmanager/secretVersion:SecretVersion": _fields("secretString", "secretBinary"),
    "aws:ssm/parameter:Parameter": _fields("value", when=lambda props: dig(props, "type") == "SecureString"),
    "aws:rds/instance:Instance": _fields("password"),
    "aws:rds/cluster:Cluster": _fields("masterPassword"),
    # The key id is reported by no-static-iam-access-keys; state keeps it in plaintext by design.
    "aws:iam/accessKey:AccessKey": _fields("secret", "sesSmtpPasswordV4") + _fields("id", must_be_secret=False),
    "tls:index/privateKey:PrivateKey": _fields("privateKeyPem", "privateKeyOpenssh", "privateKeyPemPkcs8"),
    "pulumi:providers:kubernetes": _fields("kubeconfig"),
    "pulumi:providers:aws": _fields("accessKey", "secretKey", "token"),
}
# Fields that are base64 by definition: the walk decodes them, and skips binary content.
_ENCODED = {"Secret": "data", "SecretPatch": "data", "ConfigMap": "binaryData", "ConfigMapPatch": "binaryData"}
ENCODED_FIELDS: dict[str, frozenset[Path]] = {
    f"kubernetes:core/v1:{kind}": frozenset({(field,), (INPUTS_COPY, field)}) for kind, field in _ENCODED.items()
}


def _holder_findings(holder: Holder, view: PropsView, leaf: Leaf) -> Iterator[Finding]:
    """In a credential holder only a tutorial default is a leak to CrossGuard; the audit also wants a Pulumi secret."""
    if platform.is_well_known_default(leaf.value):
        yield Finding(render(leaf.path), platform.TUTORIAL_DEFAULT, platform.RULE_TUTORIAL_DEFAULT, leaf.via)
    if view.secrets_known and holder.must_be_secret and leaf.value.strip():
        yield Finding(render(leaf.path), platform.NOT_A_SECRET, platform.RULE_PULUMI_SECRET_REQUIRED)


def credential_findings(resource: Resource, ctx: Context, allowed: list[tuple[str, detectors.Allowed]] | None = None) -> Iterator[Finding]:
    """Every credential in the resource's properties; ``allowed`` collects what allowances accepted (--explain)."""
    holders = CREDENTIAL_HOLDERS.get(resource.type, ())
    encoded = ENCODED_FIELDS.get(resource.type, frozenset())
    for view in resource.views:
        found = (
            leaf
            for leaf in leaves(view.props, encoded=encoded)
            if leaf.value != platform.REDACTED and not view.secret_paths.covers(leaf.path) and not ctx.settings.allows_value(leaf.value)
        )
        for group in detectors.by_path(found):
            holder = next((h for h in holders if h.holds(group[0].path, view.props)), None)
            if holder is not None:
                yield from sorted(set(_holder_findings(holder, view, group[0])), key=lambda f: (f.kind, f.rule))
                continue
            explained: list[detectors.Allowed] | None = [] if allowed is not None else None
            detections = detectors.detect(resource.type, group, explained)
            if detections or explained:
                path = render(group[0].path)
                yield from (Finding(path, d.kind, d.rule, d.via) for d in detections)
                if allowed is not None and explained:
                    allowed.extend((path, a) for a in explained)


def check_credentials(resource: Resource, ctx: Context) -> Iterator[Finding]:
    return credential_findings(resource, ctx)


# -- no-static-iam-access-keys --------------------------------------------------------

STATIC_KEY = "long-lived IAM access key"


def check_static_keys(resource: Resource, ctx: Context) -> Iterator[Finding]:
    if resource.type == "aws:iam/accessKey:AccessKey":
        yield Finding(RESOURCE, STATIC_KEY)


# -- S3 buckets ---------------------------------------------------------------------

BUCKET_TYPES = frozenset({"aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2"})
_PUBLIC_ACCESS_BLOCK = frozenset({"aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"})
_ACCOUNT_PUBLIC_ACCESS_BLOCK = "aws:s3/accountPublicAccessBlock:AccountPublicAccessBlock"
_ENCRYPTION = frozenset(
    {
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
        "aws:s3/bucketServerSideEncryptionConfigurationV2:BucketServerSideEncryptionConfigurationV2",
    }
)
_VERSIONING = frozenset({"aws:s3/bucketVersioning:BucketVersioning", "aws:s3/bucketVersioningV2:BucketVersioningV2"})
_BLOCK_FLAGS = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")

NO_PUBLIC_ACCESS_BLOCK = "bucket without a public access block"
PUBLIC_ACCESS_ALLOWED = "public access not blocked"
NO_ENCRYPTION = "bucket without default encryption"
NO_VERSIONING = "bucket without versioning"
VERSIONING_OFF = "versioning not enabled"


def _companions(bucket: Resource, resources: Sequence[Resource], types: frozenset[str]) -> list[Resource]:
    """Settings resources of ``bucket``: bound through the ``bucket`` property, by value or by dependency.

    During preview a new bucket's name is unknown, so the dependency is what links them.
    """
    names = {v for v in (bucket.lookup("bucket"), bucket.lookup("id")) if isinstance(v, str)}

    def belongs(r: Resource) -> bool:
        name = r.lookup("bucket")
        return (
            bucket.urn in r.property_dependencies.get("bucket", ())
            or (isinstance(name, str) and name in names)
            or bucket.urn in r.dependencies
        )

    return [r for r in resources if r.type in types and belongs(r)]


def _buckets(resources: Sequence[Resource]) -> Iterator[Resource]:
    return (r for r in resources if r.type in BUCKET_TYPES)


def _blocks_everything(resource: Resource) -> bool:
    return all(resource.lookup(flag) in (True, UNKNOWN) for flag in _BLOCK_FLAGS)


def check_public_access(resources: Sequence[Resource], ctx: Context) -> Iterator[Hit]:
    if any(r.type == _ACCOUNT_PUBLIC_ACCESS_BLOCK and _blocks_everything(r) for r in resources):
        return
    for bucket in _buckets(resources):
        blocks = _companions(bucket, resources, _PUBLIC_ACCESS_BLOCK)
        if not blocks:
            yield Hit(bucket, Finding(RESOURCE, NO_PUBLIC_ACCESS_BLOCK))
        for block in blocks:
            for flag in _BLOCK_FLAGS:
                if block.lookup(flag) not in (True, UNKNOWN):
                    yield Hit(block, Finding(flag, PUBLIC_ACCESS_ALLOWED))


def _sets_algorithm(resource: Resource, *keys: str) -> bool:
    return any(
        leaf.path[-1] == "sseAlgorithm" and leaf.value
        for view in resource.views
        for leaf in leaves(view.props, documents=False)
        if leaf.path[: len(keys)] == keys
    )


def check_encryption(resources: Sequence[Resource], ctx: Context) -> Iterator[Hit]:
    for bucket in _buckets(resources):
        if _sets_algorithm(bucket, "serverSideEncryptionConfiguration"):
            continue
        if not any(_sets_algorithm(c) for c in _companions(bucket, resources, _ENCRYPTION)):
            yield Hit(bucket, Finding(RESOURCE, NO_ENCRYPTION))


def check_versioning(resources: Sequence[Resource], ctx: Context) -> Iterator[Hit]:
    for bucket in _buckets(resources):
        if bucket.lookup("versioning", "enabled") is True:
            continue
        companions = _companions(bucket, resources, _VERSIONING)
        if not companions:
            yield Hit(bucket, Finding(RESOURCE, NO_VERSIONING))
        for companion in companions:
            if companion.lookup("versioningConfiguration", "status") not in ("Enabled", UNKNOWN):
                yield Hit(companion, Finding("versioningConfiguration.status", VERSIONING_OFF))


# -- stateful-resources-protected ---------------------------------------------------

STATEFUL_TYPES = frozenset(
    {
        *BUCKET_TYPES,
        "aws:rds/instance:Instance",
        "aws:rds/cluster:Cluster",
        "aws:ebs/volume:Volume",
        "aws:efs/fileSystem:FileSystem",
        "aws:dynamodb/table:Table",
        "kubernetes:core/v1:PersistentVolumeClaim",
        "kubernetes:core/v1:PersistentVolume",
    }
)
_STATEFUL_SET = "kubernetes:apps/v1:StatefulSet"
NOT_PROTECTED = "stateful resource not protected in prod"
VOLUMES_DELETED = "volumes deleted with the StatefulSet in prod"


def check_stateful(resource: Resource, ctx: Context) -> Iterator[Finding]:
    """Only ``protect`` counts: ``retainOnDelete`` alone still lets a replacement swap in an empty
    database, and CrossGuard cannot see it (the analyzer protocol does not carry it)."""
    if not ctx.is_prod:
        return
    is_set = resource.type == _STATEFUL_SET
    if (resource.type in STATEFUL_TYPES or (is_set and resource.lookup("spec", "volumeClaimTemplates"))) and not resource.protect:
        yield Finding("protect", NOT_PROTECTED)
    if is_set and resource.lookup("spec", "persistentVolumeClaimRetentionPolicy", "whenDeleted") == "Delete":
        yield Finding("spec.persistentVolumeClaimRetentionPolicy.whenDeleted", VOLUMES_DELETED)


# -- images-pinned ------------------------------------------------------------------

LATEST_TAG = "image uses the latest tag"
NO_TAG = "image has no tag or digest"


def _image_problem(reference: str, partial: bool) -> str | None:
    """``partial``: Helm values often give the repository alone and the tag in a sibling key."""
    if not reference or "@" in reference or not _is_literal_image(reference):
        return None
    last = reference.rsplit("/", 1)[-1]
    if ":" not in last:
        return None if partial else NO_TAG
    return LATEST_TAG if last.rsplit(":", 1)[1] == "latest" else None


_IMAGE_REFERENCE = re.compile(r"\$[({A-Za-z_]|\{\{|<")


def _is_literal_image(reference: str) -> bool:
    """A reference typed in, not ``$(IMAGE)``, ``${IMAGE}``, ``{{ .Values.image }}`` or ``<image>``."""
    return not _IMAGE_REFERENCE.search(reference)


def check_images(resource: Resource, ctx: Context) -> Iterator[Finding]:
    if not resource.type.startswith("kubernetes:"):
        return
    helm = resource.type.startswith("kubernetes:helm.sh/")
    for view in resource.views:
        for leaf in leaves(view.props, documents=False):
            if leaf.path[-1] == "image":
                problem = _image_problem(leaf.value, partial=helm)
            elif leaf.path[-2:] == ("image", "tag"):
                problem = LATEST_TAG if leaf.value == "latest" else None
            else:
                continue
            if problem:
                yield Finding(render(leaf.path), problem)


# -- mlflow-minio-not-exposed ----------------------------------------------------------

_EXPOSING_TYPES = ("LoadBalancer", "NodePort")


def _identity(resource: Resource) -> list[str]:
    """What says which app a Service fronts: its name, labels and selector."""
    found = [resource.lookup("metadata", "name")]
    for keys in (("metadata", "labels"), ("spec", "selector")):
        labels = resource.lookup(*keys)
        if isinstance(labels, Mapping):
            found.extend(get(labels, k) for k in labels)
    return [v.lower() for v in found if isinstance(v, str)]


def check_exposure(resource: Resource, ctx: Context) -> Iterator[Finding]:
    if resource.type != "kubernetes:core/v1:Service":
        return
    service_type = resource.lookup("spec", "type")
    if service_type not in _EXPOSING_TYPES:
        return
    identity = _identity(resource)
    for app in ctx.settings.apps:
        if any(app in value for value in identity):
            yield Finding("spec.type", f"{app} exposed outside the cluster by a {service_type} Service")
            return


# -- mlflow-route-authenticated --------------------------------------------------------

_INGRESS = "kubernetes:networking.k8s.io/v1:Ingress"
_VIRTUAL_SERVICE_PREFIX = "kubernetes:networking.istio.io/"
_SERVICE = "kubernetes:core/v1:Service"
_WORKLOADS = ("kubernetes:apps/v1:Deployment", "kubernetes:apps/v1:StatefulSet")
# MLflow's own apps that authenticate every API request (MLflow's basic-auth, Kubeflow's Kubernetes RBAC app).
AUTH_APPS = frozenset({"basic-auth", "kubernetes-auth"})
UNAUTHENTICATED_ROUTE = "route to an MLflow server without authentication"


def _mlflow_auth(workload: Resource) -> bool | None:
    """None if no container runs `mlflow server`; else whether it runs an authenticating app."""
    template = workload.lookup("spec", "template", "spec") or {}
    for container in (template.get("containers") or []) if isinstance(template, Mapping) else []:
        argv = [a for a in [*(container.get("command") or []), *(container.get("args") or [])] if isinstance(a, str)]
        if not any(a.endswith("mlflow") for a in argv) or "server" not in argv:
            continue
        app = next((argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--app-name"), None)
        app = app or next((a.split("=", 1)[1] for a in argv if a.startswith("--app-name=")), None)
        return app in AUTH_APPS
    return None


def _namespace(resource: Resource) -> str | None:
    ns = resource.lookup("metadata", "namespace")
    return ns if isinstance(ns, str) else None


def _unauthenticated_mlflow_services(resources: Sequence[Resource]) -> dict[tuple[str | None, str], Resource]:
    """Services (by namespace and name) whose selector picks the pods of an MLflow server without authentication."""
    open_pods = []
    for r in resources:
        if r.type in _WORKLOADS and _mlflow_auth(r) is False:
            labels = r.lookup("spec", "template", "metadata", "labels")
            if isinstance(labels, Mapping):
                open_pods.append((_namespace(r), labels))
    found = {}
    for r in resources:
        selector = r.lookup("spec", "selector") if r.type == _SERVICE else None
        name = r.lookup("metadata", "name")
        if not isinstance(selector, Mapping) or not selector or not isinstance(name, str):
            continue
        if any(ns == _namespace(r) and all(labels.get(k) == v for k, v in selector.items()) for ns, labels in open_pods):
            found[(_namespace(r), name)] = r
    return found


def _ingress_backends(resource: Resource) -> Iterator[tuple[str, str]]:
    spec = resource.lookup("spec") or {}
    backends = [("spec.defaultBackend", spec.get("defaultBackend"))] if isinstance(spec, Mapping) else []
    for i, rule in enumerate(spec.get("rules") or [] if isinstance(spec, Mapping) else []):
        for j, path in enumerate(((rule or {}).get("http") or {}).get("paths") or []):
            backends.append((f"spec.rules[{i}].http.paths[{j}].backend", (path or {}).get("backend")))
    for where, backend in backends:
        name = ((backend or {}).get("service") or {}).get("name") if isinstance(backend, Mapping) else None
        if isinstance(name, str):
            yield where, name


def _virtual_service_destinations(resource: Resource) -> Iterator[tuple[str, str, str | None]]:
    """(path, service, namespace or None for the VirtualService's own) of every HTTP and TCP route destination."""
    for kind in ("http", "tcp", "tls"):
        for i, route in enumerate(resource.lookup("spec", kind) or []):
            for j, target in enumerate((route or {}).get("route") or []):
                host = ((target or {}).get("destination") or {}).get("host")
                if isinstance(host, str):
                    parts = host.split(".")
                    yield f"spec.{kind}[{i}].route[{j}].destination.host", parts[0], parts[1] if len(parts) > 1 else None


def check_mlflow_routes(resources: Sequence[Resource], ctx: Context) -> Iterator[Hit]:
    """Any Ingress, VirtualService, or LoadBalancer/NodePort Service that reaches an MLflow server running no auth app."""
    services = _unauthenticated_mlflow_services(resources)
    if not services:
        return
    for r in resources:
        ns = _namespace(r)
        if r.type == _INGRESS:
            for where, name in _ingress_backends(r):
                if (ns, name) in services:
                    yield Hit(r, Finding(where, UNAUTHENTICATED_ROUTE))
        elif r.type.startswith(_VIRTUAL_SERVICE_PREFIX) and r.type.endswith(":VirtualService"):
            for where, name, target_ns in _virtual_service_destinations(r):
                if (target_ns or ns, name) in services:
                    yield Hit(r, Finding(where, UNAUTHENTICATED_ROUTE))
        elif r.type == _SERVICE and r.lookup("spec", "type") in _EXPOSING_TYPES:
            name = r.lookup("metadata", "name")
            if (ns, name) in services:
                yield Hit(r, Finding("spec.type", UNAUTHENTICATED_ROUTE))


# -- the pack -------------------------------------------------------------------------

POLICIES: tuple[PolicySpec, ...] = (
    PolicySpec(
        name="no-plaintext-credentials",
        description="No credential in plaintext in a manifest, a pod spec, Helm values or the Pulumi state.",
        level="mandatory",
        severity="critical",
        remediation="Keep the value in a Kubernetes Secret (secretKeyRef, envFrom, a mounted volume) fed by a "
        "Pulumi secret (pulumi.secret, RandomPassword, `pulumi config set --secret`), and refer to it as $(VAR).",
        config_keys=("allowedPaths", "allowedValues"),
        resource_check=check_credentials,
    ),
    PolicySpec(
        name="no-static-iam-access-keys",
        description="No long-lived IAM access keys: pods get AWS access through IRSA roles.",
        level="mandatory",
        severity="high",
        remediation="Delete the aws.iam.AccessKey; give the workload's service account an IAM role (IRSA).",
        resource_check=check_static_keys,
    ),
    PolicySpec(
        name="s3-bucket-public-access-block",
        description="Every S3 bucket blocks public access with all four public access block settings.",
        level="mandatory",
        severity="high",
        remediation="Add an aws.s3.BucketPublicAccessBlock for the bucket with all four settings true.",
        stack_check=check_public_access,
    ),
    PolicySpec(
        name="s3-bucket-encryption",
        description="Every S3 bucket has an explicit default encryption configuration.",
        level="advisory",
        severity="medium",
        remediation="Add an aws.s3.BucketServerSideEncryptionConfiguration (aws:kms with the platform key, or AES256).",
        stack_check=check_encryption,
    ),
    PolicySpec(
        name="s3-bucket-versioning",
        description="Every S3 bucket keeps object versions, so a bad write or delete of a model can be undone.",
        level="advisory",
        severity="medium",
        remediation="Add an aws.s3.BucketVersioning with status Enabled and a lifecycle rule for noncurrent versions.",
        stack_check=check_versioning,
    ),
    PolicySpec(
        name="stateful-resources-protected",
        description="In production, the database, its volumes and the artifact bucket are protected from deletion.",
        level="mandatory",
        severity="high",
        remediation="Set protect=True (and retain_on_delete=True) on the resource; keep StatefulSet volumes on delete.",
        config_keys=("allowedPaths", "prod", "prodStacks"),
        resource_check=check_stateful,
    ),
    PolicySpec(
        name="images-pinned",
        description="Container images are pinned to a version tag or a digest, never latest or untagged.",
        level="mandatory",
        severity="medium",
        remediation="Use an explicit version tag (registry/repo:1.2.3) or a digest (@sha256:...).",
        resource_check=check_images,
    ),
    PolicySpec(
        name="mlflow-minio-not-exposed",
        description="MLflow and MinIO are reachable only inside the cluster or through the authenticated gateway.",
        level="mandatory",
        severity="high",
        remediation="Use a ClusterIP Service and route external traffic through the Istio gateway with authentication.",
        config_keys=("allowedPaths", "apps"),
        resource_check=check_exposure,
    ),
    PolicySpec(
        name="mlflow-route-authenticated",
        description="No Ingress, VirtualService or LoadBalancer/NodePort Service reaches an MLflow server that authenticates nobody.",
        level="mandatory",
        severity="critical",
        remediation="Run the server with an authorization app (tracking.auth basic or kubernetes: --app-name basic-auth "
        "or kubernetes-auth), or remove the route.",
        stack_check=check_mlflow_routes,
    ),
)
