"""Monitoring: a ServiceMonitor scraping the tracking server, a PrometheusRule with its alerts, a Grafana dashboard.

It assumes the Prometheus Operator (its monitoring.coreos.com CRDs) and Grafana's
dashboard sidecar are installed, as kube-prometheus-stack installs them, and installs
neither. The server's side (``--expose-prometheus`` and its scratch dir) is the
tracking stack's (:mod:`mlops_platform.tracking.metrics`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from mlops_platform.contracts import METRICS_PATH, TrackingEndpoint
from mlops_platform.k8s import naming
from mlops_platform.monitoring import metrics
from mlops_platform.monitoring.settings import MonitoringConfig

COMPONENT = "monitoring"
DASHBOARD_FILE = "mlflow.json"


@dataclass(frozen=True)
class MonitoringArgs:
    monitoring: MonitoringConfig
    tracking: TrackingEndpoint


class Monitoring(pulumi.ComponentResource):
    """What the Prometheus Operator and Grafana need to watch MLflow."""

    def __init__(self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlops:index:Monitoring", name, None, opts)
        cfg, t = args.monitoring, args.tracking
        self._name = name
        in_namespace = pulumi.ResourceOptions(parent=self, depends_on=[t.namespace_resource])
        queries = metrics.queries(t.service_name, t.namespace)

        k8s.apiextensions.CustomResource(
            f"{name}-servicemonitor",
            api_version="monitoring.coreos.com/v1",
            kind="ServiceMonitor",
            metadata=self._meta(t.service_name, t.namespace, cfg.prometheus_labels),
            spec={
                "selector": {"matchLabels": t.server_labels},
                "namespaceSelector": {"matchNames": [t.namespace]},
                "endpoints": [{"port": "http", "path": METRICS_PATH, "interval": cfg.interval, **mesh_tls(cfg)}],
            },
            opts=in_namespace,
        )
        k8s.apiextensions.CustomResource(
            f"{name}-rules",
            api_version="monitoring.coreos.com/v1",
            kind="PrometheusRule",
            metadata=self._meta(t.service_name, t.namespace, cfg.prometheus_labels),
            spec={"groups": [{"name": "mlflow", "rules": alert_rules(cfg, queries)}]},
            opts=in_namespace,
        )
        if cfg.dashboard:
            dashboard_ns = cfg.dashboard_namespace or t.namespace
            k8s.core.v1.ConfigMap(
                f"{name}-dashboard",
                metadata=self._meta(f"{t.service_name}-dashboard", dashboard_ns, cfg.dashboard_labels),
                data={DASHBOARD_FILE: json.dumps(dashboard(queries), indent=1, sort_keys=True)},
                opts=in_namespace if dashboard_ns == t.namespace else pulumi.ResourceOptions(parent=self),
            )
        self.register_outputs({})

    def _meta(self, name: str, namespace: str, labels: dict[str, str]) -> k8s.meta.v1.ObjectMetaArgs:
        return naming.metadata(name, namespace, component=COMPONENT, instance=self._name, extra_labels=labels)


# Where Istio's documented Prometheus setup writes the workload certificate (sidecar.istio.io/userVolumeMount + OUTPUT_CERTS).
ISTIO_CERTS = "/etc/prom-certs"


def mesh_tls(cfg: MonitoringConfig) -> dict[str, Any]:
    """In Kubeflow's mesh the server's sidecar accepts only mTLS: Prometheus presents its Istio certificate.

    Server names are SPIFFE identities, not host names, hence no hostname verification (Istio's own example does the same).
    """
    if cfg.mesh_principal is None:
        return {}
    return {
        "scheme": "https",
        "tlsConfig": {
            "caFile": f"{ISTIO_CERTS}/root-cert.pem",
            "certFile": f"{ISTIO_CERTS}/cert-chain.pem",
            "keyFile": f"{ISTIO_CERTS}/key.pem",
            "insecureSkipVerify": True,
        },
    }


def alert_rules(cfg: MonitoringConfig, queries: dict[str, str]) -> list[dict[str, Any]]:
    """Alerts that need someone: the server unreachable, failing requests, slow requests."""
    wait = cfg.alerts.for_

    def alert(name: str, expr: str, severity: str, summary: str) -> dict[str, Any]:
        return {"alert": name, "expr": expr, "for": wait, "labels": {"severity": severity}, "annotations": {"summary": summary}}

    return [
        alert("MLflowServerDown", queries["absent"], "critical", "No MLflow tracking server pod answers Prometheus's scrape."),
        alert(
            "MLflowHighErrorRatio",
            f"{queries['error_ratio']} > {cfg.alerts.error_ratio}",
            "warning",
            f"More than {cfg.alerts.error_ratio:.0%} of MLflow requests fail with 5xx (database or artifact store errors surface here).",
        ),
        alert(
            "MLflowSlowRequests",
            f"{queries['p95']} > {cfg.alerts.p95_latency_seconds}",
            "warning",
            f"95th percentile MLflow request latency is above {cfg.alerts.p95_latency_seconds} s.",
        ),
    ]


def dashboard(queries: dict[str, str]) -> dict[str, Any]:
    """A Grafana dashboard (schema 39) on the Prometheus data source chosen when it is opened."""
    panels = [
        ("Replicas scraped", "stat", [("up", "replicas")], "short"),
        ("Requests by status", "timeseries", [("requests", "{{status}}")], "reqps"),
        ("Server errors (5xx: database and artifact-store failures)", "timeseries", [("errors", "{{status}}")], "reqps"),
        ("Error ratio (5xx)", "timeseries", [("error_ratio", "5xx ratio")], "percentunit"),
        ("Latency", "timeseries", [("p50", "p50"), ("p95", "p95"), ("p99", "p99")], "s"),
        ("Requests per replica", "timeseries", [("per_pod", "{{pod}}")], "reqps"),
        ("MLflow version", "stat", [("version", "{{mlflow_version}}")], "short"),
    ]
    return {
        "title": "MLflow tracking server",
        "uid": "mlops-platform-mlflow",
        "schemaVersion": 39,
        "tags": ["mlflow", "mlops-platform"],
        "time": {"from": "now-6h", "to": "now"},
        "refresh": "1m",
        "templating": {"list": [{"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Data source"}]},
        "panels": [
            {
                "id": index + 1,
                "title": title,
                "type": kind,
                "datasource": {"type": "prometheus", "uid": "${datasource}"},
                "gridPos": {"x": (index % 2) * 12, "y": (index // 2) * 8, "w": 12, "h": 8},
                "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
                "targets": [
                    {"refId": chr(ord("A") + i), "expr": queries[key], "legendFormat": legend} for i, (key, legend) in enumerate(targets)
                ],
            }
            for index, (title, kind, targets, unit) in enumerate(panels)
        ],
    }
