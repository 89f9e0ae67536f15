"""Only Kubeflow's ingress gateway reaches the browser server; notebooks reach the tracking server, and no forged header helps.

Decided from the declared NetworkPolicies and AuthorizationPolicies (and Kubeflow's global-deny-all) by the
model in access_model.py, since neither a CNI nor Istio runs here. The model itself is pinned first, so that
a policy it cannot read fails instead of passing.
"""

from __future__ import annotations

import pytest

from tests.kubeflow.access_model import Pod, istio_allows, network_admits, workload_pod
from tools.testing.cluster_fixtures import DEFAULT_PROFILE
from tools.testing.plans import NS

GATEWAY = Pod(
    "istio-system",
    {"app": "istio-ingressgateway", "istio": "ingressgateway"},
    "cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account",
)
# A notebook that ticked MLflow in the form: the PodDefault's labels (mlflow, and MinIO's client label on dev).
NOTEBOOK = Pod(
    DEFAULT_PROFILE,
    {"mlflow": "true", "mlops-platform/minio-client": "true", "notebook-name": "nb"},
    f"cluster.local/ns/{DEFAULT_PROFILE}/sa/default-editor",
)
OTHER_POD = Pod("default", {"app": "curious"}, "cluster.local/ns/default/sa/default")
NO_SIDECAR = Pod(DEFAULT_PROFILE, {"mlflow": "true"}, None)
FORGED = {"kubeflow-userid": "admin@example.com", "kubeflow-groups": "system:masters"}


@pytest.fixture(scope="module")
def servers(dev):
    return (
        workload_pod(dev.k8s("Deployment", "mlflow-ui", NS), "cluster.local/ns/mlflow/sa/mlflow"),
        workload_pod(dev.k8s("Deployment", "mlflow", NS), "cluster.local/ns/mlflow/sa/mlflow"),
    )


def test_only_the_gateway_reaches_the_browser_servers_port(dev, servers):
    ui, _ = servers
    assert network_admits(dev, GATEWAY, ui, 4180) and istio_allows(dev, GATEWAY, ui, headers=FORGED)
    for client in (NOTEBOOK, OTHER_POD, NO_SIDECAR):
        assert not network_admits(dev, client, ui, 4180), client
        assert not istio_allows(dev, client, ui, headers=FORGED), client
        assert not istio_allows(dev, client, ui), client
    # No other port of the pod is open: MLflow has none, and the policy names only the proxy's.
    assert not network_admits(dev, GATEWAY, ui, 5000)


def test_notebooks_reach_the_tracking_server_but_not_with_identity_headers(dev, servers):
    _, tracking = servers
    assert network_admits(dev, NOTEBOOK, tracking, 5000) and istio_allows(dev, NOTEBOOK, tracking, method="POST", path="/mlflow/api/x")
    for header in FORGED:
        assert not istio_allows(dev, NOTEBOOK, tracking, headers={header: "x"}), header
    # The gateway's traffic goes to the browser server now: the tracking server does not admit it.
    assert not istio_allows(dev, GATEWAY, tracking)
    assert not istio_allows(dev, OTHER_POD, tracking) and not istio_allows(dev, NO_SIDECAR, tracking)


def test_the_databases_and_minio_admit_the_mlflow_servers_and_their_jobs_only(dev, servers):
    ui, tracking = servers
    postgres = workload_pod(dev.k8s("StatefulSet", "mlflow-postgresql", NS))
    minio = workload_pod(dev.k8s("Deployment", "mlflow-minio", NS))
    assert network_admits(dev, tracking, postgres, 5432) and network_admits(dev, ui, postgres, 5432)
    assert network_admits(dev, ui, minio, 9000)
    assert not network_admits(dev, NOTEBOOK, postgres, 5432) and not network_admits(dev, GATEWAY, postgres, 5432)


def test_the_model_reads_policies_as_kubernetes_and_istio_do(dev):
    """Controls: the model admits what an empty policy set admits and denies what global-deny-all denies."""
    ns_pod = Pod("nowhere", {"x": "y"}, "cluster.local/ns/nowhere/sa/a")
    assert network_admits(dev, OTHER_POD, ns_pod, 80)  # no NetworkPolicy selects it
    assert not istio_allows(dev, OTHER_POD, ns_pod)  # Kubeflow's global-deny-all applies mesh-wide
