"""A pod's scratch volumes here: a per-run directory of the declared size, and how full it is.

A memory-backed emptyDir and a generic ephemeral volume are a file system of fixed size in
the cluster: a write beyond it fails with ENOSPC. As root, each is reproduced as a tmpfs
mounted with exactly that size. A disk-backed emptyDir is a plain directory here, as there:
nothing stops a write, and the kubelet evicts the pod afterwards. Without root every volume
is a plain directory (sizes are measured, not enforced; the test that needs them skips).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops_platform.config import quantity_bytes
from tests.e2e.errors import DataPlaneError


@dataclass
class ScratchMount:
    name: str
    mount_path: str
    # 0: no size declared
    size_bytes: int
    path: Path
    enforced: bool

    def used_bytes(self) -> int:
        """Bytes held by files under the directory (blocks actually allocated)."""
        total = 0
        for root, _, files in os.walk(self.path):
            for f in files:
                try:
                    total += os.lstat(os.path.join(root, f)).st_blocks * 512
                except FileNotFoundError:
                    continue
        return total

    def release(self) -> None:
        if self.enforced:
            subprocess.run(["umount", "-l", str(self.path)], check=False, capture_output=True)
            self.enforced = False


def declared_size(volume: Mapping[str, Any]) -> str | None:
    """The size of a scratch volume: an emptyDir's sizeLimit, or an ephemeral volume's requested storage."""
    if "emptyDir" in volume:
        return (volume["emptyDir"] or {}).get("sizeLimit")
    if "ephemeral" in volume:
        return volume["ephemeral"]["volumeClaimTemplate"]["spec"]["resources"]["requests"]["storage"]
    return None


def provide(pod_spec: Mapping[str, Any], container: Mapping[str, Any], root: Path, component: str) -> list[ScratchMount]:
    """Every writable scratch volume ``container`` mounts, as a directory under ``root`` of the declared size."""
    volumes = {v["name"]: v for v in pod_spec.get("volumes") or []}
    mounts = []
    for mount in container.get("volumeMounts") or []:
        volume = volumes.get(mount["name"])
        if volume is None:
            raise DataPlaneError(component, f"mounts volume {mount['name']!r}, which its pod does not declare")
        if "emptyDir" not in volume and "ephemeral" not in volume:
            continue
        size = declared_size(volume)
        path = root / mount["name"]
        path.mkdir(parents=True, exist_ok=True)
        enforced = False
        # A disk-backed emptyDir is not bounded: the kubelet evicts the pod once it holds more than sizeLimit.
        bounded = size is not None and ("ephemeral" in volume or (volume.get("emptyDir") or {}).get("medium") == "Memory")
        if bounded and os.geteuid() == 0:
            subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={quantity_bytes(size)},mode=1777", "tmpfs", str(path)], check=True)
            enforced = True
        mounts.append(ScratchMount(mount["name"], mount["mountPath"], quantity_bytes(size) if size else 0, path, enforced))
    return mounts


def rewrite_mount_paths(env: Mapping[str, str], mounts: list[ScratchMount]) -> dict[str, str]:
    """Env values naming a mount path point at its directory here; TMPDIR names the one at /tmp, as the image's default does."""
    out = dict(env)
    for m in mounts:
        for key, value in env.items():
            if value == m.mount_path or value.startswith(m.mount_path.rstrip("/") + "/"):
                out[key] = str(m.path) + value[len(m.mount_path.rstrip("/")) :]
        if m.mount_path == "/tmp":
            out["TMPDIR"] = str(m.path)
    return out
