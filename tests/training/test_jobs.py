"""TrainingJobs: one Job or CronJob per entry, MLflow wired in as for a notebook, hardened, failures kept for a bounded time."""

from __future__ import annotations

import json

import pytest
import yaml

from mlops_platform.k8s.containers import API_TOKEN_DIR
from mlops_platform.tracking.settings import MLFLOW_IMAGE
from tools.testing.harness import ROOT
from tools.testing.plans import container, env_of, refused, run_with

PROFILE = "kubeflow-user-example-com"
COMPONENT = "mlops:index:TrainingJobs"
ONCE = {"name": "diabetes", "namespace": PROFILE, "image": MLFLOW_IMAGE, "command": ["python", "train.py"], "env": {"ALPHA": "0.5"}}
KUBEFLOW = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())["config"]["mlops-platform:kubeflow"]
NIGHTLY = {**ONCE, "name": "diabetes-nightly", "schedule": "0 3 * * *", "keepFinishedHours": 48}


@pytest.fixture(scope="module")
def plan():
    return run_with("dev", training=json.dumps([ONCE, NIGHTLY]))


def test_a_job_without_schedule_runs_once_and_one_with_a_schedule_is_a_cronjob(plan):
    job = plan.k8s("Job", "diabetes", PROFILE)
    cron = plan.k8s("CronJob", "diabetes-nightly", PROFILE)
    assert cron.inputs["spec"]["schedule"] == "0 3 * * *"
    assert cron.inputs["spec"]["concurrencyPolicy"] == "Forbid"
    assert plan.outputs["trainingJobs"] == [f"{PROFILE}/diabetes", f"{PROFILE}/diabetes-nightly"]
    assert {r.parent for r in (job, cron)} == {plan.of_type(COMPONENT)[0].urn}
    # `pulumi up` neither waits for nor fails with a training run.
    assert job.inputs["metadata"]["annotations"]["pulumi.com/skipAwait"] == "true"


def test_a_failed_run_is_not_retried_and_its_pod_is_kept_for_the_configured_time(plan):
    for resource, hours in ((plan.k8s("Job", "diabetes", PROFILE), 24), (plan.k8s("CronJob", "diabetes-nightly", PROFILE), 48)):
        spec = resource.inputs["spec"]
        job_spec = spec["jobTemplate"]["spec"] if "jobTemplate" in spec else spec
        assert job_spec["backoffLimit"] == 0
        assert job_spec["ttlSecondsAfterFinished"] == hours * 3600
        assert resource.pod_spec()["restartPolicy"] == "Never"
    assert plan.k8s("CronJob", "diabetes-nightly", PROFILE).inputs["spec"]["failedJobsHistoryLimit"] == 1


def test_a_profile_job_gets_mlflow_as_a_notebook_does_through_the_profiles_poddefault(plan):
    job = plan.k8s("Job", "diabetes", PROFILE)
    pod_default = plan.k8s("PodDefault", "mlflow", PROFILE)
    labels = job.inputs["spec"]["template"]["metadata"]["labels"]
    assert pod_default.inputs["spec"]["selector"]["matchLabels"].items() <= labels.items()
    # The profile's egress Sidecar selects it too, so its calls to MLflow carry the profile's mTLS identity.
    sidecar = plan.k8s("Sidecar", "mlflow-egress", PROFILE)
    assert sidecar.inputs["spec"]["workloadSelector"]["labels"].items() <= labels.items()
    pod = job.pod_spec()
    assert pod["serviceAccountName"] == "default-editor"
    assert pod["automountServiceAccountToken"] is False
    # Nothing the PodDefault injects is declared again (the webhook refuses conflicting values).
    injected = {e["name"] for e in pod_default.inputs["spec"]["env"]}
    assert set(env_of(container(job, "train"))) & injected == set()
    assert env_of(container(job, "train"))["ALPHA"]["value"] == "0.5"
    assert job.inputs["spec"]["template"]["metadata"]["annotations"] == {"sidecar.istio.io/nativeSidecar": "true"}
    # Created after the PodDefault and the profile's credentials exist, and after the server.
    depends = set(job.dependencies)
    assert pod_default.urn in depends
    assert plan.k8s("Deployment", "mlflow", "mlflow").urn in depends


def test_the_training_container_is_hardened_with_a_writable_tmp_only(plan):
    c = container(plan.k8s("Job", "diabetes", PROFILE), "train")
    security = c["securityContext"]
    assert security["runAsNonRoot"] and security["readOnlyRootFilesystem"] and not security["allowPrivilegeEscalation"]
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert [m["mountPath"] for m in c["volumeMounts"]] == ["/tmp", API_TOKEN_DIR]
    assert c["resources"]["limits"] == {"cpu": "2", "memory": "4Gi"}


def test_under_workspaces_a_profile_job_carries_its_own_short_lived_token_as_a_notebook_does(plan):
    """The server authorizes the caller's ServiceAccount token; automounting is off, so the job gets a projected one."""
    job = plan.k8s("Job", "diabetes", PROFILE)
    pod_default = plan.k8s("PodDefault", "mlflow", PROFILE)
    assert env_of(pod_default.inputs["spec"])["MLFLOW_TRACKING_AUTH"]["value"] == "kubernetes-namespaced"
    (token,) = [v for v in job.pod_spec()["volumes"] if "projected" in v]
    sources = token["projected"]["sources"]
    assert sources[0]["serviceAccountToken"] == {"path": "token", "expirationSeconds": 3600}
    assert {"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}} in sources[2]["downwardAPI"]["items"]
    (mount,) = [m for m in container(job, "train")["volumeMounts"] if m["name"] == token["name"]]
    assert mount == {"name": "kube-api-access", "mountPath": API_TOKEN_DIR, "readOnly": True}


def test_without_workspaces_a_profile_job_carries_no_token():
    plan = run_with("dev", training=json.dumps([ONCE]), kubeflow=json.dumps({**KUBEFLOW, "workspaces": False}))
    job = plan.k8s("Job", "diabetes", PROFILE)
    assert not any("projected" in v for v in job.pod_spec()["volumes"])
    assert [m["mountPath"] for m in container(job, "train")["volumeMounts"]] == ["/tmp"]


def test_without_kubeflow_a_job_in_the_tracking_namespace_gets_the_tracking_uri_and_no_storage_credentials():
    plan = run_with(
        "dev",
        kubeflow=json.dumps({"enabled": False}),
        serving=json.dumps({"enabled": False}),
        monitoring=json.dumps({"enabled": False}),
        training=json.dumps([{"name": "nightly", "image": MLFLOW_IMAGE, "command": ["python", "train.py"], "experiment": "nightly"}]),
    )
    job = plan.k8s("Job", "nightly", "mlflow")
    env = env_of(container(job, "train"))
    assert env["MLFLOW_TRACKING_URI"]["value"] == plan.outputs["trackingUri"]
    assert env["MLFLOW_EXPERIMENT_NAME"]["value"] == "nightly"
    assert not [name for name in env if name.startswith("AWS_")]
    assert "serviceAccountName" not in job.pod_spec()


@pytest.mark.parametrize(
    "jobs, expected",
    [
        (
            [{**ONCE, "namespace": "team-z"}],
            "mlops-platform:training[0].namespace: 'team-z' is neither the tracking namespace nor a Kubeflow profile",
        ),
        ([{**ONCE, "namespace": None}], "mlops-platform:training[0].namespace: left out (the tracking namespace), but Kubeflow's mesh"),
        ([ONCE, ONCE], "mlops-platform:training[1].name: 'diabetes' is already used in kubeflow-user-example-com by training[0]"),
        ([{**ONCE, "env": {"AWS_ACCESS_KEY_ID": "x"}}], "mlops-platform:training[0].env: AWS_ACCESS_KEY_ID is set by the platform"),
        (
            [{**ONCE, "schedule": "every night"}],
            "mlops-platform:training[0].schedule: 'every night' is not a CronJob schedule (2 fields, not 5)",
        ),
        ([{**ONCE, "image": "python"}], "mlops-platform:training[0].image: 'python' is not an image reference"),
        ([{**ONCE, "command": []}], "mlops-platform:training[0].command: "),
    ],
    ids=["unknown-namespace", "tracking-namespace-in-mesh", "duplicate", "platform-env", "schedule", "unpinned-image", "no-command"],
)
def test_a_training_entry_that_cannot_run_as_declared_is_refused_before_any_resource(jobs, expected):
    message, declared = refused("dev", training=json.dumps([{k: v for k, v in j.items() if v is not None} for j in jobs]))
    assert message.startswith(expected), message
    assert declared == []


def test_jobs_and_cronjobs_pass_the_conformance_gate(plan):
    from tools.testing import conformance

    checked = [(r.kind, *conformance.validate_manifest(m, "1.34")) for r, m in plan.manifests() if r.kind in ("Job", "CronJob")]
    assert {kind for kind, _, _ in checked} == {"Job", "CronJob"}
    assert [(kind, errors) for kind, _, errors in checked if errors] == []
