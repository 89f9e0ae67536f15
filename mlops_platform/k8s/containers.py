"""The one builder for containers and pod specs: hardened by default, never copy-pasted.

Every container runs as a non-root high UID with no capabilities, no privilege
escalation, RuntimeDefault seccomp and, where the image allows, a read-only root
filesystem with writable emptyDirs only where the process needs them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import pulumi
import pulumi_kubernetes as k8s

from mlops_platform.settings_base import Resources, quantity_bytes

RUN_AS_USER = 10001


@dataclass(frozen=True)
class HttpProbe:
    path: str
    port: int | str


@dataclass(frozen=True)
class ExecProbe:
    command: Sequence[str]


Probe = HttpProbe | ExecProbe


@dataclass(frozen=True)
class ScratchDir:
    """A writable directory for a container whose root filesystem is read-only.

    ``disk``: an emptyDir on the node's disk (the kubelet evicts the pod once it holds more than ``size_limit``);
    ``memory``: a tmpfs of exactly ``size_limit`` (writes beyond fail with ENOSPC; counted in the memory limit);
    ``volume``: a generic ephemeral volume of ``size_limit`` from ``storage_class``, one per pod (ENOSPC beyond).
    """

    name: str
    mount_path: str
    size_limit: str = "256Mi"
    medium: Literal["disk", "memory", "volume"] = "disk"
    storage_class: str | None = None


# What most containers need to write: HOME, Python's and tools' caches, a program's temporary files.
TMP = ScratchDir("tmp", "/tmp")


def secret_env(name: str, secret: pulumi.Input[str], key: str) -> k8s.core.v1.EnvVarArgs:
    """An env var read from a Secret: the only way a credential reaches a pod."""
    return k8s.core.v1.EnvVarArgs(
        name=name,
        value_from=k8s.core.v1.EnvVarSourceArgs(secret_key_ref=k8s.core.v1.SecretKeySelectorArgs(name=secret, key=key)),
    )


def plain_env(values: Mapping[str, pulumi.Input[str]]) -> list[k8s.core.v1.EnvVarArgs]:
    return [k8s.core.v1.EnvVarArgs(name=k, value=v) for k, v in values.items()]


def _probe(probe: Probe, *, initial_delay: int, period: int, failure_threshold: int) -> k8s.core.v1.ProbeArgs:
    common: dict[str, Any] = dict(
        # 0 is the API's default, and the kubernetes provider drops it: left out, the render equals what is applied.
        initial_delay_seconds=initial_delay or None,
        period_seconds=period,
        timeout_seconds=5,
        failure_threshold=failure_threshold,
    )
    if isinstance(probe, HttpProbe):
        return k8s.core.v1.ProbeArgs(http_get=k8s.core.v1.HTTPGetActionArgs(path=probe.path, port=probe.port), **common)
    return k8s.core.v1.ProbeArgs(exec_=k8s.core.v1.ExecActionArgs(command=list(probe.command)), **common)


def container(
    name: str,
    image: str,
    resources: Resources,
    *,
    command: Sequence[str] | None = None,
    args: Sequence[pulumi.Input[str]] | None = None,
    env: Sequence[k8s.core.v1.EnvVarArgs] = (),
    ports: Mapping[str, int] = {},
    probe: Probe | None = None,
    startup_seconds: int = 120,
    scratch: Sequence[ScratchDir] = (),
    mounts: Sequence[k8s.core.v1.VolumeMountArgs] = (),
    read_only_root: bool = True,
) -> k8s.core.v1.ContainerArgs:
    """A hardened container. ``probe`` drives startup, liveness and readiness alike.

    Disk-backed scratch (an emptyDir on the node's disk) is requested as ``ephemeral-storage``, so the scheduler
    places the pod only where the node has that room, instead of the kubelet evicting it (or the node reaching
    DiskPressure) once it is filled. No limit is set: the emptyDir's sizeLimit bounds each volume already.
    """
    probes: dict[str, Any] = {}
    if probe is not None:
        probes = dict(
            startup_probe=_probe(probe, initial_delay=5, period=5, failure_threshold=max(1, startup_seconds // 5)),
            liveness_probe=_probe(probe, initial_delay=0, period=20, failure_threshold=3),
            readiness_probe=_probe(probe, initial_delay=0, period=10, failure_threshold=3),
        )
    return k8s.core.v1.ContainerArgs(
        name=name,
        image=image,
        image_pull_policy="Always",
        command=list(command) if command else None,
        args=list(args) if args else None,
        env=list(env) or None,
        ports=[k8s.core.v1.ContainerPortArgs(name=n, container_port=p) for n, p in ports.items()] or None,
        resources=k8s.core.v1.ResourceRequirementsArgs(
            requests={"cpu": resources.cpu_request, "memory": resources.memory_request, **_disk_request(scratch)},
            limits={"cpu": resources.cpu_limit, "memory": resources.memory_limit},
        ),
        security_context=k8s.core.v1.SecurityContextArgs(
            run_as_non_root=True,
            run_as_user=RUN_AS_USER,
            run_as_group=RUN_AS_USER,
            allow_privilege_escalation=False,
            privileged=False,
            read_only_root_filesystem=read_only_root,
            capabilities=k8s.core.v1.CapabilitiesArgs(drop=["ALL"]),
            seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"),
        ),
        volume_mounts=[k8s.core.v1.VolumeMountArgs(name=s.name, mount_path=s.mount_path) for s in scratch] + list(mounts) or None,
        **probes,
    )


def _disk_request(scratch: Sequence[ScratchDir]) -> dict[str, str]:
    """The node disk the container's emptyDirs may fill, in the largest unit that expresses it exactly."""
    total = sum(quantity_bytes(d.size_limit) for d in scratch if d.medium == "disk")
    if not total:
        return {}
    for unit, size in (("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20)):
        if total % size == 0:
            return {"ephemeral-storage": f"{total // size}{unit}"}
    return {"ephemeral-storage": str(total)}


def _pinned(c: k8s.core.v1.ContainerArgs) -> bool:
    return isinstance(c.image, str) and "@sha256:" in c.image


def _reads_secret(c: k8s.core.v1.ContainerArgs) -> bool:
    env = c.env if isinstance(c.env, list) else []
    sources = [e.value_from for e in env if isinstance(e, k8s.core.v1.EnvVarArgs)]
    return any(isinstance(s, k8s.core.v1.EnvVarSourceArgs) and s.secret_key_ref is not None for s in sources)


def scanner_exceptions(*containers: k8s.core.v1.ContainerArgs) -> dict[str, str]:
    """checkov suppressions for a workload, each present only while its reason holds.

    Suppressions live on the object (``checkov.io/skipN``), derived from the
    containers themselves, so pinning an image by digest or dropping env secrets
    makes the corresponding exception disappear.
    """
    reasons: dict[str, str] = {}
    if not all(_pinned(c) for c in containers):
        reasons["CKV_K8S_43"] = (
            "images are pinned to exact release tags matching the tested packages; "
            "set the image config keys to name@sha256:digest to pin by digest"
        )
    if any(_reads_secret(c) for c in containers):
        reasons["CKV_K8S_35"] = (
            "this image reads the credential only from its environment; the value comes from a Secret via secretKeyRef, never a literal"
        )
    return {f"checkov.io/skip{i}": f"{check}={reason}" for i, (check, reason) in enumerate(sorted(reasons.items()), start=1)}


def scratch_volumes(containers: Sequence[Sequence[ScratchDir]]) -> list[k8s.core.v1.VolumeArgs]:
    """The emptyDir volumes backing every ScratchDir, once each."""
    seen: dict[str, ScratchDir] = {}
    for dirs in containers:
        for d in dirs:
            seen.setdefault(d.name, d)
    return [_scratch_volume(d) for d in seen.values()]


def _scratch_volume(d: ScratchDir) -> k8s.core.v1.VolumeArgs:
    if d.medium == "volume":
        claim = k8s.core.v1.PersistentVolumeClaimSpecArgs(
            access_modes=["ReadWriteOnce"],
            storage_class_name=d.storage_class,
            resources=k8s.core.v1.VolumeResourceRequirementsArgs(requests={"storage": d.size_limit}),
        )
        return k8s.core.v1.VolumeArgs(
            name=d.name,
            ephemeral=k8s.core.v1.EphemeralVolumeSourceArgs(
                volume_claim_template=k8s.core.v1.PersistentVolumeClaimTemplateArgs(spec=claim)
            ),
        )
    medium = "Memory" if d.medium == "memory" else None
    return k8s.core.v1.VolumeArgs(name=d.name, empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs(medium=medium, size_limit=d.size_limit))


def pod_spec(
    containers: Sequence[k8s.core.v1.ContainerArgs],
    *,
    init_containers: Sequence[k8s.core.v1.ContainerArgs] = (),
    volumes: Sequence[k8s.core.v1.VolumeArgs] = (),
    service_account: pulumi.Input[str] | None = None,
    restart_policy: str | None = None,
) -> k8s.core.v1.PodSpecArgs:
    """A pod spec that mounts no API token unless it runs as a dedicated service account."""
    return k8s.core.v1.PodSpecArgs(
        containers=list(containers),
        init_containers=list(init_containers) or None,
        volumes=list(volumes) or None,
        service_account_name=service_account,
        automount_service_account_token=False,
        restart_policy=restart_policy,
        security_context=k8s.core.v1.PodSecurityContextArgs(
            run_as_non_root=True,
            run_as_user=RUN_AS_USER,
            run_as_group=RUN_AS_USER,
            fs_group=RUN_AS_USER,
            seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"),
        ),
    )


# Where Kubernetes client libraries (and MLflow's ``kubernetes`` auth providers) look for the pod's own credentials.
API_TOKEN_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
API_TOKEN_SECONDS = 3600


def api_token(expiration_seconds: int = API_TOKEN_SECONDS) -> tuple[k8s.core.v1.VolumeArgs, k8s.core.v1.VolumeMountArgs]:
    """The pod's own ServiceAccount token, CA and namespace, projected by the kubelet where clients look for them.

    ``pod_spec`` turns automounting off; a pod that must call the API (or an API-authorized server) as itself
    gets this short-lived, audience-bound token instead; nothing is stored in a Secret.
    """
    volume = k8s.core.v1.VolumeArgs(
        name="kube-api-access",
        projected=k8s.core.v1.ProjectedVolumeSourceArgs(
            sources=[
                k8s.core.v1.VolumeProjectionArgs(
                    service_account_token=k8s.core.v1.ServiceAccountTokenProjectionArgs(path="token", expiration_seconds=expiration_seconds)
                ),
                k8s.core.v1.VolumeProjectionArgs(
                    config_map=k8s.core.v1.ConfigMapProjectionArgs(
                        name="kube-root-ca.crt", items=[k8s.core.v1.KeyToPathArgs(key="ca.crt", path="ca.crt")]
                    )
                ),
                k8s.core.v1.VolumeProjectionArgs(
                    downward_api=k8s.core.v1.DownwardAPIProjectionArgs(
                        items=[
                            k8s.core.v1.DownwardAPIVolumeFileArgs(
                                path="namespace", field_ref=k8s.core.v1.ObjectFieldSelectorArgs(field_path="metadata.namespace")
                            )
                        ]
                    )
                ),
            ]
        ),
    )
    return volume, k8s.core.v1.VolumeMountArgs(name="kube-api-access", mount_path=API_TOKEN_DIR, read_only=True)
