"""The browser server as declared: who names the user, where MLflow listens, and who may reach it (rendered).

The behaviour behind it (tokens verified, users authorized by RBAC, forged headers refused) runs on the real
API server in tests/cluster/test_browser_access.py; what the gateway does is pinned in tests/e2e/test_kubeflow_gateway.py.
"""

from __future__ import annotations

import json

import yaml

from mlops_platform.tracking import browser
from tools.testing.plans import NS, container, env_of, refused, run_with

GATEWAY_SA = "cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account"


def ui(plan):
    return plan.k8s("Deployment", "mlflow-ui", NS)


def settings(plan) -> dict:
    return yaml.safe_load(plan.k8s("ConfigMap", "mlflow-ui", NS).inputs["data"]["oauth2-proxy.yaml"])


def test_mlflow_in_the_browser_server_has_no_port_only_a_socket_its_proxy_shares(dev):
    pod = ui(dev).pod_spec()
    proxy, mlflow = container(ui(dev), "auth-proxy"), container(ui(dev), "mlflow")
    assert [c["name"] for c in pod["containers"]] == ["auth-proxy", "mlflow"]
    assert "ports" not in mlflow
    args = mlflow["args"]
    assert args[args.index("--uvicorn-opts") + 1] == f"--uds {browser.SOCKET}"
    assert args[args.index("--host") + 1] == "127.0.0.1"
    shared = {m["name"] for m in mlflow["volumeMounts"]} & {m["name"] for m in proxy["volumeMounts"]}
    assert shared == {"server-socket"}
    (socket,) = [v for v in pod["volumes"] if v["name"] == "server-socket"]
    assert socket["emptyDir"] == {"medium": "Memory", "sizeLimit": "1Mi"}
    assert settings(dev)["upstreamConfig"]["upstreams"][-1]["uri"] == f"unix://{browser.SOCKET}"
    # Its probes go over the socket too: nothing listens where a probe could reach it by TCP.
    assert mlflow["readinessProbe"]["exec"]["command"][-2:] == [browser.SOCKET, "/mlflow/health"]


def test_the_proxy_passes_only_the_verified_tokens_email_and_strips_the_groups_header(dev):
    s = settings(dev)
    (provider,) = s["providers"]
    assert provider["oidcConfig"]["issuerURL"] == "http://dex.auth.svc.cluster.local:5556/dex"
    assert provider["clientID"] == "kubeflow-oidc-authservice" and provider["oidcConfig"]["emailClaim"] == "email"
    assert s["injectRequestHeaders"] == [
        {"name": "X-Forwarded-Email", "values": [{"claimSource": {"claim": "email"}}]},
        {"name": "X-Forwarded-Groups"},
    ]
    env = {k: v.get("value") for k, v in env_of(container(ui(dev), "mlflow")).items()}
    assert env["MLFLOW_K8S_AUTH_AUTHORIZATION_MODE"] == "subject_access_review"
    assert (env["MLFLOW_K8S_AUTH_REMOTE_USER_HEADER"], env["MLFLOW_K8S_AUTH_REMOTE_GROUPS_HEADER"]) == (
        "X-Forwarded-Email",
        "X-Forwarded-Groups",
    )
    args = container(ui(dev), "auth-proxy")["args"]
    # Bearer tokens only, 401 (no login redirect) without one; only the health check is open.
    assert {"--skip-jwt-bearer-tokens=true", "--api-route=^/", "--skip-auth-route=GET=^/mlflow/health$"} <= set(args)


def test_the_proxys_secrets_come_from_pulumi_random_through_a_secret_never_the_config_map(dev):
    secret = dev.k8s("Secret", "mlflow-ui-proxy", NS)
    assert set(secret.inputs["stringData"]) == {"client-secret", "cookie-secret"}
    assert dev.of_type("random:index/randomPassword:RandomPassword")
    cookie = env_of(container(ui(dev), "auth-proxy"))["OAUTH2_PROXY_COOKIE_SECRET"]
    assert cookie["valueFrom"]["secretKeyRef"] == {"name": "mlflow-ui-proxy", "key": "cookie-secret"}
    config = json.dumps(dev.k8s("ConfigMap", "mlflow-ui", NS).inputs)
    for value in secret.inputs["stringData"].values():
        assert value not in config
    (mounted,) = [v for v in ui(dev).pod_spec()["volumes"] if v["name"] == "proxy-secret"]
    assert mounted["secret"]["defaultMode"] == 0o440


def test_only_the_ingress_gateway_may_reach_the_browser_server(dev):
    labels = ui(dev).inputs["spec"]["selector"]["matchLabels"]
    policy = dev.k8s("AuthorizationPolicy", "mlflow-ui", NS).inputs["spec"]
    assert policy == {
        "action": "ALLOW",
        "selector": {"matchLabels": labels},
        "rules": [{"from": [{"source": {"principals": [GATEWAY_SA]}}]}],
    }
    netpol = dev.k8s("NetworkPolicy", "mlflow-ui", NS).inputs["spec"]
    assert netpol["podSelector"] == {"matchLabels": labels} and netpol["policyTypes"] == ["Ingress"]
    assert netpol["ingress"] == [
        {
            "from": [
                {
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "istio-system"}},
                    "podSelector": {"matchLabels": {"app": "istio-ingressgateway", "istio": "ingressgateway"}},
                }
            ],
            "ports": [{"port": 4180, "protocol": "TCP"}],
        }
    ]
    # The tracking server's own policy no longer admits the gateway: its traffic goes to the browser server.
    token_server = dev.k8s("AuthorizationPolicy", "mlflow", NS).inputs["spec"]["rules"][0]["from"][0]["source"]["principals"]
    assert GATEWAY_SA not in token_server


def test_the_gateways_namespace_and_labels_follow_the_config():
    plan = run_with(
        "dev",
        kubeflow=json.dumps(
            {
                "enabled": True,
                "profiles": ["team-a"],
                "ingressPrincipal": "cluster.local/ns/gateways/sa/public",
                "browser": {"gatewayLabels": {"app": "public-gateway"}, "replicas": 2},
            }
        ),
    )
    peer = plan.k8s("NetworkPolicy", "mlflow-ui", NS).inputs["spec"]["ingress"][0]["from"][0]
    assert peer["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "gateways"}
    assert peer["podSelector"]["matchLabels"] == {"app": "public-gateway"}
    assert ui(plan).inputs["spec"]["replicas"] == 2


def test_the_browser_server_shares_the_tracking_servers_account_database_store_and_migration(dev):
    server, browser_server = dev.k8s("Deployment", "mlflow", NS), ui(dev)
    assert browser_server.pod_spec()["serviceAccountName"] == server.pod_spec()["serviceAccountName"]
    shared = ("MLFLOW_BACKEND_STORE_URI", "MLFLOW_S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID")
    assert {k: env_of(container(server, "mlflow"))[k] for k in shared} == {
        k: env_of(container(browser_server, "mlflow"))[k] for k in shared
    }
    assert set(server.dependencies) <= set(browser_server.dependencies)
    # The database's and MinIO's NetworkPolicies admit it by their client labels.
    labels = browser_server.inputs["spec"]["template"]["metadata"]["labels"]
    assert labels["mlops-platform/database-client"] == "true" and labels["mlops-platform/minio-client"] == "true"
    review = dev.k8s("ClusterRole", "mlflow-access-reviews").inputs["rules"]
    assert review == [{"apiGroups": ["authorization.k8s.io"], "resources": ["subjectaccessreviews"], "verbs": ["create"]}]


def test_without_workspaces_or_when_switched_off_there_is_no_browser_server():
    for kubeflow in ({"enabled": True, "profiles": ["team-a"], "workspaces": False, "dashboardTab": True}, {"enabled": False}):
        plan = run_with(
            "dev", kubeflow=json.dumps(kubeflow), tracking=json.dumps({"auth": "kubernetes"}), monitoring=json.dumps({"enabled": False})
        )
        assert not [d for d in plan.kinds("Deployment") if d.k8s_name == "mlflow-ui"]


def test_browser_settings_that_cannot_take_effect_are_refused():
    message, declared = refused(
        "dev", kubeflow=json.dumps({"enabled": True, "profiles": ["team-a"], "workspaces": False, "browser": {"replicas": 2}})
    )
    assert message.startswith("mlops-platform:kubeflow.browser.replicas: set, but kubeflow.workspaces is false") and not declared
    message, _ = refused("dev", kubeflow=json.dumps({"enabled": True, "profiles": ["team-a"], "browser": {"issuer": "dex"}}))
    assert message.startswith("mlops-platform:kubeflow.browser.issuer: 'dex' is not valid; allowed: the issuer URL")
