"""Monitoring: the server exposes metrics, Prometheus Operator objects scrape and alert on them, Grafana gets a dashboard."""

from __future__ import annotations

import json
import re

from mlops_platform.contracts import METRICS_PATH
from tools.testing.plans import NS, container, refused, run_with

COMPONENT = "mlops:index:Monitoring"
PROMETHEUS = "cluster.local/ns/observability/sa/kube-prom-stack-kube-prome-prometheus"

# PromQL function and keyword names, and the label names the queries use: everything else in an expression is a metric.
PROMQL_WORDS = {"sum", "rate", "by", "histogram_quantile", "absent", "count", "le", "status", "pod", "mlflow_version", "job", "namespace"}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (label matchers, strings and durations removed)."""
    bare = re.sub(r"\{[^}]*\}", "", re.sub(r'"[^"]*"', "", expr))
    bare = re.sub(r"\[[^\]]*\]", "", bare)
    return {w for w in re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", bare) if w not in PROMQL_WORDS}


def dashboard_expressions(plan) -> list[str]:
    config_map = plan.k8s("ConfigMap", "mlflow-dashboard", "observability")
    board = json.loads(config_map.inputs["data"]["mlflow.json"])
    return [t["expr"] for panel in board["panels"] for t in panel["targets"]]


def rule_expressions(plan) -> list[str]:
    rule = plan.k8s("PrometheusRule", "mlflow", NS)
    return [r["expr"] for group in rule.inputs["spec"]["groups"] for r in group["rules"]]


def queried_metrics(plan) -> set[str]:
    """Every metric the dashboard and the alerts read: what the e2e finds in a real scrape."""
    return {m for expr in dashboard_expressions(plan) + rule_expressions(plan) for m in metric_names(expr)}


def test_metric_names_are_read_from_expressions():
    assert metric_names('sum by (le) (rate(a_bucket{job="x",status=~"5.."}[5m])) / absent(up{job="y"} == 1)') == {"a_bucket", "up"}


def test_the_server_exposes_metrics_to_a_scratch_dir_and_accepts_scrapes_by_pod_address(dev):
    deployment = dev.k8s("Deployment", "mlflow", NS)
    server = container(deployment, "mlflow")
    args = server["args"]
    directory = args[args.index("--expose-prometheus") + 1]
    mounts = {m["mountPath"]: m["name"] for m in server["volumeMounts"]}
    volumes = {v["name"]: v for v in deployment.pod_spec()["volumes"]}
    assert "emptyDir" in volumes[mounts[directory]]
    assert server["securityContext"]["readOnlyRootFilesystem"] is True
    hosts = args[args.index("--allowed-hosts") + 1].split(",")
    # Prometheus sends Host: <pod IP>:5000; only the server port, only private addresses.
    assert {"10.*:5000", "192.168.*:5000", "172.16.*:5000", "172.31.*:5000"} <= set(hosts)
    assert not [h for h in hosts if h in ("*", "*:5000", "10.*", "10.*:*")]


def test_servicemonitor_scrapes_the_tracking_service_port_on_the_metrics_path(dev):
    monitor = dev.k8s("ServiceMonitor", "mlflow", NS)
    service = dev.k8s("Service", "mlflow", NS)
    spec = monitor.inputs["spec"]
    assert spec["selector"]["matchLabels"].items() <= service.inputs["metadata"]["labels"].items()
    # Only the tracking Service of the namespace matches (the database and MinIO Services do not).
    matching = [
        s.k8s_name for s in dev.kinds("Service") if spec["selector"]["matchLabels"].items() <= s.inputs["metadata"]["labels"].items()
    ]
    assert matching == ["mlflow"]
    assert spec["namespaceSelector"] == {"matchNames": [NS]}
    assert [(e["port"], e["path"]) for e in spec["endpoints"]] == [(service.inputs["spec"]["ports"][0]["name"], METRICS_PATH)]
    assert monitor.inputs["metadata"]["labels"]["release"] == "kube-prom-stack"


def test_alerts_cover_down_errors_and_latency_with_configured_thresholds():
    plan = run_with(
        "dev",
        monitoring=json.dumps(
            {"enabled": True, "meshPrincipal": PROMETHEUS, "alerts": {"errorRatio": 0.2, "p95LatencySeconds": 4, "for": "10m"}}
        ),
    )
    rules = {r["alert"]: r for g in plan.k8s("PrometheusRule", "mlflow", NS).inputs["spec"]["groups"] for r in g["rules"]}
    assert set(rules) == {"MLflowServerDown", "MLflowHighErrorRatio", "MLflowSlowRequests"}
    assert rules["MLflowHighErrorRatio"]["expr"].endswith("> 0.2")
    assert rules["MLflowSlowRequests"]["expr"].endswith("> 4.0")
    assert rules["MLflowServerDown"]["labels"]["severity"] == "critical"
    assert {r["for"] for r in rules.values()} == {"10m"}


def test_every_query_selects_the_tracking_servers_scrape_job(dev):
    for expr in dashboard_expressions(dev) + rule_expressions(dev):
        for name in metric_names(expr):
            assert re.search(rf'{name}\{{job="mlflow",namespace="{NS}"', expr), expr


def test_dashboard_is_labelled_for_grafanas_sidecar_and_shows_requests_errors_and_latency(dev):
    config_map = dev.k8s("ConfigMap", "mlflow-dashboard", "observability")
    assert config_map.inputs["metadata"]["labels"]["grafana_dashboard"] == "1"
    board = json.loads(config_map.inputs["data"]["mlflow.json"])
    titles = " ".join(p["title"] for p in board["panels"])
    for word in ("Requests", "errors", "Latency", "Replicas"):
        assert word in titles
    assert len({p["id"] for p in board["panels"]}) == len(board["panels"])
    assert queried_metrics(dev) == {
        "up",
        "mlflow_http_request_total",
        "mlflow_http_request_duration_seconds_bucket",
        "mlflow_http_request_duration_seconds_count",
    }


def test_monitoring_off_declares_nothing_and_leaves_the_server_as_it_was():
    plan = run_with("dev", monitoring=json.dumps({"enabled": False}))
    assert plan.of_type(COMPONENT) == []
    assert plan.kinds("ServiceMonitor") == plan.kinds("PrometheusRule") == []
    args = container(plan.k8s("Deployment", "mlflow", NS), "mlflow")["args"]
    assert "--expose-prometheus" not in args
    assert not [h for h in args[args.index("--allowed-hosts") + 1].split(",") if h.endswith(":5000")]


def test_in_kubeflows_mesh_prometheus_scrapes_with_its_istio_identity_admitted_to_get_metrics_only(dev):
    endpoint = dev.k8s("ServiceMonitor", "mlflow", NS).inputs["spec"]["endpoints"][0]
    assert endpoint["scheme"] == "https"
    assert {k: v.rsplit("/", 1)[-1] for k, v in endpoint["tlsConfig"].items() if k.endswith("File")} == {
        "caFile": "root-cert.pem",
        "certFile": "cert-chain.pem",
        "keyFile": "key.pem",
    }
    rules = dev.k8s("AuthorizationPolicy", "mlflow", NS).inputs["spec"]["rules"]
    scraper = [r for r in rules if PROMETHEUS in r["from"][0]["source"]["principals"]]
    assert scraper == [
        {"from": [{"source": {"principals": [PROMETHEUS]}}], "to": [{"operation": {"methods": ["GET"], "paths": ["/metrics"]}}]}
    ]
    # Nowhere else: not among the identities admitted to the whole API.
    assert all(PROMETHEUS not in r["from"][0]["source"]["principals"] for r in rules if "to" not in r)


def test_without_kubeflow_the_scrape_is_plain_http_and_there_is_no_mesh_principal():
    plan = run_with(
        "dev", kubeflow=json.dumps({"enabled": False}), serving=json.dumps({"enabled": False}), monitoring=json.dumps({"enabled": True})
    )
    endpoint = plan.k8s("ServiceMonitor", "mlflow", NS).inputs["spec"]["endpoints"][0]
    assert "scheme" not in endpoint and "tlsConfig" not in endpoint


def test_monitoring_in_kubeflows_mesh_without_a_scraper_identity_is_refused():
    message, declared = refused("dev", monitoring=json.dumps({"enabled": True}))
    assert message.startswith("mlops-platform:monitoring.meshPrincipal: is required with kubeflow.enabled")
    assert declared == []


def test_monitoring_behind_basic_auth_is_refused_because_every_scrape_would_be():
    """MLflow's basic-auth app asks a login for /metrics; Prometheus would only ever be answered 401."""
    message, declared = refused(
        "prod", tracking=json.dumps({"externalHost": "mlflow.example.com", "auth": "basic"}), monitoring=json.dumps({"enabled": True})
    )
    assert message == (
        "mlops-platform:monitoring.enabled: true, but tracking.auth is basic, which asks a login for /metrics too, so every scrape "
        "would be refused; allowed: tracking.auth kubernetes, or monitoring.enabled false"
    )
    assert declared == []
