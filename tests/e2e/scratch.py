"""A pod's scratch volumes as the meter reads them: where each is on this machine, its declared size, how full it is.

tests/e2e/sandbox.py makes them (a memory-backed emptyDir and a generic ephemeral volume are a tmpfs of exactly the
declared size, so a write beyond it fails with ENOSPC, as there; a disk-backed emptyDir is a plain directory, as on
the node, where only eviction bounds it) and mounts them at their declared paths.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any


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
