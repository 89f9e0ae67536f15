"""What the tracking server exports (its flags: :mod:`mlops_platform.tracking.metrics`), and the queries built on it.

MLflow 3.17 activates prometheus_flask_exporter's multiprocess exporter with the prefix
``mlflow`` and the label ``mlflow_version`` instead of the route, on ``/metrics`` outside
``--static-prefix``. A real scrape (the e2e lane) has exactly these families; there is no
per-route, per-worker or process series, so database and artifact-store failures are seen
as the 5xx answers they produce. ``up`` is Prometheus's own series for each scrape target.
"""

from __future__ import annotations

REQUESTS = "mlflow_http_request_total"
DURATION_BUCKET = "mlflow_http_request_duration_seconds_bucket"
DURATION_COUNT = "mlflow_http_request_duration_seconds_count"
EXPORTER = "mlflow_exporter_info"
# Prometheus's own series per target: 1 when the last scrape succeeded.
SCRAPE_UP = "up"
SYNTHETIC = frozenset({SCRAPE_UP})


def selector(service: str, namespace: str) -> str:
    return f'job="{service}",namespace="{namespace}"'


def queries(service: str, namespace: str) -> dict[str, str]:
    """Every PromQL expression the dashboard and the alerts use, by name."""
    sel = selector(service, namespace)
    return {
        "up": f"sum({SCRAPE_UP}{{{sel}}})",
        "down": f"{SCRAPE_UP}{{{sel}}} == 0",
        "absent": f"absent({SCRAPE_UP}{{{sel}}} == 1)",
        "requests": f"sum by (status) (rate({REQUESTS}{{{sel}}}[5m]))",
        "errors": f'sum by (status) (rate({REQUESTS}{{{sel},status=~"5.."}}[5m]))',
        "error_ratio": f'sum(rate({REQUESTS}{{{sel},status=~"5.."}}[5m])) / sum(rate({REQUESTS}{{{sel}}}[5m]))',
        "p50": f"histogram_quantile(0.5, sum by (le) (rate({DURATION_BUCKET}{{{sel}}}[5m])))",
        "p95": f"histogram_quantile(0.95, sum by (le) (rate({DURATION_BUCKET}{{{sel}}}[5m])))",
        "p99": f"histogram_quantile(0.99, sum by (le) (rate({DURATION_BUCKET}{{{sel}}}[5m])))",
        "per_pod": f"sum by (pod) (rate({DURATION_COUNT}{{{sel}}}[5m]))",
        "version": f"count by (mlflow_version) ({DURATION_COUNT}{{{sel}}})",
        "exporter": f"count({EXPORTER}{{{sel}}})",
    }
