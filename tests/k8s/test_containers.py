"""Every container the program declares, on both stacks: hardened (mlops_platform/k8s/containers.py), and no password on a command line."""

from __future__ import annotations

import re

from mlops_platform.settings_base import quantity_bytes
from tools.testing.plans import generated_secrets


def _containers(resource):
    pod = resource.pod_spec() or {}
    return pod.get("containers", []) + pod.get("initContainers", [])


def _node_disk(resource, c) -> str | None:
    """What the container's disk-backed emptyDirs may fill on the node (its ephemeral-storage request must say it)."""
    volumes = {v["name"]: v for v in resource.pod_spec().get("volumes") or []}
    mounted = [volumes.get(m["name"], {}) for m in c.get("volumeMounts") or []]
    disk = [quantity_bytes(v["emptyDir"]["sizeLimit"]) for v in mounted if "emptyDir" in v and v["emptyDir"].get("medium") != "Memory"]
    return f"{sum(disk) // 2**20}Mi" if disk and sum(disk) % 2**30 else (f"{sum(disk) // 2**30}Gi" if disk else None)


def test_every_container_is_hardened(dev, prod):
    for plan in (dev, prod):
        checked = 0
        for r in plan.resources:
            for c in _containers(r):
                checked += 1
                sc = c["securityContext"]
                assert sc["runAsNonRoot"] and sc["runAsUser"] >= 10000, c["name"]
                assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"] == {"drop": ["ALL"]}
                assert sc["readOnlyRootFilesystem"] is True
                assert set(c["resources"]["limits"]) == {"cpu", "memory"}
                assert set(c["resources"]["requests"]) - {"ephemeral-storage"} == {"cpu", "memory"}
                assert c["resources"]["requests"].get("ephemeral-storage") == _node_disk(r, c), c["name"]
                if r.kind not in ("Job", "CronJob"):
                    assert {"livenessProbe", "readinessProbe"} <= set(c), c["name"]
        assert checked >= (5 if plan is dev else 3)


def test_no_password_on_any_command_line(dev):
    for r in dev.resources:
        for c in _containers(r):
            text = " ".join(c.get("command", []) + c.get("args", []))
            assert not re.search(r"://[^/@\s]*:[^/@\s]*@", text), f"{r.name}/{c['name']} has a credential URI in its command"
            assert not [s for s in generated_secrets(dev) if s in text]
