"""The tracking server's Prometheus exporter (``--expose-prometheus``): its flags, scratch dir and scrapers' Host headers.

What it exports, and the queries built on that, are monitoring's (:mod:`mlops_platform.monitoring.metrics`).
"""

from __future__ import annotations

from mlops_platform.k8s.containers import ScratchDir

# prometheus_client's multiprocess files: written by every worker, read on each scrape.
SCRATCH = ScratchDir("prometheus", "/var/run/mlflow-prometheus", "64Mi")


def server_args() -> list[str]:
    """The server flags that turn the exporter on."""
    return ["--expose-prometheus", SCRATCH.mount_path]


def pod_hosts(port: int) -> list[str]:
    """Host headers a scraper sends (``<pod IP>:<port>``): MLflow's own private-address patterns, narrowed to the server port.

    Prometheus scrapes pods by IP, and MLflow's Host check (``--allowed-hosts``) covers ``/metrics``.
    """
    private = ["10.*", *(f"172.{i}.*" for i in range(16, 32)), "192.168.*"]
    return [f"{p}:{port}" for p in private]
