"""ServingStack under mocks: storage access per target, InferenceServices per format, no credential literal.

Models here use pinned ``storageUri`` sources, so no registry is involved;
``tests/serving/test_registry.py`` covers aliases and versions against a real MLflow server.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from mlops_platform.serving import stack as serving
from mlops_platform.serving.registry import ResolvedCanary, ResolvedModel
from mlops_platform.serving.settings import ModelSource
from mlops_platform.settings_base import ConfigError
from tools.dev.plan import table
from tools.testing import conformance
from tools.testing.harness import ROOT
from tools.testing.plans import config as stack_config_of
from tools.testing.plans import container, refused, run_with, strings

COMPONENT = "mlops:index:ServingStack"
TEAM = "team-a"
PROFILE = "kubeflow-user-example-com"
SA = "serving-model-reader"
ROOTS = {"dev": "s3://mlflow-artifacts/dev", "prod": "s3://example-mlops-mlflow-artifacts/prod"}
ARTIFACTS = "7/models/m-0123456789abcdef/artifacts"


def serving_config(stack: str, **extra: object) -> str:
    """Two models in the profile namespace (one per format), and a namespace with credentials only."""
    return json.dumps(
        {
            "enabled": True,
            "namespaces": [TEAM],
            "models": [
                {
                    "name": "diabetes",
                    "namespace": PROFILE,
                    "storageUri": f"{ROOTS[stack]}/{ARTIFACTS}",
                    "format": "mlflow",
                    "minReplicas": 1,
                    "maxReplicas": 3,
                    "resources": {"cpuRequest": "250m", "cpuLimit": "2", "memoryRequest": "768Mi", "memoryLimit": "2Gi"},
                },
                {"name": "diabetes-sklearn", "namespace": PROFILE, "storageUri": f"{ROOTS[stack]}/{ARTIFACTS}/", "format": "sklearn"},
            ],
            **extra,
        }
    )


@pytest.fixture(scope="module")
def dev_serving():
    return run_with("dev", serving=serving_config("dev"))


@pytest.fixture(scope="module")
def prod_serving():
    return run_with("prod", serving=serving_config("prod", installKserve=True))


@pytest.fixture(scope="module", params=["dev", "prod"])
def plan(request):
    return request.getfixturevalue(f"{request.param}_serving")


def isvc(plan, name: str = "diabetes") -> dict:
    return plan.k8s("InferenceService", name, PROFILE).inputs


def component_urn(plan) -> str:
    (component,) = plan.of_type(COMPONENT)
    return component.urn


# -- storage access: dev ---------------------------------------------------------------


@pytest.mark.parametrize("namespace", [PROFILE, TEAM])
def test_dev_namespace_gets_a_secret_kserve_reads_for_minio(dev_serving, namespace):
    secret = dev_serving.k8s("Secret", f"{SA}-s3", namespace)
    assert secret.inputs["metadata"]["annotations"] == {
        "serving.kserve.io/s3-endpoint": "mlflow-minio.mlflow.svc.cluster.local:9000",
        "serving.kserve.io/s3-usehttps": "0",
        "serving.kserve.io/s3-verifyssl": "0",
        "serving.kserve.io/s3-region": "us-east-1",
    }
    data = secret.inputs["stringData"]
    assert set(data) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    assert data["AWS_ACCESS_KEY_ID"] == f"kserve-{namespace}"
    assert len(data["AWS_SECRET_ACCESS_KEY"]) == 40
    assert "stringData" in secret.secret_paths


@pytest.mark.parametrize("namespace", [PROFILE, TEAM])
def test_dev_service_account_lists_the_secret_and_mounts_no_token(dev_serving, namespace):
    account = dev_serving.k8s("ServiceAccount", SA, namespace).inputs
    assert account["secrets"] == [{"name": f"{SA}-s3"}]
    assert account["automountServiceAccountToken"] is False


def test_dev_minio_users_can_only_read_the_artifact_prefix(dev_serving):
    (job,) = [r for r in dev_serving.kinds("Job") if r.k8s_name.startswith("serving-minio-users-")]
    assert job.k8s_namespace == "mlflow"
    script = container(job, "provision")["command"][-1]
    assert "mc mb" not in script, "the bucket belongs to the TrackingStack"
    for namespace in (PROFILE, TEAM):
        assert f'mc admin user add local kserve-{namespace} "$SECRET_KEY_KSERVE_{namespace.upper().replace("-", "_")}"' in script
        policy = json.loads(
            dev_serving.k8s("ConfigMap", "serving-minio-users-policies", "mlflow").inputs["data"][f"kserve-{namespace}-read.json"]
        )
        assert {a for st in policy["Statement"] for a in st["Action"]} == {"s3:ListBucket", "s3:GetBucketLocation", "s3:GetObject"}
        assert {r for st in policy["Statement"] for r in st["Resource"]} == {
            "arn:aws:s3:::mlflow-artifacts",
            "arn:aws:s3:::mlflow-artifacts/dev/*",
        }


def test_dev_minio_users_are_provisioned_once_minio_and_its_namespace_exist(dev_serving):
    (job,) = [r for r in dev_serving.kinds("Job") if r.k8s_name.startswith("serving-minio-users-")]
    namespace = dev_serving.k8s("Namespace", "mlflow")
    server = dev_serving.k8s("Deployment", "mlflow-minio", "mlflow")
    assert {namespace.urn, server.urn} <= set(job.dependencies)


# -- storage access: prod ----------------------------------------------------------------


@pytest.mark.parametrize("namespace", [PROFILE, TEAM])
def test_prod_service_account_assumes_a_read_only_role_and_holds_no_keys(prod_serving, namespace):
    (role,) = [r for r in prod_serving.of_type("aws:iam/role:Role") if r.name == f"serving-{namespace}"]
    (statement,) = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
    issuer = "oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE"
    assert statement["Condition"]["StringEquals"][f"{issuer}:sub"] == f"system:serviceaccount:{namespace}:{SA}"
    (policy,) = [r for r in prod_serving.of_type("aws:iam/rolePolicy:RolePolicy") if r.parent == role.urn]
    statements = json.loads(policy.inputs["policy"])["Statement"]
    assert {a for st in statements for a in st["Action"]} == {"s3:ListBucket", "s3:GetBucketLocation", "s3:GetObject"}
    assert {r for st in statements for r in st["Resource"]} == {
        "arn:aws:s3:::example-mlops-mlflow-artifacts",
        "arn:aws:s3:::example-mlops-mlflow-artifacts/prod/*",
    }

    account = prod_serving.k8s("ServiceAccount", SA, namespace).inputs
    assert account["metadata"]["annotations"] == {
        "eks.amazonaws.com/role-arn": f"arn:aws:iam::123456789012:role/serving-{namespace}",
        "serving.kserve.io/s3-region": "eu-west-1",
    }
    assert "secrets" not in account
    assert not [s for s in prod_serving.kinds("Secret") if s.k8s_namespace == namespace]


def test_prod_role_names_fit_iam_for_the_longest_namespace():
    longest = "n" * 63
    plan = run_with("prod", serving=json.dumps({"enabled": True, "namespaces": [longest]}))
    (role,) = [r for r in plan.of_type("aws:iam/role:Role") if r.parent == component_urn(plan)]
    assert len(role.name) + 8 <= 64
    (statement,) = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
    assert (
        statement["Condition"]["StringEquals"]["oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE:sub"]
        == f"system:serviceaccount:{longest}:{SA}"
    )


# -- InferenceServices ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, format_, runtime, protocol",
    [("diabetes", "mlflow", "kserve-mlserver", "v2"), ("diabetes-sklearn", "sklearn", "kserve-sklearnserver", "v1")],
)
def test_each_format_runs_on_its_runtime_and_protocol(plan, name, format_, runtime, protocol):
    model = isvc(plan, name)["spec"]["predictor"]["model"]
    assert model["modelFormat"] == {"name": format_}
    assert model["runtime"] == runtime
    assert model["protocolVersion"] == protocol


def test_inference_service_pins_storage_account_resources_and_replicas(plan):
    manifest = isvc(plan)
    assert (manifest["apiVersion"], manifest["kind"]) == ("serving.kserve.io/v1beta1", "InferenceService")
    predictor = manifest["spec"]["predictor"]
    assert predictor["model"]["storageUri"] == f"{ROOTS[plan.stack]}/{ARTIFACTS}/"
    assert predictor["serviceAccountName"] == SA
    assert (predictor["minReplicas"], predictor["maxReplicas"]) == (1, 3)
    assert predictor["model"]["resources"] == {"requests": {"cpu": "250m", "memory": "768Mi"}, "limits": {"cpu": "2", "memory": "2Gi"}}


def test_model_container_is_hardened(plan):
    context = isvc(plan)["spec"]["predictor"]["model"]["securityContext"]
    assert context["runAsNonRoot"] is True and context["allowPrivilegeEscalation"] is False and context["privileged"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}


def test_a_trailing_slash_is_kept_once(plan):
    assert isvc(plan, "diabetes-sklearn")["spec"]["predictor"]["model"]["storageUri"] == f"{ROOTS[plan.stack]}/{ARTIFACTS}/"


@pytest.mark.parametrize("mode", ["RawDeployment", "Serverless"])
def test_deployment_mode_comes_from_config(mode):
    plan = run_with("dev", serving=serving_config("dev", deploymentMode=mode))
    assert isvc(plan)["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == mode


def test_a_pinned_storage_uri_records_no_registry_provenance(plan):
    annotations = isvc(plan)["metadata"]["annotations"]
    assert not [key for key in annotations if key.startswith("mlops-platform/")]
    assert plan.outputs["servingModels"][f"{PROFILE}/diabetes"] == {"storageUri": f"{ROOTS[plan.stack]}/{ARTIFACTS}/"}
    assert "pinned storageUri" in table(plan)


def test_only_dev_pods_carry_the_minio_client_label(dev_serving, prod_serving):
    assert isvc(dev_serving)["metadata"]["labels"]["mlops-platform/minio-client"] == "true"
    assert "mlops-platform/minio-client" not in isvc(prod_serving)["metadata"]["labels"]


def test_inference_services_wait_for_their_namespaces_credentials(plan):
    resource = plan.k8s("InferenceService", "diabetes", PROFILE)
    account = plan.k8s("ServiceAccount", SA, PROFILE)
    assert account.urn in resource.dependencies
    other = plan.k8s("ServiceAccount", SA, TEAM)
    assert other.urn not in resource.dependencies
    if plan.stack == "dev":
        assert plan.k8s("Secret", f"{SA}-s3", PROFILE).urn in resource.dependencies


def test_inference_services_validate_against_the_kserve_sdk_models(plan):
    for name in ("diabetes", "diabetes-sklearn"):
        assert conformance.inference_service_errors(isvc(plan, name)) == []


def test_serving_objects_validate_against_the_kubernetes_schema(plan):
    ours = [r for r in plan.resources if r.is_kubernetes and r.kind != "InferenceService" and r.parent == component_urn(plan)]
    assert len(ours) >= (7 if plan.stack == "dev" else 2)
    for r in ours:
        how, errors = conformance.validate_manifest(r.masked_inputs(), "1.34")
        assert (how, errors) == ("kubernetes-1.34", []), f"{r.kind} {r.k8s_name}"


# -- installing KServe ------------------------------------------------------------------------


def test_install_kserve_pins_cert_manager_and_kserve_in_raw_deployment_mode(prod_serving):
    releases = {r.inputs["name"]: r for r in prod_serving.of_type("kubernetes:helm.sh/v3:Release")}
    assert set(releases) == {"cert-manager", "kserve-crd", "kserve"}
    cert_manager, crds, controller = releases["cert-manager"].inputs, releases["kserve-crd"].inputs, releases["kserve"].inputs
    assert (cert_manager["chart"], cert_manager["version"], cert_manager["repositoryOpts"]) == (
        "cert-manager",
        "v1.17.0",
        {"repo": "https://charts.jetstack.io"},
    )
    assert cert_manager["values"] == {"crds": {"enabled": True}}
    assert (crds["chart"], crds["version"]) == ("oci://ghcr.io/kserve/charts/kserve-crd", "v0.16.0")
    assert (controller["chart"], controller["version"]) == ("oci://ghcr.io/kserve/charts/kserve", "v0.16.0")
    assert controller["values"] == {"kserve": {"controller": {"deploymentMode": "RawDeployment"}}}
    assert {releases["cert-manager"].urn, releases["kserve-crd"].urn} <= set(releases["kserve"].dependencies)


def test_inference_services_wait_for_the_kserve_crds_and_controller(prod_serving):
    releases = {r.inputs["name"]: r.urn for r in prod_serving.of_type("kubernetes:helm.sh/v3:Release")}
    for name in ("diabetes", "diabetes-sklearn"):
        dependencies = prod_serving.k8s("InferenceService", name, PROFILE).dependencies
        assert {releases["kserve-crd"], releases["kserve"]} <= set(dependencies)


def test_kserve_is_not_installed_unless_asked(dev_serving):
    assert not dev_serving.of_type("kubernetes:helm.sh/v3:Release")


# -- the component ------------------------------------------------------------------------------


def test_every_serving_resource_is_a_named_child_of_the_component(plan):
    root = component_urn(plan)
    ours = [r for r in plan.resources if r.parent == root]
    assert len(ours) >= 7
    for r in ours:
        assert r.name.startswith("serving-"), r.name
    assert plan.outputs["servingModels"].keys() == {f"{PROFILE}/diabetes", f"{PROFILE}/diabetes-sklearn"}


def test_no_storage_key_appears_outside_a_secret(dev_serving):
    keys = {s.inputs["stringData"]["AWS_SECRET_ACCESS_KEY"] for s in dev_serving.kinds("Secret") if s.k8s_name == f"{SA}-s3"}
    assert len(keys) == 2
    for r in dev_serving.resources:
        leaked = [s for s in strings(r.inputs) if any(key in s for key in keys)]
        if r.kind == "Secret":
            assert not leaked or "stringData" in r.secret_paths, f"Secret {r.k8s_name} holds a storage key in plain text"
        else:
            assert not leaked, f"{r.type} {r.name} carries a storage key"
    assert not [s for s in strings(dev_serving.outputs) if any(key in s for key in keys)]


def test_serving_disabled_declares_nothing():
    plan = run_with("dev", serving=json.dumps({"enabled": False}))
    assert not plan.of_type(COMPONENT)
    assert not plan.kinds("InferenceService")
    assert plan.outputs["servingModels"] == {}


def test_models_while_serving_is_disabled_are_refused_before_any_resource():
    """They would render nothing and the plan would succeed: config that cannot take effect must not pass unnoticed."""
    message, declared = refused(
        "dev",
        serving=json.dumps(
            {"enabled": False, "models": [{"name": "diabetes", "namespace": PROFILE, "storageUri": f"{ROOTS['dev']}/{ARTIFACTS}"}]}
        ),
    )
    assert (
        message
        == "mlops-platform:serving.models: set, but serving.enabled is false; allowed: serving.enabled true, or serving.models left out"
    )
    assert declared == []


@pytest.mark.slow
def test_credentials_only_plan_imports_neither_kserve_nor_mlflow():
    code = (
        "import json, sys; from tools.testing.plans import run_with; "
        f"run_with('dev', serving=json.dumps({{'enabled': True, 'namespaces': ['{TEAM}']}})); "
        "print(sorted(m for m in ('kserve', 'mlflow') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"


# -- configuration errors -------------------------------------------------------------------------


def model(**fields: object) -> dict:
    return {"name": "diabetes", "namespace": PROFILE, **fields}


CANARY = {"alias": "challenger", "trafficPercent": 10}
REGISTRY = "https://mlflow.example.com/mlflow"


@pytest.mark.parametrize(
    "config, expected",
    [
        (
            {"models": [model(registeredModel="diabetes", alias="production")]},
            "mlops-platform:serving.mlflowTrackingUri: is required when a model uses alias or version",
        ),
        (
            {"mlflowTrackingUri": "https://ci:hunter2@mlflow.example.com/mlflow"},
            "mlops-platform:serving.mlflowTrackingUri: must not contain credentials",
        ),
        (
            {"models": [model(storageUri=f"{ROOTS['dev']}/{ARTIFACTS}", version=3)]},
            "mlops-platform:serving.models[0]: set exactly one of alias, version or storageUri",
        ),
        (
            {"models": [model(storageUri="gs://bucket/model")]},
            "mlops-platform:serving.models[0].storageUri: 'gs://bucket/model' is not valid",
        ),
        (
            {"models": [model(storageUri=f"{ROOTS['dev']}/{ARTIFACTS}", minReplicas=0)]},
            "mlops-platform:serving.models[0].minReplicas: 0 (scale to zero) needs deploymentMode Serverless",
        ),
        (
            {"models": [model(storageUri=f"{ROOTS['dev']}/a"), model(storageUri=f"{ROOTS['dev']}/b")]},
            "mlops-platform:serving.models[1].name: 'diabetes' is already used in namespace",
        ),
        (
            {"deploymentMode": "Serverless", "models": [model(storageUri=f"{ROOTS['dev']}/a", canary=CANARY)]},
            "mlops-platform:serving.models[0].canary: needs a registry source; allowed: registeredModel with alias or version, "
            "not storageUri",
        ),
        (
            {"deploymentMode": "Serverless", "models": [model(registeredModel="diabetes", alias="challenger", canary=CANARY)]},
            "mlops-platform:serving.models[0].canary: names the same alias or version as the model itself",
        ),
        (
            {"deploymentMode": "Serverless", "models": [model(registeredModel="d", alias="production", canary={**CANARY, "version": 4})]},
            "mlops-platform:serving.models[0].canary: set exactly one of alias or version",
        ),
        (
            {
                "deploymentMode": "Serverless",
                "models": [model(registeredModel="d", alias="production", canary={**CANARY, "trafficPercent": 100})],
            },
            "mlops-platform:serving.models[0].canary.trafficPercent: 100 is not allowed; allowed: less than or equal to 99",
        ),
        (
            {"deploymentMode": "Serverless", "models": [model(registeredModel="d", alias="production", canary={"alias": "challenger"})]},
            "mlops-platform:serving.models[0].canary.trafficPercent: is required",
        ),
        (
            {"mlflowFormatVersions": ["4"]},
            "mlops-platform:serving.mlflowFormatVersions[0]: '4' is not allowed; allowed: '1', '2' or '3'",
        ),
        (
            {"installKserve": True, "deploymentMode": "Serverless"},
            "mlops-platform:serving.installKserve: installs KServe for RawDeployment only",
        ),
        (
            {"models": [model(storageUri="s3://another-bucket/dev/7/artifacts")]},
            "mlops-platform:serving.models[0] (diabetes): source s3://another-bucket/dev/7/artifacts is not under "
            "s3://mlflow-artifacts/dev/, the only prefix KServe's storage credentials can read",
        ),
        (
            {"models": [model(storageUri="s3://mlflow-artifacts/dev/../prod/7/artifacts")]},
            "mlops-platform:serving.models[0] (diabetes): source s3://mlflow-artifacts/dev/../prod/7/artifacts is not under s3://mlflow-artifacts/dev/",
        ),
    ],
)
def test_invalid_serving_config_stops_with_one_line(config, expected):
    with pytest.raises(ConfigError) as caught:
        run_with("dev", serving=json.dumps({"enabled": True, **config}))
    message = str(caught.value)
    assert message.startswith(expected) and "\n" not in message
    assert "hunter2" not in message


def test_a_registry_token_in_plain_text_is_refused_without_echoing_it():
    token = "mlflow-token-0123456789abcdef"
    with pytest.raises(ConfigError) as caught:
        run_with("dev", serving=json.dumps({"enabled": True, "registryToken": token}))
    assert str(caught.value) == (
        "mlops-platform:serving.registryToken: is stored in plain text; allowed: a secret, set with `pulumi config set "
        "--secret --path serving.registryToken`"
    )


def test_a_canary_in_raw_deployment_is_refused_naming_the_model_and_the_mode():
    """RawDeployment has no revisions to split between: KServe would ignore canaryTrafficPercent and serve the challenger to all."""
    config = {
        "enabled": True,
        "mlflowTrackingUri": REGISTRY,
        "models": [model(registeredModel="diabetes", alias="production", canary=CANARY)],
    }
    message, declared = refused("dev", serving=json.dumps(config))
    assert message == (
        "mlops-platform:serving.models[0].canary: model 'diabetes' cannot split traffic in deploymentMode RawDeployment; "
        "allowed: deploymentMode Serverless (KServe's canaryTrafficPercent needs Knative revisions), or no canary"
    )
    assert declared == []
    assert stack_config_of("dev", serving={**config, "deploymentMode": "Serverless"}).serving.models[0].canary.traffic_percent == 10


V3 = f"{ROOTS['dev']}/1/models/m-3/artifacts/"
V4 = f"{ROOTS['dev']}/1/models/m-4/artifacts/"


def resolved(canary: bool = True) -> ResolvedModel:
    source = ModelSource.model_validate(model(registeredModel="diabetes", alias="production", canary=CANARY if canary else None))
    challenger = ResolvedCanary(V4, "4", "run-4", "challenger", 10) if canary else None
    return ResolvedModel(source, V3, version="3", run_id="run-3", canary=challenger)


def test_a_canary_declares_the_challenger_as_latest_revision_with_its_share():
    """KServe's canary: the spec is what the latest revision serves (the challenger), the previous rolled-out revision keeps the rest."""
    manifest = serving.inference_service(resolved(), "Serverless", SA, {})
    predictor = manifest["spec"]["predictor"]
    assert predictor["canaryTrafficPercent"] == 10
    assert predictor["model"]["storageUri"] == V4
    assert manifest["metadata"]["annotations"] == {
        "serving.kserve.io/deploymentMode": "Serverless",
        serving.REGISTERED_MODEL: "diabetes",
        serving.MODEL_VERSION: "3",
        serving.MODEL_ALIAS: "production",
        serving.RUN_ID: "run-3",
        serving.CANARY_VERSION: "4",
        serving.CANARY_ALIAS: "challenger",
        serving.CANARY_RUN_ID: "run-4",
    }
    assert conformance.inference_service_errors(manifest) == []


@pytest.mark.parametrize("canary", [True, False], ids=["canary", "no-canary"])
def test_the_manifest_is_exactly_what_the_kserve_sdk_models_write(plan, canary):
    """Plain data (no SDK import at plan time), but every field must survive the typed models unchanged."""
    manifests = [r.inputs for r in plan.kinds("InferenceService")] + [serving.inference_service(resolved(canary), "Serverless", SA, {})]
    for manifest in manifests:
        assert conformance.inference_service_round_trip(manifest) == manifest


def test_without_a_canary_the_spec_is_productions_and_has_no_split():
    manifest = serving.inference_service(resolved(canary=False), "Serverless", SA, {})
    assert "canaryTrafficPercent" not in manifest["spec"]["predictor"]
    assert manifest["spec"]["predictor"]["model"]["storageUri"] == V3
    assert not [key for key in manifest["metadata"]["annotations"] if "canary" in key]


def test_the_output_and_the_plan_note_show_both_versions_and_the_split():
    assert serving.served(resolved())["canary"] == {
        "storageUri": V4,
        "version": "4",
        "alias": "challenger",
        "runId": "run-4",
        "trafficPercent": 10,
    }
    assert serving.served(resolved())["storageUri"] == V3
    assert serving.describe(serving.inference_service(resolved(), "Serverless", SA, {})) == (
        "diabetes v3 @production 90% | v4 @challenger 10%"
    )


def test_plan_notes_name_the_served_model_version():
    annotations = {serving.REGISTERED_MODEL: "diabetes", serving.MODEL_VERSION: "4", serving.MODEL_ALIAS: "production"}
    assert serving.describe({"metadata": {"annotations": annotations}}) == "diabetes v4 @production"
    assert (
        serving.describe({"metadata": {"annotations": {serving.REGISTERED_MODEL: "diabetes", serving.MODEL_VERSION: "3"}}}) == "diabetes v3"
    )
    assert serving.describe({"metadata": {}}) == "pinned storageUri"


def test_prod_service_accounts_wait_for_the_roles_permissions():
    plan = run_with("prod", serving=json.dumps({"enabled": True, "namespaces": ["models"]}))
    (policy,) = [r for r in plan.of_type("aws:iam/rolePolicy:RolePolicy") if "serving" in r.name]
    (account,) = [r for r in plan.kinds("ServiceAccount") if r.k8s_namespace == "models"]
    assert policy.urn in account.dependencies
