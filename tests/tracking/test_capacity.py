"""How much the tracking server takes on: scratch space, the clients' large-file path, database pool, scale-out."""

from __future__ import annotations

import json

import pytest

from mlops_platform.settings_base import quantity_bytes
from tools.testing.plans import NS, container, env_of, mlflow, refused, run_with

PROFILE = "kubeflow-user-example-com"


def volumes(plan) -> dict:
    return {v["name"]: v for v in mlflow(plan).pod_spec()["volumes"]}


def scratch_volume(plan, name: str = "mlflow") -> dict:
    mounts = [m for m in container(mlflow(plan), name)["volumeMounts"] if m["mountPath"] == "/tmp"]
    assert len(mounts) == 1
    return volumes(plan)[mounts[0]["name"]]


def poddefault_env(plan) -> dict[str, str]:
    spec = plan.k8s("PodDefault", "mlflow", PROFILE).inputs["spec"]
    return {e["name"]: e["value"] for e in spec["env"] if "value" in e}


# -- scratch: a full /tmp fails one request, never evicts the pod ------------------------------


def test_dev_scratch_is_a_tmpfs_of_the_declared_size_inside_the_memory_limit(dev):
    volume = scratch_volume(dev)
    # A disk-backed emptyDir over its sizeLimit gets the pod evicted; a memory-backed one is a tmpfs of that size (ENOSPC).
    assert volume["emptyDir"] == {"medium": "Memory", "sizeLimit": "512Mi"}
    limit = container(mlflow(dev), "mlflow")["resources"]["limits"]["memory"]
    assert quantity_bytes(limit) - quantity_bytes("512Mi") >= 1024 * 2**20


def test_prod_scratch_is_a_per_pod_volume_of_the_declared_size(prod):
    volume = scratch_volume(prod)
    assert "emptyDir" not in volume
    claim = volume["ephemeral"]["volumeClaimTemplate"]["spec"]
    assert claim == {"accessModes": ["ReadWriteOnce"], "storageClassName": "gp3", "resources": {"requests": {"storage": "4Gi"}}}


def test_scratch_size_medium_and_class_come_from_config():
    plan = run_with("dev", tracking=json.dumps({"scratch": {"medium": "volume", "size": "8Gi", "storageClass": "fast-ssd"}}))
    claim = scratch_volume(plan)["ephemeral"]["volumeClaimTemplate"]["spec"]
    assert claim["storageClassName"] == "fast-ssd" and claim["resources"]["requests"]["storage"] == "8Gi"


# -- clients move large files straight to the store -----------------------------------------------


def test_notebooks_send_files_over_a_quarter_of_the_scratch_space_straight_to_the_store(dev):
    env = poddefault_env(dev)
    assert env["MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD"] == "true"
    assert env["MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD"] == "true"
    assert int(env["MLFLOW_MULTIPART_UPLOAD_MINIMUM_FILE_SIZE"]) == 100 * 2**20  # min(100 MiB, 512Mi / 4)
    small = run_with("dev", tracking=json.dumps({"scratch": {"size": "256Mi"}}))
    assert int(poddefault_env(small)["MLFLOW_MULTIPART_UPLOAD_MINIMUM_FILE_SIZE"]) == 64 * 2**20


def test_presigned_urls_name_a_store_the_notebook_can_reach(dev):
    """The server signs URLs for its own S3 endpoint: the MinIO Service, whose policy admits the notebook's label."""
    server_endpoint = env_of(container(mlflow(dev), "mlflow"))["MLFLOW_S3_ENDPOINT_URL"]["value"]
    assert server_endpoint == "http://mlflow-minio.mlflow.svc.cluster.local:9000"
    poddefault = dev.k8s("PodDefault", "mlflow", PROFILE).inputs["spec"]
    labels = poddefault["labels"]
    ingress = dev.k8s("NetworkPolicy", "mlflow-minio", NS).inputs["spec"]["ingress"]
    admitted = [
        p["podSelector"]["matchLabels"] for rule in ingress for p in rule["from"] if "namespaceSelector" in p and "podSelector" in p
    ]
    assert any(selector.items() <= labels.items() for selector in admitted)
    egress = dev.k8s("Sidecar", "mlflow-egress", PROFILE).inputs["spec"]["egress"][0]["hosts"]
    assert f"{NS}/*" in egress  # MinIO's namespace, through the profile's Istio sidecar


def test_route_and_clients_wait_as_long_as_each_other(dev):
    route = next(r for r in dev.k8s("VirtualService", "mlflow", NS).inputs["spec"]["http"] if "route" in r)
    assert route["timeout"] == "600s"
    assert poddefault_env(dev)["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "600"
    longer = run_with("dev", tracking=json.dumps({"requestTimeoutSeconds": 3600}))
    assert next(r for r in longer.k8s("VirtualService", "mlflow", NS).inputs["spec"]["http"] if "route" in r)["timeout"] == "3600s"
    assert poddefault_env(longer)["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "3600"


# -- database pool --------------------------------------------------------------------------------


def test_server_pool_is_declared(dev):
    env = env_of(container(mlflow(dev), "mlflow"))
    assert env["MLFLOW_SQLALCHEMYSTORE_POOL_SIZE"]["value"] == "5"
    assert env["MLFLOW_SQLALCHEMYSTORE_MAX_OVERFLOW"]["value"] == "10"


def test_postgresql_admits_the_connections_the_pools_may_open(dev):
    db = container(dev.k8s("StatefulSet", "mlflow-postgresql", NS), "postgresql")
    assert db["args"] == ["-c", "max_connections=200"]
    assert "command" not in db  # the image's entrypoint passes '-c' settings to postgres
    raised = run_with("dev", database=json.dumps({"storageSize": "5Gi", "maxConnections": 400}))
    assert container(raised.k8s("StatefulSet", "mlflow-postgresql", NS), "postgresql")["args"] == ["-c", "max_connections=400"]


# -- scale out -------------------------------------------------------------------------------------


def test_prod_autoscales_on_cpu_and_leaves_the_replica_count_to_the_autoscaler(prod):
    hpa = prod.k8s("HorizontalPodAutoscaler", "mlflow", NS).inputs["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "mlflow"}
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 3)
    assert hpa["metrics"] == [
        {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}
    ]
    assert "replicas" not in mlflow(prod).inputs["spec"]


def test_disruption_budget_whenever_two_pods_always_run(dev, prod):
    assert not dev.kinds("PodDisruptionBudget") and not dev.kinds("HorizontalPodAutoscaler")
    assert prod.k8s("PodDisruptionBudget", "mlflow", NS).inputs["spec"]["minAvailable"] == 1
    fixed = run_with("dev", tracking=json.dumps({"replicas": 2}))
    assert fixed.k8s("PodDisruptionBudget", "mlflow", NS) and mlflow(fixed).inputs["spec"]["replicas"] == 2
    single = run_with("dev", tracking=json.dumps({"autoscaling": {"enabled": True, "minReplicas": 1, "maxReplicas": 2}}))
    assert not single.kinds("PodDisruptionBudget")  # it would block every node drain with one pod


def test_basic_auths_own_engine_counts_against_postgresqls_connections():
    """MLflow's basic-auth app opens a third engine per worker on the same database, with the same pool settings."""
    basic = {"auth": "basic", "externalHost": "mlflow.example.com", "replicas": 3}
    # The Kubernetes authorization app (dev's default) opens no engine of its own: with the browser server's pod,
    # (2 + 1) x 2 x 2 x 15 = 180 of 190.
    assert run_with("dev", tracking=json.dumps({"replicas": 2})).k8s("Deployment", "mlflow", NS).inputs["spec"]["replicas"] == 2
    message, declared = refused(
        "dev", tracking=json.dumps(basic), kubeflow=json.dumps({"enabled": False}), monitoring=json.dumps({"enabled": False})
    )
    assert message.startswith(
        "mlops-platform:tracking.dbPoolSize: lets the MLflow servers open up to 270 PostgreSQL connections "
        "(pods 3 x workers 2 x 3 engines x (dbPoolSize 5 + dbMaxOverflow 10)), more than the 190"
    ), message
    assert not declared


@pytest.mark.parametrize(
    "tracking, expected",
    [
        (
            {"replicas": 3, "autoscaling": {"enabled": True}},
            "mlops-platform:tracking.replicas: set, but tracking.autoscaling.enabled is true and the autoscaler owns the replica count; "
            "allowed: tracking.autoscaling.minReplicas and maxReplicas, or tracking.replicas left out",
        ),
        (
            {"autoscaling": {"enabled": True, "minReplicas": 5, "maxReplicas": 3}},
            "mlops-platform:tracking.autoscaling.minReplicas: 5 exceeds maxReplicas 3",
        ),
        (
            {"autoscaling": {"maxReplicas": 6}},
            "mlops-platform:tracking.autoscaling.maxReplicas: set, but tracking.autoscaling.enabled is false",
        ),
        (
            {"scratch": {"storageClass": "gp3"}},
            "mlops-platform:tracking.scratch.storageClass: set, but tracking.scratch.medium is memory (a tmpfs)",
        ),
        (
            {"scratch": {"size": "2Gi"}},
            "mlops-platform:tracking.scratch.size: 2Gi in memory leaves 0Mi of tracking.resources.memoryLimit 2Gi to the server, "
            "which needs 1024Mi",
        ),
        (
            # Three tracking server pods and the browser server's one.
            {"replicas": 3},
            "mlops-platform:tracking.dbPoolSize: lets the MLflow servers open up to 240 PostgreSQL connections "
            "(pods 4 x workers 2 x 2 engines x (dbPoolSize 5 + dbMaxOverflow 10)), more than the 190 that database.maxConnections 200 "
            "leaves; allowed: fewer pods or workers, a smaller pool, or a larger database.maxConnections",
        ),
        ({"dbMaxOverflow": 0}, "mlops-platform:tracking.dbMaxOverflow: 0 is not allowed; allowed: greater than or equal to 1"),
    ],
)
def test_capacity_settings_that_cannot_hold_are_refused_in_one_line(tracking, expected):
    message, declared = refused("dev", tracking=json.dumps(tracking))
    assert message.startswith(expected), message
    assert "\n" not in message and not declared
