"""Who may call MLflow, and the prod route: what `pulumi up` declares (rendered; tests/e2e/test_auth.py runs it)."""

from __future__ import annotations

import json

import pytest

from mlops_platform.tracking import auth, ingress
from mlops_platform.tracking.settings import MLFLOW_IMAGE
from tools.testing.plans import NS, container, env_of, generated_secrets, refused, run_with, strings


def server(plan) -> dict:
    return container(plan.k8s("Deployment", "mlflow", NS), "mlflow")


def test_prod_defaults_to_basic_auth_with_a_generated_admin_password_kept_secret(prod):
    c = server(prod)
    assert c["args"][c["args"].index("--app-name") + 1] == "basic-auth"
    # MLflow's published -full image carries basic-auth (its auth extra): nothing to build for prod.
    assert c["image"] == MLFLOW_IMAGE
    env = env_of(c)
    assert env["MLFLOW_AUTH_ADMIN_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "mlflow-auth", "key": "admin-password"}
    assert env["MLFLOW_FLASK_SERVER_SECRET_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "mlflow-auth", "key": "flask-secret-key"}
    assert env["MLFLOW_AUTH_CONFIG_PATH"]["value"] == f"{auth.AUTH_CONFIG_DIR}/{auth.AUTH_CONFIG_FILE}"
    assert "trackingAdminPassword" in prod.secret_outputs and prod.outputs["trackingAuth"] == "basic"
    password = prod.outputs["trackingAdminPassword"]
    assert password in generated_secrets(prod)
    # The password reaches the pod only through the Secret: never an arg, a literal env value or an annotation.
    deployment = prod.k8s("Deployment", "mlflow", NS).inputs
    assert not any(password in s for s in strings(deployment))


def test_basic_auth_keeps_its_users_in_the_same_postgresql_through_a_mounted_secret_file(prod):
    secret = prod.k8s("Secret", "mlflow-auth", NS).inputs["stringData"]
    ini = secret[auth.AUTH_CONFIG_FILE]
    assert f"database_uri = {prod.k8s('Secret', 'mlflow-db', NS).inputs['stringData']['uri']}\n" in ini
    assert "default_permission = NO_PERMISSIONS" in ini and "admin_password" not in ini
    pod = prod.k8s("Deployment", "mlflow", NS).pod_spec()
    (volume,) = [v for v in pod["volumes"] if v["name"] == "auth-config"]
    assert volume["secret"]["secretName"] == "mlflow-auth"
    assert volume["secret"]["items"] == [{"key": auth.AUTH_CONFIG_FILE, "path": auth.AUTH_CONFIG_FILE}]
    assert {"name": "auth-config", "mountPath": auth.AUTH_CONFIG_DIR, "readOnly": True} in server(prod)["volumeMounts"]


def test_the_prod_ingress_routes_only_the_prefix_over_tls_to_an_authenticating_server(prod):
    ing = prod.k8s("Ingress", "mlflow", NS).inputs
    assert ing["spec"]["ingressClassName"] == "nginx"
    assert ing["spec"]["tls"] == [{"hosts": ["mlflow.example.com"], "secretName": "mlflow-tls"}]
    (rule,) = ing["spec"]["rules"]
    assert rule["host"] == "mlflow.example.com"
    (path,) = rule["http"]["paths"]
    assert path["path"] == "/mlflow/" and path["pathType"] == "Prefix"
    assert path["backend"]["service"] == {"name": "mlflow", "port": {"number": 5000}}
    annotations = ing["metadata"]["annotations"]
    assert annotations["cert-manager.io/cluster-issuer"] == "letsencrypt"
    assert annotations["nginx.ingress.kubernetes.io/ssl-redirect"] == "true"
    assert annotations[ingress.AUTH_ANNOTATION] == "basic"


def test_an_existing_tls_secret_and_the_aws_load_balancer_controller():
    plan = run_with(
        "prod",
        tracking=json.dumps({"externalHost": "mlflow.example.com", "ingress": {"className": "alb", "tls": {"secretName": "mlflow-cert"}}}),
    )
    ing = plan.k8s("Ingress", "mlflow", NS).inputs
    assert ing["spec"]["ingressClassName"] == "alb"
    assert ing["spec"]["tls"][0]["secretName"] == "mlflow-cert"
    annotations = ing["metadata"]["annotations"]
    assert not any(k.startswith("cert-manager.io/") for k in annotations)
    assert annotations["alb.ingress.kubernetes.io/healthcheck-path"] == "/mlflow/health"


ECR_IMAGE = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/mlops-platform/mlflow:3.17.2-k8s2.1.0"


def test_prod_with_kubernetes_auth_needs_the_image_make_image_pushed():
    message, declared = refused("prod", tracking=json.dumps({"externalHost": "mlflow.example.com", "auth": "kubernetes"}))
    assert message.startswith("mlops-platform:tracking.image: is required with tracking.auth kubernetes on eks:")
    assert "make image REGISTRY=" in message and "\n" not in message and declared == []


def test_prod_with_kubernetes_auth_checks_every_token_against_the_tracking_namespace():
    plan = run_with("prod", tracking=json.dumps({"externalHost": "mlflow.example.com", "auth": "kubernetes", "image": ECR_IMAGE}))
    c = server(plan)
    assert c["image"] == ECR_IMAGE
    assert c["args"][-2:] == ["--app-name", "kubernetes-auth"] and "--enable-workspaces" not in c["args"]
    env = {k: v.get("value") for k, v in env_of(c).items()}
    assert env["MLFLOW_K8S_AUTH_WORKSPACES_ENABLED"] == "false" and env["MLFLOW_K8S_AUTH_NAMESPACE"] == NS
    assert not plan.kinds("ClusterRole")
    with pytest.raises(LookupError):
        plan.k8s("Secret", "mlflow-auth", NS)


def test_no_route_without_authentication_is_accepted():
    message, declared = refused("prod", tracking=json.dumps({"externalHost": "mlflow.example.com", "auth": "none"}))
    assert message.startswith("mlops-platform:tracking.auth: 'none' with tracking.externalHost would route the internet")
    assert declared == []
    message, _ = refused("prod", tracking=json.dumps({"externalHost": "mlflow.example.com", "ingress": {"tls": {}}}))
    assert message.startswith("mlops-platform:tracking.ingress.tls.issuer: and secretName: set exactly one")


def test_without_a_route_or_kubeflow_the_official_image_runs_without_an_auth_app():
    plan = run_with("prod", tracking=json.dumps({"replicas": 2}))
    c = server(plan)
    assert "--app-name" not in c["args"] and c["image"] == MLFLOW_IMAGE
    assert not plan.kinds("Ingress") and plan.outputs["trackingAdminPassword"] is None
