"""In-cluster MinIO for the dev target, and the Job that provisions its users.

MinIO's root key only ever reaches the MinIO pod and provisioning Jobs; every
client (MLflow, each Kubeflow profile, KServe) gets its own user whose policy is
limited to one prefix of the artifact bucket.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from mlops_platform.contracts import Access
from mlops_platform.k8s import naming, options
from mlops_platform.k8s.containers import TMP, HttpProbe, container, pod_spec, scanner_exceptions, scratch_volumes, secret_env
from mlops_platform.settings_base import Resources
from mlops_platform.storage.policy import s3_access_policy
from mlops_platform.storage.settings import MinioConfig

COMPONENT = "minio"
API_PORT = 9000
# MinIO ignores regions, but S3 clients need one to sign requests.
REGION = "us-east-1"
ROOT_SECRET_KEYS = ("rootUser", "rootPassword")
# Pods carrying this label may reach MinIO through its NetworkPolicy (e.g. KServe's
# storage initializer, notebooks writing artifacts directly).
CLIENT_LABEL = "mlops-platform/minio-client"

_JOB_RESOURCES = Resources(cpu_request="50m", cpu_limit="500m", memory_request="64Mi", memory_limit="256Mi")


@dataclass(frozen=True)
class MinioEndpoint:
    """What a provisioning Job needs to talk to MinIO as root."""

    namespace: str
    service: str
    root_secret: str
    client_image: str
    bucket: str

    @property
    def url(self) -> str:
        return f"http://{naming.service_host(self.service, self.namespace)}:{API_PORT}"


@dataclass(frozen=True)
class MinioUser:
    """A MinIO user limited to ``prefix`` of the bucket; its secret key is a Pulumi secret."""

    access_key: str
    secret_key: pulumi.Output[str]
    prefix: str
    access: Access

    @property
    def policy_name(self) -> str:
        return f"{self.access_key}-{self.access}"


def deploy_server(
    name: str,
    *,
    namespace: str,
    config: MinioConfig,
    storage_class: str,
    root_user: str,
    root_password: pulumi.Output[str],
    protect: bool,
    opts: pulumi.ResourceOptions,
    pod_annotations: Mapping[str, str] | None = None,
) -> tuple[str, k8s.apps.v1.Deployment]:
    """MinIO with a PVC and a Service; returns the name of its root credentials Secret, and the server."""
    instance = name

    def meta(suffix: str | None, **kw: Any) -> k8s.meta.v1.ObjectMetaArgs:
        return naming.metadata(f"{name}-{suffix}" if suffix else name, namespace, component=COMPONENT, instance=instance, **kw)

    stateful = options.stateful(opts, protect)

    root = k8s.core.v1.Secret(
        f"{name}-root",
        metadata=meta("root"),
        type="Opaque",
        string_data={"rootUser": root_user, "rootPassword": root_password},
        opts=opts,
    )
    pvc = k8s.core.v1.PersistentVolumeClaim(
        f"{name}-data",
        metadata=meta("data"),
        spec=k8s.core.v1.PersistentVolumeClaimSpecArgs(
            access_modes=["ReadWriteOnce"],
            storage_class_name=config.storage_class or storage_class,
            resources=k8s.core.v1.VolumeResourceRequirementsArgs(requests={"storage": config.storage_size}),
        ),
        opts=stateful,
    )
    scratch = [TMP]
    server = container(
        "minio",
        config.image,
        config.resources,
        command=["minio"],
        # Read-only root filesystem: MinIO keeps its certs directory on the scratch volume.
        args=["server", "/data", "--address", f":{API_PORT}", "--console-address", ":9001", "--certs-dir", "/tmp/certs"],
        env=[
            secret_env("MINIO_ROOT_USER", root.metadata.name, "rootUser"),
            secret_env("MINIO_ROOT_PASSWORD", root.metadata.name, "rootPassword"),
        ],
        ports={"api": API_PORT},
        probe=HttpProbe("/minio/health/live", "api"),
        scratch=scratch,
        mounts=[k8s.core.v1.VolumeMountArgs(name="data", mount_path="/data")],
    )
    deployment = k8s.apps.v1.Deployment(
        name,
        metadata=meta(None, annotations=scanner_exceptions(server)),
        spec=k8s.apps.v1.DeploymentSpecArgs(
            replicas=1,
            # One writer per volume: never run two MinIO pods on the same PVC.
            strategy=k8s.apps.v1.DeploymentStrategyArgs(type="Recreate"),
            selector=k8s.meta.v1.LabelSelectorArgs(match_labels=naming.selector_labels(COMPONENT, instance)),
            template=k8s.core.v1.PodTemplateSpecArgs(
                # MinIO reads its root credentials at start: a rotation's generation here restarts it.
                metadata=k8s.meta.v1.ObjectMetaArgs(labels=naming.labels(COMPONENT, instance), annotations=pod_annotations or None),
                spec=pod_spec(
                    [server],
                    volumes=scratch_volumes([scratch])
                    + [
                        k8s.core.v1.VolumeArgs(
                            name="data",
                            persistent_volume_claim=k8s.core.v1.PersistentVolumeClaimVolumeSourceArgs(claim_name=pvc.metadata.name),
                        )
                    ],
                ),
            ),
        ),
        opts=opts,
    )
    k8s.core.v1.Service(
        f"{name}-svc",
        metadata=meta(None),
        spec=k8s.core.v1.ServiceSpecArgs(
            type="ClusterIP",
            selector=naming.selector_labels(COMPONENT, instance),
            ports=[k8s.core.v1.ServicePortArgs(name="api", port=API_PORT, target_port="api")],
        ),
        opts=opts,
    )
    return name + "-root", deployment


def provision_users(
    name: str,
    *,
    endpoint: MinioEndpoint,
    users: list[MinioUser],
    create_bucket: bool,
    instance: str,
    opts: pulumi.ResourceOptions,
) -> k8s.batch.v1.Job:
    """A Job that creates the bucket (optionally) and each user with its prefix policy.

    Idempotent: re-running it converges, so Pulumi may replace it at will. A Job's
    spec is immutable: a change to users or policies renames (replaces) it, and a
    regenerated secret key replaces it through ``replacement_trigger``, so MinIO
    never keeps a key the clients no longer have.
    """

    def meta(suffix: str) -> k8s.meta.v1.ObjectMetaArgs:
        return naming.metadata(f"{name}-{suffix}", endpoint.namespace, component=f"{COMPONENT}-provisioner", instance=instance)

    policies = {
        f"{u.policy_name}.json": json.dumps(s3_access_policy(endpoint.bucket, u.prefix, u.access), indent=2, sort_keys=True) for u in users
    }
    policy_map = k8s.core.v1.ConfigMap(f"{name}-policies", metadata=meta("policies"), data=policies, opts=opts)
    keys = k8s.core.v1.Secret(
        f"{name}-keys",
        metadata=meta("keys"),
        type="Opaque",
        string_data={_env_key(u): u.secret_key for u in users},
        opts=opts,
    )
    script = _provision_script(endpoint.bucket, users, create_bucket)
    scratch = [TMP]
    job_container = container(
        "provision",
        endpoint.client_image,
        _JOB_RESOURCES,
        command=["/bin/sh", "-ec", script],
        env=[
            k8s.core.v1.EnvVarArgs(name="MINIO_URL", value=endpoint.url),
            k8s.core.v1.EnvVarArgs(name="MC_CONFIG_DIR", value="/tmp/.mc"),
            secret_env("MINIO_ROOT_USER", endpoint.root_secret, "rootUser"),
            secret_env("MINIO_ROOT_PASSWORD", endpoint.root_secret, "rootPassword"),
        ]
        + [secret_env(_env_key(u), keys.metadata.name, _env_key(u)) for u in users],
        scratch=scratch,
        mounts=[k8s.core.v1.VolumeMountArgs(name="policies", mount_path="/policies", read_only=True)],
    )
    digest = hashlib.sha256((script + json.dumps(policies, sort_keys=True)).encode()).hexdigest()[:10]
    return k8s.batch.v1.Job(
        name,
        metadata=naming.metadata(
            f"{name}-{digest}",
            endpoint.namespace,
            component=f"{COMPONENT}-provisioner",
            instance=instance,
            extra_labels={CLIENT_LABEL: "true"},
            annotations=scanner_exceptions(job_container),
        ),
        spec=k8s.batch.v1.JobSpecArgs(
            backoff_limit=6,
            active_deadline_seconds=600,
            template=k8s.core.v1.PodTemplateSpecArgs(
                metadata=k8s.meta.v1.ObjectMetaArgs(labels=naming.labels(f"{COMPONENT}-provisioner", instance, **{CLIENT_LABEL: "true"})),
                spec=pod_spec(
                    [job_container],
                    restart_policy="OnFailure",
                    volumes=scratch_volumes([scratch])
                    + [
                        k8s.core.v1.VolumeArgs(
                            name="policies", config_map=k8s.core.v1.ConfigMapVolumeSourceArgs(name=policy_map.metadata.name)
                        )
                    ],
                ),
            ),
        ),
        # Replaced under the same name: delete first, or the new Job is only the old one patched (it never runs
        # again) and the old one's deletion then removes it.
        opts=pulumi.ResourceOptions.merge(
            opts,
            pulumi.ResourceOptions(replacement_trigger=pulumi.Output.all(*[u.secret_key for u in users]), delete_before_replace=True),
        ),
    )


@dataclass(frozen=True)
class Grant:
    """What one namespace's MinIO user may do: ``access`` under ``prefix`` of the bucket."""

    access_key: str
    prefix: str
    access: Access


def namespace_credentials(
    name: str,
    *,
    endpoint: MinioEndpoint,
    grants: Mapping[str, Grant],
    job_name: str,
    secret_metadata: Callable[[str], k8s.meta.v1.ObjectMetaArgs],
    instance: str,
    opts: pulumi.ResourceOptions,
    keepers: Mapping[str, str] | None = None,
) -> tuple[k8s.batch.v1.Job, dict[str, k8s.core.v1.Secret]]:
    """A MinIO user per namespace with a generated key, all created by one Job, and the key in a Secret of that namespace.

    The Secret uses the AWS variable names S3 clients read (and KServe's default
    ``s3AccessKeyIDName``/``s3SecretAccessKeyName``). The root key never leaves
    MinIO's namespace. ``opts`` should make the resources wait for MinIO itself.
    """
    users = {
        ns: MinioUser(
            grant.access_key,
            random.RandomPassword(f"{name}-{ns}-s3-key", length=40, special=False, keepers=keepers, opts=opts).result,
            grant.prefix,
            grant.access,
        )
        for ns, grant in grants.items()
    }
    job = provision_users(job_name, endpoint=endpoint, users=list(users.values()), create_bucket=False, instance=instance, opts=opts)
    secrets = {
        ns: k8s.core.v1.Secret(
            f"{name}-{ns}-s3",
            metadata=secret_metadata(ns),
            type="Opaque",
            string_data={"AWS_ACCESS_KEY_ID": user.access_key, "AWS_SECRET_ACCESS_KEY": user.secret_key},
            opts=opts,
        )
        for ns, user in users.items()
    }
    return job, secrets


def _env_key(user: MinioUser) -> str:
    return "SECRET_KEY_" + user.access_key.upper().replace("-", "_")


# The pinned mc image is ubi-micro plus /usr/bin/mc: a shell and coreutils, no grep. `mc admin policy attach` fails when the
# policy is attached already (MinIO answers XMinioAdminPolicyChangeAlreadyApplied, "The specified policy change is already in
# effect."); only that answer counts as done, any other failure prints mc's own message and stops the script.
_ATTACH = """attach() {
  if out=$(mc admin policy attach local "$1" --user "$2" 2>&1); then return 0; fi
  case "$out" in
    *"already in effect"*) return 0 ;;
  esac
  printf '%s\\n' "$out" >&2
  return 1
}"""


def _provision_script(bucket: str, users: list[MinioUser], create_bucket: bool) -> str:
    """Shell for ``mc``, using nothing but mc and the shell's own builtins; credentials only ever as environment variables."""
    lines = [
        'mc alias set local "$MINIO_URL" "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD" >/dev/null',
    ]
    if create_bucket:
        lines += [
            f"mc mb --ignore-existing local/{bucket}",
            f"mc version enable local/{bucket}",
        ]
    if users:
        lines.append(_ATTACH)
    for u in users:
        lines += [
            f"mc admin policy create local {u.policy_name} /policies/{u.policy_name}.json",
            f'mc admin user add local {u.access_key} "${_env_key(u)}"',
            f"attach {u.policy_name} {u.access_key}",
        ]
    lines.append('echo "provisioned"')
    return "\n".join(lines) + "\n"
