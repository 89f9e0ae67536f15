"""KubeflowIntegration: what `pulumi up` declares to wire MLflow into an existing Kubeflow."""

from __future__ import annotations

import json

import pytest

from mlops_platform.settings_base import ConfigError
from tools.testing.harness import stack_config
from tools.testing.plans import NS, arg, container, env_of, generated_secrets, mlflow, parse, refused, run_with, strings

PROFILE = "kubeflow-user-example-com"
TEAMS = ["team-a", "team-b"]
COMPONENT = "mlops:index:KubeflowIntegration"
DASHBOARD_LINK = "pulumi-python:dynamic/kubeflow:DashboardLink"
GATEWAY_SA = "cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account"


def kf(**values) -> str:
    return json.dumps({"enabled": True, "profiles": TEAMS, "kfpAccess": True, **values})


@pytest.fixture(scope="module")
def teams():
    """dev with two profiles, an external host and one extra in-cluster client."""
    return run_with("dev", kubeflow=kf(externalHost="kubeflow.example.com", allowedPrincipals=["cluster.local/ns/ci/sa/trainer"]))


@pytest.fixture(scope="module")
def eks():
    # Workspaces run Kubeflow's app, whose image no registry publishes: on eks the stack names the one `make image` pushed.
    tracking = json.loads(stack_config("prod")[0]["mlops-platform:tracking"])
    image = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/mlops-platform/mlflow:3.17.2-k8s2.1.0"
    return run_with("prod", kubeflow=kf(), tracking=json.dumps({**tracking, "image": image}))


@pytest.fixture(scope="module")
def off():
    return run_with("dev", kubeflow=json.dumps({"enabled": False}), monitoring=json.dumps({"enabled": False}))


def spec(plan, kind: str, name: str, namespace: str) -> dict:
    return plan.k8s(kind, name, namespace).inputs["spec"]


# -- route -------------------------------------------------------------------------


def test_route_sends_the_prefix_to_the_browser_server_unchanged(dev):
    """People arrive through the gateway with Kubeflow's ID token: the browser server authorizes them (tracking/browser.py)."""
    route = spec(dev, "VirtualService", "mlflow", NS)
    service = dev.k8s("Service", "mlflow-ui", NS).inputs
    assert route["gateways"] == ["kubeflow/kubeflow-gateway"] and route["hosts"] == ["*"]
    (rule,) = [r for r in route["http"] if "route" in r]
    assert rule["match"] == [{"uri": {"prefix": "/mlflow/"}}]
    assert rule["route"] == [
        {"destination": {"host": "mlflow-ui.mlflow.svc.cluster.local", "port": {"number": service["spec"]["ports"][0]["port"]}}}
    ]
    # MLflow serves UI, static files, REST API and artifact proxy under its static prefix: nothing may strip it.
    assert not [r for r in route["http"] if "rewrite" in r]
    assert arg(container(mlflow(dev), "mlflow")["args"], "--static-prefix") + "/" == "/mlflow/"


def test_without_a_browser_server_the_route_goes_to_the_tracking_server():
    plan = run_with("dev", kubeflow=kf(browser={"enabled": False}))
    (rule,) = [r for r in spec(plan, "VirtualService", "mlflow", NS)["http"] if "route" in r]
    assert rule["route"] == [{"destination": {"host": "mlflow.mlflow.svc.cluster.local", "port": {"number": 5000}}}]
    assert not [d for d in plan.kinds("Deployment") if d.k8s_name == "mlflow-ui"]
    assert spec(plan, "AuthorizationPolicy", "mlflow", NS)["rules"][0]["from"][0]["source"]["principals"][0] == GATEWAY_SA
    assert plan.of_type(DASHBOARD_LINK)[0].inputs["link"] == "/mlflow/"


def test_bare_prefix_redirects_to_the_trailing_slash(dev):
    (redirect,) = [r for r in spec(dev, "VirtualService", "mlflow", NS)["http"] if "redirect" in r]
    assert redirect["match"] == [{"uri": {"exact": "/mlflow"}}] and redirect["redirect"] == {"uri": "/mlflow/"}


def test_route_and_tab_follow_the_tracking_path_prefix():
    plan = run_with("dev", tracking=json.dumps({"pathPrefix": "/tracking"}))
    http = spec(plan, "VirtualService", "mlflow", NS)["http"]
    assert [r["match"][0]["uri"] for r in http] == [{"exact": "/tracking"}, {"prefix": "/tracking/"}]
    assert plan.of_type(DASHBOARD_LINK)[0].inputs["link"] == "/tracking/kubeflow/{ns}/"
    assert plan.outputs["kubeflowUrl"] == "/tracking/"


def test_external_host_is_routed_and_accepted_by_mlflow(teams):
    assert spec(teams, "VirtualService", "mlflow", NS)["hosts"] == ["kubeflow.example.com"]
    hosts = arg(container(mlflow(teams), "mlflow")["args"], "--allowed-hosts").split(",")
    assert {"kubeflow.example.com", "kubeflow.example.com:*"} <= set(hosts)
    assert teams.outputs["kubeflowUrl"] == "https://kubeflow.example.com/mlflow/"


def test_without_an_external_host_mlflow_accepts_the_port_forwarded_gateway(dev):
    hosts = arg(container(mlflow(dev), "mlflow")["args"], "--allowed-hosts").split(",")
    assert "localhost:*" in hosts and "*" not in hosts


def test_gateway_is_configurable():
    plan = run_with("dev", kubeflow=kf(gateway="istio-system/corp-gateway"))
    assert spec(plan, "VirtualService", "mlflow", NS)["gateways"] == ["istio-system/corp-gateway"]


# -- access ------------------------------------------------------------------------


def test_policy_admits_each_profile_editor_and_nothing_else(dev):
    """The gateway's traffic goes to the browser server: the tracking server admits in-cluster clients only."""
    policy = spec(dev, "AuthorizationPolicy", "mlflow", NS)
    assert policy["action"] == "ALLOW"
    api, *scrapers = policy["rules"]
    assert api == {"from": [{"source": {"principals": [f"cluster.local/ns/{PROFILE}/sa/default-editor"]}}]}
    # The dev stack's Prometheus identity may GET the metrics path, nothing else (tests/monitoring).
    assert [r["to"] for r in scrapers] == [[{"operation": {"methods": ["GET"], "paths": ["/metrics"]}}]]


def test_policy_selects_exactly_the_mlflow_server_pods(dev):
    deployment = mlflow(dev).inputs["spec"]
    selector = spec(dev, "AuthorizationPolicy", "mlflow", NS)["selector"]["matchLabels"]
    assert selector == deployment["selector"]["matchLabels"]
    assert selector.items() <= deployment["template"]["metadata"]["labels"].items()
    assert not [
        d
        for d in dev.kinds("Deployment") + dev.kinds("StatefulSet")
        if d is not mlflow(dev) and selector.items() <= d.inputs["spec"]["template"]["metadata"]["labels"].items()
    ]


def test_configured_clients_are_admitted_too(teams):
    rule = spec(teams, "AuthorizationPolicy", "mlflow", NS)["rules"][0]
    assert rule["from"][0]["source"]["principals"] == [
        "cluster.local/ns/team-a/sa/default-editor",
        "cluster.local/ns/team-b/sa/default-editor",
        "cluster.local/ns/ci/sa/trainer",
    ]


def test_profile_principals_use_the_meshs_trust_domain():
    plan = run_with("dev", kubeflow=kf(ingressPrincipal="corp.example/ns/istio-system/sa/gateway"))
    rule = spec(plan, "AuthorizationPolicy", "mlflow", NS)["rules"][0]
    assert rule["from"][0]["source"]["principals"][0] == "corp.example/ns/team-a/sa/default-editor"
    gateway_only = spec(plan, "AuthorizationPolicy", "mlflow-ui", NS)["rules"]
    assert gateway_only == [{"from": [{"source": {"principals": ["corp.example/ns/istio-system/sa/gateway"]}}]}]


def test_mlflow_pods_join_the_mesh_their_database_traffic_bypasses_the_sidecar_and_jobs_stay_out(dev):
    template = mlflow(dev).inputs["spec"]["template"]
    db_port = dev.k8s("Service", "mlflow-postgresql", NS).inputs["spec"]["ports"][0]["port"]
    assert "initContainers" not in template["spec"]
    # A Job whose pod has a sidecar never completes: the migration, backup and gc pods stay out of the mesh.
    jobs = [r for r in dev.kinds("Job") + dev.kinds("CronJob") if r.k8s_namespace == NS]
    assert len(jobs) >= 3
    for job in jobs:
        spec = job.inputs["spec"].get("jobTemplate", job.inputs)["spec"]
        assert "sidecar.istio.io/inject" not in spec["template"]["metadata"]["labels"], job.k8s_name
    assert template["metadata"]["labels"]["sidecar.istio.io/inject"] == "true"
    assert template["metadata"]["annotations"] == {"traffic.sidecar.istio.io/excludeOutboundPorts": str(db_port)}


def test_without_kubeflow_nothing_is_declared_and_mlflow_stays_out_of_the_mesh(off):
    assert not off.of_type(COMPONENT) and not off.of_type(DASHBOARD_LINK)
    assert not [r for r in off.resources if r.name.startswith("kubeflow")]
    template = mlflow(off).inputs["spec"]["template"]
    assert "sidecar.istio.io/inject" not in template["metadata"]["labels"] and "annotations" not in template["metadata"]
    assert off.outputs["kubeflowUrl"] is None and off.outputs["kubeflowProfiles"] == []


# -- dashboard ---------------------------------------------------------------------


def test_dashboard_tab_opens_the_selected_profiles_workspace(dev):
    """The dashboard fills in {ns} with the selected namespace (centraldashboard main-page.js _buildHref)."""
    (link,) = dev.of_type(DASHBOARD_LINK)
    assert {k: link.inputs[k] for k in ("namespace", "configMap", "text", "link")} == {
        "namespace": "kubeflow",
        "configMap": "centraldashboard-config",
        "text": "MLflow",
        "link": "/mlflow/kubeflow/{ns}/",
    }
    assert link.inputs["icon"]
    # The stored provider carries no credential, so it is not marked secret.
    assert link.secret_paths == []


def test_dashboard_tab_can_be_left_out():
    assert not run_with("dev", kubeflow=kf(dashboardTab=False)).of_type(DASHBOARD_LINK)


# -- profiles ----------------------------------------------------------------------


def poddefault(plan, namespace: str) -> dict:
    return spec(plan, "PodDefault", "mlflow", namespace)


def test_each_profile_gets_a_poddefault_offered_in_the_notebook_form(teams):
    for ns in TEAMS:
        pd = poddefault(teams, ns)
        assert pd["selector"] == {"matchLabels": {"mlflow": "true"}}
        assert pd["desc"] == f"MLflow tracking and registry; S3 data under s3://mlflow-artifacts/profiles/{ns}/"
        env = {e["name"]: e for e in pd["env"]}
        assert env["MLFLOW_TRACKING_URI"] == {"name": "MLFLOW_TRACKING_URI", "value": teams.outputs["trackingUri"]}
        assert env["PROFILE_S3_URI"]["value"] == f"s3://mlflow-artifacts/profiles/{ns}/"


def test_poddefault_reads_s3_credentials_from_a_secret_in_its_own_namespace(teams):
    mlflow_env = env_of(container(mlflow(teams), "mlflow"))
    for ns in TEAMS:
        env = {e["name"]: e for e in poddefault(teams, ns)["env"]}
        secret = teams.k8s("Secret", "mlflow-s3", ns).inputs
        for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            assert env[key] == {"name": key, "valueFrom": {"secretKeyRef": {"name": "mlflow-s3", "key": key}}}
            assert key in secret["stringData"]
        assert "stringData" in teams.k8s("Secret", "mlflow-s3", ns).secret_paths
        endpoint = mlflow_env["MLFLOW_S3_ENDPOINT_URL"]["value"]
        assert env["AWS_ENDPOINT_URL"]["value"] == env["MLFLOW_S3_ENDPOINT_URL"]["value"] == endpoint


def test_poddefault_pods_may_reach_minio(teams):
    (rule,) = spec(teams, "NetworkPolicy", "mlflow-minio", NS)["ingress"]
    admitted = [peer["podSelector"]["matchLabels"] for peer in rule["from"] if "namespaceSelector" in peer]
    for ns in TEAMS:
        assert poddefault(teams, ns)["labels"] in admitted


def _profile_secret(plan, ns: str) -> dict:
    return plan.k8s("Secret", "mlflow-s3", ns).inputs["stringData"]


def test_one_distinct_credential_set_per_profile_and_never_the_root_key(teams):
    root = teams.k8s("Secret", "mlflow-minio-root", NS).inputs["stringData"]
    own = teams.k8s("Secret", "mlflow-s3", NS).inputs["stringData"]
    sets = [_profile_secret(teams, ns) for ns in TEAMS]
    assert [s["AWS_ACCESS_KEY_ID"] for s in sets] == ["profile-team-a", "profile-team-b"]
    keys = {
        r.name: r.outputs["result"] for r in teams.of_type("random:index/randomPassword:RandomPassword") if r.name.startswith("kubeflow-")
    }
    assert [s["AWS_SECRET_ACCESS_KEY"] for s in sets] == [keys["kubeflow-team-a-s3-key"], keys["kubeflow-team-b-s3-key"]]
    assert len(set(keys.values())) == len(keys) == len(TEAMS)
    for s in sets:
        assert s["AWS_ACCESS_KEY_ID"] not in (root["rootUser"], own["AWS_ACCESS_KEY_ID"])
        assert s["AWS_SECRET_ACCESS_KEY"] not in (root["rootPassword"], own["AWS_SECRET_ACCESS_KEY"])


def test_each_profile_user_may_touch_only_its_own_prefix(teams):
    policies = teams.k8s("ConfigMap", "kubeflow-profiles-policies", NS).inputs["data"]
    assert set(policies) == {"profile-team-a-write.json", "profile-team-b-write.json"}
    for ns in TEAMS:
        statements = json.loads(policies[f"profile-{ns}-write.json"])["Statement"]
        assert {r for st in statements for r in st["Resource"]} == {
            "arn:aws:s3:::mlflow-artifacts",
            f"arn:aws:s3:::mlflow-artifacts/profiles/{ns}/*",
        }
        listing = next(st for st in statements if st["Action"] == ["s3:ListBucket"])
        assert listing["Condition"] == {"StringLike": {"s3:prefix": [f"profiles/{ns}", f"profiles/{ns}/*"]}}
    # MLflow's own prefix stays out of reach: profiles cannot tamper with logged models.
    assert not [p for p in policies.values() if "mlflow-artifacts/dev/" in p]


def test_profile_users_are_created_by_a_job_beside_minio_that_creates_no_bucket(teams):
    (job,) = [r for r in teams.kinds("Job") if r.k8s_name.startswith("kubeflow-profiles-")]
    assert job.k8s_namespace == NS
    script = container(job, "provision")["command"][-1]
    for ns in TEAMS:
        assert f'mc admin user add local profile-{ns} "$SECRET_KEY_PROFILE_{ns.upper().replace("-", "_")}"' in script
        assert f"\nattach profile-{ns}-write profile-{ns}\n" in script
    assert "mc mb" not in script


def test_profile_users_are_provisioned_once_minio_and_its_namespace_exist(teams):
    (job,) = [r for r in teams.kinds("Job") if r.k8s_name.startswith("kubeflow-profiles-")]
    assert {teams.k8s("Namespace", "mlflow").urn, teams.k8s("Deployment", "mlflow-minio", NS).urn} <= set(job.dependencies)
    env = env_of(container(job, "provision"))
    assert env["MINIO_ROOT_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "mlflow-minio-root", "key": "rootPassword"}


def test_no_credential_value_outside_a_secret(teams):
    credentials = generated_secrets(teams)
    assert {_profile_secret(teams, ns)["AWS_SECRET_ACCESS_KEY"] for ns in TEAMS} <= credentials
    for r in teams.resources:
        if r.kind != "Secret":
            assert not [s for s in strings(r.inputs) if any(c in s for c in credentials)], f"{r.type} {r.name}"
    for ns in TEAMS:
        assert not [e for e in poddefault(teams, ns)["env"] if e["name"].startswith("AWS_S") and "value" in e]


def test_profile_sidecar_keeps_calls_to_mlflow_on_mtls(teams):
    for ns in TEAMS:
        sidecar = spec(teams, "Sidecar", "mlflow-egress", ns)
        assert sidecar["workloadSelector"] == {"labels": poddefault(teams, ns)["selector"]["matchLabels"]}
        (egress,) = sidecar["egress"]
        # Kubeflow 1.11's default Sidecar (istio-system/default) allows these; ours adds the tracking namespace.
        kubeflow_defaults = ["./*", "istio-system/*", "kubeflow/*", "kubeflow-system/*", "knative-serving/*", "knative-eventing/*"]
        assert egress["hosts"] == [*kubeflow_defaults, f"{NS}/*"]


def test_kfp_access_injects_a_pipelines_token_and_binds_its_right(dev):
    pd = spec(dev, "PodDefault", "access-ml-pipeline", PROFILE)
    assert pd["selector"] == {"matchLabels": {"access-ml-pipeline": "true"}}
    (volume,) = pd["volumes"]
    assert volume["projected"]["sources"] == [
        {"serviceAccountToken": {"path": "token", "expirationSeconds": 7200, "audience": "pipelines.kubeflow.org"}}
    ]
    (mount,) = pd["volumeMounts"]
    assert mount == {"name": volume["name"], "mountPath": "/var/run/secrets/kubeflow/pipelines", "readOnly": True}
    assert pd["env"] == [{"name": "KF_PIPELINES_SA_TOKEN_PATH", "value": f"{mount['mountPath']}/token"}]
    binding = dev.k8s("RoleBinding", "access-ml-pipeline", PROFILE).inputs
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "kubeflow-pipelines-edit"}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "default-editor", "namespace": PROFILE}]


def test_kfp_access_is_opt_in():
    plan = run_with("dev", kubeflow=kf(kfpAccess=False))
    assert not [r for r in plan.kinds("RoleBinding") if r.k8s_name == "access-ml-pipeline"]
    assert [r.k8s_name for r in plan.kinds("PodDefault")] == ["mlflow", "mlflow"]


# -- notebook cookies ----------------------------------------------------------------


def test_notebook_cookie_patch_is_present_only_when_opted_in(dev):
    assert not dev.of_type("kubernetes:apps/v1:DeploymentPatch")
    (patch,) = run_with("dev", kubeflow=kf(insecureCookies=True)).of_type("kubernetes:apps/v1:DeploymentPatch")
    meta = patch.inputs["metadata"]
    assert (meta["name"], meta["namespace"]) == ("jupyter-web-app-deployment", "kubeflow")
    assert meta["annotations"]["pulumi.com/patchForce"] == "true"
    assert patch.inputs["spec"]["template"]["spec"]["containers"] == [
        {"name": "jupyter-web-app", "env": [{"name": "APP_SECURE_COOKIES", "value": "false"}]}
    ]


# -- eks -----------------------------------------------------------------------------


ISSUER = "oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE"


def test_eks_profiles_get_a_role_only_their_default_editor_can_assume(eks):
    for ns in TEAMS:
        (role,) = [r for r in eks.of_type("aws:iam/role:Role") if r.name == f"kubeflow-{ns}"]
        (statement,) = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
        assert statement["Condition"]["StringEquals"][f"{ISSUER}:sub"] == f"system:serviceaccount:{ns}:default-editor"
        (policy,) = [r for r in eks.of_type("aws:iam/rolePolicy:RolePolicy") if r.parent == role.urn]
        resources = {res for st in json.loads(policy.inputs["policy"])["Statement"] for res in st["Resource"]}
        assert resources == {"arn:aws:s3:::example-mlops-mlflow-artifacts", f"arn:aws:s3:::example-mlops-mlflow-artifacts/profiles/{ns}/*"}
        (patch,) = [p for p in eks.of_type("kubernetes:core/v1:ServiceAccountPatch") if p.inputs["metadata"]["namespace"] == ns]
        assert patch.inputs["metadata"]["name"] == "default-editor"
        assert patch.inputs["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] == f"arn:aws:iam::123456789012:role/kubeflow-{ns}"


def test_eks_profiles_hold_no_static_keys(eks):
    assert not [r for r in eks.kinds("Secret") if r.k8s_namespace in TEAMS]
    assert not [r for r in eks.kinds("Job") if r.k8s_name.startswith("kubeflow")]
    for ns in TEAMS:
        pd = poddefault(eks, ns)
        env = {e["name"]: e.get("value") for e in pd["env"]}
        storage = {k for k in env if k.startswith("AWS_")}
        assert storage == {"AWS_DEFAULT_REGION", "AWS_REGION"}
        assert env["AWS_REGION"] == "eu-west-1" and "labels" not in pd


def test_long_profile_names_still_fit_an_iam_role_name():
    from mlops_platform.storage import s3 as aws

    long = "a" * 63
    assert len(aws._iam_safe(f"kubeflow-{long}")) == 56
    assert aws._iam_safe(f"kubeflow-{long}") != aws._iam_safe(f"kubeflow-{long[:-1]}b")
    assert aws._iam_safe("kubeflow-team-a") == "kubeflow-team-a"


# -- structure and scale ----------------------------------------------------------------


def test_every_resource_is_under_the_component_and_named_from_it(teams, eks):
    for plan in (teams, eks):
        (root,) = plan.of_type(COMPONENT)
        ours = [r for r in plan.resources if r.name.startswith("kubeflow") and r is not root]
        assert len(ours) > 10
        for r in ours:
            parent = r.parent
            while parent and parent != root.urn:
                parent = plan.by_urn(parent).parent
            assert parent == root.urn, f"{r.type} {r.name}"


def test_exports_name_the_route_and_the_profiles(dev):
    assert dev.outputs["kubeflowUrl"] == "/mlflow/"
    assert dev.outputs["kubeflowProfiles"] == [PROFILE]


def _count(profiles: int) -> int:
    return len(run_with("dev", kubeflow=kf(profiles=[f"team-{i:02d}" for i in range(profiles)])).resources)


@pytest.mark.slow
def test_resource_count_grows_linearly_with_profiles():
    one, ten, fifty = _count(1), _count(10), _count(50)
    # Per profile: key, Secret, PodDefault, Sidecar, KFP PodDefault, RoleBinding; with workspaces the namespace label and
    # the notebook's RoleBinding.
    assert ten - one == 9 * 8
    assert fifty - one == 49 * 8


# -- config ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "values, message",
    [
        (
            {"gateway": "kubeflow-gateway"},
            "mlops-platform:kubeflow.gateway: 'kubeflow-gateway' is not valid; allowed: namespace/name of an Istio "
            "Gateway, e.g. kubeflow/kubeflow-gateway",
        ),
        ({"profiles": ["team-a", "Team_B"]}, "mlops-platform:kubeflow.profiles[1]: 'Team_B' is not valid; allowed: a DNS-1123 label"),
        (
            {"profiles": ["team-a", "team-b", "team-a"]},
            "mlops-platform:kubeflow.profiles[2]: 'team-a' is listed twice; allowed: each profile namespace once",
        ),
        (
            {"allowedPrincipals": ["cluster.local/ns/ci/sa/*"]},
            "mlops-platform:kubeflow.allowedPrincipals[0]: 'cluster.local/ns/ci/sa/*' is not valid; allowed: an Istio "
            "principal without wildcards",
        ),
        (
            {"ingressPrincipal": "*"},
            "mlops-platform:kubeflow.ingressPrincipal: '*' is not valid; allowed: an Istio principal without wildcards",
        ),
        (
            {"externalHost": "https://kubeflow.example.com"},
            "mlops-platform:kubeflow.externalHost: 'https://kubeflow.example.com' is not valid; allowed: a lowercase DNS name",
        ),
        ({"kfpAccess": "sometimes"}, "mlops-platform:kubeflow.kfpAccess: 'sometimes' is not allowed; allowed: a valid boolean"),
        (
            {"cookies": False},
            "mlops-platform:kubeflow.cookies: is not a known key; allowed: allowedPrincipals, browser, dashboardTab, enabled, "
            "externalHost, gateway, ingressPrincipal, insecureCookies, kfpAccess, mlflowConfigCrd, namespace, profiles, workspaces",
        ),
    ],
)
def test_invalid_kubeflow_config_is_one_line_naming_the_key(values, message):
    with pytest.raises(ConfigError) as caught:
        parse(target="microk8s", kubeflow={"enabled": True, **values})
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)


def test_defaults_match_kubeflows_own_names():
    cfg = parse(target="microk8s", kubeflow={"enabled": True}).kubeflow
    assert (cfg.namespace, cfg.gateway, cfg.ingress_principal) == ("kubeflow", "kubeflow/kubeflow-gateway", GATEWAY_SA)
    assert cfg.dashboard_tab and not cfg.insecure_cookies and not cfg.kfp_access and cfg.profiles == []


def test_bad_kubeflow_config_declares_no_resource():
    message, declared = refused("dev", kubeflow=kf(profiles=["team-a", "team-a"]))
    assert message.startswith("mlops-platform:kubeflow.profiles[1]: 'team-a' is listed twice")
    assert declared == []
