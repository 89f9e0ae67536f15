"""Settings of monitoring (``monitoring.*``): Prometheus Operator objects and a Grafana dashboard."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import Field, model_validator

from mlops_platform.settings_base import DnsLabel, Labels, Model, Principal, check, only_when_enabled

_DURATION = re.compile(r"^[1-9][0-9]*(s|m)$")


class AlertThresholds(Model):
    """When the PrometheusRule's alerts fire."""

    error_ratio: float = Field(default=0.05, gt=0, lt=1, description="Share of 5xx answers above which MLflowHighErrorRatio fires.")
    p95_latency_seconds: float = Field(default=2.0, gt=0, le=120, description="p95 latency above which MLflowSlowRequests fires.")
    # How long a condition must hold before it pages.
    for_: Annotated[str, check(_DURATION, "seconds or minutes like 5m")] = Field(
        default="5m", alias="for", description="How long a condition must hold before the alert fires."
    )


class MonitoringConfig(Model):
    """Prometheus Operator objects (ServiceMonitor, PrometheusRule) and a Grafana dashboard for the tracking server."""

    enabled: bool = Field(
        default=False, description="A ServiceMonitor, a PrometheusRule and a Grafana dashboard (needs the Prometheus Operator's CRDs)."
    )
    interval: Annotated[str, check(_DURATION, "seconds or minutes like 30s")] = Field(default="30s", description="Scrape interval.")
    # What the Prometheus resource's serviceMonitorSelector and ruleSelector match (kube-prometheus-stack: release: <name>).
    prometheus_labels: Labels = Field(default={}, description="Labels your Prometheus's serviceMonitorSelector and ruleSelector match.")
    dashboard: bool = Field(default=True, description="A Grafana dashboard ConfigMap for the dashboard sidecar.")
    # Where Grafana's dashboard sidecar looks (kube-prometheus-stack: its namespace, or all with searchNamespace ALL).
    dashboard_namespace: DnsLabel | None = Field(
        default=None, description="Where Grafana's dashboard sidecar looks. Default: the tracking namespace."
    )
    dashboard_labels: Labels = Field(default={"grafana_dashboard": "1"}, description="Labels Grafana's dashboard sidecar selects.")
    alerts: AlertThresholds = Field(default=AlertThresholds(), description="When the alerts fire.")
    # With Kubeflow's mesh: the identity Prometheus scrapes with (Istio's certificates mounted into Prometheus),
    # admitted to GET /metrics and nothing else, e.g. cluster.local/ns/observability/sa/kube-prom-stack-kube-prome-prometheus.
    mesh_principal: Principal | None = Field(
        default=None, description="Prometheus's Istio identity, admitted to GET /metrics; required with kubeflow.enabled."
    )

    @model_validator(mode="after")
    def _nothing_set_while_disabled(self) -> MonitoringConfig:
        return only_when_enabled(self, "monitoring")
