"""Workspaces per Kubeflow profile: what `pulumi up` declares for MLflow's Kubernetes authorization (rendered).

The behaviour behind these objects (tokens, RBAC decisions, refused cross-tenant calls) runs
against a real API server in tests/cluster/test_tenancy.py.
"""

from __future__ import annotations

import json

import pytest

from mlops_platform.contracts import REGISTRY_READER_ROLE
from mlops_platform.kubeflow import tenancy
from mlops_platform.serving.stack import REGISTRY_READER
from mlops_platform.tracking import auth
from tools.testing.cluster_fixtures import KUBEFLOW_ROLES
from tools.testing.plans import NS, container, env_of, refused, run_with

TEAMS = ["team-a", "team-b"]
GATEWAY_SA = "cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account"


def kf(**values) -> str:
    return json.dumps({"enabled": True, "profiles": TEAMS, **values})


@pytest.fixture(scope="module")
def teams():
    return run_with("dev", kubeflow=kf(), serving=json.dumps({"enabled": True, "namespaces": ["team-a"]}))


@pytest.fixture(scope="module")
def shared():
    """The Kubeflow integration with workspaces switched off: one shared MLflow for every profile."""
    return run_with("dev", kubeflow=kf(workspaces=False))


def server(plan) -> dict:
    return container(plan.k8s("Deployment", "mlflow", NS), "mlflow")


def test_the_server_runs_the_kubernetes_workspace_provider_and_authorization_app_in_token_mode(teams):
    c = server(teams)
    args = c["args"]
    assert args[args.index("--workspace-store-uri") + 1] == "kubernetes://" and "--enable-workspaces" in args
    assert args[args.index("--app-name") + 1] == "kubernetes-auth"
    env = {k: v.get("value") for k, v in env_of(c).items()}
    assert env["MLFLOW_K8S_AUTH_AUTHORIZATION_MODE"] == "self_subject_access_review"
    # Only the namespaces the program labelled are workspaces.
    assert env["MLFLOW_K8S_WORKSPACE_LABEL_SELECTOR"] == f"{tenancy.WORKSPACE_LABEL}=true"
    assert not any(k.startswith("MLFLOW_K8S_AUTH_REMOTE_") for k in env), "no identity header is configured"
    assert c["image"].split(":")[-1].endswith("-k8s2.1.0")


def test_the_server_gets_a_projected_token_of_its_own_account_and_may_only_watch_namespaces_and_mlflow_configs(teams):
    pod = teams.k8s("Deployment", "mlflow", NS).pod_spec()
    (volume,) = [v for v in pod["volumes"] if v["name"] == "kube-api-access"]
    sources = volume["projected"]["sources"]
    assert sources[0]["serviceAccountToken"] == {"path": "token", "expirationSeconds": auth.TOKEN_SECONDS}
    assert {m["mountPath"] for m in server(teams)["volumeMounts"]} >= {auth.TOKEN_DIR}
    role = teams.k8s("ClusterRole", "mlflow-workspaces").inputs
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": ["mlflow.kubeflow.org"], "resources": ["mlflowconfigs"], "verbs": ["get", "list", "watch"]},
    ]
    binding = teams.k8s("ClusterRoleBinding", "mlflow-workspaces").inputs
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": pod["serviceAccountName"], "namespace": NS}]
    assert binding["roleRef"]["name"] == "mlflow-workspaces"


def test_every_profile_is_labelled_a_workspace_and_its_notebook_account_may_edit_there(teams):
    patches = {r.inputs["metadata"]["name"]: r.inputs for r in teams.of_type("kubernetes:core/v1:NamespacePatch")}
    assert set(patches) == set(TEAMS)
    assert all(p["metadata"]["labels"] == {tenancy.WORKSPACE_LABEL: "true"} for p in patches.values())
    for team in TEAMS:
        binding = teams.k8s("RoleBinding", tenancy.NOTEBOOK_BINDING, team).inputs
        assert binding["roleRef"]["name"] == tenancy.EDIT_ROLE
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "default-editor", "namespace": team}]


def test_mlflow_roles_aggregate_into_the_roles_kubeflow_binds_to_profile_contributors(teams):
    """The labels are the ones Kubeflow's kubeflow-edit and kubeflow-view select (kubeflow/manifests common/kubeflow-roles)."""
    edit = teams.k8s("ClusterRole", tenancy.EDIT_ROLE).inputs
    view = teams.k8s("ClusterRole", tenancy.VIEW_ROLE).inputs
    assert KUBEFLOW_ROLES["kubeflow-edit"][0] in edit["metadata"]["labels"]
    assert KUBEFLOW_ROLES["kubeflow-view"][0] in view["metadata"]["labels"]
    assert edit["metadata"]["labels"][KUBEFLOW_ROLES["kubeflow-edit"][0]] == "true"
    verbs = {r: rule["verbs"] for rule in edit["rules"] for r in rule["resources"]}
    assert set(verbs["experiments"]) == {"get", "list", "create", "update", "delete"}
    assert verbs["gatewaysecrets/use"] == ["create"]
    assert all(set(rule["verbs"]) == {"get", "list"} for rule in view["rules"])
    assert all(rule["apiGroups"] == ["mlflow.kubeflow.org"] for rule in edit["rules"] + view["rules"])


def test_a_serving_namespace_gets_a_registry_reader_that_reads_registered_models_only(teams):
    role = teams.k8s("ClusterRole", REGISTRY_READER_ROLE).inputs
    assert role["rules"] == [
        {"apiGroups": ["mlflow.kubeflow.org"], "resources": ["registeredmodels", "experiments"], "verbs": ["get", "list"]}
    ]
    account = teams.k8s("ServiceAccount", REGISTRY_READER, "team-a").inputs
    assert account["automountServiceAccountToken"] is False
    binding = teams.k8s("RoleBinding", REGISTRY_READER, "team-a").inputs
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": REGISTRY_READER, "namespace": "team-a"}]
    with pytest.raises(LookupError):
        teams.k8s("ServiceAccount", REGISTRY_READER, "team-b")


def test_notebooks_authenticate_with_their_own_account_and_no_token_is_ever_written(teams):
    for team in TEAMS:
        spec = teams.k8s("PodDefault", "mlflow", team).inputs["spec"]
        env = {e["name"]: e.get("value") for e in spec["env"]}
        assert env["MLFLOW_TRACKING_AUTH"] == "kubernetes-namespaced"
        assert "MLFLOW_TRACKING_TOKEN" not in env and "MLFLOW_WORKSPACE" not in env
    secrets = [r.inputs for r in teams.kinds("Secret")]
    assert not any("token" in key.lower() for s in secrets for key in (s.get("stringData") or {}) | (s.get("data") or {}))
    assert not any("token" in key.lower() for key in teams.outputs)


def test_identity_headers_reach_mlflow_only_from_the_ingress_gateway(teams):
    """Rendered only: Istio enforces it; the server itself never reads these headers (tests/cluster/test_tenancy.py)."""
    policy = teams.k8s("AuthorizationPolicy", "mlflow-identity-headers", NS).inputs["spec"]
    assert policy["action"] == "DENY"
    assert policy["selector"]["matchLabels"] == teams.k8s("Service", "mlflow", NS).inputs["spec"]["selector"]
    headers = {rule["when"][0]["key"] for rule in policy["rules"]}
    assert headers == {"request.headers[kubeflow-userid]", "request.headers[kubeflow-groups]"}
    assert all(rule["from"] == [{"source": {"notPrincipals": [GATEWAY_SA]}}] for rule in policy["rules"])
    assert all(rule["when"][0]["values"] == ["*"] for rule in policy["rules"])


def test_workspaces_off_declares_none_of_it_and_runs_no_authorization_app(shared):
    assert "--app-name" not in server(shared)["args"]
    assert not shared.kinds("ClusterRole") and not shared.of_type("kubernetes:core/v1:NamespacePatch")
    with pytest.raises(LookupError):
        shared.k8s("AuthorizationPolicy", "mlflow-identity-headers", NS)


def test_config_refuses_basic_auth_for_workspaces_and_models_outside_a_profile():
    message, declared = refused("dev", tracking=json.dumps({"auth": "basic"}))
    assert message == (
        "mlops-platform:tracking.auth: 'basic' cannot authorize Kubeflow workspaces; allowed: 'kubernetes', or kubeflow.workspaces false"
    )
    assert declared == []
    serving = {"enabled": True, "mlflowTrackingUri": "http://localhost:5000/mlflow"}
    serving["models"] = [{"name": "m", "namespace": "models", "registeredModel": "m", "alias": "production"}]
    message, _ = refused("dev", serving=json.dumps(serving))
    assert message.startswith("mlops-platform:serving.models[0].namespace: 'models' is no Kubeflow profile")


def test_the_mlflow_config_kind_the_provider_watches_is_declared_unless_another_operator_owns_it(teams):
    """Missing or unreadable, the plugin lists MLflowConfigs again on every request (tools/bench/tenancy.py measures it)."""
    crd = teams.k8s("CustomResourceDefinition", "mlflowconfigs.mlflow.kubeflow.org").inputs["spec"]
    assert (crd["group"], crd["names"]["kind"], crd["scope"]) == ("mlflow.kubeflow.org", "MLflowConfig", "Namespaced")
    assert [v["name"] for v in crd["versions"]] == ["v1"]
    owned_elsewhere = run_with("dev", kubeflow=kf(mlflowConfigCrd=False))
    assert not owned_elsewhere.kinds("CustomResourceDefinition")
    assert owned_elsewhere.k8s("ClusterRole", "mlflow-workspaces").inputs["rules"][1]["resources"] == ["mlflowconfigs"]
    message, declared = refused("dev", kubeflow=kf(workspaces=False, mlflowConfigCrd=False))
    assert message.startswith("mlops-platform:kubeflow.mlflowConfigCrd: set, but kubeflow.workspaces is false") and not declared
