"""What a declared server holds while a transfer runs: each pod's memory and scratch use, sampled, against its declared limits."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from mlops_platform.settings_base import quantity_bytes
from tests.e2e.launch import Server
from tests.e2e.scratch import declared_size
from tools.testing.processes import memory_mb

MiB = 2**20


@dataclass(frozen=True)
class DeclaredLimits:
    memory_bytes: int
    scratch_bytes: int
    # A tmpfs scratch (emptyDir medium Memory) is charged to the pod's memory limit.
    scratch_in_memory: bool


def declared_limits(server: Server) -> DeclaredLimits:
    assert server.workload is not None
    spec = server.workload.pod_spec()
    container = spec["containers"][0]
    volumes = {v["name"]: v for v in spec.get("volumes") or []}
    scratch = [volumes[m["name"]] for m in container.get("volumeMounts") or [] if m["mountPath"] == "/tmp"]
    assert len(scratch) == 1, f"{server.component} mounts no scratch volume at /tmp"
    size = declared_size(scratch[0])
    assert size is not None
    in_memory = (scratch[0].get("emptyDir") or {}).get("medium") == "Memory"
    return DeclaredLimits(quantity_bytes(container["resources"]["limits"]["memory"]), quantity_bytes(size), in_memory)


@dataclass
class Peak:
    rss_bytes: int = 0
    scratch_bytes: int = 0
    # RSS plus a memory-backed scratch: what the pod's memory limit counts.
    charged_bytes: int = 0
    baseline_rss_bytes: int = 0


@dataclass
class Meter:
    """Samples every pod of ``server`` every ``interval`` seconds inside a ``with`` block (a bounded background thread)."""

    server: Server
    interval: float = 0.2
    peaks: dict[int, Peak] = field(default_factory=dict)
    samples: int = 0

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._in_memory = declared_limits(self.server).scratch_in_memory

    def _sample(self) -> None:
        for pod in self.server.processes:
            rss = int(memory_mb(pod.service.process.pid)["rss_mb"] * MiB)
            used = sum(m.used_bytes() for m in pod.scratch)
            peak = self.peaks.setdefault(pod.port, Peak(baseline_rss_bytes=rss))
            peak.rss_bytes = max(peak.rss_bytes, rss)
            peak.scratch_bytes = max(peak.scratch_bytes, used)
            peak.charged_bytes = max(peak.charged_bytes, rss + (used if self._in_memory else 0))
        self.samples += 1

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> Meter:
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._sample()
